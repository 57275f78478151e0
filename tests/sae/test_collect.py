"""The collection pass: resume after a disk error equals an uninterrupted run; snapshots round-trip;
a database built with other settings is refused."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest
import torch
from analyze_support import ANALYSIS_OPTIONS, HOOK, LAYER, STAT_SECTIONS, load_db, run_analysis

from interplab.common.errors import InterplabError
from interplab.sae.activation_db import ActivationDBWriter
from interplab.sae.analyzer import SAEAnalyzer
from interplab.sae.collect import restore_state, snapshot_state
from interplab.sae.metrics import ReconstructionStats, SparsityStats


class DiskFullAfter(ActivationDBWriter):
    """Raises ENOSPC on the tokens file of shard ``N`` (its activations file is already written)."""

    N = 2

    def _write_table(self, rel, table):
        if len(self.shards) >= self.N and rel.startswith("tokens/"):
            raise OSError(28, "No space left on device")
        super()._write_table(rel, table)


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_disk_error_keeps_finished_shards_and_resume_equals_uninterrupted(sae_analysis, tmp_path) -> None:
    out = tmp_path / "interrupted"
    an = SAEAnalyzer(
        str(sae_analysis.model),
        sae_analysis.sae,
        LAYER,
        HOOK,
        out,
        4,
        data_path=str(sae_analysis.data),
        **ANALYSIS_OPTIONS,
    )
    an.collect_all_activations = functools.partial(an.collect_all_activations, writer_factory=DiskFullAfter)
    with pytest.raises(InterplabError, match=r"No space left on device.*2 complete shards are kept.*resume"):
        an.run()
    db = out / "activation_database"
    manifest = json.loads((db / "manifest.json").read_text())
    assert len(manifest["shards"]) == 2 and manifest["complete"] is False
    # only complete shard files on disk: no temp files, no orphan of the failed shard's tokens
    assert sorted(p.name for p in (db / "tokens").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert not list(db.rglob("*.tmp")) and not list(out.rglob(".*"))
    # nothing of the final outputs was written
    assert (
        not (out / "results").exists()
        and not list(out.glob("SUMMARY_*"))
        and not (out / "manifest.json").exists()
    )

    resumed = run_analysis(sae_analysis.model, sae_analysis.sae, sae_analysis.data, out)
    assert resumed.results["collection"]["resumed_shards"] == 2
    assert sorted(p.name for p in (db / "activations").iterdir()) == sorted(
        p.name for p in (sae_analysis.db / "activations").iterdir()
    )
    ref = sae_analysis.result
    for a, b in zip(load_db(db), load_db(sae_analysis.db), strict=True):
        pd.testing.assert_frame_equal(a, b)
    for key in STAT_SECTIONS:
        assert resumed.results[key] == ref.results[key], key
    for key in ("cooccurrence_counts", "cooccurrence", "similarity", "cooccurrence_topk_indices"):
        np.testing.assert_array_equal(np.load(out / resumed.files[key]), np.load(sae_analysis.file(key)))
    assert _lines(out / resumed.files["feature_summaries"]) == _lines(sae_analysis.file("feature_summaries"))


def test_rerun_of_a_complete_analysis_reuses_the_database(sae_analysis, tmp_path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(sae_analysis.out, out)
    again = run_analysis(sae_analysis.model, sae_analysis.sae, sae_analysis.data, out)
    n_shards = len(json.loads((out / "activation_database" / "manifest.json").read_text())["shards"])
    assert again.results["collection"]["resumed_shards"] == n_shards
    assert again.results["sparsity"] == sae_analysis.result.results["sparsity"]


def test_other_settings_are_refused_unless_overwrite(sae_analysis, tmp_path) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(sae_analysis.db, out / "activation_database")
    with pytest.raises(
        InterplabError, match=r"different configuration .*differs in: context_size.*--overwrite"
    ):
        run_analysis(sae_analysis.model, sae_analysis.sae, sae_analysis.data, out, context_size=12)
    res = run_analysis(
        sae_analysis.model,
        sae_analysis.sae,
        sae_analysis.data,
        out,
        context_size=12,
        overwrite=True,
        ablation_tokens=0,
    )
    assert res.results["collection"]["resumed_shards"] == 0
    assert (
        json.loads((out / "activation_database" / "manifest.json").read_text())["fingerprint"]["context_size"]
        == 12
    )


def test_snapshot_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    sp, rec = SparsityStats(6), ReconstructionStats(3)
    for _ in range(3):
        sp.update(torch.relu(torch.randn(10, 6, generator=g)))
        x = torch.randn(10, 3, generator=g)
        rec.update(x, x + 0.1 * torch.randn(10, 3, generator=g))
    state = snapshot_state({"sparsity": sp, "reconstruction": rec})
    assert all(isinstance(v, np.ndarray) for v in state.values())
    sp2, rec2 = SparsityStats(6), ReconstructionStats(3)
    restore_state({"sparsity": sp2, "reconstruction": rec2}, state)
    assert sp2.result() == sp.result() and rec2.result() == rec.result()
    f = torch.relu(torch.randn(5, 6, generator=g))
    sp.update(f)
    sp2.update(f)
    assert sp2.result() == sp.result()


@pytest.mark.parametrize(
    ("arch", "norm"), [("topk", "none"), ("standard", "none"), ("jumprelu", "none"), ("topk", "layer_norm")]
)
def test_sparse_codes_and_sparsity_equal_dense_path(arch: str, norm: str) -> None:
    from interplab.sae.collect import sparse_codes, update_sparsity
    from interplab.sae.model import SAE, SAEConfig

    g = torch.Generator().manual_seed(1)
    cfg = SAEConfig(
        d_in=12, d_sae=50, architecture=arch, k=5 if arch == "topk" else None, normalize_activations=norm
    )
    sae = SAE.from_weights(
        cfg,
        W_enc=torch.randn(12, 50, generator=g),
        W_dec=torch.randn(50, 12, generator=g),
        b_enc=torch.randn(50, generator=g) - 1.0,
        b_dec=torch.randn(12, generator=g),
        threshold=torch.rand(50, generator=g) - 0.3,
    )
    x = torch.randn(64, 12, generator=g)
    with torch.no_grad():
        rows, cols, vals, x_hat = sparse_codes(sae, x)
        f = sae.encode(x)
        dense = torch.zeros_like(f)
        dense[rows, cols] = vals
        torch.testing.assert_close(dense, f)
        assert ((f != 0).sum() == rows.numel()) and bool((torch.diff(rows * 50 + cols) > 0).all())
        torch.testing.assert_close(x_hat, sae(x), rtol=1e-5, atol=1e-5)
    a, b = SparsityStats(50), SparsityStats(50)
    for part in (slice(0, 30), slice(30, 64)):
        a.update(f[part])
        r, c, v, _ = sparse_codes(sae, x[part])
        update_sparsity(b, r, c, v, int(x[part].shape[0]))
    ra, rb = a.result(), b.result()
    for section in ra:
        for key, value in ra[section].items():
            assert rb[section][key] == pytest.approx(value, rel=1e-12, abs=1e-12), (section, key)
