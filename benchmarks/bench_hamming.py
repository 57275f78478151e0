"""Hamming-distance speed of ``interplab.masks.hamming`` against scipy, measured in one run.

1. All-pairs Hamming distances of a 4096×4096 mask (50 % kept): GEMM-based
   ``pairwise_hamming`` vs ``scipy.spatial.distance.cdist(metric="hamming")``; results must be
   bit-identical; target ≥ 5× faster.
2. Top-128 neighbours of one feature in a 4096×11008 matrix (11008 features of 4096 positions):
   XOR + popcount over the bit-packed ``HammingIndex`` + argpartition; target < 50 ms. Printed beside
   it: the same counts from a float32 matrix-vector product (|a| + |b| − 2·a·b), the obvious baseline.

Run: ``.venv/bin/python benchmarks/bench_hamming.py`` (``--size``/``--features`` to scale down).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial.distance import cdist

from interplab.masks.hamming import HammingIndex, pairwise_hamming


def best_of(fn, repeats: int) -> tuple[float, object]:
    """Fastest wall time of ``repeats`` calls and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_all_pairs(size: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((size, size)) < 0.5  # [features, positions]
    t_ours, ours = best_of(lambda: pairwise_hamming(mask), repeats)
    t_scipy, ref = best_of(lambda: cdist(mask, mask, metric="hamming"), 1)
    assert np.array_equal(ours, ref), "GEMM Hamming distances differ from scipy cdist"
    print(
        f"all-pairs Hamming {size}x{size} (50% mask): interplab {t_ours:.3f} s, scipy cdist {t_scipy:.3f} s"
    )
    print(f"  results identical: True; speed-up {t_scipy / t_ours:.1f}x (target >= 5x)")


def bench_top_k(positions: int, features: int, k: int, repeats: int) -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((features, positions)) < 0.5
    t0 = time.perf_counter()
    index = HammingIndex.build(mask)
    t_build = time.perf_counter() - t0
    idx = int(rng.integers(features))
    t_query, (nearest, counts) = best_of(lambda: index.nearest(idx, k), repeats)
    # brute-force check of the neighbour set and order
    brute = (mask != mask[idx]).sum(axis=1)
    order = np.lexsort((np.arange(features), brute))
    expected = np.concatenate([[idx], order[order != idx][: k - 1]])
    assert np.array_equal(nearest, expected), "top-k differs from brute force"
    assert np.array_equal(counts, brute)
    dense = mask.astype(np.float32)
    ones = mask.sum(axis=1)
    t_mv, mv_counts = best_of(
        lambda: ones[idx] + ones - 2 * np.rint(dense @ dense[idx]).astype(np.int64), repeats
    )
    assert np.array_equal(mv_counts, brute)
    times = []
    for j in rng.integers(features, size=repeats):
        t0 = time.perf_counter()
        index.nearest(int(j), k)
        times.append(time.perf_counter() - t0)
    print(
        f"top-{k} neighbours of one feature in a {positions}x{features} matrix: best {t_query * 1e3:.1f} ms, "
        f"median over {repeats} random features {np.median(times) * 1e3:.1f} ms (target < 50 ms); "
        f"one-off index build {t_build * 1e3:.0f} ms"
    )
    print(f"  baseline float32 matrix-vector product for the same counts: {t_mv * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--positions", type=int, default=4096)
    parser.add_argument("--features", type=int, default=11008)
    parser.add_argument("--k", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench_all_pairs(args.size, args.repeats)
    bench_top_k(args.positions, args.features, args.k, max(args.repeats, 10))


if __name__ == "__main__":
    main()
