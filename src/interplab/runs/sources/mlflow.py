"""MLflow tracking stores as runs, read with ``mlflow``'s own client (``mlflow-skinny`` suffices).

Sources: ``mlflow:PATH`` / a plain ``mlruns/`` folder (file store: ``<experiment id>/meta.yaml``),
``mlflow:sqlite:///PATH``, ``sqlite:///PATH``, ``file:PATH`` or a ``.db``/``.sqlite`` file. A store
must exist already: we never let MLflow create an empty one (it would on a wrong path). Recent
MLflow refuses file stores unless ``MLFLOW_ALLOW_FILE_STORE`` is set; reading one sets it for the
duration of the read only.

Mapping to :class:`~interplab.runs.run.Run`: id = MLflow run id, name = run name, state from the
status (``FINISHED`` → finished, ``RUNNING``/``SCHEDULED`` → running, ``FAILED`` → failed,
``KILLED`` → killed), config = params (text values that parse as int, float or bool become numbers,
others stay text), tags = the user tags as ``key=value`` (``mlflow.*`` system tags left out),
group = experiment name, summary = the last logged value of every metric plus ``_step``. History:
``_step`` and one column per metric (``get_metric_history``; the last value wins when a metric
repeats a step), cached as Parquet keyed by the run's end time / latest metric values.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.cache import CacheKey, HistoryCache
from interplab.runs.run import Run

PREFIXES = ("mlflow:",)
URI_SCHEMES = ("sqlite:", "file:")
DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")
STATES = {
    "FINISHED": "finished",
    "RUNNING": "running",
    "SCHEDULED": "running",
    "FAILED": "failed",
    "KILLED": "killed",
}


def looks_like_store(path: Path) -> bool:
    """A plain path that is an MLflow store: an SQLite file, or a folder of ``<id>/meta.yaml``."""
    if path.is_file():
        return path.suffix.lower() in DB_SUFFIXES
    if not path.is_dir():
        return False
    return any(p.is_file() for p in path.glob("*/meta.yaml")) and not any(path.glob("*/*/*.wandb"))


def tracking_uri(source: str) -> str:
    """The tracking URI of ``source``, after checking that the store exists."""
    text = source
    for p in PREFIXES:
        text = text.removeprefix(p)
    if text.startswith("sqlite:"):
        path = Path(text.removeprefix("sqlite:///"))  # sqlite:////abs keeps its leading slash
        _check_sqlite(path)
        return f"sqlite:///{path.resolve()}"
    path = Path(text.removeprefix("file://").removeprefix("file:")).expanduser()
    if path.is_file():
        _check_sqlite(path)
        return f"sqlite:///{path.resolve()}"
    if not path.is_dir() or not any(p.is_file() for p in path.glob("*/meta.yaml")):
        raise InterplabError(
            f"{path} is not an MLflow store (expected an mlruns/ folder holding <experiment id>/meta.yaml, "
            "or an SQLite file / sqlite:///PATH URI)"
        )
    return path.resolve().as_uri()


def _check_sqlite(path: Path) -> None:
    if not path.is_file():
        raise InterplabError(f"MLflow SQLite store {path} does not exist")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
            tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    except sqlite3.DatabaseError as exc:
        raise InterplabError(
            f"{path} is not an SQLite database ({exc}); expected an MLflow tracking store"
        ) from exc
    if not {"runs", "experiments", "metrics"} <= tables:
        raise InterplabError(
            f"{path} is an SQLite file but not an MLflow store (tables runs, experiments, metrics missing)"
        )


@contextlib.contextmanager
def _allow_file_store() -> Iterator[None]:
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


def parse_param(text: str) -> Any:
    """An MLflow param (always text) as int, float or bool when it reads as one."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _history(client: Any, run_id: str, keys: list[str]) -> pd.DataFrame:
    per_key: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key in keys:
        hist = client.get_metric_history(run_id, key)
        hist = sorted(hist, key=lambda m: (m.step, m.timestamp))
        per_key[key] = (
            np.array([m.step for m in hist], dtype=np.int64),
            np.array([m.value for m in hist], dtype=np.float64),
        )
    steps = np.unique(np.concatenate([s for s, _ in per_key.values()])) if per_key else np.zeros(0, np.int64)
    data: dict[str, Any] = {"_step": steps}
    for key, (s, v) in per_key.items():
        col = np.full(len(steps), np.nan)
        col[np.searchsorted(steps, s)] = v  # sorted by (step, time): the last value wins
        data[key] = col
    return pd.DataFrame(data, index=pd.RangeIndex(len(steps)))


def mlflow_runs(source: str, cache: HistoryCache | None = None) -> list[Run]:
    """Every run (active lifecycle) of every experiment in the store, in start-time order."""
    uri = tracking_uri(str(source))
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise InterplabError(
            f"reading the MLflow store {source} needs mlflow: pip install 'interplab[mlflow]' (mlflow-skinny)"
        ) from exc
    cache = cache if cache is not None else HistoryCache()
    runs: list[Run] = []
    with _allow_file_store():
        client = MlflowClient(tracking_uri=uri)
        experiments = {e.experiment_id: e.name for e in client.search_experiments()}
        found = client.search_runs(
            list(experiments), max_results=50_000, order_by=["attributes.start_time ASC"]
        )
        for r in found:
            info, data = r.info, r.data
            version = hashlib.sha1(
                json.dumps([info.end_time, info.status, sorted(data.metrics.items())], default=str).encode()
            ).hexdigest()[:16]
            key = CacheKey(f"mlflow/{hashlib.sha1(uri.encode()).hexdigest()[:12]}", info.run_id, version)
            cached = cache.load(key)
            if cached is not None:
                hist = cached[0]
            else:
                hist = _history(client, info.run_id, sorted(data.metrics))
                cache.store(key, hist, {})
            # MLflow's "latest" value breaks ties of (step, timestamp) by the larger value; the
            # summary takes the last logged value instead, as the history does.
            summary: dict[str, Any] = dict(data.metrics)
            for metric in data.metrics:
                if metric in hist:
                    logged = hist[metric].dropna()
                    if len(logged):
                        summary[metric] = logged.iloc[-1].item()
            if len(hist):
                summary["_step"] = int(hist["_step"].iloc[-1])
            runs.append(
                Run(
                    id=info.run_id,
                    name=info.run_name or info.run_id,
                    tags=[f"{k}={v}" for k, v in sorted(data.tags.items()) if not k.startswith("mlflow.")],
                    state=STATES.get(info.status, info.status.lower()),
                    config={k: parse_param(v) for k, v in data.params.items()},
                    summary=summary,
                    source=f"mlflow:{uri}",
                    project=experiments.get(info.experiment_id, ""),
                    group=experiments.get(info.experiment_id, ""),
                    created_at=datetime.fromtimestamp(info.start_time / 1000, UTC)
                    if info.start_time
                    else None,
                    _history=hist,
                )
            )
    return runs
