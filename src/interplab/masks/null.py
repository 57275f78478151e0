"""Null model: the same analysis on a mask whose features keep their density but lose their structure.

Definition: every feature's D entries are shuffled independently (a uniform permutation per feature),
so each feature keeps its number of kept positions. :func:`shuffle_within_features` implements that
literally (argsort of random keys). The analyses only need the reference feature, its nearest
neighbours in the shuffled matrix and their vectors, which :func:`draw_null_neighborhood` samples
*exactly* without shuffling all N×D entries: under the null the overlap of feature j (b_j ones) with
the reference (a ones) is hypergeometric(D, a, b_j), which fixes every Hamming count, hence the
neighbour selection; given its overlap, feature j's ones are a uniform subset of the reference's ones
plus a uniform subset of the rest; a final common random permutation of the D positions makes the
reference itself a shuffled feature too.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from interplab.masks.hamming import top_k


def shuffle_within_features(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Permute each row of ``mask`` independently (argsort of uniform random keys)."""
    perm = np.argsort(rng.random(mask.shape), axis=1)
    return np.take_along_axis(np.asarray(mask), perm, axis=1)


def _random_subsets(sizes: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean [len(sizes), width]: row i has ``sizes[i]`` ones at uniformly random places."""
    if width == 0:
        return np.zeros((len(sizes), 0), dtype=bool)
    ranks = np.argsort(np.argsort(rng.random((len(sizes), width)), axis=1), axis=1)
    return ranks < sizes[:, None]


@dataclasses.dataclass
class NullNeighborhood:
    """One null draw: the selected features (reference first), their vectors and the NN count."""

    indices: np.ndarray
    vectors: np.ndarray  # bool [n, D]
    nn_count: int


def draw_null_neighborhood(
    ones: np.ndarray, reference: np.ndarray, feature_idx: int, n: int, rng: np.random.Generator
) -> NullNeighborhood:
    """Sample the top-``n`` neighbourhood of ``feature_idx`` in a within-feature-shuffled matrix.

    ``ones`` are the kept-position counts of all N features, ``reference`` the reference's boolean vector.
    """
    ones = np.asarray(ones, dtype=np.int64)
    reference = np.asarray(reference, dtype=bool)
    d = reference.shape[0]
    a = int(reference.sum())
    draws = np.maximum(ones, 1)  # numpy wants nsample ≥ 1; empty features overlap 0
    overlap = np.where(ones > 0, rng.hypergeometric(a, d - a, draws) if a > 0 else 0, 0)
    counts = a + ones - 2 * overlap
    counts[feature_idx] = 0
    others = np.delete(counts, feature_idx)
    nn_count = int(others.min()) if others.size else 0
    sel = top_k(counts, feature_idx, n)
    inside = overlap[sel].copy()
    inside[0] = a
    outside = ones[sel] - inside
    vectors = np.zeros((len(sel), d), dtype=bool)
    vectors[:, reference] = _random_subsets(inside, a, rng)
    vectors[:, ~reference] = _random_subsets(outside, d - a, rng)
    vectors = vectors[:, rng.permutation(d)]
    return NullNeighborhood(indices=sel, vectors=vectors, nn_count=nn_count)


@dataclasses.dataclass
class NullComparison:
    """A real statistic beside its null distribution."""

    real: float
    null_mean: float
    null_std: float
    z_score: float
    percentile: float  # % of null samples below the real value (ties count half)
    samples: list[float]


def compare_to_null(real: float, samples: list[float] | np.ndarray) -> NullComparison:
    """z = (real − mean) / std (ddof=1) and the mid-rank percentile of ``real`` among the samples."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size == 0:
        nan = float("nan")
        return NullComparison(float(real), nan, nan, nan, nan, [])
    mean = float(s.mean())
    std = float(s.std(ddof=1)) if s.size > 1 else 0.0
    if std > 0:
        z = (real - mean) / std
    elif math.isclose(real, mean):
        z = 0.0
    else:
        z = math.copysign(float("inf"), real - mean)
    pct = 100.0 * (np.mean(s < real) + 0.5 * np.mean(s == real))
    return NullComparison(float(real), mean, std, float(z), float(pct), [float(v) for v in s])
