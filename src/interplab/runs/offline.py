"""Offline runs: find the run folders W&B writes and read their ``run-<id>.wandb`` logs.

A source path may be: one ``.wandb`` file; one run folder (``offline-run-*`` / ``run-*`` holding a
``run-<id>.wandb``); or any folder holding such run folders, directly, under ``wandb/``, or a few
levels down. Links such as ``wandb/latest-run`` are resolved and every run is counted once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from interplab.common.errors import InterplabError
from interplab.runs.cache import HistoryCache, offline_key
from interplab.runs.leveldb_log import FILE_HEADER_LEN, read_log_buffer, read_log_bytes, scan_log
from interplab.runs.records import RunLog, RunLogBuilder
from interplab.runs.run import Run
from interplab.runs.runlist import RunList, SkippedRun

logger = logging.getLogger(__name__)

#: how far below the source folder run folders are looked for
MAX_DEPTH = 4
#: a log without an exit record modified this recently counts as still running
RUNNING_WINDOW_S = 300.0
#: at most this many logs are read at once
MAX_THREADS = 8


def _numpy_page_advice() -> Callable[[bool], bool] | None:
    """numpy's switch for advising transparent huge pages on large arrays (private; None if gone)."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        return None
    return _set_madvise_hugepage


class _OrdinaryPages:
    """Turn numpy's huge-page advice off while logs are decoded and cached.

    numpy advises transparent huge pages for every large array; where the kernel then compacts
    memory on first touch (``defrag=madvise``, common) a cold read of a 1.5 GB log spends more time
    in page faults than it should (building the history columns 2.7–3.5 s → 1.9–2.4 s, system
    time −0.8 s, at 20,000 keys × 1,000 steps). The switch is
    process-wide, so concurrent decodes are counted and the last one restores it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved = True

    @contextmanager
    def __call__(self) -> Iterator[None]:
        advise = _numpy_page_advice()
        if advise is None:
            yield
            return
        with self._lock:
            if self._active == 0:
                self._saved = advise(False)
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    advise(self._saved)


#: the one switch of this process (it guards numpy's own process-wide setting)
_ordinary_pages = _OrdinaryPages()


def _run_log_in(folder: Path) -> Path | None:
    logs = sorted(folder.glob("run-*.wandb"))
    return logs[0] if logs else None


def discover_logs(source: str | Path) -> list[Path]:
    """Every distinct ``run-<id>.wandb`` under ``source`` (resolved real paths, sorted)."""
    root = Path(source).expanduser()
    if not root.exists():
        raise InterplabError(
            f"no W&B runs found: {root} does not exist (expected a folder of W&B runs, a run folder "
            "or a run-<id>.wandb file)"
        )
    if root.is_file():
        if root.suffix != ".wandb":
            raise InterplabError(f"{root} is not a W&B log (expected a run-<id>.wandb file or a folder)")
        return [root.resolve()]
    found: dict[Path, None] = {}
    direct = _run_log_in(root)
    if direct is not None:
        found[direct.resolve()] = None
    else:
        base_depth = len(root.parts)
        for dirpath, dirnames, _ in os.walk(root, followlinks=False):
            here = Path(dirpath)
            depth = len(here.parts) - base_depth
            keep = []
            for name in sorted(dirnames):
                sub = here / name
                if name.startswith(("offline-run-", "run-")):
                    log = _run_log_in(sub)
                    if log is not None:
                        found.setdefault(log.resolve(), None)
                        continue
                if depth + 1 < MAX_DEPTH and not sub.is_symlink() and not name.startswith("."):
                    keep.append(name)
            dirnames[:] = keep
    if not found:
        raise InterplabError(
            f"no W&B runs found in {root} (looked for run-<id>.wandb files in offline-run-*/run-* "
            f"folders, also under wandb/, up to {MAX_DEPTH} levels down)"
        )
    return sorted(found)


def decode_log(log_file: Path) -> RunLog:
    """Read one log completely (every valid record; damaged chunks skipped), fast path first."""
    from interplab.runs.history_fast import decode_bytes

    log = decode_bytes(read_log_buffer(log_file), log_file)
    if log is None:
        return decode_log_exact(log_file)
    if not log.run_id:
        log.run_id = log_file.stem.removeprefix("run-")
    return log


def decode_log_exact(log_file: Path) -> RunLog:
    """Read one log with protobuf for every record (the reference the fast path is tested against)."""
    from interplab.runs.records import parse_record

    data = read_log_bytes(log_file)
    scan = scan_log(data, log_file)
    builder = RunLogBuilder()
    for payload in scan.records():
        record = parse_record(payload)
        if record is not None:
            builder.apply(record)
    log = builder.finish()
    log.n_records = len(scan)
    log.damaged_chunks = scan.damaged_chunks
    log.partial_tail = scan.partial_tail
    if not log.run_id:
        log.run_id = log_file.stem.removeprefix("run-")
    return log


def load_log(log_file: Path, cache: HistoryCache | None = None) -> RunLog:
    """A log's data through the Parquet cache (keyed by resolved path, size and mtime)."""
    cache = cache if cache is not None else HistoryCache()
    key = offline_key(log_file) if cache.enabled else None
    if key is not None:
        hit = cache.load(key)
        if hit is not None:
            history, meta = hit
            return RunLog.from_meta(meta, history)
    with _ordinary_pages():
        log = decode_log(log_file)
        if key is not None:
            cache.store(key, log.history, log.meta())
    return log


def offline_state(log: RunLog, log_file: Path, now: float | None = None) -> str:
    """``finished`` (exit code 0), ``failed`` (non-zero exit), else ``running`` if the log was
    written in the last few minutes, else ``crashed``."""
    if log.exit_code is not None:
        return "finished" if log.exit_code == 0 else "failed"
    age = (now if now is not None else time.time()) - log_file.stat().st_mtime
    return "running" if age < RUNNING_WINDOW_S else "crashed"


def run_from_log(log: RunLog, log_file: Path, source: str, segments: list[Path] | None = None) -> Run:
    """A :class:`Run` whose history is the decoded one (``segments``: every log of a resumed run)."""
    folder = log_file.parent
    return Run(
        id=log.run_id,
        name=log.display_name or log.run_id,
        tags=list(log.tags),
        state=offline_state(log, log_file),
        config=log.config,
        summary=log.summary,
        source=source,
        path=folder,
        project=log.project,
        entity=log.entity,
        group=log.group,
        job_type=log.job_type,
        notes=log.notes,
        created_at=log.start_time,
        log_file=log_file,
        files_dir=folder / "files",
        segments=list(segments or [log_file]),
        _history=log.history,
    )


def load_or_skip(log_file: Path, cache: HistoryCache) -> RunLog | SkippedRun:
    """The decoded log, or why the run is skipped: a log shorter than its header (a 0-byte file),
    one without a single history row (the run died before its first ``log``), or a file that is not
    a decodable W&B log (not a W&B log, another version)."""
    run_id = log_file.stem.removeprefix("run-")
    size = log_file.stat().st_size
    if size < FILE_HEADER_LEN:
        return SkippedRun(log_file, run_id, f"{size}-byte log: the run wrote nothing")
    try:
        log = load_log(log_file, cache)
    except InterplabError as exc:
        return SkippedRun(log_file, run_id, f"undecodable: {exc}", error=exc)
    if len(log.history) == 0:
        return SkippedRun(
            log_file, log.run_id or run_id, "no logged step: the run ended before its first log"
        )
    return log


def offline_runs(source: str | Path, cache: HistoryCache | None = None) -> RunList:
    """Every run under ``source``, read through the cache, in start-time order.

    Logs of one run id (a resumed run) are merged into one run; runs without any logged row and
    files that do not decode are skipped with one warning each and listed in ``RunList.skipped``,
    so one bad file never hides the good runs beside it. When no file decodes, the first file's
    error is raised.
    """
    from interplab.runs.resume import group_segments, merge_segments
    from interplab.runs.summary import SUMMARY_DERIVED, derive_summary

    cache = cache if cache is not None else HistoryCache()
    label = f"offline:{Path(source).expanduser()}"
    logs = discover_logs(source)
    workers = max(1, min(len(logs), os.cpu_count() or 1, MAX_THREADS))
    if workers == 1:
        decoded = [load_or_skip(f, cache) for f in logs]
    else:  # the compiled kernels and Arrow release the GIL, so threads use every core
        with ThreadPoolExecutor(max_workers=workers) as pool:
            decoded = list(pool.map(lambda f: load_or_skip(f, cache), logs))
    skipped = [d for d in decoded if isinstance(d, SkippedRun)]
    undecodable = [d.error for d in skipped if d.error is not None]
    if undecodable and len(undecodable) == len(decoded):
        raise undecodable[0]
    for i, s in enumerate(skipped, 1):
        logger.warning("skipped %d of %d W&B logs: run %s", i, len(logs), s.describe())
    good = [(d, f) for d, f in zip(decoded, logs, strict=True) if isinstance(d, RunLog)]
    runs = []
    for group in group_segments(good):
        files = [f for _, f in group]
        if len(group) > 1:
            logger.info("run %s: merged %d resumed segments (%s)", group[0][0].run_id, len(group), files)
        run = run_from_log(merge_segments([g for g, _ in group]), files[-1], label, files)
        if not run.summary:
            run.summary = derive_summary(run.history())
            run.summary_source = SUMMARY_DERIVED
            logger.info("run %s: no summary in the log; derived from the last logged values", run.label)
        runs.append(run)
    runs.sort(key=lambda r: (r.created_at is None, r.created_at or 0, r.id))
    return RunList(runs, skipped)
