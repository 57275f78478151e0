"""``masks report``: a comparative table over all mask-analysis JSON results under a folder.

Reads hamming / multi-exec JSONs (keys ``matrix``, ``executions``, ``aggregate``) and multi-seed
``metrics_summary.json`` files, recursively; writes ``comparative_report.md`` and
``comparative_report.csv`` with one row per result (per k for multi-seed), findings by projection
type (component) and by method, and the Jaccard overlap of kept positions between methods for the
same layer/component when the matrices named in the results are still on disk.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from interplab.common.atomic import write_text
from interplab.common.errors import InterplabError
from interplab.common.markdown_html import markdown_table, write_markdown_report
from interplab.common.numbers import format_number
from interplab.common.output import OutputDir

log = logging.getLogger(__name__)

MATRIX_NAME = re.compile(r"^layer(\d+)-(.+)$")
COLUMNS = (
    "source",
    "kind",
    "method",
    "layer",
    "component",
    "k",
    "n_features",
    "runs",
    "separation_ratio",
    "separation_std",
    "separation_label",
    "mean_within",
    "mean_between",
    "min_hamming",
    "max_hamming",
    "nn_hamming",
    "separation_z",
    "nn_z",
    "tile_reduction",
    "mean_union_efficiency",
    "inertia",
    "cluster_balance",
    "matrix_path",
)


# The columns of the Markdown report; the terminal table shows them less source, min_hamming, nn_z.
REPORT_COLUMNS = (
    "source",
    "method",
    "layer",
    "component",
    "k",
    "runs",
    "separation_ratio",
    "separation_label",
    "mean_within",
    "mean_between",
    "min_hamming",
    "separation_z",
    "nn_z",
    "tile_reduction",
)


def fmt(x: Any, digits: int = 4) -> str:
    """Compact number formatting; missing / NaN values print as '–', infinities as '∞'."""
    return format_number(x, digits)


def parse_matrix_path(path: str) -> tuple[str | None, int | None, str | None]:
    """``…/<method>/layer<L>-<component>.pt`` → (method, layer, component); Nones when it does not fit."""
    p = Path(path)
    m = MATRIX_NAME.match(p.stem)
    if not m:
        return (p.parent.name or None), None, p.stem
    return (p.parent.name or None), int(m.group(1)), m.group(2)


def _mean(agg: dict[str, Any], key: str) -> float | None:
    s = agg.get(key)
    return None if not isinstance(s, dict) else s.get("mean")


def _row(
    source: str,
    kind: str,
    matrix: dict[str, Any],
    k: int | None,
    n_features: Any,
    runs: int,
    agg: dict[str, Any],
) -> dict[str, Any]:
    from interplab.masks.cluster import separation_label

    path = str(matrix.get("path", ""))
    method, layer, component = parse_matrix_path(path) if path else (None, None, matrix.get("name"))
    sep = _mean(agg, "separation_ratio")
    return {
        "source": source,
        "kind": kind,
        "method": method,
        "layer": layer,
        "component": component,
        "k": k,
        "n_features": n_features,
        "runs": runs,
        "separation_ratio": sep,
        "separation_std": (agg.get("separation_ratio") or {}).get("std"),
        "separation_label": separation_label(sep) if sep is not None else None,
        "mean_within": _mean(agg, "mean_within"),
        "mean_between": _mean(agg, "mean_between"),
        "min_hamming": _mean(agg, "min_hamming"),
        "max_hamming": _mean(agg, "max_hamming"),
        "nn_hamming": _mean(agg, "nn_hamming"),
        "separation_z": _mean(agg, "separation_z"),
        "nn_z": _mean(agg, "nn_z"),
        "tile_reduction": _mean(agg, "tile_reduction"),
        "mean_union_efficiency": _mean(agg, "mean_union_efficiency"),
        "inertia": _mean(agg, "inertia"),
        "cluster_balance": _mean(agg, "cluster_balance"),
        "matrix_path": path,
    }


def rows_from_result(source: str, data: Any) -> list[dict[str, Any]]:
    """Table rows from one JSON file (empty if it is not a mask-analysis result)."""
    if not isinstance(data, dict) or not isinstance(data.get("matrix"), dict):
        return []
    if isinstance(data.get("executions"), list) and isinstance(data.get("aggregate"), dict):
        cfg = data.get("config", {})
        kind = str(data.get("kind", "multi_exec")).rsplit(".", 1)[-1]
        return [
            _row(
                source,
                kind,
                data["matrix"],
                cfg.get("n_clusters"),
                cfg.get("n_features"),
                len(data["executions"]),
                data["aggregate"],
            )
        ]
    if isinstance(data.get("summary"), dict) and isinstance(data.get("runs"), list):
        cfg = data.get("config", {})
        seeds = len({r.get("seed") for r in data["runs"]})
        return [
            _row(source, "multi_seed", data["matrix"], int(k), cfg.get("n_similar"), seeds, agg)
            for k, agg in sorted(data["summary"].items(), key=lambda kv: int(kv[0]))
        ]
    return []


def find_results(results_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All rows under ``results_dir`` and the JSON files skipped as unreadable."""
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for path in sorted(results_dir.rglob("*.json")):
        if path.name == "manifest.json" or path.name.endswith(".manifest.json"):
            continue
        rel = str(path.relative_to(results_dir))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            log.warning("%s: skipped, not readable JSON (%s)", path, exc)
            skipped.append(rel)
            continue
        rows.extend(rows_from_result(rel, data))
    return rows, skipped


@dataclasses.dataclass
class Overlap:
    """Jaccard overlap of kept positions between two methods' masks of one matrix."""

    layer: int | None
    component: str | None
    method_a: str
    method_b: str
    jaccard: float
    expected_independent: float  # pa·pb / (pa + pb − pa·pb) for independent masks of these densities
    density_a: float
    density_b: float


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∧ b| / |a ∨ b| of two boolean arrays (1 when both are empty)."""
    union = int(np.logical_or(a, b).sum())
    return int(np.logical_and(a, b).sum()) / union if union else 1.0


def method_overlaps(rows: list[dict[str, Any]]) -> tuple[list[Overlap], list[str]]:
    """Jaccard overlaps for every (layer, component) analysed with several methods."""
    from interplab.masks.matrix import load_tensor

    groups: dict[tuple[Any, Any], dict[str, str]] = defaultdict(dict)
    for r in rows:
        if r["method"] and r["matrix_path"]:
            groups[(r["layer"], r["component"])].setdefault(r["method"], r["matrix_path"])
    overlaps: list[Overlap] = []
    notes: list[str] = []
    for (layer, comp), paths in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
        if len(paths) < 2:
            continue
        masks: dict[str, np.ndarray] = {}
        for method, p in sorted(paths.items()):
            if not Path(p).is_file():
                notes.append(f"{p}: matrix not found, no Jaccard overlap for {method} layer {layer} {comp}")
                continue
            try:
                masks[method] = load_tensor(p)
            except InterplabError as exc:
                notes.append(str(exc))
        names = sorted(masks)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if masks[a].shape != masks[b].shape:
                    notes.append(
                        f"layer {layer} {comp}: {a} {masks[a].shape} and {b} {masks[b].shape} differ in shape"
                    )
                    continue
                pa, pb = float(masks[a].mean()), float(masks[b].mean())
                denom = pa + pb - pa * pb
                overlaps.append(
                    Overlap(
                        layer,
                        comp,
                        a,
                        b,
                        jaccard(masks[a], masks[b]),
                        pa * pb / denom if denom else 1.0,
                        pa,
                        pb,
                    )
                )
    return overlaps, notes


def _group_findings(rows: list[dict[str, Any]], key: str, title: str) -> list[str]:
    from interplab.masks.cluster import separation_label

    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[str(r[key])].append(r)
    lines = [f"### By {title}", ""]
    for name, rs in sorted(groups.items()):
        seps = [r["separation_ratio"] for r in rs if r["separation_ratio"] is not None]
        zs = [r["separation_z"] for r in rs if r["separation_z"] is not None]
        reds = [r["tile_reduction"] for r in rs if r["tile_reduction"] is not None]
        if not seps:
            continue
        m = float(np.mean(seps))
        text = f"- **{name}** ({len(rs)} results): mean separation {fmt(m)} ({separation_label(m)})"
        if zs:
            sig = sum(z > 2 for z in zs)
            text += f"; null z mean {fmt(float(np.mean(zs)))}, {sig}/{len(zs)} above chance (z > 2)"
        if reds:
            text += f"; tile change by clustering {fmt(-100 * float(np.mean(reds)))} %"
        lines.append(text + ".")
    return [*lines, ""]


def render_markdown(
    rows: list[dict[str, Any]], overlaps: list[Overlap], notes: list[str], skipped: list[str]
) -> str:
    """The comparative report as Markdown."""
    cols = REPORT_COLUMNS
    lines = [
        "# Comparative mask-structure report",
        "",
        f"{len(rows)} result rows.",
        "",
        *markdown_table(cols, ([fmt(r[c]) for c in cols] for r in rows)),
    ]
    lines += ["", "## Findings", ""]
    ranked = [r for r in rows if r["separation_ratio"] is not None]
    if ranked:
        best = max(ranked, key=lambda r: r["separation_ratio"])
        worst = min(ranked, key=lambda r: r["separation_ratio"])
        lines.append(
            f"- Best separation: {best['method']} {best['component']} (k={best['k']}) at {fmt(best['separation_ratio'])}; "
            f"worst: {worst['method']} {worst['component']} (k={worst['k']}) at {fmt(worst['separation_ratio'])}."
        )
        lines.append("")
    lines += _group_findings(rows, "component", "projection type (component)")
    lines += _group_findings(rows, "method", "method")
    if overlaps or notes:
        lines += [
            "## Method overlap (Jaccard of kept positions)",
            "",
            "| layer | component | method A | method B | Jaccard | independent baseline | density A | density B |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for o in overlaps:
            lines.append(
                f"| {fmt(o.layer)} | {o.component} | {o.method_a} | {o.method_b} | {fmt(o.jaccard)} | "
                f"{fmt(o.expected_independent)} | {fmt(o.density_a)} | {fmt(o.density_b)} |"
            )
        lines += ["", *[f"- {n}" for n in notes], ""]
    if skipped:
        lines += ["Skipped (not readable JSON): " + ", ".join(skipped), ""]
    return "\n".join(lines) + "\n"


def render_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (one line per result, per k for multi-seed)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: ("" if r[c] is None else r[c]) for c in COLUMNS})
    return buf.getvalue()


@dataclasses.dataclass
class ComparativeReport:
    """Rows, overlaps and the files written."""

    rows: list[dict[str, Any]]
    overlaps: list[Overlap]
    notes: list[str]
    files: list[Path]


def comparative_report(results_dir: str | Path, out: str | Path | None = None) -> ComparativeReport:
    """Build the comparative report of every result under ``results_dir``; write it into ``out``."""
    started = time.time()
    rdir = Path(results_dir)
    if not rdir.is_dir():
        raise InterplabError(f"{rdir}: results folder not found")
    odir = Path(out) if out is not None else rdir
    if odir.exists() and not odir.is_dir():
        raise InterplabError(f"{odir}: --out is a file; expected a folder")
    rows, skipped = find_results(rdir)
    if not rows:
        raise InterplabError(
            f"{rdir}: no hamming, multi-exec or multi-seed result JSON found (searched recursively)"
        )
    overlaps, notes = method_overlaps(rows)
    files = [
        write_markdown_report(
            odir / "comparative_report.md", render_markdown(rows, overlaps, notes, skipped)
        ),
        odir / "comparative_report.html",
        write_text(odir / "comparative_report.csv", render_csv(rows)),
    ]
    od = OutputDir(
        odir,
        "masks report",
        {"results_dir": str(rdir), "out": str(odir)},
        started=started,
        manifest_name="comparative_report.manifest.json",
    )
    for f in files:
        od.record(f)
    od.write_manifest({"overlaps": [dataclasses.asdict(o) for o in overlaps], "skipped": skipped})
    return ComparativeReport(rows, overlaps, notes, files)


def report_table(report: ComparativeReport) -> Any:
    """A rich table of the key metrics."""
    from rich.table import Table

    t = Table(title="Comparative mask-structure report")
    cols = tuple(c for c in REPORT_COLUMNS if c not in {"source", "min_hamming", "nn_z"})
    for c in cols:
        t.add_column(c, justify="left" if c in {"method", "component", "separation_label"} else "right")
    for r in report.rows:
        t.add_row(*(fmt(r[c]) for c in cols))
    return t
