"""The options of the single-matrix ``masks`` commands, each declared once as a dataclass (flag,
help, default): the typer command, the Python function and the ``--config`` file read the same
declaration. Free of torch imports so the CLI stays fast."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from interplab.common.options import option

DEFAULT_NULL_SAMPLES = 20  # shuffled-mask draws per execution
DEFAULT_MAX_FEATURES = 2048  # the whole-matrix Hamming histogram subsamples beyond this many features
AXIS_HELP = "Features are the matrix 'columns' (default) or its 'rows'."
NULL_HELP = "Null-model samples (shuffled-mask draws) per execution; 0 turns the null model off."
HIST_HELP = "Whole-matrix Hamming histogram: at most this many features (random subsample beyond)."
SEED_HELP = "Seed for the feature choice, k-means and the null model."
MATRIX_HELP = "A .pt file holding a 2-D weight matrix [D, N]."


@dataclasses.dataclass
class SelectionConfig:
    """What every single-matrix analysis shares: the matrix, the neighbourhood, k-means, the null
    model, the whole-matrix histogram and the JSON output."""

    matrix_path: Path = option(flag="matrix", argument=True, help=MATRIX_HELP)
    n_features: int = option(128, help="Top-N similar features per reference feature (itself included).")
    n_clusters: int = option(8, help="k for k-means.")
    seed: int = option(42, help=SEED_HELP)
    axis: str = option("columns", help=AXIS_HELP)
    null_samples: int = option(DEFAULT_NULL_SAMPLES, help=NULL_HELP)
    hist_max_features: int = option(DEFAULT_MAX_FEATURES, help=HIST_HELP)
    output_json: Path | None = option(None, help="Write the results JSON here.")


@dataclasses.dataclass
class HammingConfig(SelectionConfig):
    """``interplab masks hamming``: one reference feature and its top-N neighbours."""

    feature_idx: int | None = option(None, help="Reference feature (random if omitted).")


@dataclasses.dataclass
class MultiExecConfig(SelectionConfig):
    """``interplab masks multi-exec``: repeated random reference features of one matrix."""

    n_executions: int = option(10, help="Random reference features.")
