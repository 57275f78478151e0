"""The plain-Python functions behind ``interplab runs list|diff|export|plot|heads``.

Each takes a source (``wandb:ENTITY/PROJECT`` or a local folder of offline runs) plus options,
validates everything before writing, and writes atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.run import Run
from interplab.runs.runlist import SKIPPED_ATTR, skipped_lines, skipped_of

EXPORT_SUFFIXES = (".parquet", ".csv")


def split_values(values: Sequence[str] | None) -> list[str]:
    """Flatten repeated and comma-separated option values: ``["a,b", "c"]`` → ``["a", "b", "c"]``."""
    return [v.strip() for item in values or [] for v in str(item).split(",") if v.strip()]


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """``--filter`` JSON text → dict (W&B Mongo-style filter), with a one-line error."""
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InterplabError(f"--filter is not valid JSON ({exc.msg} at char {exc.pos}): {text}") from exc
    if not isinstance(value, dict):
        raise InterplabError(
            f'--filter must be a JSON object like {{"config.lr": {{"$gt": 0.001}}}}, got {text}'
        )
    return value


def load_runs(source: str, tags: Sequence[str] | None = None, filter_json: str | None = None) -> list[Run]:
    """:func:`interplab.runs.api.fetch_runs` with CLI-style tag and filter options; never empty."""
    from interplab.runs.api import fetch_runs

    tag_list = split_values(tags)
    runs = fetch_runs(source, tags_any=tag_list or None, extra_filters=parse_filter(filter_json))
    if not runs:
        what = []
        if tag_list:
            what.append(f"tags {tag_list}")
        if filter_json:
            what.append(f"filter {filter_json}")
        raise InterplabError(f"no runs in {source} match {' and '.join(what)}")
    return runs


def last_step(run: Run) -> int | None:
    """The last logged step (from the summary's ``_step``)."""
    step = run.summary.get("_step")
    return int(step) if isinstance(step, int | float) else None


def run_identity(run: Run, tag_sep: str = ", ") -> dict[str, Any]:
    """The columns that name a run in tables: id, name, state, tags (joined) and last step."""
    return {
        "id": run.id,
        "name": run.name,
        "state": run.state,
        "tags": tag_sep.join(run.tags),
        "steps": last_step(run),
    }


def runs_frame(runs: Sequence[Run], metrics: Sequence[str] = ()) -> pd.DataFrame:
    """One row per run: id, name, state, tags, last step and the chosen summary metrics."""
    rows = []
    for run in runs:
        row = run_identity(run)
        for m in metrics:
            value = run.summary.get(m)
            row[m] = value if isinstance(value, int | float | str | bool) or value is None else str(value)
        rows.append(row)
    df = pd.DataFrame(rows, columns=["id", "name", "state", "tags", "steps", *metrics])
    if any(len(r.segments) > 1 for r in runs):  # resumed runs: how many folders were merged
        df.insert(5, "resumed", [f"{len(r.segments)} folders" if len(r.segments) > 1 else "" for r in runs])
    return df


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


def _check_suffix(out: Path, allowed: Sequence[str], what: str) -> None:
    if out.suffix.lower() not in allowed:
        raise InterplabError(f"{what} {out} must end in {' or '.join(allowed)}")


def nullable_bools(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding only booleans and gaps as pandas' nullable ``boolean``, so Parquet
    stores booleans with nulls and CSV writes ``True``/``False``/empty — the same values in both."""
    fix = {}
    for col in df.columns:
        if df[col].dtype == object:
            values = df[col].to_numpy()
            present = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
            if present and all(isinstance(v, bool | np.bool_) for v in present):
                fix[col] = pd.array(
                    [None if v is None or v != v else bool(v) for v in values], dtype="boolean"
                )
    return df.assign(**fix) if fix else df


def write_frame(df: pd.DataFrame, out: str | os.PathLike[str]) -> Path:
    """Write ``df`` atomically as Parquet or CSV (by suffix)."""
    from interplab.common.atomic import write_parquet, write_text

    path = Path(out)
    _check_suffix(path, EXPORT_SUFFIXES, "--out")
    df = nullable_bools(df)
    if path.suffix.lower() == ".csv":
        return write_text(path, df.to_csv(index=False))
    frame = df.copy()
    for col in frame.columns:  # Parquet needs one type per column: mixed config values become JSON text
        if frame[col].dtype == object and frame[col].map(type).nunique() > 1:
            frame[col] = frame[col].map(lambda v: v if isinstance(v, str) or v is None else json.dumps(v))
    return write_parquet(path, frame)


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

    _check_suffix(Path(out), EXPORT_SUFFIXES, "--out")
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
    _check_suffix(path, (".pdf", ".png"), "--out")
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


def run_tables(
    run: Run, steps: Sequence[int] | None, key: str = "val_attention_weights"
) -> dict[int, pd.DataFrame]:
    """The tables ``key`` of ``run`` at ``steps`` (None: the last logged) as {step: DataFrame}."""
    from interplab.runs.tables import get_table, table_steps

    if not steps:
        logged = table_steps(run, key)["step"].tolist()
        if not logged:
            raise InterplabError(f"no table {key!r} logged in run {run.label}")
        steps = [int(logged[-1])]
    return {int(s): get_table(run, key, int(s)) for s in steps}


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
