"""The plain-Python functions behind ``interplab runs list|diff|export|plot|heads``.

Each takes a source (``wandb:ENTITY/PROJECT`` or a local folder of offline runs) plus options,
validates everything before writing, and writes atomically.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.api import load_runs, split_values
from interplab.runs.frames import EXPORT_SUFFIXES, check_suffix, runs_frame, write_frame
from interplab.runs.runlist import SKIPPED_ATTR, skipped_lines, skipped_of
from interplab.runs.tables import run_tables


def runs_list(
    source: str,
    tags: Sequence[str] | None = None,
    filter_json: str | None = None,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The run table of ``interplab runs list``; a metric missing from every summary is an error."""
    runs = load_runs(source, tags, filter_json)
    chosen = split_values(metrics)
    for m in chosen:
        if not any(m in r.summary for r in runs):
            from interplab.runs.summary import unknown_key_message

            keys = {k for r in runs for k, v in r.summary.items() if isinstance(v, int | float)}
            raise InterplabError(unknown_key_message("summary metric", m, keys))
    df = runs_frame(runs, chosen)
    derived = [r.id for r in runs if r.summary_source != "logged"]
    if derived:  # crashed runs whose log holds no summary: the last logged values stand in
        df.attrs["summary_derived"] = derived
    skipped = skipped_of(runs)
    if skipped:
        df.attrs[SKIPPED_ATTR] = [s.as_dict() for s in skipped]
    return df


def runs_diff(source: str, tags: Sequence[str] | None = None, filter_json: str | None = None) -> pd.DataFrame:
    """One row per run with only the config keys whose values differ (``differing_config``)."""
    from interplab.runs.frames import differing_config

    return differing_config(load_runs(source, tags, filter_json))


def runs_export(
    source: str,
    metrics: Sequence[str],
    out: str | os.PathLike[str],
    tags: Sequence[str] | None = None,
    filter_json: str | None = None,
    step_key: str = "_step",
) -> pd.DataFrame:
    """Every logged step of ``metrics`` for the matching runs (``get_runs_data``) → ``out``."""
    from interplab.runs.frames import get_runs_data

    check_suffix(Path(out), EXPORT_SUFFIXES, "--out")
    names = split_values(metrics)
    if not names:
        raise InterplabError("--metrics is empty; name at least one logged metric")
    df = get_runs_data(load_runs(source, tags, filter_json), names, step_key=step_key)
    write_frame(df, out)
    return df


def parse_phases(text: str | None) -> str | list[float] | None:
    """``--phases``: ``auto``, ``S1,S2,…`` (boundary steps) or nothing."""
    if text is None or not text.strip():
        return None
    if text.strip() == "auto":
        return "auto"
    try:
        return [float(v) for v in split_values([text])]
    except ValueError as exc:
        raise InterplabError(
            f"--phases must be 'auto' or comma-separated steps like 1000,5000; got {text!r}"
        ) from exc


def _figure_out(out: str | os.PathLike[str]) -> Path:
    path = Path(out)
    check_suffix(path, (".pdf", ".png"), "--out")
    return path


@dataclasses.dataclass
class PlotResult:
    """A written figure: its files and the Figure object."""

    files: list[Path]
    figure: Any
    #: one line per run left out because it logged nothing
    skipped: list[str] = dataclasses.field(default_factory=list)


def runs_plot(
    source: str,
    metrics: Sequence[str],
    out: str | os.PathLike[str],
    group_by: str | None = None,
    phases: str | None = None,
    phase_metrics: Sequence[str] | None = None,
    max_step: float | None = None,
    shift: float = 0,
    tags: Sequence[str] | None = None,
    filter_json: str | None = None,
    title: str | None = None,
    logy: bool = False,
    band: str = "ci",
    ci: float = 0.95,
) -> PlotResult:
    """Metric curves (mean and a band across runs — bootstrap CI by default, or ± SE / ± std —
    optional grouping and phases) → ``out`` PDF + PNG."""
    from interplab.common.errors import one_of
    from interplab.common.figures import save_figure
    from interplab.runs.curves import PREFIX_TEACHER_METRICS, curves_figure
    from interplab.runs.frames import get_runs_data
    from interplab.runs.stats import BANDS

    path = _figure_out(out)
    names = split_values(metrics)
    if not names:
        raise InterplabError("--metric is empty; name at least one logged metric")
    one_of(band, list(BANDS), "--band")
    if not 0 < ci < 1:
        raise InterplabError(f"--ci must be in (0, 1), got {ci}")
    spec = parse_phases(phases)
    chosen_phase_metrics = split_values(phase_metrics) or None
    if spec == "auto" and chosen_phase_metrics is None and len(names) < 2:
        chosen_phase_metrics = list(PREFIX_TEACHER_METRICS)
    needed = list(dict.fromkeys([*names, *(chosen_phase_metrics or [])] if spec == "auto" else names))
    runs = load_runs(source, tags, filter_json)
    df = get_runs_data(runs, needed)
    if group_by and group_by not in df.columns and f"cfg.{group_by}" in df.columns:
        group_by = f"cfg.{group_by}"
    fig = curves_figure(
        df,
        names,
        group_by=group_by,
        phases=spec,
        phase_metrics=chosen_phase_metrics,
        max_steps=max_step,
        shift_steps=shift,
        title=title,
        logy=logy,
        band=band,
        ci=ci,
    )
    return PlotResult(save_figure(fig, path), fig, skipped_lines(runs))


def runs_heads(
    source: str,
    run_key: str,
    out: str | os.PathLike[str],
    steps: Sequence[str] | None = None,
    key: str = "val_attention_weights",
    mode: str = "combined",
    staircase_offsets: Sequence[str] | None = None,
    gamma: float = 0.5,
    normalize: bool = False,
) -> PlotResult:
    """Attention heads of one run at ``steps`` from its logged table → ``out`` PDF + PNG."""
    from interplab.common.errors import one_of
    from interplab.common.figures import save_figure
    from interplab.runs.heads import (
        combined_heads_figure,
        combined_heads_individual_figure,
        separated_heads_figure,
    )

    path = _figure_out(out)
    one_of(mode, ["combined", "individual", "separated"], "--mode")
    try:
        step_list = [int(float(s)) for s in split_values(steps)]
        offsets = [int(s) for s in split_values(staircase_offsets)]
    except ValueError as exc:
        raise InterplabError(
            f"--steps and --staircase take integers, got {steps} / {staircase_offsets}"
        ) from exc
    from interplab.runs.api import find_run

    run = find_run(load_runs(source), run_key)
    tables = run_tables(run, step_list, key)
    title = f"{run.name} — {key}"
    if mode == "combined":
        fig = combined_heads_figure(tables, staircase_offsets=offsets, normalize=normalize, title=title)
    elif mode == "individual":
        fig = combined_heads_individual_figure(
            tables, gamma=gamma, staircase_offsets=offsets, normalize=normalize, title=title
        )
    else:
        fig = separated_heads_figure(tables, normalize=normalize, title=title)
    return PlotResult(save_figure(fig, path), fig)
