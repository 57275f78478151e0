"""Co-occurrence counts and metrics against brute force (loops, np.corrcoef) — in memory and from a
stored analysis database."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from analyze_support import D_SAE, dense_from_db

from interplab.sae.cooccurrence import CooccurrenceCounts, dense_metric, sparse_metric, topk_neighbours


def _firing(seed: int = 0, n: int = 400, d: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed)
    F = rng.random((n, d)) < rng.random(d) * 0.3
    F[:, 2] = False  # never fires
    F[:, 3] = True  # always fires
    return F


def _accumulate(F: np.ndarray, **kw) -> CooccurrenceCounts:
    acc = CooccurrenceCounts(F.shape[1], **kw)
    t, f = np.nonzero(F)
    for a, b in ((0, 123), (123, 300), (300, F.shape[0])):
        m = (t >= a) & (t < b)
        acc.update(t[m], f[m], b - a, a)
    return acc


def _brute_counts(F: np.ndarray) -> np.ndarray:
    d = F.shape[1]
    C = np.zeros((d, d), np.int64)
    for i in range(d):
        for j in range(d):
            C[i, j] = int(np.sum(F[:, i] & F[:, j]))
    return C


@pytest.mark.parametrize(
    "kw", [{}, {"use_kernel": False}, {"dense_limit": 5}], ids=["kernel", "scipy-dense", "sparse"]
)
def test_counts_equal_brute_force(kw) -> None:
    F = _firing()
    acc = _accumulate(F, **kw)
    C = acc.counts()
    C = C.toarray() if sp.issparse(C) else C
    np.testing.assert_array_equal(C, _brute_counts(F))
    np.testing.assert_array_equal(acc.firing_counts(), F.sum(0))
    assert acc.n_tokens == F.shape[0]


def _brute_metric(F: np.ndarray, metric: str) -> np.ndarray:
    n_tok, d = F.shape
    out = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            a, b = F[:, i], F[:, j]
            both, ni, nj = int(np.sum(a & b)), int(a.sum()), int(b.sum())
            if metric == "jaccard":
                union = int(np.sum(a | b))
                out[i, j] = both / union if union else 0.0
            elif metric == "pmi":
                out[i, j] = math.log(both * n_tok / (ni * nj)) if both else -math.inf
    return out


def test_phi_equals_corrcoef_with_zero_variance_as_zero() -> None:
    F = _firing(1)
    C = _brute_counts(F)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.corrcoef(F.T.astype(np.float64))
    ref = np.nan_to_num(ref, nan=0.0)  # zero-variance features (2 and 3): phi = 0 by definition
    np.testing.assert_allclose(dense_metric(C, F.shape[0], "phi"), ref, atol=1e-6)
    assert dense_metric(C, F.shape[0], "phi")[2, 2] == 0.0 and dense_metric(C, F.shape[0], "phi")[3, 5] == 0.0


@pytest.mark.parametrize("metric", ["jaccard", "pmi"])
def test_jaccard_and_pmi_equal_loops(metric: str) -> None:
    F = _firing(2)
    got = dense_metric(_brute_counts(F), F.shape[0], metric)
    np.testing.assert_allclose(got, _brute_metric(F, metric), rtol=1e-5)


@pytest.mark.parametrize("metric", ["phi", "jaccard", "pmi"])
def test_sparse_metric_equals_dense_on_stored_pairs(metric: str) -> None:
    F = _firing(3)
    C = _brute_counts(F)
    dense = dense_metric(C, F.shape[0], metric)
    s = sparse_metric(sp.csr_array(C), F.shape[0], metric)
    i, j = np.nonzero(C)
    np.testing.assert_allclose(s.toarray()[i, j], dense[i, j], rtol=1e-6)


def test_topk_neighbours_exclude_self_and_sort() -> None:
    rng = np.random.default_rng(0)
    M = rng.random((25, 25)).astype(np.float32)
    idx, val = topk_neighbours(M, 4)
    for r in range(25):
        order = [c for c in np.argsort(-M[r], kind="stable") if c != r][:4]
        np.testing.assert_array_equal(idx[r], order)
        np.testing.assert_allclose(val[r], M[r, order])
    sidx, _sval = topk_neighbours(sp.csr_array(M), 4)
    np.testing.assert_array_equal(sidx, idx)


@pytest.mark.parametrize("block", [1, 7, 1 << 22])
def test_sparse_passes_in_row_blocks_equal_dense(block: int, monkeypatch) -> None:
    """The sparse metric and top-k work in row blocks of about ``SPARSE_BLOCK`` stored entries; any
    block size gives the dense path's values and neighbours (ties by column, rows with few
    candidates padded)."""
    monkeypatch.setattr("interplab.sae.cooccurrence.SPARSE_BLOCK", block)
    F = _firing(4)
    C = _brute_counts(F)
    dense = dense_metric(C, F.shape[0], "phi")
    s = sparse_metric(sp.csr_array(C), F.shape[0], "phi")
    i, j = np.nonzero(C)
    np.testing.assert_allclose(s.toarray()[i, j], dense[i, j], rtol=1e-6)
    M = np.round(np.random.default_rng(5).random((40, 40)), 1).astype(np.float32)  # many ties
    M[np.random.default_rng(6).random((40, 40)) < 0.7] = 0.0  # rows with fewer than k candidates
    sidx, sval = topk_neighbours(sp.csr_array(M), 6)
    for r in range(40):
        cand = [c for c in np.argsort(-M[r], kind="stable") if c != r and M[r, c] != 0][:6]
        np.testing.assert_array_equal(sidx[r, : len(cand)], cand)
        np.testing.assert_array_equal(sidx[r, len(cand) :], -1)
        np.testing.assert_allclose(sval[r, : len(cand)], M[r, cand])


def test_stored_matrices_equal_recomputation_from_database(sae_analysis) -> None:
    F = dense_from_db(sae_analysis.db) != 0
    C = _brute_counts(F)
    np.testing.assert_array_equal(np.load(sae_analysis.file("cooccurrence_counts")), C)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.nan_to_num(np.corrcoef(F.T.astype(np.float64)), nan=0.0)
    np.testing.assert_allclose(np.load(sae_analysis.file("cooccurrence")), phi, atol=1e-6)
    np.testing.assert_allclose(
        np.load(sae_analysis.file("cooccurrence_jaccard")), _brute_metric(F, "jaccard"), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.load(sae_analysis.file("cooccurrence_pmi")), _brute_metric(F, "pmi"), rtol=1e-5
    )
    assert C.shape == (D_SAE, D_SAE)
