"""``interplab masks diff A B``: how two mask sets of the same model differ, matrix by matrix.

Per matrix (kept = non-zero weight):

- Jaccard of the kept positions |A ∧ B| / |A ∨ B| (1 = identical masks);
- Hamming per output row: positions where the masks differ, as a fraction of the row, mean and max
  over the rows;
- sparsity and N:M compliance (2:4, 4:8: fraction of violating groups) of each mask.

Both sets must hold the same matrix files with the same shapes (else the first mismatching matrix
is named). Everything is computed before anything is written.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from interplab.common.atomic import write_json, write_parquet, write_text
from interplab.common.errors import InterplabError
from interplab.common.figures import new_figure, save_figure
from interplab.common.output import output_dir
from interplab.masks.mask_configs import DiffConfig
from interplab.masks.mask_set import MaskFile, mask_files, report_model
from interplab.masks.matrix import load_tensor
from interplab.masks.nm import STANDARD_PATTERNS, nm_compliance

log = logging.getLogger(__name__)

TABLE = "diff.parquet"
TABLE_CSV = "diff.csv"
SUMMARY = "diff.json"
REPORT = "diff.md"
FIGURE_HEATMAP = "jaccard_heatmap"
FIGURE_RANKED = "most_different"


@dataclasses.dataclass
class MatrixDiff:
    """The comparison of one matrix in the two sets."""

    layer: int
    component: str
    rows: int
    cols: int
    sparsity_a: float
    sparsity_b: float
    jaccard: float
    row_hamming_mean: float
    row_hamming_max: float
    nm_violating_a: dict[str, float]
    nm_violating_b: dict[str, float]

    def row(self) -> dict[str, Any]:
        """A flat table row."""
        base = {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("nm_")}
        for pattern in self.nm_violating_a:
            base[f"a_{pattern}_violating"] = self.nm_violating_a[pattern]
            base[f"b_{pattern}_violating"] = self.nm_violating_b[pattern]
        return base


@dataclasses.dataclass
class DiffResult:
    """All matrices compared, most different (lowest Jaccard) first in ``ranked``."""

    a: Path
    b: Path
    matrices: list[MatrixDiff]
    out_dir: Path | None = None

    @property
    def ranked(self) -> list[MatrixDiff]:
        return sorted(self.matrices, key=lambda m: (m.jaccard, m.layer, m.component))

    @property
    def overall_jaccard(self) -> float:
        """Jaccard over all weights of all matrices together."""
        inter = sum(m.jaccard * _union(m) for m in self.matrices)
        union = sum(_union(m) for m in self.matrices)
        return inter / union if union else 1.0


def _union(m: MatrixDiff) -> float:
    """|A ∨ B| from the sparsities and the differing fraction: |A|+|B| = |A∧B|+|A∨B| and
    |A∨B| − |A∧B| = differing = mean row Hamming · weights."""
    n = m.rows * m.cols
    kept_sum = (2.0 - m.sparsity_a - m.sparsity_b) * n
    return (kept_sum + m.row_hamming_mean * n) / 2.0


def compare_masks(a: np.ndarray, b: np.ndarray, layer: int, component: str) -> MatrixDiff:
    """Compare two boolean kept-masks of the same shape."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    inter = int(np.count_nonzero(a & b))
    union = int(np.count_nonzero(a | b))
    row_diff = np.count_nonzero(a ^ b, axis=1) / a.shape[1]
    return MatrixDiff(
        layer=layer,
        component=component,
        rows=int(a.shape[0]),
        cols=int(a.shape[1]),
        sparsity_a=float(1.0 - a.mean()),
        sparsity_b=float(1.0 - b.mean()),
        jaccard=inter / union if union else 1.0,
        row_hamming_mean=float(row_diff.mean()),
        row_hamming_max=float(row_diff.max()),
        nm_violating_a={f"{n}:{m}": nm_compliance(a, n, m).violating_fraction for n, m in STANDARD_PATTERNS},
        nm_violating_b={f"{n}:{m}": nm_compliance(b, n, m).violating_fraction for n, m in STANDARD_PATTERNS},
    )


def _pair_files(a: Path, b: Path) -> list[tuple[MaskFile, MaskFile]]:
    files_a = {f.name: f for f in mask_files(a)}
    files_b = {f.name: f for f in mask_files(b)}
    for name in sorted(set(files_a) | set(files_b), key=lambda n: (files_a.get(n) or files_b[n]).layer):
        if name not in files_b:
            raise InterplabError(
                f"{b}: has no {name} (present in {a}); the mask sets are of different models"
            )
        if name not in files_a:
            raise InterplabError(
                f"{a}: has no {name} (present in {b}); the mask sets are of different models"
            )
    return [(files_a[n], files_b[n]) for n in files_a]


def diff_mask_sets(a: str | Path, b: str | Path) -> DiffResult:
    """Compare every matrix of mask sets ``a`` and ``b`` (nothing is written)."""
    a, b = Path(a), Path(b)
    model_a, model_b = report_model(a), report_model(b)
    if model_a and model_b and model_a.get("architecture") != model_b.get("architecture"):
        log.warning(
            "%s and %s come from different architectures (%s, %s)",
            a,
            b,
            model_a.get("architecture"),
            model_b.get("architecture"),
        )
    diffs = []
    for fa, fb in sorted(_pair_files(a, b), key=lambda p: (p[0].layer, p[0].component)):
        ma, mb = load_tensor(fa.path), load_tensor(fb.path)
        if ma.shape != mb.shape:
            raise InterplabError(
                f"{fa.name}: shape {list(ma.shape)} in {a} but {list(mb.shape)} in {b}; "
                "the mask sets are of different models"
            )
        diffs.append(compare_masks(ma, mb, fa.layer, fa.component))
    return DiffResult(a, b, diffs)


def plot_jaccard_heatmap(result: DiffResult, path: Path) -> list[Path]:
    """Layer × component heat map of the Jaccard similarity."""
    layers = sorted({m.layer for m in result.matrices})
    comps = sorted({m.component for m in result.matrices})
    grid = np.full((len(layers), len(comps)), np.nan)
    for m in result.matrices:
        grid[layers.index(m.layer), comps.index(m.component)] = m.jaccard
    fig, ax = new_figure(figsize=(max(5.0, 0.9 * len(comps) + 2), max(3.0, 0.35 * len(layers) + 1.5)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.grid(False)
    ax.set_xticks(range(len(comps)), comps, rotation=45, ha="right")
    ax.set_yticks(range(len(layers)), [str(v) for v in layers])
    ax.set_xlabel("component")
    ax.set_ylabel("layer")
    ax.set_title(f"Jaccard of kept weights: {result.a.name} vs {result.b.name}")
    fig.colorbar(image, ax=ax, label="Jaccard")
    return save_figure(fig, path)


def plot_most_different(result: DiffResult, path: Path, top: int = 20) -> list[Path]:
    """The ``top`` matrices with the lowest Jaccard, with their mean row Hamming distance."""
    ranked = result.ranked[:top]
    labels = [f"L{m.layer} {m.component}" for m in ranked]
    y = np.arange(len(ranked))
    fig, ax = new_figure(figsize=(7.5, 0.3 * len(ranked) + 1.5))
    ax.barh(y - 0.2, [1 - m.jaccard for m in ranked], height=0.4, label="1 − Jaccard")
    ax.barh(y + 0.2, [m.row_hamming_mean for m in ranked], height=0.4, label="mean row Hamming")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("fraction")
    ax.legend(loc="lower right")
    ax.set_title("Most different matrices")
    return save_figure(fig, path)


def summary(result: DiffResult, top: int = 10) -> dict[str, Any]:
    """The content of ``diff.json``."""
    return {
        "command": "masks diff",
        "a": str(result.a),
        "b": str(result.b),
        "n_matrices": len(result.matrices),
        "overall_jaccard": result.overall_jaccard,
        "mean_jaccard": float(np.mean([m.jaccard for m in result.matrices])),
        "most_different": [
            {
                "layer": m.layer,
                "component": m.component,
                "jaccard": m.jaccard,
                "row_hamming_mean": m.row_hamming_mean,
            }
            for m in result.ranked[:top]
        ],
        "matrices": [m.row() for m in result.matrices],
    }


def report_markdown(data: dict[str, Any]) -> str:
    """``diff.md``: the summary and the table of the most different matrices."""
    lines = [
        f"# Mask diff: `{data['a']}` vs `{data['b']}`",
        "",
        f"- {data['n_matrices']} matrices; Jaccard of kept weights over all matrices "
        f"{data['overall_jaccard']:.4f} (mean per matrix {data['mean_jaccard']:.4f})",
        "",
        "| layer | component | Jaccard | mean row Hamming | max row Hamming | sparsity A | sparsity B "
        "| A 2:4 viol. | B 2:4 viol. |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = {(r["layer"], r["component"]): r for r in data["matrices"]}
    for entry in data["most_different"]:
        r = rows[(entry["layer"], entry["component"])]
        lines.append(
            f"| {r['layer']} | `{r['component']}` | {r['jaccard']:.4f} | {r['row_hamming_mean']:.4f} | "
            f"{r['row_hamming_max']:.4f} | {r['sparsity_a']:.4f} | {r['sparsity_b']:.4f} | "
            f"{r['a_2:4_violating']:.4f} | {r['b_2:4_violating']:.4f} |"
        )
    lines += ["", f"Figures: `{FIGURE_HEATMAP}.png`, `{FIGURE_RANKED}.png`; all matrices in `{TABLE}`."]
    return "\n".join(lines) + "\n"


def default_out(a: Path, b: Path) -> Path:
    """``masks_diff/<A>-vs-<B>`` in the working folder."""
    return Path("masks_diff") / f"{a.resolve().name}-vs-{b.resolve().name}"


def diff_command(config: DiffConfig) -> DiffResult:
    """Compare the two mask sets and write the output folder."""
    import pandas as pd

    a, b = Path(config.a), Path(config.b)
    result = diff_mask_sets(a, b)
    out = Path(config.out) if config.out is not None else default_out(a, b)
    arguments = {"a": str(a), "b": str(b), "out": str(out), "top": config.top}
    data = summary(result, config.top)
    with output_dir(out, "masks diff", arguments) as od:
        table = pd.DataFrame([m.row() for m in result.matrices])
        write_parquet(od.file(TABLE), table)
        write_text(od.file(TABLE_CSV), table.to_csv(index=False))
        write_json(od.file(SUMMARY), data)
        for path in plot_jaccard_heatmap(result, od.path / FIGURE_HEATMAP):
            od.record(path)
        for path in plot_most_different(result, od.path / FIGURE_RANKED, config.top):
            od.record(path)
        write_text(od.file(REPORT), report_markdown(data))
    result.out_dir = out
    return result
