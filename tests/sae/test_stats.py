"""Streaming per-feature statistics against brute force over the same rows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from interplab.sae.stats import HIST_EDGES, QUANTILES, FeatureStats, QuantileExamples


def _random_rows(seed: int = 0, n_tokens: int = 300, d: int = 12):
    rng = np.random.default_rng(seed)
    F = (rng.random((n_tokens, d)) < rng.random(d) * 0.5) * rng.gamma(1.0, 1.0, (n_tokens, d))
    F[:, 0] = 0.0  # dead feature
    F[5:9, 1] = 2.5  # ties
    F = F.astype(np.float32)
    t, f = np.nonzero(F)
    return F, t, f, F[t, f]


def _fed(F, t, f, v, k, cuts=(0, 97, 201, 300), row_order: str = "random") -> FeatureStats:
    st = FeatureStats(F.shape[1], k)
    for a, b in itertools.pairwise(cuts):
        m = (t >= a) & (t < b)
        if row_order == "random":  # row order inside a shard is irrelevant
            order = np.random.default_rng(a).permutation(m.sum())
        else:  # as shards store them: by (feature, token)
            order = np.lexsort((t[m], f[m]))
        st.update(t[m][order], f[m][order], v[m][order], b - a, a)
    return st


@pytest.mark.parametrize("row_order", ["random", "feature-major"])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_feature_stats_equal_brute_force(k: int, row_order: str) -> None:
    F, t, f, v = _random_rows()
    F[10:14, 5] = -0.5  # negative activations (JumpReLU with a negative threshold) sort correctly
    t, f = np.nonzero(F)
    v = F[t, f]
    st = _fed(F, t, f, v, k, row_order=row_order)
    n, d = F.shape
    assert st.n_tokens == n
    np.testing.assert_array_equal(st.count, (F != 0).sum(0))
    np.testing.assert_allclose(st.sum, F.astype(np.float64).sum(0), rtol=1e-12)
    np.testing.assert_allclose(st.sum_sq, (F.astype(np.float64) ** 2).sum(0), rtol=1e-12)
    np.testing.assert_array_equal(st.max, F.max(0))
    np.testing.assert_array_equal(st.l0_hist, np.bincount((F != 0).sum(1), minlength=d + 1))
    for j in range(d):
        rows = [(-F[i, j], i) for i in range(n) if F[i, j] != 0]
        rows.sort()
        want = rows[:k]
        got = [(-st.top_values[j, r], st.top_tokens[j, r]) for r in range(k) if st.top_tokens[j, r] >= 0]
        assert got == want, j
        nz = F[:, j][F[:, j] != 0]
        hist, _ = np.histogram(np.clip(nz, HIST_EDGES[0], HIST_EDGES[-1] * 0.999), bins=HIST_EDGES)
        np.testing.assert_array_equal(st.hist[j], hist)
    dens = (F != 0).mean(0)
    np.testing.assert_allclose(st.density, dens)
    with np.errstate(invalid="ignore"):
        mean = np.where(dens > 0, F.sum(0) / (F != 0).sum(0), 0.0)
    np.testing.assert_allclose(st.mean_active, mean, rtol=1e-6)


def splitmix64(x: int) -> int:
    """SplitMix64 finaliser in plain Python integers (reference for the vectorised hash)."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_quantile_examples_are_the_bottom_k_hash_rows_of_the_quantile_bin() -> None:
    F, t, f, v = _random_rows(1)
    st = _fed(F, t, f, v, 3)
    q = QuantileExamples(st)
    for a, b in ((0, 150), (150, 300)):
        m = (t >= a) & (t < b)
        q.update(t[m], f[m], v[m])
    for j in range(F.shape[1]):
        nz = np.sort(F[:, j][F[:, j] != 0])
        if nz.size == 0:
            assert (q.token[j] == -1).all()
            continue
        for qi, quant in enumerate(QUANTILES):
            exact = nz[max(int(np.ceil(quant * nz.size)), 1) - 1]  # inverted-CDF quantile
            b = int(np.clip(np.searchsorted(HIST_EDGES, exact, side="right") - 1, 0, HIST_EDGES.size - 2))
            in_bin = [
                i
                for i in range(F.shape[0])
                if F[i, j] != 0
                and np.clip(np.searchsorted(HIST_EDGES, F[i, j], side="right") - 1, 0, HIST_EDGES.size - 2)
                == b
            ]
            want = sorted(in_bin, key=lambda i, j=j: (splitmix64((i << 32) | j), i))[: q.per_quantile]
            got = q.token[j, qi]
            assert got[got >= 0].tolist() == want
            np.testing.assert_array_equal(q.value[j, qi][: len(want)], F[want, j])


def test_quantile_samples_are_spread_over_the_corpus_and_mergeable() -> None:
    """One feature firing on 100 000 tokens with equal values: the first-token rule would pick the
    first texts; the hash sample is uniform (mean position near the middle) and the same whether the
    rows come in one call, in shards in any order, or as per-shard candidates."""
    from interplab.sae.partials import quantile_candidates

    n = 100_000
    st = FeatureStats(1, 1)
    t, f, v = np.arange(n), np.zeros(n, np.int64), np.full(n, 0.5, np.float32)
    st.update(t, f, v, n)
    one = QuantileExamples(st, per_quantile=50)
    one.update(t, f, v)
    picked = one.token[0, 0]
    assert (
        (picked >= 0).all() and abs(picked.mean() / n - 0.5) < 0.15 and picked.min() < n / 10 < picked.max()
    )
    parts = QuantileExamples(st, per_quantile=50)
    for a in (60_000, 0, 30_000):
        sl = slice(a, a + 30_000 if a < 60_000 else n)
        parts.update(*quantile_candidates(t[sl], f[sl], v[sl], 50))
    np.testing.assert_array_equal(parts.token, one.token)
