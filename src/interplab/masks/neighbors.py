"""Choosing a reference feature and its top-N most similar features by Hamming distance."""

from __future__ import annotations

import dataclasses

import numpy as np

from interplab.common.errors import InterplabError
from interplab.masks.hamming import HammingIndex


@dataclasses.dataclass
class Neighborhood:
    """A reference feature and its ``n`` nearest features (the reference first)."""

    feature_idx: int
    indices: np.ndarray  # int [n], indices[0] == feature_idx
    counts: np.ndarray  # int [n], Hamming counts to the reference
    n_positions: int
    nn_index: int  # nearest other feature in the whole matrix
    nn_count: int

    @property
    def distances(self) -> np.ndarray:
        return self.counts / np.float64(self.n_positions)


def validate_selection(n_total: int, n_features: int, n_clusters: int, what: str = "--n-features") -> None:
    """Check the sizes of a selection before any work: 2 ≤ k ≤ n ≤ N."""
    if n_clusters < 2:
        raise InterplabError(f"--n-clusters / k must be at least 2, got {n_clusters}")
    if n_features > n_total:
        raise InterplabError(f"{what} {n_features} is more than the {n_total} features the matrix has")
    if n_features < n_clusters:
        raise InterplabError(f"{what} {n_features} is fewer than the {n_clusters} clusters requested")


def check_feature_idx(feature_idx: int, n_total: int) -> int:
    """Validate a user-given feature index."""
    if not 0 <= feature_idx < n_total:
        raise InterplabError(
            f"--feature-idx {feature_idx} is out of range; the matrix has {n_total} features"
        )
    return int(feature_idx)


def random_features(n_total: int, count: int, seed: int) -> list[int]:
    """``count`` reference features drawn with ``numpy.random.default_rng(seed)`` (distinct when possible)."""
    rng = np.random.default_rng(seed)
    return [int(i) for i in rng.choice(n_total, size=count, replace=count > n_total)]


def nearest_features(index: HammingIndex, feature_idx: int, n: int) -> Neighborhood:
    """Top-``n`` most similar features of ``feature_idx`` (itself included, first)."""
    indices, counts = index.nearest(feature_idx, n)
    others = np.delete(counts, feature_idx)
    other_idx = np.delete(np.arange(index.n_features), feature_idx)
    j = int(np.argmin(others)) if others.size else 0
    return Neighborhood(
        feature_idx=int(feature_idx),
        indices=indices,
        counts=counts[indices],
        n_positions=index.n_positions,
        nn_index=int(other_idx[j]) if others.size else int(feature_idx),
        nn_count=int(others[j]) if others.size else 0,
    )
