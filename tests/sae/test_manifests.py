"""The sae commands' manifests list exactly the files in their folders."""

from __future__ import annotations

from interplab.common.output import manifest_mismatches


def test_analysis_manifest_matches_its_folder(sae_analysis) -> None:
    unlisted, missing = manifest_mismatches(sae_analysis.out)
    assert (unlisted, missing) == ([], [])
