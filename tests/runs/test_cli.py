"""``interplab runs …`` through typer's CliRunner on real offline runs of the built-in experiment."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from interplab.cli import app
from interplab.common.errors import InterplabError
from interplab.runs import fetch_runs, get_table

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["runs", *map(str, args)])


def test_list_shows_runs_and_summary_metrics(markov_experiment):
    runs = fetch_runs(markov_experiment.out)
    res = invoke("list", markov_experiment.out, "--metric", "val_loss")
    assert res.exit_code == 0, res.output
    for run in runs:
        assert run.id in res.output and run.name in res.output
        assert f"{run.summary['val_loss']:.4g}" in res.output
    assert "finished" in res.output and "2 runs" in res.output


def test_list_by_tag_and_filter(markov_experiment):
    src = markov_experiment.out
    res = invoke("list", src, "--tag", "init_scale=0.5")
    assert res.exit_code == 0 and "1 runs" in res.output and "init_scale=0.5-seed=0" in res.output
    res = invoke("list", src, "--filter", '{"config.init_scale": {"$gt": 0.7}}')
    assert res.exit_code == 0 and "1 runs" in res.output and "init_scale=1.0-seed=0" in res.output


def test_diff_shows_only_differing_keys(markov_experiment, tmp_path):
    res = invoke("diff", markov_experiment.out, "--out", tmp_path / "diff.csv")
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "diff.csv")
    assert [c for c in df.columns if c.startswith("cfg.")] == ["cfg.init_scale"]
    assert sorted(df["cfg.init_scale"]) == [0.5, 1.0]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_writes_every_logged_step(markov_experiment, tmp_path, suffix):
    out = tmp_path / f"export{suffix}"
    res = invoke(
        "export", markov_experiment.out, "--metrics", "val_loss,kl_div_prefix_2_teacher_val", "--out", out
    )
    assert res.exit_code == 0, res.output
    df = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert len(df) == 2 * 11  # two runs × evaluations at steps 0, 3, …, 30
    for run in fetch_runs(markov_experiment.out):
        hist = run.history()
        mine = df[df["_run_id"] == run.id].sort_values("_step")
        expected = hist.dropna(subset=["val_loss"]).sort_values("_step")
        assert mine["val_loss"].tolist() == pytest.approx(expected["val_loss"].tolist(), rel=1e-15)
        assert (mine["cfg.init_scale"] == run.config["init_scale"]).all()


def test_plot_writes_pdf_and_png(markov_experiment, tmp_path):
    out = tmp_path / "kl.pdf"
    res = invoke(
        "plot",
        markov_experiment.out,
        "--metric",
        "kl_div_prefix_1_teacher_val,kl_div_prefix_2_teacher_val,kl_div_prefix_3_teacher_val",
        "--group-by",
        "cfg.init_scale",
        "--phases",
        "auto",
        "--max-step",
        "24",
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    assert out.read_bytes().startswith(b"%PDF") and out.with_suffix(".png").stat().st_size > 0


def test_plot_returns_expected_figure(markov_experiment, tmp_path):
    from interplab.runs.commands import runs_plot

    result = runs_plot(
        str(markov_experiment.out),
        ["val_loss"],
        tmp_path / "v.png",
        group_by="init_scale",
        phases="9,21",
        shift=100,
    )
    ax = result.figure.axes[0]
    assert [line.get_label() for line in ax.lines[:2]] == ["init_scale=0.5", "init_scale=1.0"]
    assert ax.lines[0].get_xdata().min() == 100
    assert [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"] == [109, 121]


def test_heads_modes(markov_experiment, tmp_path):
    run = fetch_runs(markov_experiment.out)[0]
    for mode in ("combined", "individual", "separated"):
        out = tmp_path / f"heads_{mode}.pdf"
        res = invoke(
            "heads",
            markov_experiment.out,
            run.id,
            "--steps",
            "0,30",
            "--mode",
            mode,
            "--out",
            out,
            "--staircase",
            "1",
        )
        assert res.exit_code == 0, res.output
        assert out.exists() and out.with_suffix(".png").exists()


def test_heads_figure_shows_logged_table(markov_experiment, tmp_path):
    import numpy as np

    from interplab.runs.commands import runs_heads
    from interplab.runs.heads import head_colors, multiply_blend, pivot_heads

    run = fetch_runs(markov_experiment.out)[1]
    result = runs_heads(str(markov_experiment.out), run.name, tmp_path / "h.png", ["15"])
    expected = multiply_blend(pivot_heads(get_table(run, step=15)).weights, head_colors(2))
    np.testing.assert_allclose(result.figure.axes[0].images[0].get_array(), expected)


def test_report_and_experiment_commands(markov_experiment, tmp_path):
    res = invoke("report", markov_experiment.out, "--out", tmp_path / "rep", "--head-steps", "2")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "rep" / "index.html").exists()
    res = invoke(
        "experiment", "--out", tmp_path / "exp", "--seeds", "1", "--sweep", "init_scale=0.3", "--steps", "4"
    )
    assert res.exit_code == 0, res.output
    runs = fetch_runs(tmp_path / "exp")
    assert len(runs) == 1 and runs[0].config["init_scale"] == 0.3 and runs[0].config["steps"] == 4
    assert json.loads((tmp_path / "exp" / "manifest.json").read_text())["command"] == "runs experiment"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "{empty}"], "no W&B runs found"),
        (
            ["plot", "{src}", "--metric", "val_los", "--out", "{tmp}/x.pdf"],
            "unknown metric 'val_los'.*val_loss",
        ),
        (["heads", "{src}", "nosuchrun", "--out", "{tmp}/h.pdf"], "unknown run 'nosuchrun'"),
        (
            ["heads", "{src}", "{run}", "--steps", "7", "--out", "{tmp}/h.pdf"],
            "not logged at step 7; steps: 0, 3, 6",
        ),
        (["heads", "{src}", "{run}", "--key", "attn", "--out", "{tmp}/h.pdf"], "no table 'attn'"),
        (["list", "{src}", "--filter", '{"state": {"$like": "x"}}'], r"\$like"),
        (["list", "{src}", "--filter", "{oops"], "not valid JSON"),
        (["export", "{src}", "--metrics", "val_loss", "--out", "{tmp}/x.xlsx"], r"\.parquet or \.csv"),
        (["plot", "{src}", "--metric", "val_loss", "--phases", "soon", "--out", "{tmp}/x.pdf"], "--phases"),
        (["heads", "{src}", "{run}", "--mode", "blend", "--out", "{tmp}/h.pdf"], "unknown --mode 'blend'"),
        (["experiment", "--out", "{tmp}/e", "--sweep", "width=3"], "unknown sweep key 'width'"),
    ],
)
def test_bad_input_raises_one_clear_error(markov_experiment, tmp_path, args, message):
    run = fetch_runs(markov_experiment.out)[0]
    (tmp_path / "empty").mkdir()
    filled = [
        a.format(src=markov_experiment.out, tmp=tmp_path, run=run.id, empty=tmp_path / "empty")
        if "{" in a and not a.startswith('{"') and a != "{oops"
        else a
        for a in args
    ]
    res = invoke(*filled)
    assert res.exit_code != 0
    assert isinstance(res.exception, InterplabError), res.output
    assert "\n" not in str(res.exception)
    import re

    assert re.search(message, str(res.exception)), str(res.exception)
    assert not any(p.name.startswith(("x.", "h.")) for p in tmp_path.iterdir())  # nothing half-written


def test_main_prints_one_line_and_exits_2(tmp_path):
    (tmp_path / "none").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "interplab", "runs", "list", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no W&B runs found")
