"""Registries of the feature-pair metrics (decoder similarity, co-occurrence): one entry per metric
with its formula and whether a larger value means more related, so neighbour ranking, the CLI help,
the error messages and the docs table all come from one place."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from interplab.common.errors import one_of


@dataclasses.dataclass(frozen=True)
class Metric:
    """One feature-pair metric. ``dense`` / ``sparse`` compute it (signature fixed by the registry's
    module; None where that module computes it another way); ``larger_is_more_related`` is False for
    distances, whose nearest neighbours are the smallest values."""

    formula: str
    larger_is_more_related: bool = True
    dense: Callable[..., Any] | None = None
    sparse: Callable[..., Any] | None = None


def metric_names(registry: Mapping[str, Metric]) -> str:
    """``a | b | c`` for CLI help."""
    return " | ".join(registry)


def get_metric(registry: Mapping[str, Metric], name: str, what: str) -> Metric:
    """The entry of ``name`` or a one-line error listing the registered names."""
    return registry[one_of(name, tuple(registry), what)]


def metrics_table(registry: Mapping[str, Metric]) -> str:
    """The Markdown table of a registry (name, formula, ranking) used in the docs."""
    lines = ["| metric | formula | nearest neighbours |", "|---|---|---|"]
    for name, m in registry.items():
        lines.append(f"| `{name}` | {m.formula} | {'largest' if m.larger_is_more_related else 'smallest'} |")
    return "\n".join(lines)


SIMILARITY_DENSE_LIMIT = 16384  # the dense [d_sae, d_sae] similarity matrix is written up to this width

# decoder similarity: every metric is one GEMM per row block (``similarity._block``), so the entries
# carry the formula and the ranking only; kept here, free of torch, for the CLI help
SIMILARITY: dict[str, Metric] = {
    "cosine": Metric("`W_dec[i]·W_dec[j] / (‖W_dec[i]‖ ‖W_dec[j]‖)`, 0 for a zero row"),
    "dot": Metric("`W_dec[i]·W_dec[j]`"),
    "euclidean": Metric("`‖W_dec[i] − W_dec[j]‖` (a distance)", larger_is_more_related=False),
}
