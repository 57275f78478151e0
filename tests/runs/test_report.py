"""``runs report`` on real offline runs of the built-in experiment."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from interplab.common.errors import InterplabError
from interplab.runs import fetch_runs
from interplab.runs.report import head_steps, runs_report


def test_head_steps_cover_first_last_and_boundaries():
    logged = list(range(0, 101, 10))
    chosen = head_steps(logged, [43], 4)
    assert chosen[0] == 0 and chosen[-1] == 100 and 40 in chosen and len(chosen) == 4
    assert head_steps(logged, [], 3) == [0, 50, 100]
    assert head_steps([5], [], 4) == [5]


def test_report_writes_every_figure_and_index(markov_experiment, tmp_path):
    out = tmp_path / "report"
    result = runs_report(str(markov_experiment.out), out)
    runs = fetch_runs(markov_experiment.out)
    files = json.loads((out / "manifest.json").read_text())["files"]
    expected = [
        "figures/kl_divergence",
        "figures/val_loss",
        "figures/by_init_scale/kl_divergence",
        "figures/by_init_scale/val_loss",
        *(f"figures/heads/{r.id}_combined" for r in runs),
    ]
    for stem in expected:
        for ext in ("png", "pdf"):
            assert f"{stem}.{ext}" in files
            assert (out / f"{stem}.{ext}").stat().st_size > 0
    assert (out / "figures/heads").is_dir()
    index = (out / "index.html").read_text()
    for fig in result.figures:
        assert f"src='{fig.png}'" in index and f"href='{fig.pdf}'" in index
    summary = pd.read_csv(out / "runs.csv")
    assert sorted(summary["id"]) == sorted(r.id for r in runs)
    assert set(summary["cfg.init_scale"]) == {0.5, 1.0}
    by_id = {r.id: r for r in runs}
    for row in summary.itertuples():
        assert row.val_loss == pytest.approx(by_id[row.id].summary["val_loss"])
        assert row.steps == 30
    history = pd.read_parquet(out / "history.parquet")
    assert {"_step", "val_loss", "kl_div_prefix_1_teacher_val", "cfg.init_scale", "_run_id"} <= set(
        history.columns
    )
    phases = json.loads((out / "phases.json").read_text())
    assert phases["metrics"][0] == "kl_div_prefix_1_teacher_val"
    assert set(phases["by_run"]) == set(by_id)
    assert set(phases["by_group"]["init_scale"]) == {"0.5", "1.0"}


def test_report_on_a_path_without_runs_fails_before_writing(tmp_path):
    with pytest.raises(InterplabError, match="no W&B runs found"):
        runs_report(str(tmp_path / "empty"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_report_on_generic_runs(sdk_runs, tmp_path):
    """Runs without the KL metric sets: val_loss curves, grouping by nested config keys, heads from tables."""
    out = tmp_path / "generic"
    result = runs_report(str(sdk_runs.root), out, n_head_steps=3)
    files = set(json.loads((out / "manifest.json").read_text())["files"])
    assert "figures/val_loss.pdf" in files and "figures/kl_divergence.pdf" not in files
    assert "figures/by_model.init_scale/val_loss.png" in files
    assert "figures/by_dataset_size/val_loss.png" in files
    assert not any(f.startswith("figures/by_seed") for f in files)  # seeds are averaged, not grouped
    for spec in sdk_runs.runs.values():
        assert f"figures/heads/{spec.id}_combined.png" in files
    assert result.phases["metrics"] == [] and result.n_runs == len(sdk_runs.runs)
    summary = pd.read_csv(out / "runs.csv")
    assert sorted(summary["name"]) == sorted(sdk_runs.runs)
    assert set(summary["best_val"]) == {0.5, 1.5}
