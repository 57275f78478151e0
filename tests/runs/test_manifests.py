"""The runs commands' manifests list exactly the files in their folders (figures included)."""

from __future__ import annotations

import json

import pytest

from interplab.common.output import manifest_mismatches
from interplab.runs.report import runs_report


@pytest.mark.slow  # a runs report on the tiny experiment, ~20 s on a loaded machine
def test_experiment_and_report_manifests_match_their_folders(markov_experiment, tmp_path) -> None:
    assert manifest_mismatches(markov_experiment.out) == ([], [])
    out = tmp_path / "report"
    runs_report(str(markov_experiment.out), out)
    assert manifest_mismatches(out) == ([], [])
    files = json.loads((out / "manifest.json").read_text())["files"]
    assert any(f.startswith("figures/") and f.endswith(".pdf") for f in files)


def test_experiment_leaves_no_wandb_staging(markov_experiment) -> None:
    assert (markov_experiment.out / "wandb").is_dir()
    assert not (markov_experiment.out / "wandb" / ".data").exists()  # the SDK's staged table copies
    hidden = [p for p in markov_experiment.out.rglob(".*") if "staging" in p.as_posix()]
    assert hidden == []
