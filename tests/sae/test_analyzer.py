"""The analysis folder (files, JSON keys, plots), the SAEAnalyzer steps, per-feature ablation
against a hand-made hook, and bad input (one clear error, nothing written)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from analyze_support import ANALYSIS_OPTIONS, CONTEXT, D_SAE, HOOK, LAYER, load_db, run_analysis, write_sae
from PIL import Image
from transformers import AutoModelForCausalLM

from interplab.common.errors import InterplabError
from interplab.sae.analyzer import SAEAnalyzer
from interplab.sae.formats import load_sae

RESULT_KEYS = {
    "config",
    "data",
    "sae",
    "model",
    "sparsity",
    "dead_features",
    "reconstruction",
    "ablation",
    "feature_ablation",
    "feature_stats",
    "similarity",
    "cooccurrence",
    "collection",
    "logit_effects",
}


def test_output_folder_layout_and_keys(sae_analysis) -> None:
    res = sae_analysis.result
    out = sae_analysis.out
    ts = res.timestamp
    for rel in res.files.values():
        assert (out / rel).exists(), rel
    assert res.files["similarity"] == f"matrices/feature_similarity_{ts}.npy"
    assert res.files["cooccurrence"] == f"matrices/feature_cooccurrence_{ts}.npy"
    assert res.files["analysis_results"] == f"results/analysis_results_{ts}.json"
    assert res.files["feature_summaries"] == f"results/feature_summaries_{ts}.jsonl"
    results = json.loads((out / res.files["analysis_results"]).read_text())
    assert set(results) == RESULT_KEYS
    for key in ("l0_mean", "l0_std", "l1_mean", "l1_std", "n_features", "n_tokens", "feature_frequency"):
        assert key in results["sparsity"]
    for key in ("mse_per_element", "mse_per_token", "explained_variance", "cosine_similarity", "l2_ratio"):
        assert key in results["reconstruction"]
    for key in (
        "baseline_loss",
        "zero_ablation_loss",
        "sae_reconstruction_loss",
        "loss_recovered",
        "kl_score",
    ):
        assert key in results["ablation"]
    assert "first" in results["ablation"]["note"]
    summary = json.loads((out / res.files["summary"]).read_text())
    assert (
        summary["files"] == res.files
        and summary["d_sae"] == D_SAE
        and summary["hook"] == f"blocks.{LAYER}.{HOOK}"
    )
    readme = (out / res.files["readme"]).read_text()
    assert "| explained_variance |" in readme and "Most frequent features" in readme
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "sae analyze" and res.files["feature_summaries"] in manifest["files"]
    n_tok = len(load_db(sae_analysis.db)[1])
    assert results["sparsity"]["n_tokens"] == n_tok == summary["n_tokens"]


def test_plots_are_valid_png_and_pdf(sae_analysis) -> None:
    names = [
        "feature_density",
        "l0_histogram",
        "activation_distributions",
        "similarity_heatmap",
        "cooccurrence_heatmap",
        "training_history",
    ]
    for name in names:
        png = sae_analysis.out / "plots" / f"{name}.png"
        with Image.open(png) as im:
            im.verify()
            assert im.size[0] > 100
        assert (sae_analysis.out / "plots" / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_l0_histogram_and_sparsity_agree_with_database(sae_analysis) -> None:
    acts, toks = load_db(sae_analysis.db)
    l0 = np.bincount(acts.token_idx, minlength=len(toks))
    assert sae_analysis.result.results["sparsity"]["l0_mean"] == pytest.approx(l0.mean())
    freq = np.bincount(acts.feature, minlength=D_SAE) / len(toks)
    np.testing.assert_allclose(sae_analysis.result.results["sparsity"]["feature_frequency"], freq)


@pytest.fixture(scope="module")
def analyzer(sae_analysis, tmp_path_factory):
    """An SAEAnalyzer over a copy of the shared folder (its collection resumes from the database)."""
    out = tmp_path_factory.mktemp("steps") / "analysis"
    shutil.copytree(sae_analysis.out, out)
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
    an.collect_all_activations()
    return an


def test_analyzer_steps(analyzer, sae_analysis) -> None:
    res = sae_analysis.result.results
    assert analyzer.compute_sparsity_metrics() == res["sparsity"]
    assert analyzer.find_dead_features() == res["dead_features"]
    assert analyzer.compute_reconstruction_metrics() == res["reconstruction"]
    sim = analyzer.compute_feature_similarity()
    np.testing.assert_array_equal(sim, np.load(sae_analysis.file("similarity")))
    near = analyzer.find_similar_features(7, top_k=3)
    row = sim[7].astype(np.float64)
    row[7] = -np.inf
    assert [x["feature"] for x in near] == list(np.argsort(-row, kind="stable")[:3])
    phi = analyzer.compute_feature_cooccurrence("phi")
    np.testing.assert_array_equal(phi, np.load(sae_analysis.file("cooccurrence")))
    co = analyzer.find_coactivating_features(9, top_k=3)
    prow = phi[9].astype(np.float64)
    prow[9] = -np.inf
    assert [x["value"] for x in co] == pytest.approx(np.sort(prow)[::-1][:3].tolist())
    acts, _ = load_db(sae_analysis.db)
    top = analyzer.find_max_activating_examples(9, top_k=4)
    want = acts[acts.feature == 9].sort_values(["value", "token_idx"], ascending=[False, True]).head(4)
    assert [t["token_idx"] for t in top] == want.token_idx.tolist()
    with pytest.raises(InterplabError, match="out of range"):
        analyzer.find_similar_features(D_SAE)


def test_feature_ablation_equals_hand_made_hook(sae_analysis) -> None:
    """loss_delta of a feature = CE with (x̂ − f_i·W_dec[i]) spliced in − CE with x̂, recomputed
    with a plain forward hook on the HF block over the same windows."""
    res = sae_analysis.result.results
    fa = res["feature_ablation"]
    n_windows = res["ablation"]["n_windows"]
    _, toks = load_db(sae_analysis.db)
    toks = toks.assign(window=toks.text_idx * 1000 + toks.position // CONTEXT)
    windows = [g.token_id.tolist() for _, g in toks.groupby("window", sort=False)][:n_windows]
    model = AutoModelForCausalLM.from_pretrained(sae_analysis.model).eval()
    sae = load_sae(sae_analysis.sae)
    block = model.transformer.h[LAYER]

    def mean_loss(edit) -> float:
        handle = block.register_forward_hook(
            lambda m, a, out: (edit(out[0]), *out[1:]) if isinstance(out, tuple) else edit(out)
        )
        total, n = 0.0, 0
        try:
            for ids in windows:
                x = torch.tensor([ids])
                with torch.no_grad():
                    logits = model(input_ids=x).logits[0]
                total += float(F.cross_entropy(logits[:-1].double(), x[0, 1:], reduction="sum"))
                n += len(ids) - 1
        finally:
            handle.remove()
        return total / n

    def recon(h, drop=None):
        f = sae.encode(h)
        if drop is not None:
            f[..., drop] = 0
        return sae.decode(f)

    sae_loss = mean_loss(recon)
    assert fa["sae_reconstruction_loss"] == pytest.approx(sae_loss, rel=1e-5)
    assert res["ablation"]["sae_reconstruction_loss"] == pytest.approx(sae_loss, rel=1e-5)
    assert len(fa["features"]) == ANALYSIS_OPTIONS["ablation_features"]
    for e in fa["features"]:
        i = e["feature"]
        assert e["loss_delta"] == pytest.approx(
            mean_loss(lambda h, i=i: recon(h, i)) - sae_loss, rel=1e-4, abs=1e-6
        )


@pytest.fixture
def bad_setup(tiny_models, tmp_path, tiny_texts):
    data = tmp_path / "texts.json"
    data.write_text(json.dumps(tiny_texts[:5]))
    return tiny_models["gpt2"], write_sae(tmp_path / "sae"), data, tmp_path / "out"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hook": "hook_nowhere"}, r"unknown hook 'hook_nowhere'; expected one of: hook_resid_pre"),
        ({"layer": 5}, r"layer 5 out of range: the model has 2 layers"),
        ({"batch_size": 0}, r"--batch-size must be ≥ 1, got 0"),
        ({"data": "[]"}, r"empty dataset"),
        ({"data": '["", ""]'}, r"only empty texts"),
        ({"data": '["a", "b"'}, r"texts.json: malformed JSON at line 1"),
        ({"similarity": "manhattan"}, r"unknown similarity metric 'manhattan'"),
        ({"cooccurrence": ("phi", "lift")}, r"unknown co-occurrence metric 'lift'"),
        (
            {"d_in": 16},
            r"SAE d_in=16 does not match the width 32 of the model's activation at blocks.0.hook_resid_post",
        ),
        ({"sae": "missing"}, r"SAE folder not found"),
    ],
)
def test_bad_input_one_clear_error_nothing_written(bad_setup, change, message) -> None:
    from interplab.sae.analyzer import run_comprehensive_analysis

    model, sae, data, out = bad_setup
    if "data" in change:
        data.write_text(change["data"])
    if "d_in" in change:
        sae = write_sae(sae.parent / "sae16", d_in=change["d_in"])
    if "sae" in change:
        sae = sae.parent / change["sae"]
    kw = {k: v for k, v in change.items() if k in ("similarity", "cooccurrence")}
    with pytest.raises(InterplabError, match=message) as err:
        run_comprehensive_analysis(
            str(model),
            sae,
            change.get("layer", LAYER),
            change.get("hook", HOOK),
            str(data),
            change.get("batch_size", 4),
            out,
            context_size=CONTEXT,
            **kw,
        )
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_sae_hook_taken_from_config_when_not_given(bad_setup) -> None:
    model, sae, data, out = bad_setup
    an = SAEAnalyzer(str(model), sae, None, None, out, 4, data_path=str(data), context_size=CONTEXT)
    assert an.hp.name == f"blocks.{LAYER}.{HOOK}"


def test_large_sae_mode_writes_sparse_matrices_and_topk(sae_analysis, tmp_path) -> None:
    """Above the dense limits: sparse co-occurrence (.npz) and top-k similarity arrays only, equal to
    the dense results of the shared run."""
    import scipy.sparse as sp

    res = run_analysis(
        sae_analysis.model,
        sae_analysis.sae,
        sae_analysis.data,
        tmp_path / "big",
        similarity_dense_limit=8,
        cooccurrence_dense_limit=8,
        ablation_tokens=0,
    )
    out, ref = tmp_path / "big", sae_analysis.result.files
    assert "similarity" not in res.files and not res.results["similarity"]["dense"]
    assert res.files["cooccurrence"].endswith(".npz") and res.files["cooccurrence_counts"].endswith(".npz")
    counts = sp.load_npz(out / res.files["cooccurrence_counts"]).toarray()
    np.testing.assert_array_equal(counts, np.load(sae_analysis.out / ref["cooccurrence_counts"]))
    phi = sp.load_npz(out / res.files["cooccurrence"]).toarray()
    dense_phi = np.load(sae_analysis.out / ref["cooccurrence"])
    i, j = np.nonzero(counts)
    np.testing.assert_allclose(phi[i, j], dense_phi[i, j], atol=1e-6)
    for key in ("similarity_topk_values", "similarity_topk_indices"):
        np.testing.assert_allclose(
            np.load(out / res.files[key]), np.load(sae_analysis.out / ref[key]), atol=1e-6
        )
    assert res.results["ablation"] is None and res.results["feature_ablation"] is None
    first = json.loads((out / res.files["feature_summaries"]).open().readline())
    assert first["ablation"] is None
