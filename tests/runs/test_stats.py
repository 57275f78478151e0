"""Statistics across seeds on tidy frames and on real TensorBoard runs through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from interplab.common.errors import InterplabError
from interplab.runs.downsample import downsample_indices, lttb_indices, minmax_indices
from interplab.runs.stats import (
    Smoothing,
    StatsConfig,
    assign_groups,
    curve_stats,
    group_columns,
    group_matrices,
)
from interplab.runs.stats_report import StatsOptions, compute_stats


def tidy(runs: list[dict], steps: dict[str, list[int]] | None = None) -> pd.DataFrame:
    """A get_runs_data-style frame: one run per dict (id, config, values by step)."""
    rows = []
    for r in runs:
        for step, v in zip(steps.get(r["id"]) if steps else range(len(r["y"])), r["y"], strict=True):
            rows.append(
                {"_step": step, "m": v, "_run_id": r["id"], **{f"cfg.{k}": c for k, c in r["cfg"].items()}}
            )
    return pd.DataFrame(rows)


def sweep_frame(seed: int = 0, n_seeds: int = 5, steps: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    runs = []
    for lr, shift in ((0.1, 0.0), (0.3, 1.0)):
        for s in range(n_seeds):
            y = np.linspace(2, 1, steps) + shift * np.linspace(0, 1, steps) + rng.normal(0, 0.1, steps)
            runs.append({"id": f"lr{lr}-s{s}", "cfg": {"lr": lr, "train_seed": s, "width": 8}, "y": y})
    return tidy(runs)


def test_group_all_but_seed_and_seed_keys() -> None:
    df = sweep_frame()
    assert group_columns(df, "all-but-seed") == ["cfg.lr"]  # train_seed is a seed key, width constant
    assert group_columns(df, "all-but-seed", ["lr"]) == ["cfg.train_seed"]
    labels = assign_groups(df, ["cfg.lr"])
    assert labels["lr0.1-s3"] == "lr=0.1" and labels["lr0.3-s0"] == "lr=0.3"
    with pytest.raises(InterplabError, match="unknown seed key 'nope' in --seed-keys; config keys: lr"):
        group_columns(df, "all-but-seed", ["nope"])
    with pytest.raises(InterplabError, match="unknown --group-by key 'depth'"):
        group_columns(df, "depth")


def test_curve_stats_match_brute_force() -> None:
    df = sweep_frame()
    groups = group_matrices(df, "m", assign_groups(df, ["cfg.lr"]))
    cs = curve_stats(groups, StatsConfig(n_boot=500))
    for (lr, step), sub in df.groupby(["cfg.lr", "_step"]):
        row = cs[(cs["group"] == f"lr={lr:g}") & (cs["step"] == step)].iloc[0]
        vals = sub["m"].to_numpy()
        assert row["n"] == 5
        assert row["mean"] == pytest.approx(vals.mean())
        assert row["se"] == pytest.approx(vals.std(ddof=1) / np.sqrt(5))
        assert row["median"] == pytest.approx(np.median(vals))
        assert row["iqm"] == pytest.approx(np.sort(vals)[1:4].mean())  # n = 5: cut 1 each side
        assert row["min"] == vals.min() and row["max"] == vals.max()
        assert vals.min() <= row["low"] <= row["mean"] <= row["high"] <= vals.max()


def test_align_exact_and_interpolate() -> None:
    runs = [
        {"id": "a", "cfg": {"seed": 0}, "y": [0.0, 2.0, 4.0]},
        {"id": "b", "cfg": {"seed": 1}, "y": [1.0, 3.0]},
    ]
    df = tidy(runs, {"a": [0, 10, 20], "b": [0, 20]})
    labels = assign_groups(df, [])
    (exact,) = group_matrices(df, "m", labels, align="exact")
    assert exact.steps.tolist() == [0, 10, 20]
    assert np.isnan(exact.values[1, 1])  # b did not log step 10: not invented
    (interp,) = group_matrices(df, "m", labels, align="interpolate")
    assert interp.values[1, 1] == pytest.approx(2.0)  # halfway between 1 and 3
    cs = curve_stats([exact], StatsConfig(n_boot=200))
    assert cs["n"].tolist() == [2, 1, 2]
    assert np.isnan(cs.loc[1, "low"])  # a step with one run has no interval


def test_smoothing_is_per_run() -> None:
    runs = [
        {"id": "a", "cfg": {"seed": 0}, "y": [0.0, 10.0, 0.0, 10.0]},
        {"id": "b", "cfg": {"seed": 1}, "y": [100.0, 100.0, 100.0, 100.0]},
    ]
    df = tidy(runs)
    (g,) = group_matrices(df, "m", assign_groups(df, []), smooth=Smoothing.parse("ema:0.5"))
    ema_a = pd.Series([0.0, 10.0, 0.0, 10.0]).ewm(alpha=0.5).mean().to_numpy()
    assert np.allclose(g.values[0], ema_a)
    assert np.allclose(g.values[1], 100.0)  # nothing leaks from run a into run b
    (w,) = group_matrices(df, "m", assign_groups(df, []), smooth=Smoothing.parse("window:2"))
    assert w.values[0].tolist() == [0.0, 5.0, 5.0, 5.0]
    with pytest.raises(InterplabError, match="--smooth must be"):
        Smoothing.parse("ema:1.5")


def test_compare_groups() -> None:
    df = sweep_frame()
    res = compute_stats(df, "m", StatsOptions(n_boot=500, group_by="lr"))
    (c,) = res.comparisons
    finals = df[df["_step"] == df["_step"].max()]
    a = finals[finals["cfg.lr"] == 0.1]["m"].to_numpy()
    b = finals[finals["cfg.lr"] == 0.3]["m"].to_numpy()
    # goal min: lr=0.1 (lower loss) is better in every pair
    wins = (a[:, None] < b[None, :]).mean()
    assert c.p_improvement == pytest.approx(wins) == 1.0
    assert c.p_value == pytest.approx(2 / 252)  # exact: only the 2 extreme splits of C(10, 5)
    # the curves separate late: early steps do not differ, the last ones do
    assert c.significant_steps and min(c.significant_steps) > 2 and max(c.significant_steps) == 29
    assert c.seeds_needed is not None and c.seeds_needed >= 2
    final = res.final.set_index("group")
    assert final.loc["lr=0.1", "mean"] == pytest.approx(a.mean())
    assert final.loc["lr=0.1", "n"] == 5


def test_one_run_group_and_missing_metric() -> None:
    runs = [
        {"id": "a0", "cfg": {"lr": 1, "seed": 0}, "y": [1.0, 2.0]},
        {"id": "a1", "cfg": {"lr": 1, "seed": 1}, "y": [1.5, 2.5]},
        {"id": "b0", "cfg": {"lr": 2, "seed": 0}, "y": [3.0, 4.0]},
    ]
    res = compute_stats(tidy(runs), "m", StatsOptions(n_boot=200))
    final = res.final.set_index("group")
    assert final.loc["lr=2", "note"] == "1 run: intervals undefined"
    assert np.isnan(final.loc["lr=2", "low"]) and final.loc["lr=2", "mean"] == 4.0
    assert "1 run" in res.comparisons[0].note
    df = tidy(runs)
    df.loc[df["_run_id"] == "b0", "m"] = np.nan
    with pytest.raises(InterplabError, match=r"metric 'm' is missing in 1 run\(s\): b0"):
        compute_stats(df, "m", StatsOptions(n_boot=200))


def reference_lttb(x: np.ndarray, y: np.ndarray, n_out: int) -> list[int]:
    """Steinarsson's LTTB written as the plain loop of the paper."""
    n = len(x)
    every = (n - 2) / (n_out - 2)
    out, a = [0], 0
    for i in range(n_out - 2):
        lo, hi = int(i * every) + 1, int((i + 1) * every) + 1
        nlo, nhi = hi, min(int((i + 2) * every) + 1, n)
        if i == n_out - 3:
            nlo, nhi = hi, n
        cx, cy = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        best, best_area = lo, -1.0
        for j in range(lo, hi):
            area = abs((x[a] - cx) * (y[j] - y[a]) - (x[a] - x[j]) * (cy - y[a]))
            if area > best_area:
                best, best_area = j, area
        out.append(best)
        a = best
    return [*out, n - 1]


def test_downsampling() -> None:
    rng = np.random.default_rng(0)
    x = np.arange(1000.0)
    y = np.cumsum(rng.normal(size=1000))
    y[437] = 50.0  # a spike random sampling would likely drop
    mm = minmax_indices(y, 100)
    assert 437 in mm and mm[0] == 0 and mm[-1] == 999 and len(mm) <= 102
    assert y[mm].max() == y.max() and y[mm].min() == y.min()
    lt = lttb_indices(x, y, 100)
    assert len(lt) == 100 and 437 in lt
    x2, y2 = np.arange(102.0), rng.normal(size=102)  # n - 2 divisible by n_out - 2: same buckets
    assert lttb_indices(x2, y2, 52).tolist() == reference_lttb(x2, y2, 52)
    assert downsample_indices(x, y, 5000, "lttb").tolist() == list(range(1000))
    with pytest.raises(InterplabError, match="--downsample"):
        downsample_indices(x, y, 100, "random")


def test_cli_stats_on_tensorboard_runs(tmp_path: Path) -> None:
    from interplab.cli import app
    from tests.runs.test_source_tensorboard import write_tb_runs

    write_tb_runs(tmp_path / "tb", seeds=2)
    out = tmp_path / "stats"
    args = ["runs", "stats", f"tb:{tmp_path / 'tb'}", "--metric", "train/loss", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--n-boot", "200", "--interval", "bca"])
    assert result.exit_code == 0, result.output
    for name in (
        "curves.parquet",
        "final.csv",
        "comparisons.json",
        "steps.parquet",
        "report.md",
        "figures/curves.png",
        "figures/curves.pdf",
        "figures/final.png",
        "manifest.json",
    ):
        assert (out / name).is_file(), name
    (comp,) = json.loads((out / "comparisons.json").read_text())
    assert {comp["a"], comp["b"]} == {"lr=0.1", "lr=0.5"} and comp["n_a"] == comp["n_b"] == 2
    assert comp["p_improvement"] == 1.0  # lr 0.1 has the lower loss in every pair of runs
    report = (out / "report.md").read_text()
    assert "| lr=0.1 | 2 |" in report
    bad = CliRunner().invoke(app, [*args[:-2], "--out", str(tmp_path / "bad"), "--seed-keys", "nope"])
    assert isinstance(bad.exception, InterplabError)  # main() prints it as one line, exit 2
    assert "unknown seed key 'nope' in --seed-keys" in str(bad.exception)
    assert not (tmp_path / "bad").exists()


def test_plot_band_is_bootstrap_ci_with_n_in_legend() -> None:
    from interplab.runs.curves import curves_figure
    from interplab.runs.stats import band_frame

    df = sweep_frame(n_seeds=4, steps=10)
    ci = band_frame(df, "m", group_by="cfg.lr", band="ci", n_boot=500)
    std = band_frame(df, "m", group_by="cfg.lr", band="std")
    for (lr, step), sub in df.groupby(["cfg.lr", "_step"]):
        vals = sub["m"].to_numpy()
        row_std = std[(std["cfg.lr"] == lr) & (std["step"] == step)].iloc[0]
        assert row_std["low"] == pytest.approx(vals.mean() - vals.std(ddof=1))
        row_ci = ci[(ci["cfg.lr"] == lr) & (ci["step"] == step)].iloc[0]
        assert vals.min() <= row_ci["low"] < vals.mean() < row_ci["high"] <= vals.max()
        assert row_ci["runs"] == 4
    fig = curves_figure(df, ["m"], group_by="cfg.lr")
    ax = fig.axes[0]
    assert ax.get_legend().get_title().get_text() == "N = 4 runs per line; band: 95% bootstrap CI of the mean"
    assert [line.get_label() for line in ax.lines] == ["lr=0.1", "lr=0.3"]
    one = df[df["_run_id"].isin(["lr0.1-s0", "lr0.3-s0"])]
    fig = curves_figure(one, ["m"], group_by="cfg.lr")
    assert fig.axes[0].get_legend().get_title().get_text() == "N = 1 runs per line (no band)"
    assert not fig.axes[0].collections  # one run per line: no band at all
