"""Decoder similarity against numpy/scipy recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from interplab.sae.formats import load_sae
from interplab.sae.similarity import similarity_matrix, similarity_topk


def _W(seed: int = 0) -> np.ndarray:
    W = np.random.default_rng(seed).normal(size=(30, 8)).astype(np.float32)
    W[4] = 0.0  # a zero decoder row: cosine 0 with everything
    return W


def test_cosine_dot_euclidean_equal_reference() -> None:
    W = _W()
    norms = np.linalg.norm(W, axis=1)
    ref_cos = np.zeros((30, 30))
    for i in range(30):
        for j in range(30):
            if norms[i] > 0 and norms[j] > 0:
                ref_cos[i, j] = W[i] @ W[j] / (norms[i] * norms[j])
    np.testing.assert_allclose(similarity_matrix(torch.from_numpy(W), "cosine", chunk=7), ref_cos, atol=1e-6)
    np.testing.assert_allclose(similarity_matrix(W, "dot"), W @ W.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(similarity_matrix(W, "euclidean"), cdist(W, W), atol=1e-4)


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_topk_equals_full_sort(metric: str) -> None:
    W = _W(1)
    full = similarity_matrix(W, metric).astype(np.float64)
    idx, val = similarity_topk(W, 5, metric, chunk=8)
    for r in range(30):
        row = full[r].copy()
        row[r] = np.nan
        cand = [c for c in range(30) if c != r]
        key = sorted(cand, key=lambda c: -row[c] if metric != "euclidean" else row[c])[:5]
        np.testing.assert_allclose(val[r], row[key], rtol=1e-4, atol=1e-5)
        assert r not in idx[r]


def test_stored_similarity_matrix_equals_decoder_cosine(sae_analysis) -> None:
    W = load_sae(sae_analysis.sae).W_dec.detach().numpy().astype(np.float64)
    Wn = W / np.linalg.norm(W, axis=1, keepdims=True)
    np.testing.assert_allclose(np.load(sae_analysis.file("similarity")), Wn @ Wn.T, atol=1e-5)
    idx = np.load(sae_analysis.file("similarity_topk_indices"))
    val = np.load(sae_analysis.file("similarity_topk_values"))
    for r in range(W.shape[0]):
        row = Wn @ Wn[r]
        row[r] = -np.inf
        np.testing.assert_allclose(val[r], np.sort(row)[::-1][: idx.shape[1]], atol=1e-5)
