"""MLflow runs: real runs logged with mlflow.log_metric into a temporary store, read back exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from interplab.common.errors import InterplabError
from interplab.runs.api import fetch_runs
from interplab.runs.cache import HistoryCache
from interplab.runs.sources import source_kind
from interplab.runs.sources.mlflow import mlflow_runs, parse_param

mlflow = pytest.importorskip("mlflow")


def log_runs(uri: str, seeds: int = 2) -> dict[str, dict]:
    """Runs of a two-setting sweep: loss at steps 0, 2, 4, …; a repeated step keeps the last value."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("sweep")
    written = {}
    for width in (16, 64):
        for seed in range(seeds):
            with mlflow.start_run(run_name=f"w{width}-s{seed}") as run:
                mlflow.log_params({"width": width, "seed": seed, "act": "relu", "lr": 0.003})
                mlflow.set_tag("stage", "test")
                for step in range(0, 10, 2):
                    mlflow.log_metric("loss", 1.0 / (step + 1) + width / 100 + seed, step=step)
                mlflow.log_metric("loss", -1.0, step=8)  # a second value at step 8: the later one counts
                written[run.info.run_id] = {"width": width, "seed": seed}
    return written


@pytest.fixture
def file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = tmp_path / "mlruns"
    written = log_runs(store.as_uri())
    mlflow.set_tracking_uri(None)
    return store, written


def test_file_store_exact(file_store: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch) -> None:
    store, written = file_store
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    assert source_kind(str(store)) == "mlflow"
    runs = mlflow_runs(f"mlflow:{store}", cache=HistoryCache(None))
    assert {r.id for r in runs} == set(written)
    for run in runs:
        width, seed = written[run.id]["width"], written[run.id]["seed"]
        assert run.config == {"width": width, "seed": seed, "act": "relu", "lr": 0.003}
        assert run.name == f"w{width}-s{seed}"
        assert run.tags == ["stage=test"]
        assert run.state == "finished" and run.group == "sweep"
        hist = run.history().set_index("_step")["loss"]
        expected = [1.0 / (s + 1) + width / 100 + seed for s in range(0, 8, 2)] + [-1.0]
        assert hist.index.tolist() == [0, 2, 4, 6, 8]
        assert hist.tolist() == expected
        assert run.summary["loss"] == -1.0 and run.summary["_step"] == 8


def test_filters_and_cache(file_store: tuple[Path, dict], tmp_path: Path) -> None:
    store, _ = file_store
    cache = HistoryCache(tmp_path / "cache")
    runs = fetch_runs(str(store), extra_filters={"config.width": 64, "tags": "stage=test"}, cache=cache)
    assert sorted(r.name for r in runs) == ["w64-s0", "w64-s1"]
    warm = fetch_runs(f"mlflow:{store}", cache=cache)
    assert len(list((tmp_path / "cache").rglob("*.parquet"))) == 4
    cold = {r.id: r.history() for r in mlflow_runs(str(store), cache=HistoryCache(None))}
    for run in warm:
        assert run.history().equals(cold[run.id])


@pytest.mark.slow
def test_sqlite_store(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    written = log_runs(f"sqlite:///{db}", seeds=1)
    mlflow.set_tracking_uri(None)
    for source in (str(db), f"sqlite:///{db}", f"mlflow:sqlite:///{db}"):
        runs = fetch_runs(source, cache=HistoryCache(None))
        assert {r.id for r in runs} == set(written)
        assert all(r.history()["loss"].iloc[-1] == -1.0 for r in runs)


def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InterplabError, match="is not an MLflow store"):
        mlflow_runs(f"mlflow:{tmp_path / 'empty'}")
    assert not any((tmp_path / "empty").iterdir())  # nothing created in the wrong folder
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("create table t (x int)")
    with pytest.raises(InterplabError, match="not an MLflow store"):
        mlflow_runs(str(other))
    (tmp_path / "junk.db").write_text("not a database at all, just text" * 10)
    with pytest.raises(InterplabError, match="not an SQLite database"):
        mlflow_runs(str(tmp_path / "junk.db"))


def test_parse_param() -> None:
    assert parse_param("3") == 3 and parse_param("0.5") == 0.5 and parse_param("True") is True
    assert parse_param("relu") == "relu" and parse_param("1e-3") == 0.001
