"""Parquet cache of run histories (cloud and offline), so re-analysis reads no log and no network.

One Parquet file per run version: the history table, with the run's other data (config, summary,
tags, …) as JSON in the schema metadata. Keys:

* offline — the log's resolved path, size and modification time (``offline/<sha1(path)>-<size>-<mtime_ns>``);
* cloud — entity/project, run id and its last update (``wandb/<entity>/<project>/<id>-<sha1(updatedAt)>``).

When a run changes, its older cache files are removed on the next store. Columns holding
non-scalar values (strings, lists, mixed) are stored as JSON text and decoded on load. The root
is ``$INTERPLAB_CACHE`` if set, else ``~/.cache/interplab``; ``INTERPLAB_CACHE=off`` disables it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interplab.runs.records import frame_from_columns

logger = logging.getLogger(__name__)

_META_KEY = b"interplab.meta"
_JSON_COLS_KEY = b"interplab.json_columns"
_ATTRS_KEY = b"interplab.attrs"
_FORMAT = "1"


def cache_root() -> Path | None:
    """The cache folder, or None when ``INTERPLAB_CACHE`` is ``off``/``0``/empty string."""
    env = os.environ.get("INTERPLAB_CACHE")
    if env is not None:
        if env.strip().lower() in ("", "0", "off", "false", "none"):
            return None
        return Path(env).expanduser()
    return Path.home() / ".cache" / "interplab"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class CacheKey:
    """Where one run version lives in the cache: ``<folder>/<stem>-<version>.parquet``."""

    folder: str
    stem: str
    version: str

    def path(self, root: Path) -> Path:
        return root / self.folder / f"{self.stem}-{self.version}.parquet"


def offline_key(log_file: Path) -> CacheKey:
    """Key of an offline log: its resolved path, size and mtime (any write changes it)."""
    real = log_file.resolve()
    st = real.stat()
    return CacheKey("offline", _digest(str(real)), f"{st.st_size}-{st.st_mtime_ns}")


def cloud_key(entity: str, project: str, run_id: str, updated_at: str) -> CacheKey:
    """Key of a cloud run: id and its last update time (``updatedAt``/``heartbeatAt``)."""
    return CacheKey(f"wandb/{entity}/{project}", run_id, _digest(updated_at or "unknown"))


def _arrow_columns(history: pd.DataFrame, json_cols: set[Any]) -> dict[Any, Any]:
    """One Arrow array per column, in column order: JSON text for ``json_cols``, else the values.

    Columns of one dtype are taken out as one 2-D block (a wide run has tens of thousands of
    columns; going through ``history[col]`` one by one costs far more than the data).
    """
    import pyarrow as pa

    out: dict[int, Any] = {}
    by_dtype: dict[Any, list[int]] = {}
    for pos, (col, dtype) in enumerate(history.dtypes.items()):
        if col in json_cols:
            values = history.iloc[:, pos].to_numpy(dtype=object)
            out[pos] = pa.array([None if v is None else json.dumps(v) for v in values], type=pa.string())
        else:
            by_dtype.setdefault(dtype, []).append(pos)
    n_rows = len(history)
    for dtype, positions in by_dtype.items():
        # (columns, rows) in C order: pandas keeps a block that way, so this is usually no copy
        block = np.ascontiguousarray(history.iloc[:, positions].to_numpy().T)
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            # one Arrow array over the whole block, one zero-copy slice per column
            whole = pa.array(block.reshape(-1))
            for j, pos in enumerate(positions):
                out[pos] = whole.slice(j * n_rows, n_rows)
        else:
            for j, pos in enumerate(positions):
                out[pos] = pa.array(block[j])
    return {col: out[pos] for pos, col in enumerate(history.columns)}


class HistoryCache:
    """Load and store (history DataFrame, meta dict) pairs under a cache root."""

    def __init__(self, root: Path | str | None = "default") -> None:
        self.root: Path | None = cache_root() if root == "default" else (Path(root) if root else None)

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def load(self, key: CacheKey) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """The cached entry, or None (missing, disabled or unreadable)."""
        if self.root is None:
            return None
        path = key.path(self.root)
        if not path.is_file():
            return None
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, use_threads=False)  # callers read several files in parallel
        except Exception as exc:  # a damaged cache file is only a cache miss
            logger.warning("ignoring unreadable cache file %s: %s", path, exc)
            return None
        md = table.schema.metadata or {}
        meta = json.loads(md.get(_META_KEY, b"{}"))
        json_cols = json.loads(md.get(_JSON_COLS_KEY, b"[]"))
        json_set = set(json_cols)
        columns: dict[str, np.ndarray] = {}
        for name, col in zip(table.column_names, table.columns, strict=True):
            if name in json_set:
                values = col.to_pylist()
                arr = np.empty(len(values), dtype=object)
                arr[:] = [None if v is None else json.loads(v) for v in values]
                columns[name] = arr
            else:
                columns[name] = col.to_numpy()
        df = frame_from_columns(columns, table.num_rows)
        df.attrs.update(json.loads(md.get(_ATTRS_KEY, b"{}")))
        return df, meta

    def store(self, key: CacheKey, history: pd.DataFrame, meta: dict[str, Any]) -> Path | None:
        """Write the entry atomically and drop older versions of the same run."""
        if self.root is None:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        from interplab.common.atomic import atomic_path

        json_cols = [
            c for c, t in history.dtypes.items() if t == np.dtype(object) or isinstance(t, pd.StringDtype)
        ]
        table = pa.Table.from_arrays(
            list(_arrow_columns(history, set(json_cols)).values()), names=[str(c) for c in history.columns]
        )
        table = table.replace_schema_metadata(
            {
                **(table.schema.metadata or {}),
                _META_KEY: json.dumps(meta).encode("utf-8"),
                _JSON_COLS_KEY: json.dumps(json_cols).encode("utf-8"),
                _ATTRS_KEY: json.dumps(history.attrs).encode("utf-8"),
                b"interplab.format": _FORMAT.encode(),
            }
        )
        path = key.path(self.root)
        try:
            with atomic_path(path) as tmp:  # lz4 without dictionaries: ~4× faster to write than the defaults
                pq.write_table(table, tmp, compression="lz4", use_dictionary=False)
        except OSError as exc:
            logger.warning("could not write cache file %s: %s", path, exc)
            return None
        for old in path.parent.glob(f"{key.stem}-*.parquet"):
            if old != path:
                old.unlink(missing_ok=True)
        return path
