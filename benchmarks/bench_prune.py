"""Pruning time of ``minilm`` with Wanda and SparseGPT against magnitude pruning, in one run.

Every method prunes all 36 linear layers of a freshly loaded ``minilm`` layer by layer on the same
calibration set (default 128 windows × 128 tokens of the built-in ``docs`` corpus). Two times per
method:

- pipeline: the whole layer-by-layer pass (capture block-0 inputs, per block one forward pass with
  input-statistic hooks, prune every matrix, re-run the pruned block);
- algorithm: the sum over matrices of the time spent choosing the mask and updating the weights.

Each method runs ``--repeats`` times (interleaved) and the fastest times are kept. Ratios are against magnitude pruning measured in the same run (magnitude goes through the same
pipeline, since the relative output error needs the input statistics). Also printed: each method's
mean relative output error ‖(W−Ŵ)X‖/‖WX‖ over the 36 matrices.

Run: ``.venv/bin/python benchmarks/bench_prune.py`` (``--nsamples``/``--seqlen`` to scale).
"""

from __future__ import annotations

import argparse
import time

import torch

from interplab.common.models import find_blocks, load_model
from interplab.masks.blockwise import prune_blocks
from interplab.masks.calibration import build_calibration
from interplab.masks.selection import parse_structure

METHODS = ("magnitude", "wanda", "sparsegpt")


def run(
    method: str, calibration: torch.Tensor, structure: str, sparsity: float
) -> tuple[float, float, float]:
    """(pipeline seconds, algorithm seconds, mean relative output error) for one method."""
    loaded = load_model("minilm")
    _, blocks = find_blocks(loaded.model)
    t0 = time.perf_counter()
    results = prune_blocks(
        loaded.model,
        blocks,
        calibration,
        method=method,
        sparsity=sparsity,
        structure=parse_structure(structure),
    )
    pipeline = time.perf_counter() - t0
    algorithm = sum(r.seconds for r in results)
    error = sum(r.relative_output_error for r in results) / len(results)
    return pipeline, algorithm, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nsamples", type=int, default=128)
    parser.add_argument("--seqlen", type=int, default=128)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--structure", default="unstructured")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the fastest is kept")
    args = parser.parse_args()

    loaded = load_model("minilm")
    calib = build_calibration(
        loaded.tokenizer, "docs", nsamples=args.nsamples, seqlen=args.seqlen, seed=0, n_eval=1, encoder=True
    )
    print(
        f"minilm, {args.nsamples} × {args.seqlen} calibration tokens, sparsity {args.sparsity}, "
        f"{args.structure}, torch threads {torch.get_num_threads()}"
    )
    rows: dict[str, tuple[float, float, float]] = {}
    for _ in range(args.repeats):  # interleaved, so load from other processes hits all methods alike
        for method in METHODS:
            got = run(method, calib.calibration, args.structure, args.sparsity)
            best = rows.get(method)
            rows[method] = got if best is None else (min(best[0], got[0]), min(best[1], got[1]), got[2])
    base_pipeline, base_algorithm, _ = rows["magnitude"]
    print(
        f"{'method':<10} {'pipeline s':>11} {'× magnitude':>12} {'algorithm s':>12} {'× magnitude':>12} {'mean rel. err':>14}"
    )
    for method, (pipeline, algorithm, error) in rows.items():
        print(
            f"{method:<10} {pipeline:>11.2f} {pipeline / base_pipeline:>12.2f} {algorithm:>12.3f} "
            f"{algorithm / base_algorithm:>12.1f} {error:>14.4f}"
        )


if __name__ == "__main__":
    main()
