"""Masked-matmul potential: how many 16×8 tiles of the [D, n] mask hold any kept weight.

A kernel that skips empty tiles does work proportional to the non-empty ones. Tiles are 16 positions
(along D) by 8 features; edges are zero-padded. Counted in the original feature order (ascending
matrix index) and after grouping the features by cluster (stable: cluster, then index).
Union-mask efficiency of a cluster = mean density of its features / density of the OR of their masks
(1 = all members share one pattern; small = a shared dense tile would mostly compute zeros).
"""

from __future__ import annotations

import dataclasses

import numpy as np

TILE_SHAPE = (16, 8)


def count_nonempty_tiles(mask_dn: np.ndarray, tile: tuple[int, int] = TILE_SHAPE) -> int:
    """Non-empty ``tile[0]×tile[1]`` tiles of a boolean ``[D, n]`` mask (edges zero-padded)."""
    tr, tc = tile
    m = np.asarray(mask_dn, dtype=bool)
    rows, cols = m.shape
    padded = np.pad(m, ((0, -rows % tr), (0, -cols % tc)))
    r, c = padded.shape
    return int(padded.reshape(r // tr, tr, c // tc, tc).any(axis=(1, 3)).sum())


def total_tiles(n_positions: int, n_features: int, tile: tuple[int, int] = TILE_SHAPE) -> int:
    """All tiles covering a ``[n_positions, n_features]`` mask."""
    return -(-n_positions // tile[0]) * -(-n_features // tile[1])


def cluster_order(indices: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Positions that sort the selection by (cluster label, matrix index)."""
    return np.lexsort((np.asarray(indices), np.asarray(labels)))


def union_efficiency(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per cluster: mean feature density / density of the cluster's union mask (NaN if empty)."""
    v = np.asarray(vectors, dtype=np.float64)
    onehot = np.zeros((len(labels), k))
    onehot[np.arange(len(labels)), labels] = 1.0
    sizes = onehot.sum(axis=0)
    union_density = ((onehot.T @ v) > 0).mean(axis=1)
    mean_density = (onehot.T @ v.mean(axis=1)) / np.where(sizes > 0, sizes, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((sizes > 0) & (union_density > 0), mean_density / union_density, np.nan)


@dataclasses.dataclass
class TileCounts:
    """Non-empty tiles of one selection in original and clustered order."""

    tile_shape: tuple[int, int]
    total: int
    original: int
    clustered: int

    @property
    def reduction(self) -> float:
        """1 − clustered / original: the fraction of tile work saved by reordering."""
        return 1.0 - self.clustered / self.original if self.original else 0.0


def tile_counts(
    vectors: np.ndarray, indices: np.ndarray, labels: np.ndarray, tile: tuple[int, int] = TILE_SHAPE
) -> TileCounts:
    """Tile counts of the selection ``vectors [n, D]`` (rows match ``indices`` and ``labels``)."""
    v = np.asarray(vectors, dtype=bool)
    original = count_nonempty_tiles(v[np.argsort(indices, kind="stable")].T, tile)
    clustered = count_nonempty_tiles(v[cluster_order(indices, labels)].T, tile)
    return TileCounts(tile, total_tiles(v.shape[1], v.shape[0], tile), original, clustered)
