"""Whole-matrix view: the distribution of all pairwise Hamming distances between features."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from interplab.masks.configs import DEFAULT_MAX_FEATURES
from interplab.masks.hamming import pairwise_counts

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


@dataclasses.dataclass
class HammingDistribution:
    """Histogram of pairwise Hamming counts (index = count, 0…D) over a feature (sub)set."""

    n_positions: int
    n_features_total: int
    features_used: np.ndarray
    histogram: np.ndarray  # int64 [D + 1]

    @property
    def subsampled(self) -> bool:
        return len(self.features_used) < self.n_features_total

    @property
    def n_pairs(self) -> int:
        return int(self.histogram.sum())

    def quantile(self, q: float) -> float:
        """Distance (fraction) below or at which a share ``q`` of the pairs lie (lower quantile)."""
        cdf = np.cumsum(self.histogram) / self.n_pairs
        return float(np.searchsorted(cdf, q) / self.n_positions)

    def summary(self) -> dict[str, Any]:
        """Summary numbers for the JSON."""
        d = self.n_positions
        values = np.arange(d + 1) / d
        mean = float((self.histogram * values).sum() / self.n_pairs)
        var = float((self.histogram * (values - mean) ** 2).sum() / self.n_pairs)
        nz = np.flatnonzero(self.histogram)
        return {
            "n_features_total": self.n_features_total,
            "n_features_used": len(self.features_used),
            "subsampled": self.subsampled,
            "n_pairs": self.n_pairs,
            "mean": mean,
            "std": var**0.5,
            "min": float(nz[0] / d),
            "max": float(nz[-1] / d),
            "quantiles": {f"p{round(q * 100):02d}": self.quantile(q) for q in QUANTILES},
            "identical_pairs": int(self.histogram[0]),
        }


def hamming_distribution(
    mask: np.ndarray, max_features: int = DEFAULT_MAX_FEATURES, seed: int = 0
) -> HammingDistribution:
    """All pairwise Hamming counts of the features (a seeded random subset if N > ``max_features``)."""
    n, d = mask.shape
    if n > max_features:
        used = np.sort(np.random.default_rng(seed).choice(n, size=max_features, replace=False))
    else:
        used = np.arange(n)
    counts = pairwise_counts(mask[used])
    iu = np.triu_indices(len(used), k=1)
    hist = np.bincount(counts[iu], minlength=d + 1).astype(np.int64)
    return HammingDistribution(n_positions=d, n_features_total=n, features_used=used, histogram=hist)
