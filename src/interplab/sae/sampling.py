"""Uniform, deterministic and exactly mergeable example sampling: bottom-k of a hash.

Each activation row ``(token_idx, feature)`` gets a 64-bit key :func:`example_hash` (SplitMix64 of
``token_idx · 2³² + feature``, a bijection followed by a well-mixing finaliser). Within a group of
rows (e.g. one feature's activations in one histogram bin) the sample is the ``k`` rows with the
smallest ``(hash, token_idx)``: every row is equally likely to be chosen whatever its position in
the corpus, the choice does not depend on the order rows are seen, and the bottom-k of a union is
the bottom-k of the bottom-k's of its parts — so shards can sample independently and a merge is
exact.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def example_hash(token_idx: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """SplitMix64 of ``(token_idx << 32) | feature`` as uint64 (vectorised, platform independent)."""
    t = np.asarray(token_idx, dtype=np.int64).astype(np.uint64)
    f = np.asarray(feature, dtype=np.int64).astype(np.uint64) & np.uint64(0xFFFFFFFF)
    with np.errstate(over="ignore"):
        z = (t << np.uint64(32)) | f
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def bottom_k(
    group: np.ndarray, key: np.ndarray, token_idx: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept by a per-group bottom-``k`` of ``(key, token_idx)``.

    Returns ``(rows, rank)``: indices into the inputs, ordered by (group, key, token_idx), and each
    kept row's rank (0 … k−1) inside its group.
    """
    group = np.asarray(group, dtype=np.int64)
    if group.size == 0 or k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.lexsort((np.asarray(token_idx, dtype=np.int64), np.asarray(key, dtype=np.uint64), group))
    g = group[order]
    first = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
    starts = np.repeat(first, np.diff(np.concatenate([first, [g.size]])))
    rank = np.arange(g.size) - starts
    keep = rank < k
    return order[keep], rank[keep]
