"""Streaming metrics against brute-force numpy recomputation over all tokens at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interplab.common.models import load_model
from interplab.sae.corpus import iter_batches, tokenize_corpus
from interplab.sae.hooks import resolve_hook
from interplab.sae.metrics import (
    NO_LM_HEAD_SUBSTITUTE,
    AblationStats,
    ReconstructionStats,
    SparsityStats,
    batch_ablation,
)
from interplab.sae.model import SAE, SAEConfig


def _batches(arr, sizes):
    start = 0
    for s in sizes:
        yield arr[start : start + s]
        start += s


def test_sparsity_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    f = torch.relu(torch.randn(300, 50, generator=g) - 1.0)
    f[:, [3, 17]] = 0  # never fire
    f[:, 5] = 0
    f[7, 5] = 0.5  # fires once: frequency 1/300
    f[:, 9] = 1.0  # dense
    stats = SparsityStats(50)
    for chunk in _batches(f, [1, 64, 100, 135]):
        stats.update(chunk)
    r = stats.result()
    a = f.double().numpy()
    l0 = (a != 0).sum(1)
    l1 = np.abs(a).sum(1)
    freq = (a != 0).mean(0)
    s, d = r["sparsity"], r["dead_features"]
    assert s["l0_mean"] == pytest.approx(l0.mean()) and s["l0_std"] == pytest.approx(l0.std())
    assert s["l1_mean"] == pytest.approx(l1.mean()) and s["l1_std"] == pytest.approx(l1.std())
    np.testing.assert_allclose(s["feature_frequency"], freq)
    assert s["n_tokens"] == 300 and s["n_features"] == 50
    assert d["dead_indices"] == [3, 17] and d["n_dead"] == 2 and d["pct_dead"] == pytest.approx(4.0)
    assert d["n_frequency_below_1e-5"] == int((freq < 1e-5).sum()) == 2
    assert d["dense_indices"] == np.flatnonzero(freq > 0.1).tolist()
    assert 9 in d["dense_indices"]


def test_reconstruction_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 16, generator=g) * 3 + 5
    x_hat = x + torch.randn(200, 16, generator=g)
    sizes = [50, 70, 80]
    stats = ReconstructionStats(16)
    for xb, hb in zip(_batches(x, sizes), _batches(x_hat, sizes), strict=True):
        stats.update(xb, hb)
    r = stats.result()
    a, b = x.double().numpy(), x_hat.double().numpy()
    sq = ((a - b) ** 2).sum(1)
    assert r["mse_per_element"] == pytest.approx(((a - b) ** 2).mean())
    assert r["mse_per_token"] == pytest.approx(sq.mean()) and "mse" not in r
    assert r["explained_variance"] == pytest.approx(1 - sq.mean() / a.var(axis=0).sum())
    legacy = []
    for xb, hb in zip(_batches(a, sizes), _batches(b, sizes), strict=True):
        legacy.extend(1 - ((xb - hb) ** 2).sum(1) / ((xb - xb.mean(0)) ** 2).sum(1))
    assert r["explained_variance_legacy"] == pytest.approx(np.mean(legacy))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert r["cosine_similarity"] == pytest.approx(cos.mean())
    assert r["l2_ratio"] == pytest.approx((np.linalg.norm(b, axis=1) / np.linalg.norm(a, axis=1)).mean())


def test_dead_features_are_exactly_those_never_fired(perfect_sae):
    sae = perfect_sae(8)
    with torch.no_grad():
        sae.b_enc[[1, 4, 12]] = -1e6  # can never fire
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(2))
    stats = SparsityStats(16)
    f = sae.encode(x)
    stats.update(f)
    never = np.flatnonzero((f.numpy() != 0).sum(0) == 0).tolist()
    assert stats.result()["dead_features"]["dead_indices"] == never == [1, 4, 12]


def test_ablation_stats_formulas():
    stats = AblationStats()
    stats.update(
        clean_loss=torch.tensor([1.0, 2.0]),
        zero_loss=torch.tensor([5.0, 7.0]),
        sae_loss=torch.tensor([2.0, 2.0]),
        kl_zero=torch.tensor([4.0, 2.0]),
        kl_sae=torch.tensor([1.0, 0.5]),
    )
    stats.update(*(torch.tensor([v]) for v in (3.0, 9.0, 5.0, 3.0, 0.0)))
    r = stats.result()
    clean, zero, sae = 2.0, 7.0, 3.0
    assert (
        r["baseline_loss"] == clean
        and r["zero_ablation_loss"] == zero
        and r["sae_reconstruction_loss"] == sae
    )
    assert r["loss_recovered"] == pytest.approx((zero - sae) / (zero - clean))
    assert r["kl_score"] == pytest.approx((3.0 - 0.5) / 3.0)
    assert r["substitute"] is None and r["n_tokens"] == 3


@pytest.fixture(scope="module")
def llama(tiny_models):
    return load_model(tiny_models["llama"])


def test_batch_ablation_matches_independent_forward(llama, tiny_texts, random_sae_weights):
    """Zero-ablating blocks.0.hook_resid_pre of Llama = running it on zero input embeddings; the CE
    and KL are recomputed here from the logits of plain forward passes."""
    w = tokenize_corpus(llama.tokenizer, tiny_texts[:6], context_size=20)
    batch = next(iter_batches(w, 6))
    hp = resolve_hook(llama, "hook_resid_pre", 0)
    weights = random_sae_weights(32, 64, seed=7)
    sae = SAE.from_weights(SAEConfig(d_in=32, d_sae=64, architecture="standard"), **weights)
    sae.requires_grad_(False)
    d = batch_ablation(llama, hp, sae, batch, convention="interplab")
    m = llama.model
    with torch.no_grad():
        emb = m.get_input_embeddings()(batch.input_ids)
        clean = m(inputs_embeds=emb, attention_mask=batch.attention_mask).logits
        zero = m(inputs_embeds=torch.zeros_like(emb), attention_mask=batch.attention_mask).logits
        spliced = m(inputs_embeds=sae(emb), attention_mask=batch.attention_mask).logits
    valid = (batch.attention_mask[:, :-1] == 1) & (batch.attention_mask[:, 1:] == 1)
    targets = batch.input_ids[:, 1:][valid]

    def ce(logits):
        return F.cross_entropy(logits[:, :-1][valid], targets, reduction="none")

    def kl(logits):
        p = torch.softmax(clean[:, :-1][valid].double(), -1)
        q = torch.softmax(logits[:, :-1][valid].double(), -1)
        return (p * (p.log() - q.log())).sum(-1)

    torch.testing.assert_close(d["clean_loss"], ce(clean), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d["zero_loss"], ce(zero), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d["sae_loss"], ce(spliced), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d["kl_zero"].double(), kl(zero), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(d["kl_sae"].double(), kl(spliced), rtol=1e-4, atol=1e-5)
    assert d["clean_loss"].numel() == int(valid.sum())
    # HF's own loss (mean CE over the same shifted positions) agrees
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    with torch.no_grad():
        hf = m(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels).loss
    assert float(d["clean_loss"].mean()) == pytest.approx(float(hf), rel=1e-5)


def test_no_lm_head_substitute(tiny_models, tiny_texts, perfect_sae):
    bert = load_model(tiny_models["bert"])
    w = tokenize_corpus(bert.tokenizer, tiny_texts[:4], context_size=16)
    batch = next(iter_batches(w, 4))
    hp = resolve_hook(bert, "hook_resid_post", 0)
    d, act = batch_ablation(bert, hp, perfect_sae(32), batch, return_activations=True)
    assert act.shape == (*batch.input_ids.shape, 32)
    stats = AblationStats.for_model(bert)
    stats.update(**d)
    r = stats.result()
    assert r["substitute"] == NO_LM_HEAD_SUBSTITUTE
    assert r["baseline_loss"] == 0 and r["sae_reconstruction_loss"] == pytest.approx(0, abs=1e-10)
    assert r["zero_ablation_loss"] > 0 and r["loss_recovered"] == pytest.approx(1.0)
    # zero-ablation MSE recomputed from plain forwards
    with torch.no_grad():
        clean = bert.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)[0]
    mask = batch.token_mask
    assert float(d["clean_loss"].sum()) == 0 and d["zero_loss"].numel() == int(mask.sum())
    assert clean[mask].shape[0] == d["zero_loss"].numel()
