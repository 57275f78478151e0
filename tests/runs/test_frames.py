"""get_runs_data, differing_config and aggregate on SDK-written runs, against hand computation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from interplab.common.errors import InterplabError
from interplab.runs import aggregate, differing_config, fetch_runs, get_runs_data

from .conftest import N_STEPS, WrittenRuns


@pytest.fixture(scope="module")
def runs(sdk_runs: WrittenRuns, tmp_path_factory: pytest.TempPathFactory) -> list:
    return fetch_runs(sdk_runs.root)


def val(step: int, seed: int, scale: float) -> float:
    return 2.0 / (step + 1) + 0.02 * seed + scale


def test_get_runs_data_every_step_and_config(runs: list, sdk_runs: WrittenRuns) -> None:
    df = get_runs_data(runs, ["loss", "val_loss"])
    assert len(df) == 4 * N_STEPS  # loss is logged at every step: no sampling, no row dropped
    for name, spec in sdk_runs.runs.items():
        part = df[df["_run_name"] == name]
        assert part["_run_id"].unique().tolist() == [spec.id]
        assert part["_step"].tolist() == list(range(N_STEPS))
        want_val = [spec.rows[s].get("val_loss", math.nan) for s in range(N_STEPS)]
        got_val = part["val_loss"].tolist()
        assert all(
            (math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(got_val, want_val, strict=True)
        )
        assert part["loss"].tolist() == [spec.rows[s]["loss"] for s in range(N_STEPS)]
        assert (part["cfg.model.init_scale"] == spec.config["model"]["init_scale"]).all()
        assert (part["cfg.seed"] == spec.config["seed"]).all()
        assert (part["cfg.late_key"] == spec.config["late_key"]).all()
        assert part["cfg.schedule"].iloc[0] == [1, 2, 3]
        assert (part["cfg.név"] == "ünï").all()


def test_get_runs_data_only_steps_with_a_metric_and_options(runs: list) -> None:
    df = get_runs_data(runs, ["val_loss"])
    counts = df.groupby("_run_name").size().to_dict()
    assert counts == {"alpha": 200, "beta": 200, "gamma": 200, "delta": len(range(0, N_STEPS, 15))}
    df2 = get_runs_data(runs, ["kl.prefix_1"], include_config=False)
    assert not [c for c in df2.columns if c.startswith("cfg")]
    df3 = get_runs_data(runs, "loss", config_sep="/", config_prefix="c")
    assert "c/model/init_scale" in df3.columns
    df4 = get_runs_data(runs, ["λ_ünïcode"], step_key="_step")
    assert df4.groupby("_run_name").size().tolist() == [20, 20, 20, 20]
    with pytest.raises(InterplabError, match=r"unknown metric 'nope' in run .*logged keys: .*kl\.prefix_1"):
        get_runs_data(runs, ["loss", "nope"])
    with pytest.raises(InterplabError, match=r"unknown step key 'epoch'"):
        get_runs_data(runs, ["loss"], step_key="epoch")
    with pytest.raises(InterplabError, match="no runs"):
        get_runs_data([], ["loss"])


def test_differing_config_by_hand(runs: list, sdk_runs: WrittenRuns) -> None:
    df = get_runs_data(runs, ["val_loss"])
    diff = differing_config(df)
    assert diff.columns.tolist() == [
        "_run_id",
        "_run_name",
        "cfg.model.init_scale",
        "cfg.seed",
        "cfg.dataset_size",
        "cfg.late_key",
    ]
    assert len(diff) == 4
    by_name = diff.set_index("_run_name")
    for name, spec in sdk_runs.runs.items():
        assert by_name.loc[name, "cfg.seed"] == spec.config["seed"]
        assert by_name.loc[name, "cfg.dataset_size"] == spec.config["dataset_size"]
    assert (
        differing_config(runs).set_index("_run_name")["cfg.seed"].to_dict() == by_name["cfg.seed"].to_dict()
    )


def test_differing_config_lists_nan_and_missing() -> None:
    df = pd.DataFrame(
        {
            "_run_id": ["a", "a", "b", "c"],
            "_run_name": ["A", "A", "B", "C"],
            "cfg.same_list": [[1, 2], [1, 2], [1, 2], [1, 2]],
            "cfg.list": [[1, 2], [1, 2], [1, 3], [1, 2]],
            "cfg.nan": [math.nan, math.nan, math.nan, math.nan],
            "cfg.dict": [{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 1, "b": 2}],
            "cfg.partial": [1.0, 1.0, math.nan, 1.0],
        }
    )
    diff = differing_config(df)
    assert diff.columns.tolist() == ["_run_id", "_run_name", "cfg.list", "cfg.partial"]
    assert diff["_run_id"].tolist() == ["a", "b", "c"]


def test_aggregate_same_steps_by_hand(runs: list) -> None:
    df = get_runs_data(runs, ["val_loss"])
    agg = aggregate(df, "val_loss", group_by=["cfg.model.init_scale"])
    assert agg.columns.tolist() == ["_step", "cfg.model.init_scale", "mean", "std", "sem", "n"]
    small = agg[agg["cfg.model.init_scale"] == 0.01].set_index("_step")
    assert small.index.tolist() == list(range(0, N_STEPS, 10))
    for s in (0, 10, 990, 1990):
        a, b = val(s, 0, 0.01), val(s, 1, 0.01)
        assert small.loc[s, "n"] == 2
        assert small.loc[s, "mean"] == pytest.approx((a + b) / 2, rel=1e-12)
        assert small.loc[s, "std"] == pytest.approx(abs(a - b) / math.sqrt(2), rel=1e-9)
        assert small.loc[s, "sem"] == pytest.approx(abs(a - b) / 2, rel=1e-9)
    # step 500: alpha logged NaN → a gap, filled from its neighbours 490 and 510 when interpolating
    a500 = (val(490, 0, 0.01) + val(510, 0, 0.01)) / 2
    assert small.loc[500, "n"] == 2
    assert small.loc[500, "mean"] == pytest.approx((a500 + val(500, 1, 0.01)) / 2, rel=1e-12)
    assert small.loc[600, "mean"] == math.inf  # +inf logged by alpha stays visible
    exact = aggregate(df, "val_loss", group_by=["cfg.model.init_scale"], align="exact")
    ex = exact[exact["cfg.model.init_scale"] == 0.01].set_index("_step")
    assert ex.loc[500, "n"] == 1  # without interpolation only beta counts
    assert ex.loc[500, "mean"] == pytest.approx(val(500, 1, 0.01))
    assert math.isnan(ex.loc[500, "std"])


def test_aggregate_different_steps_interpolates(runs: list) -> None:
    df = get_runs_data(runs, ["val_loss"])
    agg = aggregate(df, "val_loss", group_by="model.init_scale")  # cfg. prefix optional
    large = agg[agg["cfg.model.init_scale"] == 1.0].set_index("_step")
    grid = sorted(set(range(0, N_STEPS, 10)) | set(range(0, N_STEPS, 15)))
    assert large.index.tolist() == grid
    # step 15: gamma (every 10) interpolated between 10 and 20, delta (every 15) exact
    g15 = (val(10, 0, 1.0) + val(20, 0, 1.0)) / 2
    d15 = val(15, 1, 1.0)
    assert large.loc[15, "n"] == 2
    assert large.loc[15, "mean"] == pytest.approx((g15 + d15) / 2, rel=1e-12)
    assert large.loc[15, "std"] == pytest.approx(abs(g15 - d15) / math.sqrt(2), rel=1e-9)
    # step 1995: past gamma's last evaluation (1990) → no extrapolation
    assert large.loc[1995, "n"] == 1
    assert large.loc[1995, "mean"] == pytest.approx(val(1995, 1, 1.0))
    exact = aggregate(df, "val_loss", group_by=["cfg.model.init_scale"], align="exact")
    ex = exact[exact["cfg.model.init_scale"] == 1.0].set_index("_step")
    assert ex.loc[15, "n"] == 1 and ex.loc[30, "n"] == 2 and ex.loc[20, "n"] == 1
    whole = aggregate(df, "val_loss")
    assert whole.columns.tolist() == ["_step", "mean", "std", "sem", "n"]
    assert whole.set_index("_step").loc[0, "n"] == 4
    assert whole.set_index("_step").loc[0, "mean"] == pytest.approx(
        np.mean([val(0, 0, 0.01), val(0, 1, 0.01), val(0, 0, 1.0), val(0, 1, 1.0)])
    )
    with pytest.raises(InterplabError, match="unknown align"):
        aggregate(df, "val_loss", align="nearest")
    with pytest.raises(InterplabError, match=r"unknown column 'cfg\.nope'"):
        aggregate(df, "val_loss", group_by=["cfg.nope"])
