"""Vectorised statistics across seeds: bootstrap intervals, IQM, probability of improvement,
permutation tests with false-discovery-rate control, and the seeds a comparison needs.

Every function takes a matrix ``x`` of shape ``(n_runs, n_steps)`` (one row per run, one column per
step; a final value is a one-column matrix) and works on all columns at once. A bootstrap resample
draws whole runs (rows) with replacement, and the *same* draws serve every step, so a resampled
curve is the curve of a resampled set of seeds. Comparing groups resamples each group on its own
with its own size fixed: the stratified bootstrap of Agarwal et al. (2021), the strata being groups.

Formulas (``n`` runs, ``B`` resamples, ``θ̂`` the statistic on the data, ``θ*_b`` on resample ``b``):

* percentile interval: the ``α/2`` and ``1-α/2`` quantiles of ``θ*`` (linear interpolation);
* BCa: ``z0 = Φ⁻¹(#{θ*_b < θ̂}/B)``, jackknife acceleration
  ``a = Σ(θ̄₍.₎ − θ₍ᵢ₎)³ / (6 (Σ(θ̄₍.₎ − θ₍ᵢ₎)²)^{3/2})``, then the quantiles
  ``Φ(z0 + (z0 + z_q)/(1 − a (z0 + z_q)))`` for ``q = α/2, 1-α/2`` — as ``scipy.stats.bootstrap``;
* IQM: the mean of the middle half, ``scipy.stats.trim_mean(x, 0.25)`` (``⌊n/4⌋`` cut each side);
* P(X > Y) = (#{x_i > y_j} + ½ #{x_i = y_j}) / (n m) — the Mann–Whitney U over n m;
* permutation test: difference of means, two-sided; exact over every split when there are at most
  ``max_exact`` of them, else ``n_perm`` random splits with ``p = (1 + #{|T*| ≥ |T|}) / (1 + n_perm)``;
* Benjamini–Hochberg adjusted p-values, as ``scipy.stats.false_discovery_control(p, method="bh")``;
* seeds needed: the smallest n per group at which a two-sided two-sample t-test at level α detects
  the difference δ with the given power, from the noncentral t distribution with the pooled σ.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

STATISTICS = ("mean", "iqm", "median")
INTERVALS = ("percentile", "bca")
#: bytes of resampled values held at once (chunks of steps)
CHUNK_BYTES = 64 * 2**20


def iqm(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean along ``axis`` (``scipy.stats.trim_mean(x, 0.25)``)."""
    x = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    cut = int(0.25 * n)
    return np.take(x, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def statistic_fn(name: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """``mean`` | ``iqm`` | ``median`` as a function ``f(x, axis)``."""
    if name == "mean":
        return lambda x, axis: np.mean(x, axis=axis)
    if name == "iqm":
        return iqm
    if name == "median":
        return lambda x, axis: np.median(x, axis=axis)
    from interplab.common.errors import InterplabError

    raise InterplabError(f"unknown statistic {name!r}; expected one of: {', '.join(STATISTICS)}")


@dataclass
class Interval:
    """A statistic per column and its bootstrap interval (NaN where undefined: fewer than 2 runs)."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    statistic: str
    method: str
    confidence: float
    n_boot: int


def resample_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` row indices drawn with replacement — one set reused for every step."""
    return rng.integers(0, n, size=(n_boot, n))


def _boot_distribution(x: np.ndarray, idx: np.ndarray, statistic: str) -> np.ndarray:
    """``(B, n_steps)`` statistic of every resample, in chunks of steps to bound memory."""
    n_boot, n = idx.shape
    steps = x.shape[1]
    if statistic == "mean":  # counts matrix × data: one BLAS call instead of a (B, n, T) gather
        counts = np.zeros((n_boot, n))
        np.add.at(counts, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
        return counts @ x / n
    fn = statistic_fn(statistic)
    out = np.empty((n_boot, steps))
    chunk = max(1, CHUNK_BYTES // (8 * n_boot * n))
    for s in range(0, steps, chunk):
        out[:, s : s + chunk] = fn(x[:, s : s + chunk][idx], 1)
    return out


def _quantiles(sorted_boot: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per column ``j`` the ``q[j]`` quantile of the sorted column (linear interpolation)."""
    n_boot = sorted_boot.shape[0]
    pos = np.clip(q, 0.0, 1.0) * (n_boot - 1)
    lo = np.floor(np.nan_to_num(pos)).astype(np.int64)
    hi = np.minimum(lo + 1, n_boot - 1)
    frac = pos - lo
    cols = np.arange(sorted_boot.shape[1])
    out = sorted_boot[lo, cols] * (1 - frac) + sorted_boot[hi, cols] * frac
    return np.where(np.isnan(q), np.nan, out)


def _fixed_quantiles(boot: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``α/2`` and ``1-α/2`` quantiles of every column (linear interpolation), by partial
    sorting: only the four order statistics involved are placed."""
    n_boot = boot.shape[0]
    out = []
    kth = []
    for q in (alpha / 2, 1 - alpha / 2):
        pos = q * (n_boot - 1)
        lo = math.floor(pos)
        kth += [lo, min(lo + 1, n_boot - 1)]
    part = np.partition(boot, sorted(set(kth)), axis=0)
    for q in (alpha / 2, 1 - alpha / 2):
        pos = q * (n_boot - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n_boot - 1)
        out.append(part[lo] * (1 - (pos - lo)) + part[hi] * (pos - lo))
    return out[0], out[1]


def _jackknife(x: np.ndarray, statistic: str) -> np.ndarray:
    """``(n, n_steps)`` statistic with each run left out once."""
    n = x.shape[0]
    if statistic == "mean":
        return (x.sum(axis=0, keepdims=True) - x) / (n - 1)
    keep = np.array([[j for j in range(n) if j != i] for i in range(n)])
    fn = statistic_fn(statistic)
    return fn(x[keep], 1)


def bca_quantiles(
    boot: np.ndarray, estimate: np.ndarray, jack: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """The BCa lower/upper quantile levels per column (NaN where the distribution is degenerate)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = special.ndtri((boot < estimate).mean(axis=0))
        dev = jack.mean(axis=0) - jack
        num = (dev**3).sum(axis=0)
        den = 6.0 * (dev**2).sum(axis=0) ** 1.5
        a = np.where(den > 0, num / den, 0.0)
        levels = []
        for q in (alpha / 2, 1 - alpha / 2):
            zq = special.ndtri(q)
            levels.append(special.ndtr(z0 + (z0 + zq) / (1 - a * (z0 + zq))))
    return levels[0], levels[1]


def bootstrap_interval(
    x: np.ndarray,
    statistic: str = "mean",
    confidence: float = 0.95,
    n_boot: int = 2000,
    method: str = "percentile",
    rng: np.random.Generator | int | None = 0,
    idx: np.ndarray | None = None,
) -> Interval:
    """Bootstrap interval of ``statistic`` per column of ``x`` (runs × steps); no NaN allowed.

    ``idx`` (``(n_boot, n)`` row indices) replaces the draws, e.g. to share them with another call.
    With fewer than 2 runs the interval is NaN (undefined), never a zero-width band.
    """
    from interplab.common.errors import InterplabError, one_of

    one_of(method, list(INTERVALS), "--interval")
    if not 0 < confidence < 1:
        raise InterplabError(f"--ci must be in (0, 1), got {confidence}")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n, steps = x.shape
    estimate = statistic_fn(statistic)(x, 0) if n else np.full(steps, np.nan)
    nan = np.full(steps, np.nan)
    if n < 2:
        return Interval(estimate, nan, nan.copy(), statistic, method, confidence, n_boot)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    idx = resample_indices(n, n_boot, gen) if idx is None else idx
    alpha = 1 - confidence
    low, high = np.empty(steps), np.empty(steps)
    chunk = max(1, CHUNK_BYTES // (8 * idx.shape[0]))  # bounded memory: (B, chunk) at a time
    for s in range(0, steps, chunk):
        part = slice(s, s + chunk)
        boot = _boot_distribution(x[:, part], idx, statistic)
        if method == "percentile":
            low[part], high[part] = _fixed_quantiles(boot, alpha)
            continue
        q_lo, q_hi = bca_quantiles(boot, estimate[part], _jackknife(x[:, part], statistic), alpha)
        boot.sort(axis=0)
        low[part], high[part] = _quantiles(boot, q_lo), _quantiles(boot, q_hi)
    return Interval(estimate, low, high, statistic, method, confidence, idx.shape[0])


def standard_error(x: np.ndarray) -> np.ndarray:
    """Standard error of the mean per column (ddof=1; NaN with fewer than 2 runs)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    if n < 2:
        return np.full(x.shape[1], np.nan)
    return x.std(axis=0, ddof=1) / math.sqrt(n)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) for one draw of each group, ties counting ½ (Mann–Whitney U / (n m))."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if not len(x) or not len(y):
        return math.nan
    diff = x[:, None] - y[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def probability_of_improvement_interval(
    x: np.ndarray,
    y: np.ndarray,
    confidence: float = 0.95,
    n_boot: int = 2000,
    rng: np.random.Generator | int | None = 0,
) -> tuple[float, float, float]:
    """(P(X > Y), low, high) with a stratified percentile bootstrap (each group resampled on its own)."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    point = probability_of_improvement(x, y)
    if len(x) < 2 or len(y) < 2:
        return point, math.nan, math.nan
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    xb = x[resample_indices(len(x), n_boot, gen)]
    yb = y[resample_indices(len(y), n_boot, gen)]
    diff = xb[:, :, None] - yb[:, None, :]
    p = ((diff > 0).sum(axis=(1, 2)) + 0.5 * (diff == 0).sum(axis=(1, 2))) / (len(x) * len(y))
    alpha = 1 - confidence
    low, high = np.quantile(p, [alpha / 2, 1 - alpha / 2])
    return point, float(low), float(high)


def _split_labels(
    n: int, m: int, n_perm: int, max_exact: int, rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """``(P, n + m)`` boolean masks of the first group: every split if few enough, else random ones."""
    total = math.comb(n + m, n)
    if total <= max_exact:
        masks = np.zeros((total, n + m), dtype=bool)
        for row, chosen in enumerate(itertools.combinations(range(n + m), n)):
            masks[row, list(chosen)] = True
        return masks, True
    keys = rng.random((n_perm, n + m))
    order = np.argsort(keys, axis=1)
    masks = np.zeros((n_perm, n + m), dtype=bool)
    np.put_along_axis(masks, order[:, :n], True, axis=1)
    return masks, False


def permutation_test(
    x: np.ndarray,
    y: np.ndarray,
    n_perm: int = 10_000,
    max_exact: int = 20_000,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """Two-sided p-value of the difference of means per column of ``x`` (n × T) vs ``y`` (m × T).

    One set of group splits serves every column; the statistic for all splits and columns is one
    matrix product.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim == 1:
        x, y = x[:, None], y[:, None]
    n, m = x.shape[0], y.shape[0]
    if n < 1 or m < 1:
        return np.full(x.shape[1], np.nan)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    z = np.concatenate([x, y], axis=0)
    masks, exact = _split_labels(n, m, n_perm, max_exact, gen)
    weights = np.where(masks, 1.0 / n, -1.0 / m)
    observed = np.abs(x.mean(axis=0) - y.mean(axis=0))
    tol = 1e-12 * np.maximum(1.0, observed)
    count = np.zeros(z.shape[1])
    chunk = max(1, CHUNK_BYTES // (8 * max(1, z.shape[1])))
    with np.errstate(invalid="ignore"):  # inf in the data: NaN statistics never count as extreme
        for s in range(0, len(weights), chunk):
            count += (np.abs(weights[s : s + chunk] @ z) >= observed - tol).sum(axis=0)
    if exact:
        return count / len(weights)
    return (1 + count) / (1 + len(weights))


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = len(q)
    if not m:
        return out
    order = np.argsort(q)
    scaled = q[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.clip(adjusted, 0, 1)
    out[ok] = res
    return out


def t_test_power(n: int, delta: float, sigma: float, alpha: float = 0.05) -> float:
    """Power of a two-sided two-sample t-test with ``n`` runs per group."""
    if n < 2 or sigma <= 0:
        return math.nan
    df = 2 * n - 2
    nc = abs(delta) / (sigma * math.sqrt(2.0 / n))
    t_crit = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(t_crit, df, nc) + stats.nct.cdf(-t_crit, df, nc))


def seeds_needed(
    delta: float, sigma: float, alpha: float = 0.05, power: float = 0.8, max_n: int = 100_000
) -> int | None:
    """Smallest runs per group to detect ``delta`` with ``power`` (None: σ undefined or δ = 0)."""
    if not (sigma > 0 and math.isfinite(sigma)) or delta == 0 or not math.isfinite(delta):
        return None
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = max(2, int(2 * (z * sigma / delta) ** 2))  # normal approximation: a lower bound for the t-test
    while n < max_n and t_test_power(n, delta, sigma, alpha) < power:
        n += 1
    while n > 2 and t_test_power(n - 1, delta, sigma, alpha) >= power:
        n -= 1
    return n
