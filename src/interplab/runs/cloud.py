"""The W&B cloud source (``wandb:ENTITY/PROJECT``): a thin layer over ``wandb.Api``.

* runs: ``api.runs("entity/project", filters=…)`` — the Mongo filter goes to the server as is;
* history: ``run.scan_history(page_size=…)`` — every row at full resolution (no sampling), fetched
  for several runs at once by a bounded thread pool, with exponential back-off when the server
  answers HTTP 429 (rate limit) or a transient 5xx;
* cache: each run's history is stored as Parquet keyed by run id and its last update
  (``updatedAt``/``heartbeatAt``), so re-analysis makes no history request;
* tables: the run file (``media/table/…table.json``) named by the history row that logged it.

The ``api`` argument takes a ``wandb.Api`` (default: one built from the environment). The tests
run this layer against the real client and a small W&B server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.cache import HistoryCache, cloud_key
from interplab.runs.records import HistoryColumns, build_history_frame
from interplab.runs.run import Run
from interplab.runs.tables import (
    concat_tables,
    increment_span,
    pick_step,
    table_json_to_frame,
    table_steps,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_WORKERS = 4
PAGE_SIZE = 1000
MAX_RETRIES = 6


@dataclass
class CloudHandle:
    """What a cloud :class:`Run` keeps to reach the server again."""

    api: Any
    run: Any

    def table(self, run: Run, key: str, step: int | None) -> pd.DataFrame:
        """Table ``key`` at ``step`` of ``run`` (what :func:`interplab.runs.tables.get_table` asks
        a run's handle for)."""
        return cloud_table(run, key, step)


def parse_cloud_source(source: str) -> tuple[str, str]:
    """``wandb:ENTITY/PROJECT`` → (entity, project)."""
    path = source.removeprefix("wandb:").strip("/")
    parts = path.split("/")
    if len(parts) != 2 or not all(parts):
        raise InterplabError(f"bad W&B source {source!r}; expected wandb:ENTITY/PROJECT")
    return parts[0], parts[1]


#: HTTP statuses worth retrying: rate limit and transient server errors
RETRYABLE = frozenset({429, 500, 502, 503, 504})


def _chain(exc: BaseException) -> list[Any]:
    """The exception and those it wraps (wandb's ``CommError.exc``, ``__cause__``)."""
    out: list[Any] = []
    todo: list[Any] = [exc]
    while todo and len(out) < 8:
        obj = todo.pop(0)
        if obj is None or any(obj is o for o in out):
            continue
        out.append(obj)
        todo += [getattr(obj, "exc", None), getattr(obj, "__cause__", None)]
    return out


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an error carries, from structured fields only (never from its text):
    ``response.status_code`` (requests), ``response.http_status`` (wandb-core's
    ``ApiErrorResponse``) or ``status_code``; None when there is none."""
    for obj in _chain(exc):
        response = getattr(obj, "response", None)
        for code in (
            getattr(response, "status_code", None),
            getattr(response, "http_status", None),
            getattr(obj, "status_code", None),
        ):
            if isinstance(code, int) and not isinstance(code, bool) and code > 0:
                return code
    return None


def retry_after_s(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` in seconds, when the error carries the response headers."""
    for obj in _chain(exc):
        headers = getattr(getattr(obj, "response", None), "headers", None)
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        if value is not None:
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def with_backoff(
    call: Callable[[], T],
    what: str,
    retries: int = MAX_RETRIES,
    base_delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; on HTTP 429/500/502/503/504 wait ``base_delay·2^attempt`` (or the server's
    ``Retry-After`` when longer; at most 60 s) and retry. Any other error is raised at once."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            code = http_status(exc)
            if code not in RETRYABLE or attempt == retries:
                raise
            delay = min(60.0, max(base_delay * 2**attempt, retry_after_s(exc) or 0.0))
            logger.info("%s: HTTP %s, retrying in %.1f s", what, code, delay)
            sleep(delay)
    raise AssertionError("unreachable")


#: config keys wandb keeps for itself
INTERNAL_CONFIG = ("_wandb", "wandb_version")


def plain_config(config: Any) -> dict[str, Any]:
    """The server's config (``{"key": {"value": …, "desc": …}}``, as JSON text or dict) with each
    ``value`` taken out ONCE and internal keys dropped: a user value that is itself a dict with a
    ``value`` key stays as it is."""
    if isinstance(config, str | bytes):
        config = json.loads(config or "{}")
    out = {}
    for key, value in (config or {}).items():
        if key in INTERNAL_CONFIG:
            continue
        out[key] = value["value"] if isinstance(value, dict) and "value" in value else value
    return out


def _page_node(runs: Any, run_id: str) -> dict[str, Any] | None:
    """The run's node in the listing page the client just loaded (``wandb.apis.public.Runs``)."""
    response = getattr(runs, "last_response", None)
    if not isinstance(response, dict):
        return None
    edges = ((response.get("project") or {}).get("runs") or {}).get("edges") or []
    for edge in edges:
        node = edge.get("node") if isinstance(edge, dict) else None
        if isinstance(node, dict) and node.get("name") == run_id:
            return node
    return None


def list_runs(api: Any, path: str, filters: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """Every run of ``path`` matching ``filters`` with its config, fetched afresh.

    ``wandb.Api`` keeps the listings it made; a reused ``api=`` object is flushed first so it
    cannot return a stale one. Runs are asked for with ``lazy=False`` (config and summary in the
    listing) where the client supports it; otherwise each run's config and summary are loaded
    here, inside the back-off, rather than on first use outside it. The config is unwrapped once
    from the listing's own JSON: ``Run.config`` of wandb 0.31 with ``lazy=False`` has had ``value``
    taken out twice (a user dict holding a ``value`` key collapses).
    """
    if hasattr(api, "flush"):
        api.flush()
    kwargs: dict[str, Any] = {"filters": filters}
    if _accepts(api.runs, "lazy"):
        kwargs["lazy"] = False

    def listing() -> list[tuple[Any, dict[str, Any]]]:
        runs = api.runs(path, **kwargs)
        out = []
        for r in runs:  # pages are loaded during iteration; the page holds the server's config
            node = _page_node(runs, str(r.id))
            raw = node.get("config") if node is not None else None
            out.append((r, raw))
        return out

    pairs = with_backoff(listing, f"runs of {path}")
    result = []
    for r, raw in pairs:
        if "lazy" not in kwargs:
            with_backoff(lambda r=r: (r.config, r.summary_metrics), f"config of run {r.id}")
        if isinstance(raw, str | bytes | dict):
            config = plain_config(raw)
        else:
            config = {
                k: v for k, v in dict(getattr(r, "config", None) or {}).items() if k not in INTERNAL_CONFIG
            }
        result.append((r, config))
    return result


def _accepts(func: Any, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def _attrs(run: Any) -> dict[str, Any]:
    attrs = getattr(run, "_attrs", None)
    return attrs if isinstance(attrs, dict) else {}


def last_update(run: Any) -> str:
    """The run's last-update stamp (``updatedAt``, else ``heartbeatAt``) plus its state and row count."""
    attrs = _attrs(run)
    stamp = attrs.get("updatedAt") or attrs.get("heartbeatAt") or getattr(run, "heartbeat_at", "") or ""
    lines = attrs.get("historyLineCount", "")
    return f"{stamp}|{getattr(run, 'state', '')}|{lines}"


def _created(run: Any) -> datetime | None:
    text = getattr(run, "created_at", None) or _attrs(run).get("createdAt")
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def history_from_rows(rows: Any) -> pd.DataFrame:
    """``scan_history`` rows (dicts, nested dicts for media) → one history DataFrame."""
    cols = HistoryColumns()
    for row in rows:
        cols.add_row(row.items())
    return build_history_frame(cols.n_rows, cols.arrays())


def load_cloud_history(run: Run, cache: HistoryCache) -> pd.DataFrame:
    """The run's full history, from the cache when its last update is unchanged."""
    handle: CloudHandle = run.handle
    key = cloud_key(run.entity, run.project, run.id, last_update(handle.run))
    if cache.enabled:
        hit = cache.load(key)
        if hit is not None:
            return hit[0]
    rows = with_backoff(
        lambda: list(handle.run.scan_history(page_size=PAGE_SIZE)), f"history of run {run.id}"
    )
    history = history_from_rows(rows)
    cache.store(key, history, {"run_id": run.id, "updated": last_update(handle.run)})
    return history


def cloud_runs(
    source: str,
    filters: dict[str, Any] | None = None,
    api: Any = None,
    cache: HistoryCache | None = None,
    max_workers: int = MAX_WORKERS,
    prefetch: bool = True,
    timeout: float | None = None,
) -> list[Run]:
    """Runs of ``wandb:ENTITY/PROJECT`` matching ``filters`` (evaluated by the server).

    With ``prefetch`` the histories are loaded now by ``max_workers`` threads; otherwise on first use.
    ``timeout`` bounds each request (see :mod:`interplab.runs.cloud_connect`).
    """
    from interplab.runs.cloud_connect import connect_api, reaching, resolve_timeout, wandb_base_url

    entity, project = parse_cloud_source(source)
    if api is None:
        api = connect_api(timeout)
    cache = cache if cache is not None else HistoryCache()
    path = f"{entity}/{project}"
    with reaching(wandb_base_url(), resolve_timeout(timeout)):
        listed = list_runs(api, path, filters or {})
    runs = []
    for r, config in listed:
        runs.append(
            Run(
                id=str(r.id),
                name=str(getattr(r, "name", None) or r.id),
                tags=list(getattr(r, "tags", None) or []),
                state=str(getattr(r, "state", "") or ""),
                config=config,
                summary={
                    k: v for k, v in dict(getattr(r, "summary_metrics", None) or {}).items() if k != "_wandb"
                },
                source=f"wandb:{path}",
                path=None,
                project=project,
                entity=entity,
                group=str(getattr(r, "group", "") or ""),
                job_type=str(getattr(r, "job_type", "") or ""),
                notes=str(getattr(r, "notes", "") or ""),
                created_at=_created(r),
                handle=CloudHandle(api=api, run=r),
                _loader=lambda run, c=cache: load_cloud_history(run, c),
            )
        )
    if prefetch and runs:
        with (
            reaching(wandb_base_url(), resolve_timeout(timeout)),
            ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(runs)))) as pool,
        ):
            list(pool.map(Run.history, runs))
    return runs


def cloud_table(run: Run, key: str, step: int | None) -> pd.DataFrame:
    """Table ``key`` at ``step``: the run file whose path the history row that logged it records
    (``<key>.path``, e.g. ``media/table/…table.json``), downloaded through the client — never a
    name rebuilt from the key (W&B sanitises keys with ``/`` or spaces, and a table inside a
    nested dict is logged under its dotted path). Incremental tables concatenate their increments.
    """
    handle: CloudHandle = run.handle
    steps = table_steps(run, key)
    i = pick_step(steps, run, key, step)
    frames = []
    with tempfile.TemporaryDirectory(prefix="interplab-table-") as tmp:
        for j in increment_span(steps, i):
            name = str(steps["path"].iloc[j])
            where = f"run file {name} of run {run.label}"

            def fetch(name: str = name) -> Path:
                files = list(handle.run.files(names=[name]))
                match = [f for f in files if getattr(f, "name", None) == name]
                if not match:
                    raise InterplabError(
                        f"table {key!r}: run {run.label} has no file {name} (its history names it)"
                    )
                match[0].download(root=tmp, replace=True)
                return Path(tmp) / name

            local = with_backoff(fetch, where)
            try:
                payload = json.loads(local.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise InterplabError(f"{where} is not a readable W&B table: {exc}") from exc
            frames.append(table_json_to_frame(payload, where))
    return concat_tables(frames, f"table {key!r} of run {run.label}")
