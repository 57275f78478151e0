"""Masked-matmul tile counts and union-mask efficiency against brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest

from interplab.masks.tiles import count_nonempty_tiles, tile_counts, total_tiles, union_efficiency


def brute_tiles(m: np.ndarray, tr: int, tc: int) -> int:
    n = 0
    for r in range(0, m.shape[0], tr):
        for c in range(0, m.shape[1], tc):
            n += bool(m[r : r + tr, c : c + tc].any())
    return n


@pytest.mark.parametrize("tile", [(16, 8), (4, 3), (1, 1)])
def test_tile_count_matches_loop(tile: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    for density in (0.01, 0.05, 0.3):
        m = rng.random((37, 13)) < density
        assert count_nonempty_tiles(m, tile) == brute_tiles(m, *tile)
    assert total_tiles(37, 13, tile) == brute_tiles(np.ones((37, 13), bool), *tile)


def test_clustered_order_saves_tiles_on_interleaved_clusters() -> None:
    d, n = 64, 32
    vectors = np.zeros((n, d), dtype=bool)
    labels = np.arange(n) % 2  # interleaved clusters with disjoint supports
    vectors[labels == 0, :32] = True
    vectors[labels == 1, 32:] = True
    t = tile_counts(vectors, np.arange(n), labels)
    order = np.lexsort((np.arange(n), labels))
    assert t.original == brute_tiles(vectors.T, 16, 8) == 16
    assert t.clustered == brute_tiles(vectors[order].T, 16, 8) == 8
    assert t.reduction == pytest.approx(0.5)
    assert t.total == 16


def test_union_efficiency_by_loop() -> None:
    rng = np.random.default_rng(1)
    v = rng.random((10, 20)) < 0.3
    labels = np.array([0, 0, 1, 1, 1, 0, 2, 2, 1, 0])
    got = union_efficiency(v, labels, 4)
    for c in range(3):
        members = v[labels == c]
        expected = members.mean(axis=1).mean() / members.any(axis=0).mean()
        assert got[c] == pytest.approx(expected)
    assert np.isnan(got[3])  # empty cluster
    same = np.tile(v[:1], (3, 1))
    assert union_efficiency(same, np.zeros(3, int), 1)[0] == pytest.approx(1.0)
