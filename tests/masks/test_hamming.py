"""Hamming distances, neighbours, the whole-matrix distribution and matrix loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from interplab.common.errors import InterplabError
from interplab.masks.distribution import hamming_distribution
from interplab.masks.hamming import HammingIndex, exact_dtype, pairwise_counts, pairwise_hamming, top_k
from interplab.masks.matrix import load_matrix
from interplab.masks.neighbors import nearest_features


def brute_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros((len(a), len(b)), dtype=int)
    for i in range(len(a)):
        for j in range(len(b)):
            out[i, j] = sum(int(x != y) for x, y in zip(a[i], b[j], strict=True))
    return out


def test_pairwise_counts_match_explicit_loops() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((7, 13)) < 0.3
    b = rng.random((5, 13)) < 0.7
    assert np.array_equal(pairwise_counts(a, b), brute_counts(a, b))
    assert np.array_equal(pairwise_counts(a), brute_counts(a, a))


def test_pairwise_hamming_identical_to_scipy() -> None:
    rng = np.random.default_rng(1)
    m = rng.random((60, 301)) < 0.5
    assert np.array_equal(pairwise_hamming(m), cdist(m, m, metric="hamming"))


def test_exact_dtype_switches_to_float64_for_long_vectors() -> None:
    assert exact_dtype(4096) is np.float32
    assert exact_dtype(2**24) is np.float64


def test_counts_to_and_nearest_match_brute_force_with_ties() -> None:
    rng = np.random.default_rng(2)
    m = rng.random((40, 12)) < 0.5
    m[5] = m[17]  # a duplicate of the reference with a lower index
    m[30] = m[17]
    index = HammingIndex.build(m)
    brute = (m != m[17]).sum(axis=1)
    assert np.array_equal(index.counts_to(17), brute)
    nearest, counts = index.nearest(17, 10)
    order = np.lexsort((np.arange(40), brute))
    expected = [17, *[i for i in order if i != 17][:9]]
    assert nearest.tolist() == expected
    assert nearest[1:3].tolist() == [5, 30]  # exact ties broken by index
    assert np.array_equal(counts, brute)


def test_top_k_with_k_equal_n_is_a_full_stable_sort() -> None:
    counts = np.array([3, 1, 1, 0, 2])
    assert top_k(counts, 4, 5).tolist() == [4, 3, 1, 2, 0]


def test_neighborhood_nearest_other_feature() -> None:
    rng = np.random.default_rng(3)
    m = rng.random((25, 30)) < 0.5
    nb = nearest_features(HammingIndex.build(m), 4, 6)
    brute = (m != m[4]).sum(axis=1).astype(float)
    brute[4] = np.inf
    assert nb.nn_count == int(brute.min())
    assert nb.nn_index == int(np.argmin(brute))
    assert nb.indices[0] == 4
    assert np.allclose(nb.distances, (m[nb.indices] != m[4]).mean(axis=1))


def test_distribution_histogram_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    m = rng.random((30, 20)) < 0.4
    dist = hamming_distribution(m, max_features=100)
    c = brute_counts(m, m)
    iu = np.triu_indices(30, 1)
    assert np.array_equal(dist.histogram, np.bincount(c[iu], minlength=21))
    s = dist.summary()
    values = c[iu] / 20
    assert s["n_pairs"] == 435 and not s["subsampled"]
    assert s["mean"] == pytest.approx(values.mean())
    assert s["std"] == pytest.approx(values.std())
    assert s["min"] == values.min() and s["max"] == values.max()
    assert s["quantiles"]["p50"] == np.quantile(values, 0.5, method="inverted_cdf")
    sub = hamming_distribution(m, max_features=10, seed=1)
    assert sub.subsampled and len(sub.features_used) == 10 and sub.n_pairs == 45


def test_load_matrix_axes_and_validation(tmp_path) -> None:
    w = torch.tensor([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]])
    p = tmp_path / "w.pt"
    torch.save(w, p)
    cols = load_matrix(p)
    assert cols.mask.tolist() == [[True, False], [False, False], [True, True]]
    assert cols.shape == (2, 3) and cols.n_features == 3 and cols.n_positions == 2
    rows = load_matrix(p, axis="rows")
    assert rows.mask.tolist() == [[True, False, True], [False, False, True]]
    torch.save({"weight": w}, tmp_path / "d.pt")
    assert load_matrix(tmp_path / "d.pt").n_features == 3

    cases = {
        "missing.pt": "not found",
        "dense.pt": "no zeros",
        "zeros.pt": "all zeros",
        "vec.pt": "expected a 2-D matrix",
        "junk.pt": "not a readable torch .pt file",
    }
    torch.save(torch.ones(3, 3), tmp_path / "dense.pt")
    torch.save(torch.zeros(3, 3), tmp_path / "zeros.pt")
    torch.save(torch.ones(3), tmp_path / "vec.pt")
    (tmp_path / "junk.pt").write_text("not a tensor")
    for name, message in cases.items():
        with pytest.raises(InterplabError, match=message):
            load_matrix(tmp_path / name)
    with pytest.raises(InterplabError, match="axis"):
        load_matrix(p, axis="diagonal")
