"""Bootstrap intervals, IQM, P(improvement), permutation tests, BH-FDR and seeds needed, checked
against scipy and hand-worked cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from interplab.runs import bootstrap as bs


@pytest.mark.parametrize("method", ["percentile", "bca"])
@pytest.mark.parametrize("statistic", ["mean", "iqm"])
def test_interval_matches_scipy_bootstrap(method: str, statistic: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, size=(12, 4))  # skewed, so BCa differs from percentile
    n_boot = 20_000
    ours = bs.bootstrap_interval(x, statistic, 0.9, n_boot, method, rng=1)
    fn = np.mean if statistic == "mean" else (lambda a, axis: stats.trim_mean(a, 0.25, axis=axis))
    for j in range(x.shape[1]):
        ref = stats.bootstrap(
            (x[:, j],), fn, n_resamples=n_boot, method=method, confidence_level=0.9, rng=j, vectorized=True
        )
        # Monte-Carlo error of a bootstrap quantile with 20 000 resamples: well under 0.1 of the spread
        spread = ref.confidence_interval.high - ref.confidence_interval.low
        assert abs(ours.low[j] - ref.confidence_interval.low) < 0.08 * spread
        assert abs(ours.high[j] - ref.confidence_interval.high) < 0.08 * spread
    assert np.allclose(ours.estimate, fn(x, axis=0))


def test_same_resamples_serve_every_step() -> None:
    """A resample is a set of runs: steps that are shifted copies get shifted intervals."""
    rng = np.random.default_rng(0)
    col = rng.normal(size=8)
    x = np.stack([col, col + 5.0, 2 * col], axis=1)
    iv = bs.bootstrap_interval(x, "mean", 0.95, 500, "percentile", rng=0)
    assert iv.low[1] == pytest.approx(iv.low[0] + 5.0)
    assert iv.low[2] == pytest.approx(2 * iv.low[0])


def test_one_run_has_no_interval() -> None:
    iv = bs.bootstrap_interval(np.array([[1.0, 2.0]]), "mean", 0.95, 200)
    assert np.isnan(iv.low).all() and np.isnan(iv.high).all()
    assert iv.estimate.tolist() == [1.0, 2.0]
    assert np.isnan(bs.standard_error(np.array([[1.0]]))).all()


def test_coverage_on_normal_data() -> None:
    """95 % percentile intervals of the mean cover the true mean in about 95 % of trials."""
    rng = np.random.default_rng(12345)
    trials, n = 400, 30
    x = rng.normal(loc=1.0, size=(n, trials))  # each column one independent trial
    iv = bs.bootstrap_interval(x, "mean", 0.95, 1000, "percentile", rng=7)
    cover = np.mean((iv.low <= 1.0) & (iv.high >= 1.0))
    # binomial sd at 400 trials ≈ 1.1 %; the percentile bootstrap undercovers slightly at n=30
    assert 0.91 <= cover <= 0.98


def test_iqm_hand_worked() -> None:
    # n = 8: cut ⌊8/4⌋ = 2 each side → mean of 3, 4, 5, 100 → 28
    x = np.array([1, 2, 3, 4, 5, 100, 200, 300], dtype=float)
    assert bs.iqm(x) == pytest.approx((3 + 4 + 5 + 100) / 4)
    # n = 5: cut 1 each side → mean of 2, 3, 4
    assert bs.iqm(np.array([5.0, 1.0, 3.0, 2.0, 4.0])) == pytest.approx(3.0)
    assert bs.iqm(np.array([[1.0], [2.0], [3.0]]), axis=0)[0] == pytest.approx(2.0)  # n=3: no cut


def test_probability_of_improvement_hand_worked() -> None:
    # pairs (x, y): 3>1 3>2 3=3 | 2>1 2=2 2<3 → 3 wins and 2 ties: (3 + 0.5 * 2) / 6
    assert bs.probability_of_improvement([3.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(4 / 6)
    p, lo, hi = bs.probability_of_improvement_interval(np.arange(10.0) + 3, np.arange(10.0), 0.95, 500, rng=0)
    u = stats.mannwhitneyu(np.arange(10.0) + 3, np.arange(10.0)).statistic / 100
    assert p == pytest.approx(u)
    assert lo <= p <= hi


def test_permutation_test_hand_worked() -> None:
    # x = 1,2,3 vs y = 4,5,6: of the C(6,3) = 20 splits only the 2 extreme ones reach |Δ| = 3
    assert bs.permutation_test(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))[0] == pytest.approx(0.1)
    # x = 1,2 vs y = 3,4: |Δ| = 2; splits {1,2},{3,4} are the 2 of 6 that reach it
    assert bs.permutation_test(np.array([1.0, 2]), np.array([3.0, 4]))[0] == pytest.approx(2 / 6)


def test_permutation_test_matches_scipy_per_column() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(5, 3)), rng.normal(0.8, size=(6, 3))
    ours = bs.permutation_test(x, y)
    for j in range(3):
        ref = stats.permutation_test(
            (x[:, j], y[:, j]),
            lambda a, b, axis: np.abs(np.mean(a, axis=axis) - np.mean(b, axis=axis)),
            permutation_type="independent",
            alternative="greater",
            n_resamples=np.inf,
            vectorized=True,
        )
        assert ours[j] == pytest.approx(ref.pvalue)


def test_monte_carlo_permutation_close_to_exact() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(9, 2)), rng.normal(1.0, size=(9, 2))
    exact = bs.permutation_test(x, y)  # C(18, 9) = 48 620 > 20 000 default: forced exact below
    exact = bs.permutation_test(x, y, max_exact=100_000)
    mc = bs.permutation_test(x, y, n_perm=20_000, max_exact=0, rng=1)
    assert np.allclose(mc, exact, atol=0.01)
    assert math.comb(18, 9) > 20_000


def test_bh_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(size=50) ** 3
    assert np.allclose(bs.bh_adjust(p), stats.false_discovery_control(p, method="bh"))
    with_nan = np.r_[p[:5], np.nan]
    assert np.allclose(bs.bh_adjust(with_nan)[:5], stats.false_discovery_control(p[:5], method="bh"))
    assert np.isnan(bs.bh_adjust(with_nan)[5])


def test_seeds_needed() -> None:
    # textbook: Cohen's d = 1, α = 0.05, power 0.8 → 17 per group (two-sided t-test)
    assert bs.seeds_needed(1.0, 1.0) == 17
    # d = 0.5 → 64 per group
    assert bs.seeds_needed(0.5, 1.0) == 64
    n = bs.seeds_needed(0.3, 0.7, power=0.9)
    assert bs.t_test_power(n, 0.3, 0.7) >= 0.9 > bs.t_test_power(n - 1, 0.3, 0.7)
    assert bs.seeds_needed(0.0, 1.0) is None
    assert bs.seeds_needed(1.0, math.nan) is None


def test_power_by_simulation() -> None:
    """The noncentral-t power agrees with simulated t-tests."""
    rng = np.random.default_rng(0)
    n, delta, trials = 6, 1.2, 4000
    a = rng.normal(size=(trials, n))
    b = rng.normal(delta, size=(trials, n))
    p = stats.ttest_ind(a, b, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(bs.t_test_power(n, delta, 1.0), abs=0.03)


def test_jackknife_general_matches_loop() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 2))
    jack = bs._jackknife(x, "iqm")
    for i, j in itertools.product(range(6), range(2)):
        assert jack[i, j] == pytest.approx(stats.trim_mean(np.delete(x[:, j], i), 0.25))
