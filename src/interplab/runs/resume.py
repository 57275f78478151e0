"""Resumed offline runs: the folders W&B writes for one run id, merged into one run.

``wandb.init(id=…, resume=…)`` in offline mode writes a new ``offline-run-*-<id>`` folder per
session. Like the W&B server after ``wandb sync``, we read them as one run: the segments in start
time order, history rows concatenated in that order (no row dropped or renumbered), config and
summary updated segment after segment (later values win, nested dicts merged key by key), the
name, tags, notes, state and exit code of the last segment, the start time of the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interplab.runs.records import RunLog, build_history_frame, logged_mask


def merge_nested(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update`` (a copy); nested dicts are merged key by key."""
    out = dict(base)
    for key, value in update.items():
        old = out.get(key)
        out[key] = merge_nested(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return out


def concat_histories(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """History frames one after the other, typed by the same rules as one decoded log
    (:func:`interplab.runs.records.build_history_frame`); logged NaNs stay marked."""
    n_rows = 0
    columns: dict[str, tuple[list[np.ndarray], list[Any]]] = {}
    for df in parts:
        for col in df.columns:
            mask = logged_mask(df, col)
            rows = np.flatnonzero(mask) + n_rows
            values = df[col].to_numpy()[mask]
            entry = columns.setdefault(col, ([], []))
            entry[0].append(rows)
            entry[1].append(values)
        n_rows += len(df)
    merged: dict[str, tuple[np.ndarray, Any]] = {}
    for col, (rows_list, value_list) in columns.items():
        rows = np.concatenate(rows_list).astype(np.int64)
        if all(v.dtype.kind in "fiu" for v in value_list) or all(v.dtype.kind == "b" for v in value_list):
            values: Any = np.concatenate(value_list)
        else:
            values = [x for v in value_list for x in v.tolist()]
        merged[col] = (rows, values)
    return build_history_frame(n_rows, merged)


def merge_segments(logs: Sequence[RunLog]) -> RunLog:
    """One :class:`RunLog` from the logs of one run id, given in start-time order."""
    if len(logs) == 1:
        return logs[0]
    first, last = logs[0], logs[-1]
    config: dict[str, Any] = {}
    summary: dict[str, Any] = {}
    for log in logs:
        config = merge_nested(config, log.config)
        summary = merge_nested(summary, log.summary)
    return RunLog(
        run_id=last.run_id,
        display_name=last.display_name or first.display_name,
        project=last.project or first.project,
        entity=last.entity or first.entity,
        tags=list(last.tags),
        group=last.group or first.group,
        job_type=last.job_type or first.job_type,
        notes=last.notes,
        start_time=first.start_time,
        config=config,
        summary=summary,
        exit_code=last.exit_code,
        files=[f for log in logs for f in log.files],
        history=concat_histories([log.history for log in logs]),
        n_records=sum(log.n_records for log in logs),
        damaged_chunks=sum(log.damaged_chunks for log in logs),
        partial_tail=last.partial_tail,
    )


def group_segments(items: Sequence[tuple[RunLog, Path]]) -> list[list[tuple[RunLog, Path]]]:
    """(log, file) pairs grouped by run id, each group in start-time order (then file path)."""
    groups: dict[str, list[tuple[RunLog, Path]]] = {}
    for log, path in items:
        groups.setdefault(log.run_id, []).append((log, path))
    out = []
    for group in groups.values():
        group.sort(key=lambda lp: (lp[0].start_time is None, lp[0].start_time or 0, str(lp[1])))
        out.append(group)
    return out
