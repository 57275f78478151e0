"""Row and column permutations of a mask W [out, in] that maximise the empty tiles a tile-skipping
kernel can skip.

Permuting rows and columns does not change ``y = W x`` up to the same permutation of y and x, which
a network absorbs into the neighbouring layers. The search:

1. **density order** (the clustering-style start): rows by number of kept weights, columns likewise,
   so sparse rows and sparse columns meet in one corner;
2. **greedy band packing**: each row (most occupied first) joins the band of ``tile_rows`` rows
   whose occupancy it extends least (fewest newly occupied column groups; ties: most overlap, then
   the emptier band). Rows are packed once by single columns (similar masks together whatever the
   column order), then columns (bands of ``tile_cols``, by row bands) and rows (by column groups of
   ``tile_cols``) alternate for ``rounds`` rounds. The best state seen is returned, so the result is
   never worse than the density order.

Occupancy is kept as packed bits (``numpy.bitwise_count``), so one step costs O(rows · bands ·
tiles/64) word operations. The **null model** runs the same search on the mask with every row's
kept positions shuffled (row densities preserved): empty tiles beyond the null's are structure the
pruning method created, not what any mask of that density allows.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from interplab.masks.null import shuffle_within_features
from interplab.masks.tiles import count_nonempty_tiles, total_tiles

DEFAULT_TILE = (16, 8)


def _group_any(kept: np.ndarray, size: int) -> np.ndarray:
    """[rows, ⌈cols/size⌉]: whether each row has a kept weight in each group of ``size`` columns."""
    rows, cols = kept.shape
    padded = np.pad(kept, ((0, 0), (0, -cols % size)))
    return padded.reshape(rows, -1, size).any(axis=2)


def _pack(bits: np.ndarray) -> np.ndarray:
    """Pack boolean [n, k] into uint64 words [n, ⌈k/64⌉]."""
    n, k = bits.shape
    padded = np.pad(bits, ((0, 0), (0, -k % 64)))
    packed = np.ascontiguousarray(np.packbits(padded, axis=1, bitorder="little"))
    return packed.view(np.uint64).reshape(n, -1)


def band_order(kept: np.ndarray, band: int, group: int) -> np.ndarray:
    """Greedy order of the rows of ``kept`` into bands of ``band`` rows, given groups of ``group``
    columns: each row (most occupied first) goes to the open band it adds fewest non-empty groups
    to; ties go to the band it overlaps most, then to the emptier band (so unrelated rows open a new
    band instead of joining a foreign one)."""
    rows = kept.shape[0]
    occ = _pack(_group_any(kept, group))
    weight = np.bitwise_count(occ).sum(axis=1).astype(np.int64)
    n_bands = -(-rows // band)
    capacity = np.full(n_bands, band)
    capacity[-1] = rows - band * (n_bands - 1)
    band_occ = np.zeros((n_bands, occ.shape[1]), dtype=np.uint64)
    members: list[list[int]] = [[] for _ in range(n_bands)]
    size = np.zeros(n_bands, dtype=np.int64)
    scale_overlap = band + 1
    scale_added = scale_overlap * (occ.shape[1] * 64 + 1)
    big = np.iinfo(np.int64).max
    for r in np.argsort(-weight, kind="stable"):
        overlap = np.bitwise_count(occ[r] & band_occ).sum(axis=1).astype(np.int64)
        added = weight[r] - overlap
        key = added * scale_added - overlap * scale_overlap + size
        key[capacity == 0] = big
        b = int(np.argmin(key))
        band_occ[b] |= occ[r]
        capacity[b] -= 1
        size[b] += 1
        members[b].append(int(r))
    return np.array([r for m in members for r in m], dtype=np.int64)


@dataclasses.dataclass
class PermutationResult:
    """Non-empty tiles before and after the search, for the mask and its null model."""

    tile: tuple[int, int]
    total: int
    original: int
    density_order: int
    searched: int
    null_original: int
    null_searched: int
    seconds: float
    row_order: np.ndarray = dataclasses.field(repr=False)
    col_order: np.ndarray = dataclasses.field(repr=False)

    @property
    def empty_found(self) -> int:
        return self.total - self.searched

    @property
    def null_empty_found(self) -> int:
        return self.total - self.null_searched

    def record(self) -> dict[str, object]:
        return {
            "tile": list(self.tile),
            "total_tiles": self.total,
            "nonempty_original": self.original,
            "nonempty_density_order": self.density_order,
            "nonempty_searched": self.searched,
            "empty_searched": self.empty_found,
            "null_nonempty_original": self.null_original,
            "null_nonempty_searched": self.null_searched,
            "null_empty_searched": self.null_empty_found,
            "seconds": self.seconds,
        }


def search_order(
    kept: np.ndarray, tile: tuple[int, int] = DEFAULT_TILE, rounds: int = 2
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(row order, column order, non-empty tiles in density order, fewest found).

    After the density order, rows are first packed by their individual columns (which finds rows
    with similar masks whatever the column order), then columns and rows alternate at tile
    granularity; the best state seen is returned."""
    k = np.asarray(kept, dtype=bool)
    tr, tc = tile
    rows = np.argsort(k.sum(axis=1), kind="stable")
    cols = np.argsort(k.sum(axis=0), kind="stable")
    start = count_nonempty_tiles(k[rows][:, cols], tile)
    best = (start, rows, cols)
    if rounds == 0:
        return rows, cols, start, start
    rows = rows[band_order(k[rows][:, cols], tr, 1)]
    for step in range(2 * rounds):
        current = k[rows][:, cols]
        if step % 2 == 0:
            cols = cols[band_order(current.T, tc, tr)]
        else:
            rows = rows[band_order(current, tr, tc)]
        count = count_nonempty_tiles(k[rows][:, cols], tile)
        if count < best[0]:
            best = (count, rows, cols)
    return best[1], best[2], start, best[0]


def permutation_search(
    kept: np.ndarray, tile: tuple[int, int] = DEFAULT_TILE, rounds: int = 2, seed: int = 0
) -> PermutationResult:
    """Search on ``kept`` and on one null-model draw, with the tile counts of each."""
    t0 = time.perf_counter()
    k = np.asarray(kept, dtype=bool)
    rows, cols, start, best = search_order(k, tile, rounds)
    seconds = time.perf_counter() - t0
    null = shuffle_within_features(k, np.random.default_rng(seed))
    _, _, _, null_best = search_order(null, tile, rounds)
    return PermutationResult(
        tile=tile,
        total=total_tiles(k.shape[0], k.shape[1], tile),
        original=count_nonempty_tiles(k, tile),
        density_order=start,
        searched=best,
        null_original=count_nonempty_tiles(null, tile),
        null_searched=null_best,
        seconds=seconds,
        row_order=rows,
        col_order=cols,
    )
