"""``interplab runs stats``: statistics across seeds for one metric, written as a folder.

Layout::

    curves.parquet        per (group, step): n, mean, se, std, median, min, max, iqm (+ interval),
                          low/high of the chosen statistic's interval
    final.csv             per group, the final (or best) value per run: the same columns + note
    comparisons.json      every pair of groups: P(improvement) and interval, permutation p-value,
                          steps where the curves differ (BH-FDR), seeds needed
    steps.parquet         per pair and common step: permutation p and BH-adjusted q
    figures/curves.*      the chosen statistic with its interval band per group (N in the legend),
                          steps where two groups differ shaded
    figures/final.*       the final value per group: the runs, the statistic and its interval
    report.md             the tables in words
    manifest.json
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError
from interplab.common.numbers import format_number
from interplab.runs.stats import (
    Comparison,
    GroupData,
    Smoothing,
    StatsConfig,
    assign_groups,
    compare_groups,
    curve_stats,
    final_stats,
    final_values,
    group_columns,
    group_matrices,
)

MAX_PAIRS = 15
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


@dataclass
class StatsOptions:
    """Options of ``interplab runs stats`` (one field per flag)."""

    #: config keys to group by (comma-separated), or ``all-but-seed``
    group_by: str = "all-but-seed"
    #: seed config keys (default: keys named seed, *_seed, seed_*)
    seed_keys: list[str] = field(default_factory=list)
    #: exact (only logged steps) | interpolate (linear, onto the union of steps)
    align: str = "exact"
    #: per-run smoothing before aggregation: none | ema:W | window:K
    smooth: str = "none"
    #: confidence level of every interval
    ci: float = 0.95
    #: bootstrap resamples
    n_boot: int = 2000
    #: percentile | bca
    interval: str = "percentile"
    #: statistic drawn with its band: mean | iqm | median
    statistic: str = "mean"
    #: value per run for the final table and tests: last | best
    final: str = "last"
    #: which direction is better: min | max
    goal: str = "min"
    #: significance level of the final-value test and the power calculation
    alpha: float = 0.05
    #: false discovery rate along the curve
    fdr: float = 0.05
    #: power for "seeds needed"
    power: float = 0.8
    #: difference to detect for "seeds needed" (default: the observed one)
    difference: float | None = None
    #: plot downsampling: lttb | minmax | none
    downsample: str = "lttb"
    #: most points per plotted curve
    max_points: int = 1000
    #: seed of bootstrap and permutations
    seed: int = 0
    #: history column used as the step
    step_key: str = "_step"

    def config(self) -> StatsConfig:
        return StatsConfig(self.ci, self.n_boot, self.interval, self.statistic, self.seed)


@dataclass
class StatsResult:
    """What ``runs_stats`` computed (and wrote, when ``out`` was given)."""

    metric: str
    groups: list[GroupData]
    curves: pd.DataFrame
    final: pd.DataFrame
    comparisons: list[Comparison]
    group_columns: list[str]
    files: list[Path] = field(default_factory=list)


def compute_stats(df: pd.DataFrame, metric: str, opts: StatsOptions) -> StatsResult:
    """Every statistic of ``metric`` in the tidy frame ``df`` (pure: writes nothing)."""
    cfg = opts.config()
    cfg.check()
    from interplab.common.errors import one_of

    one_of(opts.final, ["last", "best"], "--final")
    one_of(opts.goal, ["min", "max"], "--goal")
    for name, value in (("--alpha", opts.alpha), ("--fdr", opts.fdr), ("--power", opts.power)):
        if not 0 < value < 1:
            raise InterplabError(f"{name} must be in (0, 1), got {value}")
    cols = group_columns(df, opts.group_by, opts.seed_keys)
    labels = assign_groups(df, cols)
    groups = group_matrices(df, metric, labels, opts.step_key, opts.align, Smoothing.parse(opts.smooth))
    curves = curve_stats(groups, cfg)
    final = final_stats(groups, cfg, opts.final, opts.goal)
    comparisons = [
        compare_groups(
            a,
            b,
            cfg,
            final=opts.final,
            goal=opts.goal,
            alpha=opts.alpha,
            fdr=opts.fdr,
            power=opts.power,
            difference=opts.difference,
        )
        for a, b in list(itertools.combinations(groups, 2))[:MAX_PAIRS]
    ]
    return StatsResult(metric, groups, curves, final, comparisons, cols)


def _legend(label: str, n: int) -> str:
    return f"{label} (N={n})" if n > 1 else f"{label} (N=1, no interval)"


def curves_stats_figure(result: StatsResult, opts: StatsOptions, title: str | None = None) -> Any:
    """The chosen statistic per group with its interval band; steps where the only pair of groups
    differs (BH-FDR) shaded."""
    from interplab.common.figures import new_figure, report_style
    from interplab.runs.downsample import downsample_indices

    fig, ax = new_figure(1, 1, figsize=(6.5, 4.0))
    stat = opts.statistic
    with report_style():
        for i, g in enumerate(result.groups):
            sub = result.curves[result.curves["group"] == g.label]
            x = sub["step"].to_numpy(dtype=float)
            y = sub[stat].to_numpy(dtype=float)
            keep = downsample_indices(x, y, opts.max_points, opts.downsample)
            color = COLORS[i % len(COLORS)]
            ax.plot(x[keep], y[keep], color=color, lw=1.5, label=_legend(g.label, g.n))
            lo, hi = sub["low"].to_numpy(dtype=float)[keep], sub["high"].to_numpy(dtype=float)[keep]
            if np.isfinite(lo).any():
                ax.fill_between(x[keep], lo, hi, color=color, alpha=0.2, lw=0)
        if len(result.comparisons) == 1 and result.comparisons[0].steps is not None:
            comp = result.comparisons[0]
            sig = np.nan_to_num(comp.step_q, nan=1.0) <= comp.fdr
            _shade_runs(ax, comp.steps, sig)
            if sig.any():
                ax.plot([], [], color="0.5", alpha=0.25, lw=6, label=f"differ (BH-FDR {comp.fdr:g})")
        ax.set_xlabel("training step")
        ax.set_ylabel(result.metric)
        ci = f"{opts.ci:.0%} {opts.interval} bootstrap CI of the {stat}"
        ax.set_title(title or f"{result.metric}: {stat}, band {ci}", fontsize=9)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
    return fig


def _shade_runs(ax: Any, steps: np.ndarray, mask: np.ndarray) -> None:
    """Shade contiguous stretches of ``steps`` where ``mask`` holds (half-way to the neighbours)."""
    if not mask.any():
        return
    mids = np.r_[steps[0], (steps[1:] + steps[:-1]) / 2, steps[-1]]
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        ax.axvspan(mids[start], mids[stop], color="0.5", alpha=0.15, lw=0, zorder=0)


def final_figure(result: StatsResult, opts: StatsOptions) -> Any:
    """Final value per group: every run as a dot, the statistic and its interval as a bar."""
    from interplab.common.figures import new_figure, report_style

    fig, ax = new_figure(1, 1, figsize=(6.0, 0.6 + 0.5 * len(result.groups)))
    with report_style():
        for i, g in enumerate(result.groups):
            vals = final_values(g, opts.final, opts.goal)
            row = result.final[result.final["group"] == g.label].iloc[0]
            color = COLORS[i % len(COLORS)]
            ax.scatter(vals, np.full(len(vals), i) + 0.15, s=12, color=color, alpha=0.7)
            ax.plot([row[opts.statistic]], [i], "o", color=color)
            if np.isfinite(row["low"]):
                ax.plot([row["low"], row["high"]], [i, i], color=color, lw=2)
        ax.set_yticks(range(len(result.groups)), [_legend(g.label, g.n) for g in result.groups], fontsize=8)
        ax.set_xlabel(f"{opts.final} {result.metric}")
        ax.set_title(f"{opts.statistic} and {opts.ci:.0%} {opts.interval} CI; dots: runs", fontsize=9)
        fig.tight_layout()
    return fig


def _fmt(v: Any) -> str:
    return format_number(v, missing="—", infinity=False)


def render_markdown(result: StatsResult, opts: StatsOptions) -> str:
    """report.md: groups, final values, comparisons."""
    lines = [
        f"# Statistics of `{result.metric}` across seeds",
        "",
        f"Groups by: {', '.join(c.removeprefix('cfg.') for c in result.group_columns) or '(one group)'}; "
        f"alignment `{opts.align}`, smoothing `{opts.smooth}`, {opts.ci:.0%} {opts.interval} bootstrap "
        f"intervals ({opts.n_boot} resamples, runs resampled within each group).",
        "",
        f"## Final value per group ({opts.final}, goal {opts.goal})",
        "",
        f"| group | N | mean ± SE | median | IQM [CI] | min | max | {opts.statistic} CI | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in result.final.iterrows():
        lines.append(
            f"| {r['group']} | {int(r['n'])} | {_fmt(r['mean'])} ± {_fmt(r['se'])} | {_fmt(r['median'])} | "
            f"{_fmt(r['iqm'])} [{_fmt(r['iqm_low'])}, {_fmt(r['iqm_high'])}] | {_fmt(r['min'])} | "
            f"{_fmt(r['max'])} | [{_fmt(r['low'])}, {_fmt(r['high'])}] | {r['note'] or ''} |"
        )
    if result.comparisons:
        lines += [
            "",
            "## Comparisons",
            "",
            "| A | B | N | P(A better) [CI] | permutation p | steps differing (BH) | seeds needed |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in result.comparisons:
            lines.append(
                f"| {c.a} | {c.b} | {c.n_a} vs {c.n_b} | {_fmt(c.p_improvement)} "
                f"[{_fmt(c.p_improvement_low)}, {_fmt(c.p_improvement_high)}] | {_fmt(c.p_value)} | "
                f"{len(c.significant_steps)} of {0 if c.steps is None else len(c.steps)} | "
                f"{_fmt(c.seeds_needed)} |"
            )
        lines += [
            "",
            f"Seeds needed: runs per group for a two-sided t-test at α={opts.alpha:g} to detect the "
            f"{'given' if opts.difference is not None else 'observed'} difference with power {opts.power:g}.",
        ]
    return "\n".join(lines) + "\n"


def write_stats(result: StatsResult, out: Path, opts: StatsOptions, od: Any) -> list[Path]:
    """Write every file of the stats folder through the open output dir ``od``."""
    from interplab.common.atomic import write_json, write_parquet, write_text

    files = [
        write_parquet(od.file("curves.parquet"), result.curves),
        write_text(od.file("final.csv"), result.final.to_csv(index=False)),
        write_json(od.file("comparisons.json"), [c.as_dict() for c in result.comparisons]),
    ]
    steps = [
        pd.DataFrame({"a": c.a, "b": c.b, "step": c.steps, "p": c.step_p, "q": c.step_q})
        for c in result.comparisons
        if c.steps is not None
    ]
    if steps:
        files.append(write_parquet(od.file("steps.parquet"), pd.concat(steps, ignore_index=True)))
    for name, fig in (("curves", curves_stats_figure(result, opts)), ("final", final_figure(result, opts))):
        files.extend(od.save_figure(fig, Path("figures") / name))
    files.append(write_text(od.file("report.md"), render_markdown(result, opts)))
    return files


def runs_stats(
    source: str,
    metric: str,
    out: str | os.PathLike[str],
    opts: StatsOptions | None = None,
    tags: Sequence[str] | None = None,
    filter_json: str | None = None,
) -> StatsResult:
    """Statistics across seeds of ``metric`` for the runs of ``source`` → the folder ``out``."""
    from interplab.common.output import output_dir
    from interplab.runs.api import load_runs
    from interplab.runs.frames import get_runs_data

    opts = opts or StatsOptions()
    from interplab.runs.stats import require_metric

    runs = load_runs(source, tags, filter_json)
    require_metric(runs, metric)
    df = get_runs_data(runs, [metric], step_key=opts.step_key)
    result = compute_stats(df, metric, opts)  # every check before the folder is touched
    arguments = {
        "source": source,
        "metric": metric,
        **asdict(opts),
        "tags": list(tags or []),
        "filter": filter_json,
    }
    with output_dir(Path(out), "runs stats", json.loads(json.dumps(arguments, default=str))) as od:
        result.files = write_stats(result, Path(out), opts, od)
    return result
