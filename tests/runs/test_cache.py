"""The Parquet history cache: warm loads read no log, changes invalidate, values round-trip."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest

from interplab.runs import fetch_runs
from interplab.runs import offline as offline_mod
from interplab.runs.cache import CacheKey, HistoryCache, offline_key
from interplab.runs.records import HistoryColumns, build_history_frame

from .conftest import WrittenRuns


def test_warm_fetch_reads_no_log(
    sdk_runs: WrittenRuns, runs_cache_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    cold = {r.id: r for r in fetch_runs(sdk_runs.root)}
    files = list(runs_cache_dir.rglob("*.parquet"))
    assert len(files) == 4

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("the log was decoded although the cache holds it")

    monkeypatch.setattr(offline_mod, "decode_log", no_decode)
    warm = {r.id: r for r in fetch_runs(sdk_runs.root)}
    assert warm.keys() == cold.keys()
    for rid, run in warm.items():
        pd.testing.assert_frame_equal(run.history(), cold[rid].history())
        assert run.history().attrs == cold[rid].history().attrs
        assert (run.config, run.summary, run.tags, run.name, run.state, run.created_at) == (
            cold[rid].config,
            cold[rid].summary,
            cold[rid].tags,
            cold[rid].name,
            cold[rid].state,
            cold[rid].created_at,
        )


def test_changed_log_is_read_again(sdk_runs: WrittenRuns, runs_cache_dir) -> None:
    spec = sdk_runs.runs["gamma"]
    assert spec.folder is not None
    log_file = next(spec.folder.glob("run-*.wandb"))
    key1 = offline_key(log_file)
    fetch_runs(spec.folder)
    assert key1.path(runs_cache_dir).is_file()
    st = log_file.stat()
    os.utime(log_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        key2 = offline_key(log_file)
        assert key2 != key1
        fetch_runs(spec.folder)
        assert key2.path(runs_cache_dir).is_file()
        assert not key1.path(runs_cache_dir).exists()  # the stale entry is removed
    finally:
        os.utime(log_file, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_cache_off(sdk_runs: WrittenRuns, runs_cache_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERPLAB_CACHE", "off")
    assert not HistoryCache().enabled
    fetch_runs(sdk_runs.runs["beta"].folder)
    assert not list(runs_cache_dir.rglob("*.parquet"))


def test_mixed_columns_round_trip(tmp_path) -> None:
    cols = HistoryColumns()
    cols.add_row([("_step", 0), ("x", 1.5), ("s", "ünï"), ("l", [1, 2]), ("b", True), ("i", 3)])
    cols.add_row([("_step", 1), ("x", math.nan), ("s", None), ("b", False), ("i", 4)])
    cols.add_row([("_step", 2), ("l", ["x", None]), ("b", True), ("i", 2**62), ("λ", -math.inf)])
    df = build_history_frame(cols.n_rows, cols.arrays())
    assert df["_step"].dtype == np.int64 and df["i"].dtype == np.int64 and df["b"].dtype == bool
    assert df.attrs["logged_nan"] == {"x": [1]}
    cache = HistoryCache(tmp_path)
    key = CacheKey("offline", "abc", "1-2")
    cache.store(key, df, {"run_id": "r", "summary": {"v": math.inf}})
    back, meta = cache.load(key)
    pd.testing.assert_frame_equal(back, df)
    assert back["l"].tolist() == [[1, 2], None, ["x", None]]
    assert back.attrs == df.attrs
    assert meta == {"run_id": "r", "summary": {"v": math.inf}}
    assert HistoryCache(tmp_path).load(CacheKey("offline", "abc", "9-9")) is None
    key.path(tmp_path).write_bytes(b"garbage")
    assert cache.load(key) is None  # a damaged cache file is a miss, not an error
