"""``interplab runs report``: every figure for a set of runs plus an ``index.html`` page.

Layout of the output folder::

    index.html                     the page: run table, phases, every figure (PNG, linked to its PDF)
    runs.csv                       one row per run: id, name, state, tags, steps, config, final metrics
    history.parquet                the tidy frame of every plotted metric (get_runs_data)
    phases.json                    automatic phases: over all runs, per group value, per run
    figures/kl_divergence.*        KL curves (mean ± std over all runs) with automatic phases
    figures/val_loss.*             validation loss with the same phases
    figures/metrics/<metric>.*     other metrics, when the runs log no KL metric set
    figures/by_<key>/kl_divergence.*, figures/by_<key>/val_loss.*
                                   the same grouped by each differing config key (seed excluded)
    stats/                         the ``runs stats`` folder of the main metric, groups = every
                                   differing config key but seeds: figures/curves.* (bootstrap
                                   interval bands, steps where groups differ shaded), figures/final.*,
                                   comparisons.json (P(improvement), permutation tests, seeds needed)
    sweep/                         the ``runs sweep`` page (importance, partial dependence, best so
                                   far, parallel coordinates), when at least 4 runs differ in a key
    figures/heads/<run id>_combined.*   attention heads of every run at a few steps (multiply blend)
    figures/heads/<run id>_separated.* the per-head grid (steps × heads), first run only
    manifest.json
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.curves import NGRAM_METRICS, PREFIX_TEACHER_METRICS, curves_figure
from interplab.runs.run import Run

log = logging.getLogger(__name__)

MAX_GROUPS = 8
MAX_GENERIC_METRICS = 6
HEAD_STEPS = 4


@dataclasses.dataclass
class Figure:
    """One figure of the report."""

    section: str
    title: str
    png: str
    pdf: str


@dataclasses.dataclass
class ReportResult:
    """What ``runs_report`` wrote."""

    out: Path
    n_runs: int
    figures: list[Figure]
    phases: dict[str, Any]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "x"


def _common_metrics(runs: Sequence[Run]) -> list[str]:
    from interplab.runs.frames import metric_keys

    common: set[str] | None = None
    for run in runs:
        keys = set(metric_keys(run))
        common = keys if common is None else common & keys
    return sorted(k for k in (common or set()) if not k.startswith("_"))


def choose_metrics(runs: Sequence[Run]) -> tuple[list[str], list[str]]:
    """(KL metric set, other metrics to plot): the prefix-teacher set, else the n-gram set."""
    common = _common_metrics(runs)
    if not common:
        raise InterplabError("the runs share no numeric logged metric; nothing to plot")
    kl: list[str] = []
    for candidate in (PREFIX_TEACHER_METRICS, NGRAM_METRICS):
        if all(m in common for m in candidate):
            kl = list(candidate)
            break
    others = ["val_loss"] if "val_loss" in common else []
    if not kl and not others:
        others = [m for m in common if not m.endswith(("._runtime", "_timestamp"))][:MAX_GENERIC_METRICS]
    return kl, others


def summary_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """runs.csv: id, name, state, tags, steps, ``cfg.*`` (flattened) and scalar summary values."""
    from interplab.runs.frames import flat_config, run_identity

    rows = []
    for run in runs:
        row = run_identity(run, tag_sep=";")
        row.update({f"cfg.{k}": v for k, v in flat_config(run.config).items()})
        row.update(
            {
                k: v
                for k, v in run.summary.items()
                if not k.startswith("_") and isinstance(v, int | float) and not isinstance(v, bool)
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def group_keys(runs: Sequence[Run]) -> list[str]:
    """Differing config keys worth grouping by: not the seed, 2 … MAX_GROUPS scalar values."""
    from interplab.runs.frames import differing_config

    diff = differing_config(runs)
    keys = []
    for col in diff.columns:
        if not col.startswith("cfg.") or "seed" in col.lower():
            continue
        values = diff[col]
        if values.map(lambda v: isinstance(v, list | dict)).any():
            continue
        if 2 <= values.nunique(dropna=False) <= MAX_GROUPS:
            keys.append(col)
    return keys


def head_steps(logged: Sequence[int], boundaries: Sequence[float], n: int = HEAD_STEPS) -> list[int]:
    """A few table steps to show: first, last, those nearest each phase boundary, then evenly spaced."""
    if not logged:
        return []
    steps = np.array(sorted(set(int(s) for s in logged)))
    chosen = {int(steps[0]), int(steps[-1])}
    for b in boundaries:
        chosen.add(int(steps[np.abs(steps - b).argmin()]))
    for idx in np.linspace(0, len(steps) - 1, n).round().astype(int):
        if len(chosen) >= n:
            break
        chosen.add(int(steps[idx]))
    return sorted(chosen)[: max(n, len(boundaries) + 2)]


def _phase_dicts(phases: Sequence[Any]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(p) for p in phases]


KL_LABEL = "KL(estimator ‖ model) [nats]"


@dataclasses.dataclass
class ReportContext:
    """What every section builder reads (runs, their tidy frame, the chosen metrics) and where it
    writes (``od``; each figure is added to ``figures``, phases to ``phases``, page fragments to
    ``html``)."""

    runs: list[Run]
    df: pd.DataFrame
    kl: list[str]
    others: list[str]
    group_keys: list[str]
    od: Any
    table_key: str
    n_head_steps: int
    source: str = ""
    figures: list[Figure] = dataclasses.field(default_factory=list)
    phases: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: HTML fragments shown after the phases, before the figures (statistics, sweep)
    html: list[str] = dataclasses.field(default_factory=list)

    @property
    def phase_spec(self) -> str | None:
        return "auto" if self.kl else None

    def save(self, fig: Any, rel: str, section: str, title: str) -> None:
        """Save ``fig`` as ``rel``.png/.pdf, record both and list it under ``section``."""
        self.od.save_figure(fig, rel)
        self.figures.append(Figure(section, title, f"{rel}.png", f"{rel}.pdf"))


def training_curves(ctx: ReportContext) -> None:
    """KL curves over all runs with automatic phases, then the other metrics."""
    from interplab.runs.phases import auto_phases

    if ctx.kl:
        ctx.phases["overall"] = _phase_dicts(auto_phases(ctx.df, ctx.kl))
        fig = curves_figure(ctx.df, ctx.kl, phases=ctx.phase_spec, ylabel=KL_LABEL)
        ctx.save(
            fig, "figures/kl_divergence", "Training curves", "KL divergence to the in-context estimators"
        )
    for m in ctx.others:
        fig = curves_figure(ctx.df, [m], phases=ctx.phase_spec, phase_metrics=ctx.kl or None)
        rel = "figures/val_loss" if m == "val_loss" else f"figures/metrics/{_safe(m)}"
        ctx.save(fig, rel, "Training curves", m)


def grouped_curves(ctx: ReportContext) -> None:
    """The same curves grouped by each differing config key, with phases per group value."""
    from interplab.runs.phases import auto_phases

    for key in ctx.group_keys:
        short = key.removeprefix("cfg.")
        section = f"Grouped by {short}"
        if ctx.kl:
            fig = curves_figure(ctx.df, ctx.kl, group_by=key, phases=ctx.phase_spec, ylabel=KL_LABEL)
            ctx.save(fig, f"figures/by_{_safe(short)}/kl_divergence", section, "KL divergence")
            ctx.phases["by_group"][short] = {
                str(v): _phase_dicts(auto_phases(sub, ctx.kl)) for v, sub in ctx.df.groupby(key, sort=True)
            }
        for m in ctx.others:
            fig = curves_figure(
                ctx.df, [m], group_by=key, phases=ctx.phase_spec, phase_metrics=ctx.kl or None
            )
            ctx.save(fig, f"figures/by_{_safe(short)}/{_safe(m)}", section, m)


def statistics(ctx: ReportContext) -> None:
    """``stats/`` (statistics across seeds of the main metric) and ``sweep/`` (the sweep page), each
    written only when the runs allow it; their figures and comparison numbers go on the page."""
    from interplab.runs.report_stats import stats_section, sweep_section

    main_metric = "val_loss" if "val_loss" in ctx.others else (ctx.kl or ctx.others)[0]
    stat_figs, fragment = stats_section(ctx.df, main_metric, ctx.od.path, ctx.od)
    ctx.figures.extend(Figure(sec, title, f"{stem}.png", f"{stem}.pdf") for sec, title, stem in stat_figs)
    ctx.html.append(fragment)
    ctx.html.append(sweep_section(ctx.runs, main_metric, ctx.od.path, ctx.od, ctx.source))


def attention_heads(ctx: ReportContext) -> None:
    """Per-run phases; attention heads of every run at a few steps, the per-head grid once."""
    from interplab.runs.heads import combined_heads_figure, separated_heads_figure
    from interplab.runs.phases import auto_phases, phase_boundaries
    from interplab.runs.tables import run_tables, table_keys, table_steps

    for run in ctx.runs:
        run_phases = auto_phases(ctx.df[ctx.df["_run_id"] == run.id], ctx.kl) if ctx.kl else []
        ctx.phases["by_run"][run.id] = _phase_dicts(run_phases)
        if ctx.table_key not in table_keys(run):
            continue
        logged = [int(s) for s in table_steps(run, ctx.table_key)["step"].tolist()]
        steps = head_steps(logged, phase_boundaries(run_phases), ctx.n_head_steps)
        tables = run_tables(run, steps, ctx.table_key)
        title = f"{run.name} ({run.id})"
        fig = combined_heads_figure(tables, title=title)
        ctx.save(fig, f"figures/heads/{_safe(run.id)}_combined", "Attention heads", title)
        if run is not ctx.runs[0]:
            continue  # the per-head grid once, for the first run (each figure costs ~1 s)
        fig = separated_heads_figure(tables, title=title)
        ctx.save(fig, f"figures/heads/{_safe(run.id)}_separated", "Attention heads", f"{title}, per head")


# the report's sections in page order: (timing name, builder); a new plot is one builder here
SECTIONS: list[tuple[str, Callable[[ReportContext], None]]] = [
    ("curves", training_curves),
    ("grouped_curves", grouped_curves),
    ("statistics", statistics),
    ("heads", attention_heads),
]


def runs_report(
    source: str,
    out: str | os.PathLike[str],
    tags: Sequence[str] | None = None,
    filter_json: str | None = None,
    table_key: str = "val_attention_weights",
    n_head_steps: int = HEAD_STEPS,
) -> ReportResult:
    """Write every figure for the runs of ``source`` and an index page into ``out``."""
    from interplab.common.atomic import write_json, write_text
    from interplab.common.output import output_dir
    from interplab.runs.api import load_runs
    from interplab.runs.frames import get_runs_data, write_frame

    runs = load_runs(source, tags, filter_json)
    kl, others = choose_metrics(runs)
    df = get_runs_data(runs, [*kl, *others])
    out = Path(out)
    arguments = {"source": source, "tags": list(tags or []), "filter": filter_json, "table_key": table_key}
    with output_dir(out, "runs report", arguments) as od:
        ctx = ReportContext(
            list(runs), df, kl, others, group_keys(runs), od, table_key, n_head_steps, source=source
        )
        ctx.phases = {"metrics": kl, "overall": [], "by_group": {}, "by_run": {}}
        with od.timed("tables"):
            write_frame(summary_frame(runs), od.file("runs.csv"))
            write_frame(df, od.file("history.parquet"))
        for name, build in SECTIONS:
            with od.timed(name):
                build(ctx)
        write_json(od.file("phases.json"), ctx.phases)
        write_text(
            od.file("index.html"),
            render_index(source, runs, ctx.figures, ctx.phases, summary_frame(runs), "".join(ctx.html)),
        )
    return ReportResult(out, len(runs), ctx.figures, ctx.phases)


def _phase_text(phases: Sequence[dict[str, Any]]) -> str:
    if not phases:
        return "—"
    return " → ".join(f"{html.escape(str(p['metric']))} [{p['start']:g}, {p['end']:g}]" for p in phases)


def render_index(
    source: str,
    runs: Sequence[Run],
    figures: Sequence[Figure],
    phases: dict[str, Any],
    summary: pd.DataFrame,
    extra_html: str = "",
) -> str:
    """The report page: runs table, phases, ``extra_html`` (statistics, sweep), then every figure by
    section (PNG linked to its PDF)."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Runs report — {esc(source)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
        "figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}img{max-width:100%;"
        "border:1px solid #eee}figcaption{font-size:13px;color:#444}</style></head><body>",
        f"<h1>Runs report</h1><p>Source <code>{esc(source)}</code>: {len(runs)} runs. "
        "Files: <a href='runs.csv'>runs.csv</a>, <a href='history.parquet'>history.parquet</a>, "
        "<a href='phases.json'>phases.json</a>, <a href='manifest.json'>manifest.json</a>.</p>",
        "<h2>Runs</h2>",
        summary.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0),
    ]
    if phases.get("metrics"):
        parts.append(
            "<h2>Phases</h2><p>A phase is a stretch of training in which one KL metric is the smallest "
            f"(metrics: {esc(', '.join(phases['metrics']))}).</p><ul>"
        )
        parts.append(f"<li>all runs: {_phase_text(phases['overall'])}</li>")
        for key, by_value in phases.get("by_group", {}).items():
            for value, ph in by_value.items():
                parts.append(f"<li>{esc(key)}={esc(value)}: {_phase_text(ph)}</li>")
        names = {r.id: r.name for r in runs}
        for run_id, ph in phases.get("by_run", {}).items():
            parts.append(f"<li>{esc(names.get(run_id, run_id))} ({esc(run_id)}): {_phase_text(ph)}</li>")
        parts.append("</ul>")
    parts.append(extra_html)
    section = None
    for fig in figures:
        if fig.section != section:
            section = fig.section
            parts.append(f"<h2>{esc(section)}</h2>")
        parts.append(
            f"<figure><a href='{esc(fig.pdf)}'><img src='{esc(fig.png)}' alt='{esc(fig.title)}'></a>"
            f"<figcaption>{esc(fig.title)} (<a href='{esc(fig.pdf)}'>PDF</a>)</figcaption></figure>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)
