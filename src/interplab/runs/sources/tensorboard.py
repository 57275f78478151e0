"""TensorBoard event files as runs, read with the ``tensorboard`` package's own record reader
(its TensorFlow stub: no TensorFlow needed).

Layout: every folder under the source that directly holds ``events.out.tfevents.*`` files, and
whose parent folders (below the source) hold none, is one run; its id and name are its path
relative to the source (``.`` when the source itself is the run). Event files in subfolders of a
run belong to that run: scalars there are keyed ``<subfolder>/<tag>`` (what ``add_scalars``
writes), except in a folder written by ``add_hparams``, which gives the run's config (the hparams
plugin's session-start info) and whose metric copies are skipped.

The history has ``_step`` (the event step), one column per scalar tag (``simple_value`` or a
scalar tensor; the last value wins when a tag repeats a step) and ``_timestamp`` (wall time).
``summary`` holds each tag's last value. Histories are cached as Parquet (key: the event files'
paths, sizes and modification times). An event file cut mid-record (the record header or body runs
past the end of the file) is an error naming the file and byte offset — unless it was modified
within the last ``RUNNING_WINDOW_S`` seconds (a run still writing), when the complete records are
read and the run's state is ``running``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.cache import CacheKey, HistoryCache
from interplab.runs.run import Run
from interplab.runs.sources import has_file_within

log = logging.getLogger(__name__)

PREFIXES = ("tb:", "tensorboard:")
EVENT_GLOB = "events.out.tfevents.*"
MAX_DEPTH = 6
RUNNING_WINDOW_S = 300.0
HPARAMS_PLUGIN = "hparams"
SESSION_START_TAG = "_hparams_/session_start_info"


def has_event_files(root: Path, max_depth: int = 4) -> bool:
    """Whether any event file lies within ``max_depth`` folders below ``root``."""
    if root.is_file():
        return root.name.startswith("events.out.tfevents.")
    return has_file_within(root, lambda f: f.startswith("events.out.tfevents."), max_depth)


def discover_runs(root: Path) -> dict[Path, list[Path]]:
    """``{run folder: [event files in it and below]}``; every folder counted once."""
    if not root.exists():
        raise InterplabError(
            f"no TensorBoard runs found: {root} does not exist (expected a folder of event files)"
        )
    if root.is_file():
        if not root.name.startswith("events.out.tfevents."):
            raise InterplabError(f"{root} is not a TensorBoard event file (expected events.out.tfevents.*)")
        return {root.parent: [root]}
    runs: dict[Path, list[Path]] = {}
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames.sort()
        events = sorted(here / f for f in filenames if f.startswith("events.out.tfevents."))
        if not events:
            if len(here.parts) - base >= MAX_DEPTH:
                dirnames[:] = []
            continue
        owner = next((r for r in runs if here == r or r in here.parents), None)
        runs.setdefault(owner or here, []).extend(events)
    if not runs:
        raise InterplabError(
            f"no TensorBoard runs found in {root} (looked for {EVENT_GLOB} files up to {MAX_DEPTH} levels down)"
        )
    return runs


def iter_records(path: Path) -> Iterator[bytes]:
    """Every complete record of one event file (TFRecord framing), via tensorboard's reader.

    Raises :class:`InterplabError` when the file ends inside a record (see module docstring).
    """
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

    size = path.stat().st_size
    offset = 0
    for raw in RawEventFileLoader(str(path)).Load():
        offset += 16 + len(raw)  # 8-byte length, 4-byte length CRC, data, 4-byte data CRC
        yield raw
    if offset != size:
        recent = time.time() - path.stat().st_mtime < RUNNING_WINDOW_S
        if not recent:
            raise InterplabError(
                f"TensorBoard event file {path} is cut mid-record at byte {offset} of {size} "
                "(a damaged or truncated copy; complete records end before that byte)"
            )
        log.warning("%s ends inside a record at byte %d (still being written?)", path, offset)


def _hparam_value(v: Any) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        num = v.number_value
        return int(num) if float(num).is_integer() else num
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    return None


@dataclass
class _Collected:
    tags: list[str] = field(default_factory=list)
    tag_index: dict[str, int] = field(default_factory=dict)
    tag_ids: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False

    def add(self, tag: str, step: int, value: float, wall: float) -> None:
        idx = self.tag_index.get(tag)
        if idx is None:
            idx = self.tag_index[tag] = len(self.tags)
            self.tags.append(tag)
        self.tag_ids.append(idx)
        self.steps.append(step)
        self.values.append(value)
        self.walls.append(wall)


def _scalar(value: Any) -> float | None:
    kind = value.WhichOneof("value")
    if kind == "simple_value":
        return float(value.simple_value)
    if kind == "tensor":
        from tensorboard.util import tensor_util

        arr = tensor_util.make_ndarray(value.tensor)
        if arr.size == 1 and arr.dtype.kind in "fiub":
            return float(arr.reshape(()))
    return None


def read_events(files: list[Path], run_dir: Path) -> _Collected:
    """Scalars and hparams of one run's event files (one pass; no event kept after parsing)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2

    out = _Collected()
    by_dir: dict[Path, list[Path]] = {}
    for f in files:
        by_dir.setdefault(f.parent, []).append(f)
    for folder, folder_files in by_dir.items():
        rel = folder.relative_to(run_dir).as_posix()
        prefix = "" if rel == "." else f"{rel}/"
        here = _Collected()
        hparams_dir = False
        for f in folder_files:
            for raw in iter_records(f):
                ev = event_pb2.Event.FromString(raw)
                if not ev.HasField("summary"):
                    continue
                step, wall = ev.step, ev.wall_time
                for v in ev.summary.value:
                    if v.HasField("simple_value"):  # the common case first: no metadata to look at
                        here.add(prefix + v.tag, step, v.simple_value, wall)
                        continue
                    if v.metadata.plugin_data.plugin_name == HPARAMS_PLUGIN:
                        if v.tag == SESSION_START_TAG:
                            info = plugin_data_pb2.HParamsPluginData.FromString(
                                v.metadata.plugin_data.content
                            )
                            for k, hv in info.session_start_info.hparams.items():
                                out.config[k] = _hparam_value(hv)
                            hparams_dir = True
                        continue
                    val = _scalar(v)
                    if val is not None:
                        here.add(prefix + v.tag, step, val, wall)
        if hparams_dir and prefix:
            continue  # add_hparams' own folder: its metric copies duplicate the run's scalars
        for tag_id, step, value, wall in zip(here.tag_ids, here.steps, here.values, here.walls, strict=True):
            out.add(here.tags[tag_id], step, value, wall)
    return out


def history_frame(c: _Collected) -> pd.DataFrame:
    """Wide history: ``_step``, one column per tag (NaN where not logged), ``_timestamp``."""
    tag_ids = np.asarray(c.tag_ids, dtype=np.int64)
    steps = np.asarray(c.steps, dtype=np.int64)
    values = np.asarray(c.values, dtype=np.float64)
    walls = np.asarray(c.walls, dtype=np.float64)
    grid, row = np.unique(steps, return_inverse=True)
    data: dict[str, Any] = {"_step": grid}
    wide = np.full((len(c.tags), len(grid)), np.nan)
    wide[tag_ids, row] = values  # later events overwrite earlier ones: the last value wins
    for i, tag in enumerate(c.tags):
        data[tag] = wide[i]
    wall = np.full(len(grid), np.nan)
    np.fmax.at(wall, row, walls)
    data["_timestamp"] = wall
    return pd.DataFrame(data, index=pd.RangeIndex(len(grid)))


def _cache_key(run_dir: Path, files: list[Path]) -> CacheKey:
    parts = []
    for f in files:
        st = f.stat()
        parts.append(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    digest = hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]
    return CacheKey("tensorboard", hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:16], digest)


def _summary(hist: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in hist.columns:
        if col == "_timestamp":
            continue
        vals = hist[col].to_numpy(dtype=np.float64)
        ok = np.flatnonzero(~np.isnan(vals))
        if len(ok):
            v = vals[ok[-1]]
            out[col] = int(v) if col == "_step" else float(v)
    return out


def load_run(root: Path, run_dir: Path, files: list[Path], cache: HistoryCache | None) -> Run:
    """One run: history from the cache or the event files, config from hparams."""
    key = _cache_key(run_dir, files)
    cached = cache.load(key) if cache is not None else None
    if cached is not None:
        hist, meta = cached
    else:
        c = read_events(files, run_dir)
        hist = history_frame(c)
        meta = {"config": c.config}
        if cache is not None:
            cache.store(key, hist, meta)
    newest = max(f.stat().st_mtime for f in files)
    rel = run_dir.relative_to(root).as_posix() if run_dir != root else run_dir.name or "."
    first = float(hist["_timestamp"].min()) if len(hist) else math.nan
    return Run(
        id=rel,
        name=rel,
        tags=[],
        state="running" if time.time() - newest < RUNNING_WINDOW_S else "finished",
        config=dict(meta.get("config", {})),
        summary=_summary(hist),
        source=f"tb:{root}",
        path=run_dir,
        created_at=datetime.fromtimestamp(first, UTC) if math.isfinite(first) else None,
        _history=hist,
    )


def tensorboard_runs(source: str | Path, cache: HistoryCache | None = None) -> list[Run]:
    """Every TensorBoard run under ``source`` (``tb:`` prefix optional), sorted by id."""
    text = str(source)
    for p in PREFIXES:
        text = text.removeprefix(p)
    root = Path(text).expanduser()
    cache = cache if cache is not None else HistoryCache()
    found = discover_runs(root)
    base = root if root.is_dir() else root.parent
    runs = [load_run(base, d, files, cache) for d, files in found.items()]
    return sorted(runs, key=lambda r: r.id)
