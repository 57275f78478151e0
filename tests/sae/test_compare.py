"""``sae compare``: an SAE against itself and a feature-permuted copy, different widths (splits by
containment, checked by brute force), the blocked search, the pruning bridge against a hand
computation with Hugging Face hidden states, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from analyze_support import D_SAE, HOOK, LAYER, dense_from_db, make_sae, run_analysis, write_texts

from interplab.common.errors import InterplabError
from interplab.sae import matching
from interplab.sae.compare import CompareConfig, compare
from interplab.sae.formats import save_sae
from interplab.sae.model import SAE

FAST = {"ablation_tokens": 0, "cooccurrence": ("phi",)}


def permuted(sae: SAE, perm: np.ndarray) -> SAE:
    """The same SAE with feature ``perm[j]`` stored at position ``j``."""
    p = torch.from_numpy(perm)
    return SAE.from_weights(
        sae.cfg,
        W_enc=sae.W_enc.detach()[:, p],
        W_dec=sae.W_dec.detach()[p],
        b_enc=sae.b_enc.detach()[p],
        b_dec=sae.b_dec.detach(),
    )


@pytest.fixture(scope="module")
def setup(tiny_models, tiny_texts, tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    model = tiny_models["gpt2"]
    data = write_texts(root / "texts.json", tiny_texts)
    base = make_sae(0)
    perm = np.random.default_rng(3).permutation(D_SAE)
    saes = {
        "a": save_sae(base, root / "sae_a"),
        "perm": save_sae(permuted(base, perm), root / "sae_perm"),
        "wide": save_sae(make_sae(1, d_sae=64), root / "sae_wide"),
    }
    out = {k: root / f"an_{k}" for k in saes}
    for k, s in saes.items():
        run_analysis(model, s, data, out[k], **FAST)
    return {"root": root, "model": model, "data": data, "perm": perm, "sae": saes, "an": out}


def test_self_comparison_is_identity(setup, tmp_path) -> None:
    a = setup["an"]["a"]
    res = compare(CompareConfig(a=str(a), b=str(a), out=str(tmp_path / "self"), write_back=False))
    m = pd.read_parquet(tmp_path / "self" / "matches.parquet")
    assert (m.feature_a.to_numpy() == np.arange(D_SAE)).all()
    assert (m.feature_b == m.feature_a).all()
    np.testing.assert_allclose(m.decoder_cos, 1.0, atol=1e-5)
    F = dense_from_db(a / "activation_database")
    alive = np.flatnonzero((F != 0).any(axis=0) & (F.std(axis=0) > 0))
    assert alive.size >= 10
    np.testing.assert_allclose(m.activation_corr.to_numpy()[alive], 1.0, atol=1e-5)
    assert m.activation_corr.isna().to_numpy()[np.setdiff1d(np.arange(D_SAE), alive)].all()
    assert (m["rank"] == 1).all()
    s = res.summary
    assert s["shared_tokens"] and s["match_on"] == "both"
    assert s["fraction_of_a_matched_decoder_cos"]["> 0.9"] == 1.0
    for rel in ("matches.parquet", "plots/match_histograms.png", "plots/match_histograms.pdf", "README.md"):
        assert (tmp_path / "self" / rel).exists()
    manifest = json.loads((tmp_path / "self" / "manifest.json").read_text())
    assert "matches.parquet" in manifest["files"]


def test_permuted_copy_recovers_permutation(setup, tmp_path) -> None:
    a, p = setup["an"]["a"], setup["an"]["perm"]
    perm = setup["perm"]
    for match_on in ("decoder", "activation", "both"):
        out = tmp_path / match_on
        compare(CompareConfig(a=str(a), b=str(p), out=str(out), match_on=match_on))
        m = pd.read_parquet(out / "matches.parquet")
        inverse = np.argsort(perm)  # feature i of A sits at position inverse[i] of B
        alive = m.activation_corr.notna().to_numpy()
        if match_on == "activation":  # silent features carry no activation evidence
            assert (m.feature_b.to_numpy()[alive] == inverse[m.feature_a.to_numpy()[alive]]).all()
        else:
            assert (m.feature_b.to_numpy() == inverse[m.feature_a.to_numpy()]).all()
        np.testing.assert_allclose(m.activation_corr.to_numpy()[alive], 1.0, atol=1e-5)
    # written back into both analyses for the browser
    st = sorted((a / "results").glob("feature_stability_*.parquet"))
    assert st
    t = pd.read_parquet(st[-1])
    assert (t.partner.to_numpy() == inverse).all()
    np.testing.assert_allclose(t.stability, 1.0, atol=1e-5)
    assert t.stable.all() and (t.compared_with == "an_perm").all()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # corrcoef of a silent column
def test_correlation_and_cosine_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    Xd = np.maximum(rng.normal(size=(200, 7)) - 0.8, 0)
    Yd = np.maximum(rng.normal(size=(200, 5)) - 0.8, 0)
    Yd[:, 4] = 0  # never fires → NaN
    X, Y = sp.csc_array(Xd), sp.csc_array(Yd)
    R = np.concatenate([b for _, b in matching.correlation_blocks(X, Y, block=3)], axis=0)
    ref = np.corrcoef(Xd.T, Yd.T)[:7, 7:]
    np.testing.assert_allclose(R[:, :4], ref[:, :4], atol=1e-10)
    assert np.isnan(R[:, 4]).all()
    ia, ib = np.array([0, 3, 6]), np.array([1, 1, 2])
    np.testing.assert_allclose(matching.pair_correlation(X, Y, ia, ib), ref[ia, ib], atol=1e-10)
    Wa, Wb = torch.randn(9, 6), torch.randn(11, 6)
    C = matching.decoder_cosine(Wa, Wb)
    np.testing.assert_allclose(
        C, torch.nn.functional.cosine_similarity(Wa[:, None], Wb[None], dim=2), atol=1e-6
    )
    idx, val = matching.best_partners(Wa, Wb, block=4)
    assert (idx == C.argmax(1)).all()
    np.testing.assert_allclose(val, C.max(1), atol=1e-6)


def test_different_widths_split_and_blocked(setup, tmp_path) -> None:
    a, w = setup["an"]["a"], setup["an"]["wide"]
    out = tmp_path / "wide"
    res = compare(CompareConfig(a=str(a), b=str(w), out=str(out), split_threshold=0.6, write_back=False))
    m = pd.read_parquet(out / "matches.parquet")
    assert len(m) == D_SAE and m.feature_b.is_unique
    # splits by brute force over the dense activations
    Fa = dense_from_db(a / "activation_database") != 0
    Fw = dense_from_db(w / "activation_database", 64) != 0
    both = Fw.T.astype(int) @ Fa.astype(int)  # [wide, narrow]
    fires = Fw.sum(0)
    expected: dict[int, list[int]] = {}
    for j in range(64):
        if fires[j] == 0 or both[j].max() == 0:
            continue
        i = int(np.argmax(both[j]))
        if both[j, i] / fires[j] >= 0.6:
            expected.setdefault(i, []).append(j)
    expected = {i: sorted(c) for i, c in expected.items() if len(c) >= 2}
    got = json.loads((out / "splits.json").read_text())
    assert got["direction"] == "A→B"
    assert {s["parent"]: sorted(s["children"]) for s in got["splits"]} == expected
    assert res.summary["splits"]["n_split_features"] == len(expected)
    # above the assignment limit: each feature of A takes its best decoder partner
    out2 = tmp_path / "blocked"
    compare(
        CompareConfig(a=str(a), b=str(w), out=str(out2), assignment_limit=8, block_rows=7, write_back=False)
    )
    mb = pd.read_parquet(out2 / "matches.parquet")
    C = matching.decoder_cosine(make_sae(0).W_dec, make_sae(1, d_sae=64).W_dec)
    assert (mb.feature_b.to_numpy() == C.argmax(1)).all()
    assert json.loads((out2 / "results/compare.json").read_text())["method"].startswith("blocked")


@pytest.mark.slow
def test_no_shared_tokens_and_mismatches(setup, tiny_models, tmp_path) -> None:
    other = write_texts(tmp_path / "other.json", [f"w{i} w{i + 1} w{i + 2} w{i + 3}" for i in range(40)])
    b = tmp_path / "an_other"
    run_analysis(setup["model"], setup["sae"]["perm"], other, b, **FAST)
    res = compare(CompareConfig(a=str(setup["an"]["a"]), b=str(b), out=str(tmp_path / "c"), write_back=False))
    assert not res.summary["shared_tokens"] and res.summary["match_on"] == "decoder"
    assert any("share no corpus tokens" in n for n in res.summary["notes"])
    assert pd.read_parquet(tmp_path / "c" / "matches.parquet").activation_corr.isna().all()
    with pytest.raises(InterplabError, match="activation needs activations on shared corpus tokens"):
        compare(
            CompareConfig(a=str(setup["an"]["a"]), b=str(b), out=str(tmp_path / "d"), match_on="activation")
        )
    assert not (tmp_path / "d").exists()
    # another hook: refused unless --allow-mismatch
    h = tmp_path / "an_hook"
    from analyze_support import ANALYSIS_OPTIONS

    from interplab.sae.analyzer import run_comprehensive_analysis

    opts = {**ANALYSIS_OPTIONS, **FAST}
    run_comprehensive_analysis(
        str(setup["model"]), setup["sae"]["a"], LAYER, "hook_resid_pre", str(setup["data"]), 4, h, **opts
    )
    with pytest.raises(
        InterplabError, match=r"differ in hook: 'blocks.0.hook_resid_post' \(A\) vs 'blocks.0.hook_resid_pre'"
    ):
        compare(CompareConfig(a=str(setup["an"]["a"]), b=str(h), out=str(tmp_path / "e")))
    assert not (tmp_path / "e").exists()
    compare(
        CompareConfig(
            a=str(setup["an"]["a"]), b=str(h), out=str(tmp_path / "e"), allow_mismatch=True, write_back=False
        )
    )
    with pytest.raises(InterplabError, match="either B"):
        compare(CompareConfig(a=str(setup["an"]["a"]), out=str(tmp_path / "f")))
    with pytest.raises(InterplabError, match="not found"):
        compare(CompareConfig(a=str(setup["an"]["a"]), b=str(tmp_path / "nope"), out=str(tmp_path / "f")))


def test_different_d_in_is_refused(setup, tiny_models, tmp_path) -> None:
    fake = tmp_path / "an_fake"
    shutil.copytree(setup["an"]["a"] / "activation_database", fake / "activation_database")
    manifest = json.loads((fake / "activation_database/manifest.json").read_text())
    small = save_sae(make_sae(0, d_in=16), tmp_path / "sae16")
    manifest["fingerprint"]["sae"] = str(small)
    (fake / "activation_database/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InterplabError, match=r"different widths \(d_in 32 vs 16\)"):
        compare(CompareConfig(a=str(setup["an"]["a"]), b=str(fake), out=str(tmp_path / "g")))
    assert not (tmp_path / "g").exists()


def _pruned_copy(src: Path, dest: Path) -> Path:
    """The tiny GPT-2 with half of each MLP weight zeroed (smallest magnitudes), tokenizer included."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(src, dest)
    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        for block in model.transformer.h:
            for lin in (block.mlp.c_fc, block.mlp.c_proj):
                w = lin.weight
                w[w.abs() <= w.abs().flatten().median()] = 0
    model.save_pretrained(dest)
    return dest


def test_pruning_bridge_matches_hand_computation(setup, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from interplab.sae.corpus import load_windows
    from interplab.sae.formats import load_sae

    pruned = _pruned_copy(setup["model"], tmp_path / "pruned")
    res = compare(CompareConfig(a=str(setup["an"]["a"]), model_b=str(pruned), out=str(tmp_path / "bridge")))
    got = pd.read_parquet(tmp_path / "bridge" / "features.parquet")
    # by hand: hidden_states[LAYER + 1] is blocks.LAYER.hook_resid_post
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(setup["model"])
    windows = load_windows(tok, str(setup["data"]), 16, None)
    sae = load_sae(setup["sae"]["a"])
    acts = []
    for path in (setup["model"], pruned):
        m = AutoModelForCausalLM.from_pretrained(path).eval()
        with torch.no_grad():
            hs = m(
                windows.input_ids, attention_mask=windows.attention_mask, output_hidden_states=True
            ).hidden_states
        x = hs[LAYER + 1][windows.positions >= 0] if windows.positions is not None else None
        acts.append(x.double())
    with torch.no_grad():
        fa = sae.encode(acts[0].float()).double().numpy()
        fb = sae.encode(acts[1].float()).double().numpy()
    n = fa.shape[0]
    assert res.summary["n_tokens"] == n
    ra, rb = (fa > 0).mean(0), (fb > 0).mean(0)
    np.testing.assert_allclose(got.firing_rate_a, ra, atol=1e-12)
    np.testing.assert_allclose(got.firing_rate_b, rb, atol=1e-12)
    for i in range(D_SAE):
        if fa[:, i].std() > 0 and fb[:, i].std() > 0:
            assert got.activation_corr[i] == pytest.approx(np.corrcoef(fa[:, i], fb[:, i])[0, 1], abs=1e-5)
        else:
            assert np.isnan(got.activation_corr[i])
        if ra[i] > 0:
            assert got.firing_rate_ratio[i] == pytest.approx(rb[i] / ra[i])
    assert got.died.to_numpy().tolist() == ((ra > 0) & (rb == 0)).tolist()
    assert got.appeared.to_numpy().tolist() == ((ra == 0) & (rb > 0)).tolist()
    xb = acts[1].numpy()
    with torch.no_grad():
        xb_hat = sae(acts[1].float()).double().numpy()
    ev = 1 - ((xb - xb_hat) ** 2).sum(1).mean() / xb.var(0).sum()
    assert res.summary["explained_variance_b"] == pytest.approx(ev, abs=1e-5)
    assert (tmp_path / "bridge" / "plots" / "pruning_bridge.pdf").exists()
    assert HOOK in res.summary["hook"]


@pytest.mark.slow
def test_sae_folders_are_analysed_first(setup, tmp_path) -> None:
    out = tmp_path / "from_sae"
    res = compare(
        CompareConfig(
            a=str(setup["sae"]["a"]),
            b=str(setup["sae"]["perm"]),
            out=str(out),
            model=str(setup["model"]),
            data=str(setup["data"]),
        )
    )
    assert (out / "analysis_a" / "activation_database" / "manifest.json").exists()
    assert (out / "analysis_b" / "activation_database" / "manifest.json").exists()
    m = pd.read_parquet(out / "matches.parquet")
    assert (m.feature_b.to_numpy() == np.argsort(setup["perm"])[m.feature_a.to_numpy()]).all()
    assert res.summary["shared_tokens"]
