"""The W&B cloud source (``wandb:ENTITY/PROJECT``): a thin layer over ``wandb.Api``.

* runs: ``api.runs("entity/project", filters=…)`` — the Mongo filter goes to the server as is;
* history: ``run.scan_history(page_size=…)`` — every row at full resolution (no sampling), fetched
  for several runs at once by a bounded thread pool, with exponential back-off when the server
  answers HTTP 429 (rate limit) or a transient 5xx;
* cache: each run's history is stored as Parquet keyed by run id and its last update
  (``updatedAt``/``heartbeatAt``), so re-analysis makes no history request;
* tables: the run's artifact ``run-<id>-<key>`` at the version matching the step.

The ``api`` argument accepts any object with the ``wandb.Api`` methods used here, which lets the
tests drive this layer with a small in-memory server and no network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.cache import HistoryCache, cloud_key
from interplab.runs.records import HistoryColumns, build_history_frame
from interplab.runs.run import Run
from interplab.runs.tables import pick_step, table_json_to_frame, table_steps

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


def _status_code(exc: BaseException) -> int | None:
    for obj in (exc, getattr(exc, "exc", None), getattr(exc, "__cause__", None)):
        response = getattr(obj, "response", None)
        code = getattr(response, "status_code", None) or getattr(obj, "status_code", None)
        if isinstance(code, int):
            return code
    text = str(exc)
    for code in (429, 500, 502, 503, 504):
        if str(code) in text:
            return code
    return None


def with_backoff(
    call: Callable[[], T],
    what: str,
    retries: int = MAX_RETRIES,
    base_delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; on HTTP 429/5xx wait ``base_delay·2^attempt`` (max 60 s) and retry."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:
            code = _status_code(exc)
            if code not in (429, 500, 502, 503, 504) or attempt == retries:
                raise
            delay = min(60.0, base_delay * 2**attempt)
            logger.info("%s: HTTP %s, retrying in %.1f s", what, code, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def unwrap_config(config: dict[str, Any]) -> dict[str, Any]:
    """Config without ``{"value": …, "desc": …}`` wrappers and internal keys."""
    out = {}
    for key, value in (config or {}).items():
        if key in ("_wandb", "wandb_version"):
            continue
        if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
            value = value["value"]
        out[key] = value
    return out


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
) -> list[Run]:
    """Runs of ``wandb:ENTITY/PROJECT`` matching ``filters`` (evaluated by the server).

    With ``prefetch`` the histories are loaded now by ``max_workers`` threads; otherwise on first use.
    """
    entity, project = parse_cloud_source(source)
    if api is None:
        import wandb

        api = wandb.Api(timeout=60)
    cache = cache if cache is not None else HistoryCache()
    path = f"{entity}/{project}"
    raw = with_backoff(lambda: list(api.runs(path, filters=filters or {})), f"runs of {path}")
    runs = []
    for r in raw:
        runs.append(
            Run(
                id=str(r.id),
                name=str(getattr(r, "name", None) or r.id),
                tags=list(getattr(r, "tags", None) or []),
                state=str(getattr(r, "state", "") or ""),
                config=unwrap_config(dict(getattr(r, "config", None) or {})),
                summary={
                    k: v for k, v in dict(getattr(r, "summary_metrics", None) or {}).items() if k != "_wandb"
                },
                source=f"wandb:{path}",
                path=None,
                project=project,
                entity=entity,
                group=str(getattr(r, "group", "") or ""),
                job_type=str(getattr(r, "job_type", "") or ""),
                created_at=_created(r),
                handle=CloudHandle(api=api, run=r),
                _loader=lambda run, c=cache: load_cloud_history(run, c),
            )
        )
    if prefetch and runs:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(runs)))) as pool:
            list(pool.map(Run.history, runs))
    return runs


def table_versions(steps: pd.DataFrame, digests: list[Any]) -> list[int]:
    """Artifact version of each logged table: a new version whenever the content digest changes
    (W&B does not create a version for content identical to the latest one)."""
    versions, current, last = [], -1, object()
    for digest in digests:
        if digest is None or digest != last:
            current += 1
        versions.append(current)
        last = digest
    return versions


def cloud_table(run: Run, key: str, step: int | None) -> pd.DataFrame:
    """Table ``key`` at ``step`` from the run's artifact ``run-<id>-<key>:v<N>``."""
    handle: CloudHandle = run.handle
    steps = table_steps(run, key)
    i = pick_step(steps, run, key, step)
    hist = run.history()
    digest_col = f"{key}.sha256"
    type_col = f"{key}._type"
    digests = (
        hist.loc[hist[type_col].isin(["table-file", "table"]), digest_col].tolist()
        if digest_col in hist.columns
        else [None] * len(steps)
    )
    version = table_versions(steps, digests)[i]
    name = f"{run.entity}/{run.project}/run-{run.id}-{key}:v{version}"
    artifact = with_backoff(lambda: handle.api.artifact(name), f"artifact {name}")
    table = with_backoff(lambda: artifact.get(key), f"table {key} of {name}")
    if table is None:
        raise InterplabError(f"artifact {name} holds no table {key!r}")
    if isinstance(table, dict):
        return table_json_to_frame(table, name)
    columns = list(getattr(table, "columns", []))
    data = getattr(table, "data", None)
    if data is None:
        raise InterplabError(f"artifact {name}: entry {key!r} is not a table")
    return pd.DataFrame([list(row) for row in data], columns=columns)
