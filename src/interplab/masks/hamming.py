"""Exact Hamming distances between binary feature vectors through matrix multiplication.

For 0/1 vectors a, b of length D: ``count(a, b) = |a| + |b| − 2·a·b`` and the distance is
``count / D``. The products run as float32 GEMM when every partial sum is an exactly representable
integer (D < 2^24), otherwise in float64, and are rounded back to integers, so counts are exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FLOAT32_EXACT = 2**24
CHUNK_ROWS = 4096


def exact_dtype(n_positions: int) -> type[np.floating]:
    """The float type in which sums of up to ``n_positions`` ones are exact."""
    return np.float32 if n_positions < FLOAT32_EXACT else np.float64


def pairwise_counts(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Hamming counts between the rows of boolean ``a [n, D]`` and ``b [m, D]`` (``b = a`` if None)."""
    a = np.asarray(a, dtype=bool)
    same = b is None
    b = a if same else np.asarray(b, dtype=bool)
    dtype = exact_dtype(a.shape[1])
    fb = b.astype(dtype)
    nb = b.sum(axis=1, dtype=np.int64)
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int64)
    for start in range(0, a.shape[0], CHUNK_ROWS):
        block = a[start : start + CHUNK_ROWS]
        dots = np.rint(block.astype(dtype) @ fb.T).astype(np.int64)
        na = block.sum(axis=1, dtype=np.int64)
        out[start : start + len(block)] = na[:, None] + nb[None, :] - 2 * dots
    return out


def pairwise_hamming(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Hamming distances (fraction of positions that differ) between rows, as float64."""
    return pairwise_counts(a, b) / np.float64(np.asarray(a).shape[1])


@dataclasses.dataclass
class HammingIndex:
    """Feature vectors prepared once for fast one-to-all distance queries."""

    vectors: np.ndarray  # float [N, D] of 0/1
    ones: np.ndarray  # int64 [N], kept positions per feature

    @classmethod
    def build(cls, mask: np.ndarray) -> HammingIndex:
        mask = np.asarray(mask, dtype=bool)
        return cls(vectors=mask.astype(exact_dtype(mask.shape[1])), ones=mask.sum(axis=1, dtype=np.int64))

    @property
    def n_features(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def n_positions(self) -> int:
        return int(self.vectors.shape[1])

    def counts_to(self, feature_idx: int) -> np.ndarray:
        """Hamming counts from feature ``feature_idx`` to every feature (one matrix-vector product)."""
        dots = np.rint(self.vectors @ self.vectors[feature_idx]).astype(np.int64)
        return self.ones[feature_idx] + self.ones - 2 * dots

    def nearest(self, feature_idx: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` features closest to ``feature_idx`` (itself first, then by count, ties by index)
        and their Hamming counts."""
        counts = self.counts_to(feature_idx)
        return top_k(counts, feature_idx, k), counts


def top_k(counts: np.ndarray, feature_idx: int, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest ``counts``: ``feature_idx`` first, the rest ordered by
    (count, index). Uses ``argpartition`` on unique integer keys, so ties are stable."""
    n = counts.shape[0]
    keys = counts.astype(np.int64) * n + np.arange(n, dtype=np.int64)
    keys[feature_idx] = -1
    part = np.argpartition(keys, k - 1)[:k] if k < n else np.arange(n)
    return part[np.argsort(keys[part], kind="stable")]
