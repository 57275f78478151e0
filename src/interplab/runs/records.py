"""Protobuf ``Record`` payloads of a W&B log → the run's data (metadata, config, summary, history).

Every payload is a ``wandb.proto.wandb_internal_pb2.Record``. The records that matter here:

* ``run`` — id, display name, project, entity, tags, group, job type, notes, start time and the
  initial config/summary;
* ``config`` — updates (``key`` or ``nested_key`` path, ``value_json``) and removals;
* ``history`` — one logged row: items with a ``key`` or ``nested_key`` path and a JSON value
  (nested dicts arrive flattened; we join the path with ``.``, as the W&B history does);
* ``summary`` — updates and removals, applied in order;
* ``exit`` — the exit code (its presence means the run finished);
* ``files`` — files saved with the run (tables under ``media/table``).

History is gathered as per-key (row, value) lists and built into one DataFrame at the end;
:mod:`interplab.runs.history_fast` decodes plain numeric history records without protobuf.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

INTERNAL_CONFIG_KEYS = ("_wandb",)


@dataclass
class RunLog:
    """Everything read from one ``run-<id>.wandb`` file."""

    run_id: str = ""
    display_name: str = ""
    project: str = ""
    entity: str = ""
    tags: list[str] = field(default_factory=list)
    group: str = ""
    job_type: str = ""
    notes: str = ""
    start_time: datetime | None = None
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    files: list[str] = field(default_factory=list)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_records: int = 0
    damaged_chunks: int = 0
    partial_tail: bool = False

    def meta(self) -> dict[str, Any]:
        """Every field except the history, JSON-ready (for the cache)."""
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "history"}
        meta["tags"] = list(self.tags)
        meta["start_time"] = self.start_time.isoformat() if self.start_time else None
        return meta

    @classmethod
    def from_meta(cls, meta: dict[str, Any], history: pd.DataFrame) -> RunLog:
        """Inverse of :meth:`meta`."""
        kw = dict(meta)
        kw["start_time"] = datetime.fromisoformat(meta["start_time"]) if meta.get("start_time") else None
        return cls(**kw, history=history)


def loads_value(text: str | bytes) -> Any:
    """A W&B ``value_json``: JSON with ``NaN``/``Infinity``/``-Infinity`` allowed; text that is not
    JSON is kept as the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text


def set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``target[p0][p1]… = value``, creating dicts on the way."""
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def remove_path(target: dict[str, Any], path: list[str]) -> None:
    """Delete ``target[p0][p1]…`` if present."""
    node: Any = target
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)


def item_path(item: Any) -> list[str]:
    """The key path of a config/summary/history item (``nested_key`` wins over ``key``)."""
    return list(item.nested_key) if len(item.nested_key) else [item.key]


def flatten(prefix: str, value: Any, out: dict[str, Any], sep: str = ".") -> None:
    """Flatten nested dicts into ``out`` with ``sep``-joined keys (lists stay values)."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            flatten(f"{prefix}{sep}{k}" if prefix else str(k), v, out, sep)
    else:
        out[prefix] = value


class HistoryColumns:
    """Per-key (row, value) lists gathered record by record; :meth:`frame` builds the DataFrame."""

    def __init__(self) -> None:
        self.n_rows = 0
        self.columns: dict[str, tuple[list[int], list[Any]]] = {}

    def add_row(self, items: Iterable[tuple[str, Any]]) -> None:
        """Append one history row of (dotted key, value) pairs."""
        row = self.n_rows
        self.n_rows += 1
        cols = self.columns
        for key, value in items:
            if isinstance(value, dict) and value:
                flat: dict[str, Any] = {}
                flatten(key, value, flat)
                for k, v in flat.items():
                    self._put(cols, k, row, v)
            else:
                self._put(cols, key, row, value)

    @staticmethod
    def _put(cols: dict[str, tuple[list[int], list[Any]]], key: str, row: int, value: Any) -> None:
        entry = cols.get(key)
        if entry is None:
            entry = cols[key] = ([], [])
        entry[0].append(row)
        entry[1].append(value)

    def arrays(self) -> dict[str, tuple[np.ndarray, list[Any]]]:
        """Per key: row indices and values (the form :func:`build_history_frame` takes)."""
        return {k: (np.asarray(r, dtype=np.int64), v) for k, (r, v) in self.columns.items()}


def column_from_values(n_rows: int, rows: np.ndarray, values: list[Any] | np.ndarray) -> np.ndarray:
    """One history column: int64 when every row holds an int, float64 for numbers (NaN where a
    row lacks the key), bool when complete booleans, else object with ``None`` for missing."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        arr = values
        if len(rows) == n_rows and np.array_equal(rows, np.arange(n_rows)):
            return arr
        out = np.full(n_rows, np.nan)
        out[rows] = arr
        return out
    kinds = {type(v) for v in values}
    complete = len(rows) == n_rows
    if kinds <= {int} and complete and all(abs(v) < 2**63 for v in values):
        out_i = np.empty(n_rows, dtype=np.int64)
        out_i[rows] = values
        return out_i
    if kinds <= {int, float}:
        out_f = np.full(n_rows, np.nan)
        out_f[rows] = np.asarray(values, dtype=np.float64)
        return out_f
    if kinds <= {bool} and complete:
        out_b = np.empty(n_rows, dtype=bool)
        out_b[rows] = values
        return out_b
    out_o = np.full(n_rows, None, dtype=object)
    for r, v in zip(rows.tolist(), values, strict=True):
        out_o[r] = v
    return out_o


LOGGED_NAN = "logged_nan"


def _nan_rows(rows: np.ndarray, vals: Any) -> list[int]:
    if isinstance(vals, np.ndarray):
        if vals.dtype.kind != "f":
            return []
        return rows[np.isnan(vals)].tolist()
    return [
        int(r) for r, v in zip(rows.tolist(), vals, strict=True) if isinstance(v, float) and math.isnan(v)
    ]


#: above this many columns a frame is built one 2-D block per dtype (pandas' per-column path is slow)
WIDE_COLUMNS = 256


def frame_from_columns(data: dict[str, np.ndarray], n_rows: int) -> pd.DataFrame:
    """A DataFrame of 1-D arrays in the given column order; wide ones are built per dtype block."""
    index = pd.RangeIndex(n_rows)
    if len(data) <= WIDE_COLUMNS:
        return pd.DataFrame(data, index=index)
    groups: dict[np.dtype, list[str]] = {}
    for k, arr in data.items():
        groups.setdefault(arr.dtype, []).append(k)
    parts = []
    for dtype, keys in groups.items():
        block = np.empty((n_rows, len(keys)), dtype=dtype)
        for j, k in enumerate(keys):
            block[:, j] = data[k]
        parts.append(pd.DataFrame(block, columns=pd.Index(keys, dtype=object), index=index, copy=False))
    df = parts[0] if len(parts) == 1 else pd.concat(parts, axis=1, copy=False)
    return df.loc[:, list(data)] if list(df.columns) != list(data) else df


def build_history_frame(n_rows: int, columns: dict[str, tuple[np.ndarray, Any]]) -> pd.DataFrame:
    """One DataFrame from per-key columns; ``_step`` first, then keys in first-seen order.

    A logged NaN and a key not logged at a row both read as NaN; ``df.attrs["logged_nan"]`` keeps
    the rows where NaN was logged (per column) so "logged" can still be told from "missing".
    """
    data = {k: column_from_values(n_rows, rows, vals) for k, (rows, vals) in columns.items()}
    order = sorted(data, key=lambda k: (k != "_step",))
    df = frame_from_columns({k: data[k] for k in order}, n_rows)
    nan_rows = {k: r for k, (rows, vals) in columns.items() if (r := _nan_rows(rows, vals))}
    df.attrs[LOGGED_NAN] = nan_rows
    return df


def logged_mask(df: pd.DataFrame, column: str) -> np.ndarray:
    """Rows of a history frame where ``column`` was logged (a value, or a logged NaN)."""
    mask = df[column].notna().to_numpy()
    nan_rows = df.attrs.get(LOGGED_NAN, {}).get(column)
    if nan_rows:
        mask = mask.copy()
        mask[np.asarray(nan_rows, dtype=np.int64)] = True
    return mask


def history_items(hist: Any) -> list[tuple[str, Any]]:
    """(dotted key, value) pairs of a ``HistoryRecord``; ``_step`` from ``step.num`` if not an item."""
    items = [(".".join(item_path(it)), loads_value(it.value_json)) for it in hist.item]
    if not any(k == "_step" for k, _ in items) and hist.HasField("step"):
        items.append(("_step", int(hist.step.num)))
    return items


def _timestamp(ts: Any) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=UTC)


class RunLogBuilder:
    """Apply records in file order; history rows go to a :class:`HistoryColumns`."""

    def __init__(self, collect_summary: bool = False) -> None:
        self.log = RunLog()
        self.history = HistoryColumns()
        #: with ``collect_summary``: (record index, seq, path, value, is_remove) instead of applying
        self.summary_ops: list[tuple[int, int, list[str], Any, bool]] | None = [] if collect_summary else None
        self._rec = 0

    def apply(self, record: Any, index: int = 0) -> None:
        """Apply one parsed ``Record`` (``index``: its position in the log, for collected ops)."""
        self._rec = index
        kind = record.WhichOneof("record_type")
        if kind == "history":
            self._history(record.history)
        elif kind == "summary":
            self._summary(record.summary.update, record.summary.remove)
        elif kind == "config":
            self._items(self.log.config, record.config.update, record.config.remove)
        elif kind == "run":
            self._run(record.run)
        elif kind == "exit":
            self.log.exit_code = int(record.exit.exit_code)
        elif kind == "files":
            self.log.files.extend(f.path for f in record.files.files)

    def _history(self, hist: Any) -> None:
        self.history.add_row(history_items(hist))

    def _summary(self, updates: Any, removes: Any) -> None:
        if self.summary_ops is None:
            self._items(self.log.summary, updates, removes)
            return
        ops = self.summary_ops
        for it in updates:
            ops.append((self._rec, len(ops), item_path(it), loads_value(it.value_json), False))
        for it in removes:
            ops.append((self._rec, len(ops), item_path(it), None, True))

    @staticmethod
    def _items(target: dict[str, Any], updates: Any, removes: Any) -> None:
        for it in updates:
            set_path(target, item_path(it), loads_value(it.value_json))
        for it in removes:
            remove_path(target, item_path(it))

    def _run(self, run: Any) -> None:
        log = self.log
        log.run_id = run.run_id or log.run_id
        log.display_name = run.display_name or log.display_name
        log.project = run.project or log.project
        log.entity = run.entity or log.entity
        log.group = run.run_group or log.group
        log.job_type = run.job_type or log.job_type
        # every run record is a full snapshot of these fields: the last one wins, even when empty
        log.notes = run.notes
        log.tags = list(run.tags)
        if run.HasField("start_time"):
            log.start_time = _timestamp(run.start_time) or log.start_time
        self._items(log.config, run.config.update, run.config.remove)
        self._summary(run.summary.update, run.summary.remove)

    def finish(self) -> RunLog:
        """The run's data; internal config keys dropped."""
        log = self.log
        for key in INTERNAL_CONFIG_KEYS:
            log.config.pop(key, None)
            log.summary.pop(key, None)
        log.history = build_history_frame(self.history.n_rows, self.history.arrays())
        return log


def parse_record(payload: bytes | memoryview) -> Any:
    """One ``Record`` from its bytes; None (with a warning) when the bytes are not a Record."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    record = wandb_internal_pb2.Record()
    try:
        record.ParseFromString(bytes(payload) if isinstance(payload, memoryview) else payload)
    except DecodeError as exc:
        logger.warning(
            "skipped a record that is not a valid protobuf Record (%d bytes): %s", len(payload), exc
        )
        return None
    return record


def is_nan_equal(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (for checks and config comparison)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b
