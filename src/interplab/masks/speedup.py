"""``interplab masks speedup MASKS_DIR``: what each mask of a mask set is worth on kernels.

Per matrix: N:M compliance (2:4, 4:8: violating groups, distance to the nearest N:M mask), the
occupancy of tiles at hardware shapes (16×8, 16×16, 32×32 rows × inputs of W), an optional
permutation search for empty 16×8 tiles against the density-preserving null model, and the roofline
speedup of ``y = W x`` over dense for each storage format, batch size and machine
(:mod:`interplab.masks.roofline`). Everything is computed before anything is written.
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
from interplab.common.progress import track
from interplab.masks.mask_configs import SpeedupConfig
from interplab.masks.mask_set import mask_files
from interplab.masks.matrix import load_tensor
from interplab.masks.nm import STANDARD_PATTERNS, nm_compliance
from interplab.masks.permute import permutation_search
from interplab.masks.roofline import FORMATS, Machine, MaskCounts, machine, speedups
from interplab.masks.tiles import count_nonempty_tiles, total_tiles

log = logging.getLogger(__name__)

TILE_SHAPES = ((16, 8), (16, 16), (32, 32))
MATRICES = "matrices.parquet"
ROOFLINE = "roofline.parquet"
SUMMARY = "speedup.json"
REPORT = "speedup.md"
FIGURE = "roofline_speedup"


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError as exc:
        raise InterplabError(f"{flag} {text!r}: expected comma-separated integers, e.g. 1,16,256") from exc
    if not values or min(values) < 1:
        raise InterplabError(f"{flag} {text!r}: expected positive integers, e.g. 1,16,256")
    return values


def matrix_structure(kept: np.ndarray) -> dict[str, Any]:
    """N:M compliance and tile occupancy of one kept-mask [out, in]."""
    row: dict[str, Any] = {
        "rows": int(kept.shape[0]),
        "cols": int(kept.shape[1]),
        "density": float(kept.mean()),
    }
    for n, m in STANDARD_PATTERNS:
        nm = nm_compliance(kept, n, m)
        row[f"{n}:{m}_violating_fraction"] = nm.violating_fraction
        row[f"{n}:{m}_distance"] = nm.distance
        row[f"{n}:{m}_distance_fraction"] = nm.distance_fraction
    for tr, tc in TILE_SHAPES:
        total = total_tiles(kept.shape[0], kept.shape[1], (tr, tc))
        nonempty = count_nonempty_tiles(kept, (tr, tc))
        row[f"tiles{tr}x{tc}_nonempty"] = nonempty
        row[f"tiles{tr}x{tc}_empty_fraction"] = 1.0 - nonempty / total
    return row


@dataclasses.dataclass
class SpeedupResult:
    """Per-matrix structure rows and long-form roofline rows."""

    masks_dir: Path
    machines: list[Machine]
    matrices: list[dict[str, Any]]
    roofline: list[dict[str, Any]]
    out_dir: Path | None = None

    def median_speedup(self, machine_name: str, fmt: str, batch: int) -> float | None:
        values = [
            r["speedup"]
            for r in self.roofline
            if r["machine"] == machine_name
            and r["format"] == fmt
            and r["batch"] == batch
            and r["speedup"] is not None
        ]
        return float(np.median(values)) if values else None


def analyse(config: SpeedupConfig) -> SpeedupResult:
    """Compute everything for the mask set (nothing is written)."""
    batches = _ints(config.batch_sizes, "--batch-sizes")
    names = [n.strip() for n in config.machines.split(",") if n.strip()]
    if not names:
        raise InterplabError(f"--machines {config.machines!r}: expected e.g. a100,h100,host")
    if config.rounds < 0:
        raise InterplabError(f"--rounds {config.rounds}: expected an integer ≥ 0")
    files = mask_files(config.masks_dir)
    machines = [machine(n) for n in names]
    matrices: list[dict[str, Any]] = []
    roofline: list[dict[str, Any]] = []
    for f in track(files, "speedup", total=len(files)):
        kept = load_tensor(f.path)
        row = {"layer": f.layer, "component": f.component, **matrix_structure(kept)}
        if config.permute:
            row.update(
                {
                    f"perm_{k}": v
                    for k, v in permutation_search(kept, rounds=config.rounds, seed=config.seed)
                    .record()
                    .items()
                    if k != "tile"
                }
            )
        matrices.append(row)
        counts = MaskCounts.of(kept)
        for m in machines:
            for r in speedups(counts, m, batches):
                roofline.append({"layer": f.layer, "component": f.component, "machine": m.name, **r})
    return SpeedupResult(Path(config.masks_dir), machines, matrices, roofline)


def plot_speedups(result: SpeedupResult, path: Path) -> list[Path]:
    """Median roofline speedup over the matrices against batch size, one panel per machine."""
    batches = sorted({r["batch"] for r in result.roofline})
    fig, axes = new_figure(1, len(result.machines), figsize=(4.2 * len(result.machines), 3.6), squeeze=False)
    for ax, m in zip(axes[0], result.machines, strict=True):
        for fmt in FORMATS:
            ys = [result.median_speedup(m.name, fmt, b) for b in batches]
            if all(y is None for y in ys):
                continue
            ax.plot(batches, [np.nan if y is None else y for y in ys], marker="o", label=fmt)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("batch size B")
        ax.set_ylabel("estimated speedup over dense")
        ax.set_title(m.name, fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Roofline speedup of y = W x (median over matrices): {result.masks_dir.name}")
    return save_figure(fig, path)


def summary(result: SpeedupResult) -> dict[str, Any]:
    """``speedup.json``: machines, medians per machine/format/batch, per-matrix structure."""
    batches = sorted({r["batch"] for r in result.roofline})
    return {
        "command": "masks speedup",
        "masks_dir": str(result.masks_dir),
        "machines": [dataclasses.asdict(m) for m in result.machines],
        "median_speedup": {
            m.name: {fmt: {str(b): result.median_speedup(m.name, fmt, b) for b in batches} for fmt in FORMATS}
            for m in result.machines
        },
        "matrices": result.matrices,
    }


def report_markdown(data: dict[str, Any]) -> str:
    """``speedup.md``: median speedups per machine and the structure of each matrix."""
    lines = [f"# What the masks of `{data['masks_dir']}` are worth on kernels", ""]
    for m in data["machines"]:
        med = data["median_speedup"][m["name"]]
        batches = list(next(iter(med.values())))
        lines += [
            f"## {m['name']} (tensor {m['tensor_flops']:.3g} FLOP/s, SIMT {m['simt_flops']:.3g} FLOP/s, "
            f"{m['bandwidth']:.3g} B/s, {m['value_bytes']} B/value)",
            "",
            "| format | " + " | ".join(f"B={b}" for b in batches) + " |",
            "|---|" + "---:|" * len(batches),
        ]
        for fmt, values in med.items():
            cells = ["n/a" if v is None else f"{v:.2f}×" for v in values.values()]
            lines.append(f"| {fmt} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Matrices",
        "",
        "| layer | component | density | 2:4 viol. | 2:4 distance | empty 16×8 | empty 16×16 | empty 32×32 | "
        "empty 16×8 permuted (null) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["matrices"]:
        perm = (
            f"{r['perm_empty_searched'] / r['perm_total_tiles']:.4f} "
            f"({r['perm_null_empty_searched'] / r['perm_total_tiles']:.4f})"
            if "perm_empty_searched" in r
            else "—"
        )
        lines.append(
            f"| {r['layer']} | `{r['component']}` | {r['density']:.4f} | {r['2:4_violating_fraction']:.4f} | "
            f"{r['2:4_distance_fraction']:.4f} | {r['tiles16x8_empty_fraction']:.4f} | "
            f"{r['tiles16x16_empty_fraction']:.4f} | {r['tiles32x32_empty_fraction']:.4f} | {perm} |"
        )
    return "\n".join(lines) + "\n"


def speedup_command(config: SpeedupConfig) -> SpeedupResult:
    """Analyse the mask set and write the output folder."""
    import pandas as pd

    result = analyse(config)
    out = Path(config.out) if config.out is not None else Path(config.masks_dir) / "speedup"
    arguments = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}
    data = summary(result)
    with output_dir(out, "masks speedup", arguments) as od:
        write_parquet(od.file(MATRICES), pd.DataFrame(result.matrices))
        write_parquet(od.file(ROOFLINE), pd.DataFrame(result.roofline))
        write_json(od.file(SUMMARY), data)
        for path in plot_speedups(result, od.path / FIGURE):
            od.record(path)
        write_text(od.file(REPORT), report_markdown(data))
    result.out_dir = out
    return result
