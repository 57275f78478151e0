"""SAE encode/decode against the formulas written out in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.sae.model import SAE, SAEConfig


def _np(w):
    return {k: v.double().numpy() for k, v in w.items()}


def _pre(x, w, apply_b_dec):
    x = x - w["b_dec"] if apply_b_dec else x
    return x @ w["W_enc"] + w["b_enc"]


def test_standard_encode_decode_matches_formula(random_sae_weights):
    w = random_sae_weights(16, 40, seed=3)
    cfg = SAEConfig(d_in=16, d_sae=40, architecture="standard", apply_b_dec_to_input=True)
    sae = SAE.from_weights(cfg, **{k: v for k, v in w.items() if k != "threshold"})
    x = torch.randn(50, 16, generator=torch.Generator().manual_seed(0))
    n = _np(w)
    f_ref = np.maximum(_pre(x.double().numpy(), n, True), 0)
    np.testing.assert_allclose(sae.encode(x).detach().numpy(), f_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sae(x).detach().numpy(), f_ref @ n["W_dec"] + n["b_dec"], rtol=1e-5, atol=1e-5)


def test_topk_keeps_exactly_k_largest(random_sae_weights):
    w = random_sae_weights(16, 40, seed=4)
    w["b_enc"] = w["b_enc"] + 5.0  # all pre-activations positive → exactly k active
    cfg = SAEConfig(d_in=16, d_sae=40, architecture="topk", k=5)
    sae = SAE.from_weights(cfg, **{k: v for k, v in w.items() if k != "threshold"})
    x = torch.randn(30, 16, generator=torch.Generator().manual_seed(1))
    pre = _pre(x.double().numpy(), _np(w), False)
    ref = np.zeros_like(pre)
    for i, row in enumerate(pre):  # brute force per row
        top = np.argsort(-row)[:5]
        ref[i, top] = np.maximum(row[top], 0)
    f = sae.encode(x).detach().numpy()
    np.testing.assert_allclose(f, ref, rtol=1e-5, atol=1e-6)
    assert ((f != 0).sum(axis=1) == 5).all()


def test_jumprelu_formula(random_sae_weights):
    w = random_sae_weights(16, 40, seed=5)
    cfg = SAEConfig(d_in=16, d_sae=40, architecture="jumprelu", apply_b_dec_to_input=False)
    sae = SAE.from_weights(cfg, **w)
    x = torch.randn(30, 16, generator=torch.Generator().manual_seed(2))
    n = _np(w)
    pre = _pre(x.double().numpy(), n, False)
    ref = pre * (pre > n["threshold"])
    np.testing.assert_allclose(sae.encode(x).detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    assert (ref != 0).any() and (ref == 0).any()


def test_perfect_sae_reconstructs_exactly(perfect_sae):
    sae = perfect_sae(8)
    x = torch.randn(20, 8)
    assert torch.equal(sae(x), x)
    assert ((sae.encode(x) != 0).sum(dim=1) == 8).all()


def test_constant_norm_rescale_forward_returns_input_scale(perfect_sae):
    sae = perfect_sae(8)
    sae.cfg.normalize_activations = "constant_norm_rescale"
    x = torch.randn(10, 8) * 7
    f = sae.encode(x)
    # features live in the rescaled space (‖x'‖ = sqrt(d_in)), the reconstruction in the input's
    norms = (f[:, :8] - f[:, 8:]).norm(dim=1)
    torch.testing.assert_close(norms, torch.full((10,), 8**0.5))
    torch.testing.assert_close(sae(x), x)


def test_dtype_and_shape_errors(random_sae_weights):
    w = random_sae_weights(16, 40)
    cfg = SAEConfig(d_in=16, d_sae=40, architecture="standard")
    sae = SAE.from_weights(cfg, W_enc=w["W_enc"], W_dec=w["W_dec"], dtype=torch.bfloat16)
    assert sae.encode(torch.randn(3, 16)).dtype == torch.bfloat16
    with pytest.raises(InterplabError, match=r"W_dec has shape \[16, 40\], expected \[40, 16\]"):
        SAE.from_weights(cfg, W_enc=w["W_enc"], W_dec=w["W_dec"].T)
    with pytest.raises(InterplabError, match="input has width 5, expected d_in=16"):
        sae.encode(torch.randn(2, 5))
    with pytest.raises(InterplabError, match="k ≤ d_sae=40"):
        SAEConfig(d_in=16, d_sae=40, architecture="topk", k=41)
    with pytest.raises(InterplabError, match="unknown SAE architecture 'matching_pursuit'"):
        SAEConfig(d_in=16, d_sae=40, architecture="matching_pursuit")
    with pytest.raises(InterplabError, match="threshold"):
        SAE.from_weights(SAEConfig(d_in=16, d_sae=40, architecture="jumprelu"), w["W_enc"], w["W_dec"])
