"""``masks speedup`` at LLM scale, and the roofline estimate against measured CPU kernels.

Part 1 — a 4096 × 11008 Wanda-like mask (|W|·‖x_j‖ with log-normal input norms, 50 % per row):
time of the tile counts at 16×8, 16×16 and 32×32, and of the permutation search, with the empty
16×8 tiles it finds against the density-preserving null model (every row shuffled).

Part 2 — estimate vs measurement on this CPU: for a few 2048 × 2048 masks, time ``W @ X`` dense
(float32), ``torch.sparse`` CSR and BSR (16×16, 32×32), batch 16 and 256, and print them beside the
roofline estimate for the host (peaks measured with torch in the same run). The estimate should rank
the formats as the measurement does; every pair of formats it orders differently (beyond a 10 %
tie) is printed. On a CPU each kernel family's rate (dense, CSR, BSR) is measured first, since a
CPU has no tensor cores that would make one family uniformly faster.

Run: ``.venv/bin/python benchmarks/bench_masks_speedup.py`` (``--rows``/``--cols`` to scale part 1).
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import numpy as np
import torch

from interplab.common.timing import best_time
from interplab.masks.permute import permutation_search
from interplab.masks.roofline import MaskCounts, format_cost, measure_host
from interplab.masks.tiles import count_nonempty_tiles, total_tiles

MEASURED = ("dense", "csr", "bsr16", "bsr32")


def wanda_like_mask(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Keep the larger half of |W_ij|·n_j per row, with log-normal input norms n_j."""
    rng = np.random.default_rng(seed)
    norms = np.exp(rng.normal(0.0, 1.5, cols)).astype(np.float32)
    scores = np.abs(rng.standard_normal((rows, cols), dtype=np.float32)) * norms
    threshold = np.partition(scores, cols // 2, axis=1)[:, cols // 2][:, None]
    return scores >= threshold


def part_tiles(rows: int, cols: int, rounds: int) -> None:
    kept = wanda_like_mask(rows, cols)
    print(f"part 1: {rows}×{cols} Wanda-like mask, density {kept.mean():.3f}")
    for tile in ((16, 8), (16, 16), (32, 32)):
        t0 = time.perf_counter()
        n = count_nonempty_tiles(kept, tile)
        dt = time.perf_counter() - t0
        total = total_tiles(rows, cols, tile)
        print(
            f"  tiles {tile[0]}×{tile[1]}: {n} of {total} non-empty ({1 - n / total:.4f} empty), {dt:.3f} s"
        )
    result = permutation_search(kept, rounds=rounds)
    r = result.record()
    print(
        f"  permutation search (16×8, {rounds} rounds): {result.seconds:.1f} s; empty tiles "
        f"original {r['total_tiles'] - r['nonempty_original']}, density order "
        f"{r['total_tiles'] - r['nonempty_density_order']}, searched {r['empty_searched']}; "
        f"null model: original {r['total_tiles'] - r['null_nonempty_original']}, searched {r['null_empty_searched']}"
    )


def masks_2048(rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = 2048
    blocks = rng.random((n // 16, n // 16)) < 0.1
    return {
        "random 50%": rng.random((n, n)) >= 0.5,
        "random 90%": rng.random((n, n)) >= 0.9,
        "random 99%": rng.random((n, n)) >= 0.99,
        "16x16 blocks 90%": np.kron(blocks, np.ones((16, 16), dtype=bool)),
    }


def _distinct(a: float, b: float, tolerance: float = 0.1) -> bool:
    return abs(a - b) > tolerance * min(a, b)


def misranked_pairs(estimated: dict[str, float], measured: dict[str, float]) -> list[tuple[str, str]]:
    """Pairs of formats the estimate orders (beyond a 10 % tie) opposite to the measurement."""
    return [
        (a, b)
        for a, b in itertools.combinations(MEASURED, 2)
        if _distinct(estimated[a], estimated[b])
        and (estimated[a] < estimated[b]) != (measured[a] < measured[b])
    ]


def part_validation() -> None:
    host = measure_host()
    print(
        f"part 2: {host.name}: dense {host.tensor_flops / 1e9:.1f}, CSR {host.simt_flops / 1e9:.1f}, "
        f"BSR {host.bsr_flops / 1e9:.1f} GFLOP/s (float32, measured), {host.bandwidth / 1e9:.1f} GB/s (copy)"
    )
    rng = np.random.default_rng(0)
    disagreements = pairs = 0
    print(
        f"  {'mask':<18} {'B':>4} "
        + " ".join(f"{f + ' est/meas ms':>22}" for f in MEASURED)
        + "  rank agrees"
    )
    for name, kept in masks_2048(rng).items():
        w = torch.from_numpy(np.where(kept, rng.standard_normal(kept.shape), 0.0).astype(np.float32))
        kernels = {
            "dense": w,
            "csr": w.to_sparse_csr(),
            "bsr16": w.to_sparse_bsr((16, 16)),
            "bsr32": w.to_sparse_bsr((32, 32)),
        }
        counts = MaskCounts.of(kept)
        for batch in (16, 256):
            x = torch.randn(w.shape[1], batch)
            measured = {f: best_time(lambda m=m, x=x: m @ x) for f, m in kernels.items()}
            estimated = {f: format_cost(f, counts, batch, host).seconds for f in MEASURED}  # type: ignore[union-attr]
            wrong = misranked_pairs(estimated, measured)
            agree = not wrong
            disagreements += len(wrong)
            pairs += sum(
                1 for a, b in itertools.combinations(MEASURED, 2) if _distinct(estimated[a], estimated[b])
            )
            cells = " ".join(f"{estimated[f] * 1e3:>10.2f}/{measured[f] * 1e3:>10.2f}" for f in MEASURED)
            order = " < ".join(sorted(MEASURED, key=measured.get))
            verdict = "yes" if agree else "no: " + ", ".join(f"{a}/{b}" for a, b in wrong)
            print(f"  {name:<18} {batch:>4} {cells}  {verdict} (measured {order})")
    print(
        f"  format pairs ranked differently from the measurement: {disagreements} of {pairs} (estimates within 10 % count as ties)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=11008)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-validation", action="store_true")
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}")
    part_tiles(args.rows, args.cols, args.rounds)
    if not args.skip_validation:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's "sparse CSR support is in beta"
            part_validation()


if __name__ == "__main__":
    main()
