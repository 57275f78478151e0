"""The sae commands' manifests list exactly the files in their folders."""

from __future__ import annotations

from interplab.common.output import manifest_mismatches


def test_analysis_manifest_matches_its_folder(sae_analysis) -> None:
    unlisted, missing = manifest_mismatches(sae_analysis.out)
    assert (unlisted, missing) == ([], [])


def test_train_manifest_matches_its_folder(tiny_models, tiny_text_file, tmp_path) -> None:
    from interplab.sae.train import train_sae

    out = tmp_path / "sae"
    train_sae(
        model=str(tiny_models["gpt2"]), layer=1, hook="hook_resid_post", data=str(tiny_text_file),
        d_sae=16, k=2, steps=5, out=out, batch_size=64, log_every=1,
    )  # fmt: skip
    assert manifest_mismatches(out) == ([], [])
