"""Sweep analysis on runs whose metric depends on one hyperparameter and not another."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interplab.common.errors import InterplabError
from interplab.runs.run import Run
from interplab.runs.sweep import SweepOptions, best_so_far, compute_sweep, parallel_html, runs_sweep

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def make_run(i: int, config: dict, values: list[float], launched: int) -> Run:
    hist = pd.DataFrame({"_step": np.arange(len(values)), "loss": values})
    return Run(
        id=f"r{i}",
        name=f"run{i}",
        tags=[],
        state="finished",
        config=config,
        summary={},
        source="test",
        created_at=T0 + timedelta(minutes=launched),
        _history=hist,
    )


def sweep_runs(n: int = 24) -> list[Run]:
    rng = np.random.default_rng(0)
    runs = []
    for i in range(n):
        lr = float(rng.choice([1e-3, 3e-3, 1e-2, 3e-2]))
        width = int(rng.choice([16, 32, 64]))  # irrelevant
        act = str(rng.choice(["relu", "gelu"]))  # irrelevant
        final = (np.log10(lr) + 2.0) ** 2 + rng.normal(0, 0.01)  # best at lr = 1e-2
        runs.append(make_run(i, {"lr": lr, "width": width, "act": act, "seed": i}, [5.0, 2.0, final], n - i))
    return runs


def test_importance_pd_best_so_far() -> None:
    runs = sweep_runs()
    res = compute_sweep(runs, "loss", SweepOptions(n_estimators=100, n_repeats=5))
    assert set(res.hyperparameters) == {"lr", "width", "act"}  # the seed is not a hyperparameter
    assert res.importance.iloc[0]["hyperparameter"] == "lr"
    imp = res.importance.set_index("hyperparameter")["importance"]
    assert imp["lr"] > 10 * max(imp["width"], imp["act"], 1e-3)
    # launch order: created_at ascending, i.e. the runs reversed
    assert res.table["id"].tolist() == [r.id for r in reversed(runs)]
    values = res.table["value"].to_numpy()
    assert values.tolist() == [r.history()["loss"].iloc[-1] for r in reversed(runs)]
    assert res.best_so_far.tolist() == [values[: k + 1].min() for k in range(len(values))]
    lr_pd = res.partial_dependence[res.partial_dependence["hyperparameter"] == "lr"]
    best_lr = lr_pd.loc[lr_pd["prediction"].idxmin(), "value"]
    assert best_lr == pytest.approx(1e-2)


def test_best_so_far_max_and_nan() -> None:
    assert best_so_far(np.array([1.0, np.nan, 3.0, 2.0]), "max").tolist() == [1.0, 1.0, 3.0, 3.0]


def test_parallel_html_is_self_contained() -> None:
    res = compute_sweep(sweep_runs(8), "loss", SweepOptions(n_estimators=20, n_repeats=2))
    page = parallel_html(res)
    assert page.count("<polyline class='run'") == 8
    assert "<script" not in page and not re.search(r"(src|href)=['\"]https?:", page)
    assert "lr=0.01" in page or "lr=0.001" in page


def test_runs_sweep_folder_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import interplab.runs.api as api

    runs = sweep_runs(8)
    monkeypatch.setattr(api, "load_runs", lambda source, tags=None, flt=None: runs)
    res = runs_sweep("test", "loss", tmp_path / "sweep", SweepOptions(n_estimators=20, n_repeats=2))
    for name in (
        "sweep.csv",
        "importance.csv",
        "partial_dependence.parquet",
        "parallel_coordinates.html",
        "index.html",
        "figures/importance.png",
        "figures/parallel_coordinates.pdf",
        "figures/best_so_far.png",
        "figures/partial_dependence.png",
        "manifest.json",
    ):
        assert (tmp_path / "sweep" / name).is_file(), name
    assert len(res.table) == 8
    same = [make_run(i, {"lr": 0.1, "seed": i}, [1.0, 0.5], i) for i in range(5)]
    with pytest.raises(InterplabError, match="differ in no config key except seeds"):
        compute_sweep(same, "loss")
    with pytest.raises(InterplabError, match="at least 4 runs"):
        compute_sweep(runs[:3], "loss")
    with pytest.raises(InterplabError, match="unknown metric 'acc': no run logged it; logged keys: loss"):
        compute_sweep(runs, "acc")
    runs[2]._history = runs[2].history().rename(columns={"loss": "other"})
    with pytest.raises(InterplabError, match=r"metric 'loss' is missing in 1 of 8 runs: run2 \(r2\)"):
        compute_sweep(runs, "loss")
