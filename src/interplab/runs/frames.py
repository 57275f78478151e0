"""Runs → tidy DataFrames: histories with flattened config, config differences, seed aggregates."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.records import flatten, logged_mask
from interplab.runs.run import Run
from interplab.runs.runlist import SKIPPED_ATTR, skipped_of

EXPORT_SUFFIXES = (".parquet", ".csv")

RUN_ID = "_run_id"
RUN_NAME = "_run_name"
ALIGN_MODES = ("interpolate", "exact")


def metric_keys(run: Run) -> list[str]:
    """History keys of ``run`` holding numbers (internal ``_``-keys last), sorted."""
    hist = run.history()
    keys = [c for c in hist.columns if hist[c].dtype.kind in "fiub"]
    return sorted(keys, key=lambda k: (k.startswith("_"), k))


def _missing_metric(run: Run, key: str, what: str = "metric") -> InterplabError:
    hist = run.history()
    known = metric_keys(run) or list(hist.columns)
    return InterplabError(
        f"unknown {what} {key!r} in run {run.label}; logged keys: {', '.join(known) or '(none)'}"
    )


def run_arrays(run: Run, metrics: Sequence[str], step_key: str = "_step") -> dict[str, np.ndarray]:
    """``step_key`` and ``metrics`` as arrays, for every row of ``run`` where at least one metric
    was logged (a logged NaN counts as logged)."""
    metrics = list(dict.fromkeys(metrics))
    hist = run.history()
    for key in [step_key, *metrics]:
        if key not in hist.columns:
            raise _missing_metric(run, key, "step key" if key == step_key else "metric")
    cols = [step_key, *[m for m in metrics if m != step_key]]
    present = np.zeros(len(hist), dtype=bool)
    for m in metrics:
        present |= logged_mask(hist, m)
    keep = None if present.all() else np.flatnonzero(present)
    out = {}
    for c in cols:
        arr = hist[c].to_numpy()
        out[c] = arr if keep is None else arr[keep]
    return out


def run_frame(run: Run, metrics: Sequence[str], step_key: str = "_step") -> pd.DataFrame:
    """:func:`run_arrays` as a DataFrame."""
    arrays = run_arrays(run, metrics, step_key)
    return pd.DataFrame(arrays, index=pd.RangeIndex(len(arrays[step_key])))


def flat_config(config: dict[str, Any], sep: str = ".") -> dict[str, Any]:
    """Nested config → ``{"a.b": v}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        flatten(str(k), v, out, sep)
    return out


def get_runs_data(
    runs: Sequence[Run],
    metrics: Sequence[str],
    step_key: str = "_step",
    include_config: bool = True,
    config_sep: str = ".",
    config_prefix: str = "cfg",
) -> pd.DataFrame:
    """One tidy DataFrame of every logged step of every run.

    Columns: ``step_key``, the metrics (NaN where a metric was not logged at a step that logged
    another one), ``_run_id``, ``_run_name`` and, with ``include_config``, the flattened config as
    ``<config_prefix><config_sep><key>`` columns. Rows where none of the metrics was logged are left
    out (a logged NaN is kept).
    """
    if isinstance(metrics, str):
        metrics = [metrics]
    if not runs:
        raise InterplabError("no runs given to get_runs_data (the source or filter matched none)")
    parts = [run_arrays(run, metrics, step_key) for run in runs]
    lengths = np.array([len(p[step_key]) for p in parts], dtype=np.int64)
    data: dict[str, Any] = {}
    for col in parts[0]:
        data[col] = np.concatenate([p[col] for p in parts])
    data[RUN_ID] = _repeat_labels([r.id for r in runs], lengths)
    data[RUN_NAME] = _repeat_labels([r.name for r in runs], lengths)
    if include_config:
        flats = [flat_config(r.config, config_sep) for r in runs]
        keys = list(dict.fromkeys(k for f in flats for k in f))
        for key in keys:
            col = f"{config_prefix}{config_sep}{key}" if config_prefix else key
            data[col] = _repeat_values([f.get(key, _NOT_SET) for f in flats], lengths)
    df = pd.DataFrame(data, index=pd.RangeIndex(int(lengths.sum())), copy=False)
    skipped = skipped_of(runs)
    if skipped:
        df.attrs[SKIPPED_ATTR] = [s.as_dict() for s in skipped]
    return df


_NOT_SET = object()


def _repeat_labels(labels: list[str | None], lengths: np.ndarray) -> pd.Categorical:
    """One label per run repeated over its rows, as a Categorical (cheap for millions of rows)."""
    cats = list(dict.fromkeys(x for x in labels if x is not None))
    index = {c: i for i, c in enumerate(cats)}
    codes = np.repeat(np.array([index.get(x, -1) for x in labels], dtype=np.int32), lengths)
    return pd.Categorical.from_codes(codes, categories=cats)


def _repeat_values(values: list[Any], lengths: np.ndarray) -> Any:
    """One config value per run repeated over its rows: numbers as int64/float64 (NaN where a run
    lacks the key), booleans as bool, strings as Categorical, anything else as objects."""
    present = [v for v in values if v is not _NOT_SET]
    missing = len(present) < len(values)
    kinds = {type(v) for v in present}
    if kinds <= {int} and not missing:
        return np.repeat(np.array(values, dtype=np.int64), lengths)
    if kinds <= {int, float}:
        return np.repeat(
            np.array([np.nan if v is _NOT_SET else v for v in values], dtype=np.float64), lengths
        )
    if kinds <= {bool} and not missing:
        return np.repeat(np.array(values, dtype=bool), lengths)
    if kinds <= {str}:
        return _repeat_labels([None if v is _NOT_SET else v for v in values], lengths)
    obj = np.empty(len(values), dtype=object)
    obj[:] = [None if v is _NOT_SET else v for v in values]
    return np.repeat(obj, lengths)


def _config_columns(df: pd.DataFrame, config_prefix: str, config_sep: str) -> list[str]:
    head = f"{config_prefix}{config_sep}" if config_prefix else ""
    return [c for c in df.columns if c.startswith(head) and c not in (RUN_ID, RUN_NAME)]


def _canonical(value: Any) -> str:
    """A comparable text for one config value (JSON repr; NaN and missing distinct and stable)."""
    if value is None:
        return "null"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value, sort_keys=True, default=str)


def differing_config(
    df: pd.DataFrame | Sequence[Run], config_prefix: str = "cfg", config_sep: str = "."
) -> pd.DataFrame:
    """One row per run (``_run_id``, ``_run_name``) with only the config columns whose values differ.

    Takes a :func:`get_runs_data` frame or a list of runs. Lists/dicts compare by their JSON form;
    NaN equals NaN; a key missing in some runs counts as differing.
    """
    if not isinstance(df, pd.DataFrame):
        runs = list(df)
        rows = []
        for run in runs:
            row = {RUN_ID: run.id, RUN_NAME: run.name}
            for k, v in flat_config(run.config, config_sep).items():
                row[f"{config_prefix}{config_sep}{k}" if config_prefix else k] = v
            rows.append(row)
        df = pd.DataFrame(rows)
    if RUN_ID not in df.columns:
        raise InterplabError("differing_config needs a frame from get_runs_data (column _run_id missing)")
    cols = _config_columns(df, config_prefix, config_sep)
    per_run = df.drop_duplicates(subset=[RUN_ID], keep="first").reset_index(drop=True)
    keep = []
    for col in cols:
        texts = {_canonical(v) for v in per_run[col].to_numpy(dtype=object)}
        if len(texts) > 1:
            keep.append(col)
    base = [c for c in (RUN_ID, RUN_NAME) if c in per_run.columns]
    return per_run.loc[:, base + keep].reset_index(drop=True)


def _resolve_column(df: pd.DataFrame, name: str, config_prefix: str = "cfg", config_sep: str = ".") -> str:
    if name in df.columns:
        return name
    alt = f"{config_prefix}{config_sep}{name}"
    if alt in df.columns:
        return alt
    raise InterplabError(f"unknown column {name!r}; columns: {', '.join(map(str, df.columns))}")


def aggregate(
    df: pd.DataFrame,
    metric: str,
    group_by: Sequence[str] | str | None = None,
    step_key: str = "_step",
    align: str = "interpolate",
) -> pd.DataFrame:
    """Mean, std (ddof=1), sem (= std/√n) and n of ``metric`` across runs, per step and group.

    The step grid of a group is the union of its runs' logged steps. ``align="interpolate"``
    (default) puts every run on that grid by linear interpolation inside the run's own logged step
    range (no extrapolation), so runs that log at different steps still average; when all runs log
    the same steps nothing is interpolated. NaN values (a metric not logged at a row, or a logged
    NaN) are gaps: interpolated over, and never counted. ``align="exact"`` uses only values logged
    at that step.
    Columns: ``step_key`` (``_step`` by default, the name the input uses), the group columns,
    ``mean``, ``std``, ``sem``, ``n``.
    """
    if align not in ALIGN_MODES:
        raise InterplabError(f"unknown align {align!r}; expected one of: {', '.join(ALIGN_MODES)}")
    groups = [group_by] if isinstance(group_by, str) else list(group_by or [])
    metric_col = _resolve_column(df, metric)
    group_cols = [_resolve_column(df, g) for g in groups]
    step_col = _resolve_column(df, step_key)
    run_col = RUN_ID if RUN_ID in df.columns else None
    data = df.loc[df[metric_col].notna()]
    out_frames = []
    keys = group_cols if group_cols else None
    grouped = data.groupby(keys, dropna=False, sort=True, observed=True) if keys else [((), data)]
    for gkey, gdf in grouped:
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        runs = (
            [rdf for _, rdf in gdf.groupby(run_col, sort=False, observed=True) if len(rdf)]
            if run_col
            else [gdf]
        )
        series = []
        for rdf in runs:
            s = rdf[[step_col, metric_col]].to_numpy(dtype=np.float64)
            order = np.argsort(s[:, 0], kind="stable")
            s = s[order]
            # several rows at one step: keep the last logged value
            last = np.r_[s[1:, 0] != s[:-1, 0], True] if len(s) else np.zeros(0, bool)
            series.append(s[last])
        if not series:
            continue
        grid = np.unique(np.concatenate([s[:, 0] for s in series]))
        mat = np.full((len(series), len(grid)), np.nan)
        for i, s in enumerate(series):
            idx = np.searchsorted(grid, s[:, 0])
            if align == "exact":
                mat[i, idx] = s[:, 1]
            else:
                lo, hi = idx[0], idx[-1] + 1
                mat[i, lo:hi] = np.interp(grid[lo:hi], s[:, 0], s[:, 1])
                mat[i, idx] = s[:, 1]  # exact at logged steps (also keeps NaN/inf logged values)
        n = (~np.isnan(mat)).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            total = np.nansum(mat, axis=0)
            mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
            dev = np.where(np.isnan(mat), 0.0, mat - mean)
            var = np.where(n > 1, (dev**2).sum(axis=0) / np.maximum(n - 1, 1), np.nan)
            std = np.sqrt(var)
            sem = std / np.sqrt(n)
        part = {step_key: grid}
        for col, val in zip(group_cols, gkey, strict=False):
            part[col] = [val] * len(grid)
        part.update({"mean": mean, "std": std, "sem": sem, "n": n.astype(np.int64)})
        out_frames.append(pd.DataFrame(part))
    if not out_frames:
        return pd.DataFrame(columns=[step_key, *group_cols, "mean", "std", "sem", "n"])
    out = pd.concat(out_frames, ignore_index=True)
    if np.all(np.mod(out[step_key].to_numpy(), 1) == 0):
        out[step_key] = out[step_key].astype(np.int64)
    return out


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


def check_suffix(out: Path, allowed: Sequence[str], what: str) -> None:
    """One-line error unless ``out`` ends in one of ``allowed``."""
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
    check_suffix(path, EXPORT_SUFFIXES, "--out")
    df = nullable_bools(df)
    if path.suffix.lower() == ".csv":
        return write_text(path, df.to_csv(index=False))
    frame = df.copy()
    for col in frame.columns:  # Parquet needs one type per column: mixed config values become JSON text
        if frame[col].dtype == object and frame[col].map(type).nunique() > 1:
            frame[col] = frame[col].map(lambda v: v if isinstance(v, str) or v is None else json.dumps(v))
    return write_parquet(path, frame)
