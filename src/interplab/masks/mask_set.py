"""A mask set: the ``layer<L>-<component>.pt`` files of one folder written by ``masks prune`` or
``masks extract`` (one pruned [out, in] matrix each; its non-zeros are the kept weights)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interplab.common.errors import InterplabError

MATRIX_FILE = re.compile(r"^layer(?P<layer>\d+)-(?P<component>.+)\.pt$")
REPORT_JSON = "pruning_report.json"
REPORT_MD = "pruning_report.md"


@dataclasses.dataclass(frozen=True)
class MaskFile:
    """One matrix file of a mask set."""

    layer: int
    component: str
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


def mask_files(folder: str | Path) -> list[MaskFile]:
    """The matrix files of ``folder``, sorted by layer then component; none is an error."""
    root = Path(folder)
    if not root.is_dir():
        raise InterplabError(f"{root}: not a folder; expected a mask set (layer<L>-<component>.pt files)")
    found = []
    for path in root.iterdir():
        match = MATRIX_FILE.match(path.name)
        if match and path.is_file():
            found.append(MaskFile(int(match["layer"]), match["component"], path))
    if not found:
        raise InterplabError(
            f"{root}: no layer<L>-<component>.pt files (the output of masks prune / masks extract)"
        )
    return sorted(found, key=lambda f: (f.layer, f.component))


def report_model(folder: str | Path) -> dict[str, Any] | None:
    """The ``model`` entry of the folder's ``pruning_report.json`` (None when absent)."""
    path = Path(folder) / REPORT_JSON
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("model")
    except (json.JSONDecodeError, AttributeError):
        return None


def report_summary(matrices: Sequence[Any], measured: bool, total_seconds: float | None) -> dict[str, Any]:
    """The ``summary`` entry of ``pruning_report.json`` for ``matrices`` (each with ``shape``,
    ``sparsity``, ``relative_output_error`` and ``seconds``): sparsity over all their weights and,
    when ``measured``, their relative output errors (else None)."""
    numel = [m.shape[0] * m.shape[1] for m in matrices]
    zeros = sum(m.sparsity * n for m, n in zip(matrices, numel, strict=True))
    errors = [m.relative_output_error for m in matrices]
    return {
        "n_matrices": len(matrices),
        "overall_sparsity": zeros / max(sum(numel), 1),
        "mean_relative_output_error": sum(errors) / max(len(errors), 1) if measured else None,
        "max_relative_output_error": max(errors, default=0.0) if measured else None,
        "pruning_seconds": sum(m.seconds for m in matrices),
        "total_seconds": total_seconds,
    }
