"""Feature summaries against brute force over the stored database and the SAE/model weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from analyze_support import ANALYSIS_OPTIONS, D_SAE, N_DEAD, load_db
from transformers import AutoModelForCausalLM

from interplab.sae.formats import load_sae

KEYS = {
    "feature",
    "density",
    "n_fires",
    "mean_activation",
    "mean_activation_all_tokens",
    "std_activation",
    "max_activation",
    "is_dead",
    "is_dense",
    "top_tokens",
    "top_examples",
    "quantile_examples",
    "logit_effects",
    "similar_features",
    "coactivating_features",
    "activation_histogram",
    "ablation",
}


@pytest.fixture(scope="module")
def summaries(sae_analysis):
    lines = sae_analysis.file("feature_summaries").read_text().splitlines()
    return [json.loads(x) for x in lines]


def test_one_line_per_feature_with_all_keys(summaries) -> None:
    assert [s["feature"] for s in summaries] == list(range(D_SAE))
    for s in summaries:
        assert set(s) == KEYS


def test_dead_features_are_exactly_those_never_firing(sae_analysis, summaries) -> None:
    acts, _ = load_db(sae_analysis.db)
    never = sorted(set(range(D_SAE)) - set(acts.feature.unique()))
    assert set(range(N_DEAD)) <= set(never)
    assert [s["feature"] for s in summaries if s["is_dead"]] == never
    assert sae_analysis.result.results["dead_features"]["dead_indices"] == never
    assert sae_analysis.result.results["dead_features"]["n_dead"] == len(never)


def test_scalar_stats_equal_pandas(sae_analysis, summaries) -> None:
    acts, toks = load_db(sae_analysis.db)
    n = len(toks)
    g = acts.groupby("feature").value
    for s in summaries:
        f = s["feature"]
        if s["is_dead"]:
            assert s["n_fires"] == 0 and s["density"] == 0 and s["top_examples"] == []
            continue
        v = g.get_group(f).to_numpy().astype(np.float64)
        assert s["n_fires"] == v.size
        assert s["density"] == pytest.approx(v.size / n)
        assert s["mean_activation"] == pytest.approx(v.mean(), rel=1e-6)
        assert s["mean_activation_all_tokens"] == pytest.approx(v.sum() / n, rel=1e-6)
        assert s["std_activation"] == pytest.approx(v.std(), rel=1e-4, abs=1e-7)
        assert s["max_activation"] == pytest.approx(v.max())
        assert s["is_dense"] == (v.size / n > 0.1)
        assert sum(s["activation_histogram"]["counts"]) == v.size
        assert len(s["activation_histogram"]["bin_edges"]) == len(s["activation_histogram"]["counts"]) + 1


def test_top_examples_equal_brute_force(sae_analysis, summaries) -> None:
    acts, toks = load_db(sae_analysis.db)
    tok_by_idx = toks.set_index("token_idx")
    k, r = ANALYSIS_OPTIONS["top_k"], ANALYSIS_OPTIONS["context_radius"]
    for s in summaries:
        f = s["feature"]
        want = acts[acts.feature == f].sort_values(["value", "token_idx"], ascending=[False, True]).head(k)
        got = s["top_examples"]
        assert [e["token_idx"] for e in got] == want.token_idx.tolist()
        assert [e["activation"] for e in got] == pytest.approx(want.value.tolist())
        for e in got:
            row = tok_by_idx.loc[e["token_idx"]]
            assert (e["token"], e["text_idx"], e["position"]) == (row.token_str, row.text_idx, row.position)
            same_text = toks[(toks.text_idx == row.text_idx) & ((toks.token_idx - e["token_idx"]).abs() <= r)]
            assert e["context_tokens"] == same_text.token_str.tolist()
            assert e["context_tokens"][e["context_index"]] == e["token"]
            assert e["token"] in e["context"]
        tokens = [t["token"] for t in s["top_tokens"]]
        assert tokens == list(dict.fromkeys(e["token"] for e in got))
        assert sum(t["count"] for t in s["top_tokens"]) == len(got)


def test_quantile_examples_lie_in_their_bins(summaries) -> None:
    seen = 0
    for s in summaries:
        for e in s["quantile_examples"]:
            assert e["bin_lower"] <= e["activation"]
            assert e["bin_upper"] is None or e["activation"] < e["bin_upper"]
            assert 0 < e["quantile"] < 1
            seen += 1
    assert seen > 0


def test_neighbours_equal_the_saved_matrices(sae_analysis, summaries) -> None:
    sim = np.load(sae_analysis.file("similarity"))
    phi = np.load(sae_analysis.file("cooccurrence"))
    counts = np.load(sae_analysis.file("cooccurrence_counts"))
    n = ANALYSIS_OPTIONS["n_neighbours"]
    for s in summaries:
        f = s["feature"]
        row = sim[f].astype(np.float64).copy()
        row[f] = -np.inf
        assert [x["value"] for x in s["similar_features"]] == pytest.approx(
            np.sort(row)[::-1][:n].tolist(), abs=1e-6
        )
        for x in s["similar_features"]:
            assert sim[f, x["feature"]] == pytest.approx(x["value"], abs=1e-6)
        prow = phi[f].astype(np.float64).copy()
        prow[f] = -np.inf
        assert [x["value"] for x in s["coactivating_features"]] == pytest.approx(
            np.sort(prow)[::-1][:n].tolist(), abs=1e-6
        )
        for x in s["coactivating_features"]:
            assert x["count"] == counts[f, x["feature"]]


def test_logit_effects_equal_decoder_times_unembedding(sae_analysis, summaries) -> None:
    W_dec = load_sae(sae_analysis.sae).W_dec.detach().double()
    W_U = AutoModelForCausalLM.from_pretrained(sae_analysis.model).lm_head.weight.detach().double()
    eff = (W_dec @ W_U.T).numpy()
    for s in summaries[::7]:
        f = s["feature"]
        promoted = s["logit_effects"]["promoted"]
        suppressed = s["logit_effects"]["suppressed"]
        assert [p["value"] for p in promoted] == pytest.approx(
            np.sort(eff[f])[::-1][: len(promoted)], rel=1e-4
        )
        assert [p["value"] for p in suppressed] == pytest.approx(np.sort(eff[f])[: len(suppressed)], rel=1e-4)
        assert all(eff[f, p["token_id"]] == pytest.approx(p["value"], rel=1e-4) for p in promoted)


def test_minilm_style_encoder_has_no_logit_effects() -> None:
    from interplab.sae.summaries import logit_effects, unembedding

    assert logit_effects(torch.zeros(3, 4), None) is None
    assert unembedding(torch.nn.Linear(2, 2)) is None
