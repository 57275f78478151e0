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
