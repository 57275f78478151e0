"""Exact Hamming distances between binary feature vectors.

All pairs: for 0/1 vectors a, b of length D, ``count(a, b) = |a| + |b| − 2·a·b`` and the distance is
``count / D``; the products run as one GEMM, in float32 when every partial sum is an exactly
representable integer (D < 2^24), otherwise in float64, rounded back to integers, so counts are exact.
One feature to all (neighbour search): XOR + popcount on bit-packed rows (:class:`HammingIndex`).
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


def pack_bits(mask: np.ndarray) -> np.ndarray:
    """Rows of a boolean ``[N, D]`` array packed into ``uint64`` words (zero-padded to 64 bits)."""
    packed = np.packbits(np.asarray(mask, dtype=bool), axis=1, bitorder="little")
    packed = np.pad(packed, ((0, 0), (0, -packed.shape[1] % 8)))
    return np.ascontiguousarray(packed).view(np.uint64)


@dataclasses.dataclass
class HammingIndex:
    """Feature vectors bit-packed once for fast one-to-all distance queries.

    A query XORs the reference's 64-bit words with every feature's and counts the set bits
    (``numpy.bitwise_count``): exact integer counts, reading D/8 bytes per feature instead of the
    4·D of a float32 matrix-vector product, which keeps a 4096×11008 query near a millisecond.
    """

    packed: np.ndarray  # uint64 [N, ceil(D / 64)]
    ones: np.ndarray  # int64 [N], kept positions per feature
    n_positions: int

    @classmethod
    def build(cls, mask: np.ndarray) -> HammingIndex:
        mask = np.asarray(mask, dtype=bool)
        return cls(
            packed=pack_bits(mask), ones=mask.sum(axis=1, dtype=np.int64), n_positions=int(mask.shape[1])
        )

    @property
    def n_features(self) -> int:
        return int(self.packed.shape[0])

    def counts_to(self, feature_idx: int) -> np.ndarray:
        """Hamming counts from feature ``feature_idx`` to every feature."""
        return np.bitwise_count(self.packed ^ self.packed[feature_idx]).sum(axis=1, dtype=np.int64)

    def nearest(self, feature_idx: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` features closest to ``feature_idx`` (itself first, then by count, ties by index)
        and the Hamming counts of all features."""
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
