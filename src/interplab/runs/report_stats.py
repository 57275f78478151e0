"""The statistics and sweep sections of ``interplab runs report``.

``stats_section`` groups the runs by every differing config key except seeds, and — when at least
two groups exist and one has several runs — writes ``stats/`` (the full ``runs stats`` folder:
the report's main metric per group with bootstrap interval bands and the steps where groups
differ shaded, the final values per group, P(improvement), tests) and shows its figures. ``sweep_section`` writes ``sweep/`` (the ``runs
sweep`` page) when there are enough runs differing in a hyperparameter. Both return the report's
figures and an HTML fragment with the comparison numbers; both skip quietly (with a logged reason)
when the runs do not allow them, so a report never fails for lack of seeds.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from interplab.common.errors import InterplabError
from interplab.common.numbers import format_number
from interplab.runs.run import Run

log = logging.getLogger(__name__)

STATS_N_BOOT = 1000
SECTION = "Statistics across seeds"


def _fmt(v: Any) -> str:
    return format_number(v, 3, missing="—")


def stats_section(
    df: pd.DataFrame, metric: str, out: Path, od: Any, goal: str = "min"
) -> tuple[list[tuple[str, str, str]], str]:
    """([(section, title, relative figure stem)], html) of the statistics section."""
    from interplab.runs.stats import group_columns
    from interplab.runs.stats_report import StatsOptions, compute_stats, write_stats

    if not group_columns(df, "all-but-seed"):
        log.info("report: no config key differs except seeds; no statistics section")
        return [], ""
    opts = StatsOptions(n_boot=STATS_N_BOOT, goal=goal, align="interpolate")
    try:
        res = compute_stats(df, metric, opts)
    except InterplabError as exc:
        log.info("report: no statistics section (%s)", exc)
        return [], ""
    if len(res.groups) < 2 or max(g.n for g in res.groups) < 2:
        return [], ""
    from interplab.common.output import output_dir

    stats_dir = out / "stats"
    with output_dir(
        stats_dir, "runs stats", {"metric": metric, "n_boot": STATS_N_BOOT, "align": "interpolate"}
    ) as sod:
        for p in write_stats(res, stats_dir, opts, sod):
            od.record(p)
    figures = [
        (SECTION, f"{metric}: mean and 95% bootstrap CI per group", "stats/figures/curves"),
        (SECTION, f"final {metric} per group: runs, mean, 95% CI", "stats/figures/final"),
    ]
    esc = html.escape
    rows = [
        "<tr><th>A</th><th>B</th><th>N</th><th>P(A better) [95% CI]</th><th>permutation p</th>"
        "<th>steps differing (BH-FDR 0.05)</th><th>seeds needed (power 0.8)</th></tr>"
    ]
    for c in res.comparisons:
        rows.append(
            f"<tr><td>{esc(c.a)}</td><td>{esc(c.b)}</td><td>{c.n_a} vs {c.n_b}</td>"
            f"<td>{_fmt(c.p_improvement)} [{_fmt(c.p_improvement_low)}, {_fmt(c.p_improvement_high)}]</td>"
            f"<td>{_fmt(c.p_value)}</td><td>{len(c.significant_steps)} of {len(c.steps)}</td>"
            f"<td>{c.seeds_needed if c.seeds_needed is not None else '—'}</td></tr>"
        )
    fragment = (
        f"<h2>{SECTION}</h2><p>Groups: every config key that differs except seeds. Final {esc(metric)} "
        f"(last value, {esc(goal)} is better); intervals from {STATS_N_BOOT} bootstrap resamples of the runs "
        "within each group. Full tables: <a href='stats/report.md'>stats/report.md</a>.</p>"
        f"<table>{''.join(rows)}</table>"
    )
    return figures, fragment


def sweep_section(runs: list[Run], metric: str, out: Path, od: Any, source: str, goal: str = "min") -> str:
    """Write ``sweep/`` and return the HTML fragment linking it ('' when the runs are no sweep)."""
    from interplab.common.output import output_dir
    from interplab.runs.sweep import SweepOptions, compute_sweep, write_sweep

    opts = SweepOptions(goal=goal, n_estimators=100, n_repeats=10)
    try:
        res = compute_sweep(runs, metric, opts)
    except InterplabError as exc:
        log.info("report: no sweep page (%s)", exc)
        return ""
    sweep_dir = out / "sweep"
    with output_dir(sweep_dir, "runs sweep", {"metric": metric, "goal": goal}) as sod:
        write_sweep(res, sweep_dir, source, sod)
    od.record(sweep_dir / "index.html")
    top = res.importance.iloc[0]
    return (
        "<h2>Sweep</h2><p><a href='sweep/index.html'>Sweep page</a>: importance, partial dependence, best so "
        f"far and <a href='sweep/parallel_coordinates.html'>parallel coordinates</a> of {html.escape(metric)} "
        f"over {len(res.table)} runs. Most important: {html.escape(str(top['hyperparameter']))} "
        f"(permutation importance {top['importance']:.3g}).</p>"
        "<a href='sweep/index.html'><img src='sweep/figures/parallel_coordinates.png' alt='parallel coordinates' "
        "style='max-width:600px'></a>"
    )
