"""Speed of the runs figures and the built-in experiment, each against a baseline timed in this run.

1. Head blending: ``multiply_blend`` / ``screen_blend`` (whole-array) vs a per-pixel Python loop of
   the same formula, on 8 heads × 128 × 128 (results checked equal). Target: ≥ 30× faster.
2. In-context estimators: ``ngram_estimator`` (one-hot cumulative sums) vs brute-force counting per
   position, on 256 sequences × 64 tokens, k = 1, 2, 3 (checked equal). Target: ≥ 20× faster.
3. The default experiment sweep (2 init scales × 3 seeds, wandb offline) against the issue's budget
   of 180 s on 2 CPU cores (``--skip-experiment`` to leave it out). Target: ratio ≤ 1.

Run: ``.venv/bin/python benchmarks/bench_runs_figures.py``
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from interplab.runs.heads import head_colors, multiply_blend, screen_blend
from interplab.runs.markov import ngram_estimator, sample_markov


def loop_multiply(w: np.ndarray, c: np.ndarray) -> np.ndarray:
    H, Q, K = w.shape
    out = np.ones((Q, K, 3))
    for q in range(Q):
        for k in range(K):
            for h in range(H):
                out[q, k] *= 1 - w[h, q, k] * (1 - c[h])
    return out


def loop_screen(w: np.ndarray, c: np.ndarray, gamma: float) -> np.ndarray:
    H, Q, K = w.shape
    out = np.ones((Q, K, 3))
    for q in range(Q):
        for k in range(K):
            for h in range(H):
                out[q, k] *= 1 - w[h, q, k] ** gamma * c[h]
    return 1 - out


def loop_estimator(x: np.ndarray, k: int, n: int) -> np.ndarray:
    B, T = x.shape
    out = np.zeros((B, T, n))
    for b in range(B):
        seq = x[b].tolist()
        for t in range(T):
            m = min(k - 1, t + 1)
            ctx = tuple(seq[t - m + 1 : t + 1]) if m else ()
            counts = np.zeros(n)
            for i in range(m, t + 1):
                if tuple(seq[i - m : i]) == ctx:
                    counts[seq[i]] += 1
            out[b, t] = (counts + 1) / (counts.sum() + n)
    return out


def timed(fn, *args, repeat: int = 1):  # type: ignore[no-untyped-def]
    """(result, best wall time over ``repeat`` calls)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-experiment", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(1)  # as the experiment runs; tiny tensors lose time to thread hand-offs
    rng = np.random.default_rng(0)
    w = rng.random((8, 128, 128)) / 8
    c = head_colors(8)
    fast, t_fast = timed(multiply_blend, w, c, repeat=5)
    slow, t_slow = timed(loop_multiply, w, c)
    np.testing.assert_allclose(fast, slow)
    print(
        f"multiply blend 8×128×128: vectorised {t_fast * 1e3:.2f} ms, loop {t_slow:.2f} s → {t_slow / t_fast:.0f}×"
    )
    fast, t_fast = timed(screen_blend, w, c, 0.5, repeat=5)
    slow, t_slow = timed(loop_screen, w, c, 0.5)
    np.testing.assert_allclose(fast, slow)
    print(
        f"screen blend 8×128×128:   vectorised {t_fast * 1e3:.2f} ms, loop {t_slow:.2f} s → {t_slow / t_fast:.0f}×"
    )

    x = sample_markov(256, 64, 3, rng=np.random.default_rng(1))
    for k in (1, 2, 3):
        fast, t_fast = timed(ngram_estimator, x, k, 3, repeat=5)
        slow, t_slow = timed(loop_estimator, x.numpy(), k, 3)
        np.testing.assert_allclose(fast.numpy(), slow, atol=1e-12)
        print(
            f"estimator k={k} 256×64:     vectorised {t_fast * 1e3:.2f} ms, loop {t_slow:.2f} s → {t_slow / t_fast:.0f}×"
        )

    if not args.skip_experiment:
        from interplab.runs.experiment import run_experiment

        with tempfile.TemporaryDirectory() as tmp:
            result, seconds = timed(run_experiment, tmp)
        print(
            f"default experiment ({len(result.runs)} runs): {seconds:.1f} s "
            f"→ {seconds / 180:.2f} of the 180 s budget"
        )


if __name__ == "__main__":
    main()
