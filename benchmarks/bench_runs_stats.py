"""Speed and calibration of the statistics across seeds (``interplab.runs.bootstrap``), in one run.

1. Bootstrap intervals of the mean for G groups × S seeds × T steps with B resamples (default
   20 × 10 × 20 000, 2 000): our vectorised intervals (one set of run resamples per group, every
   step at once) against the straightforward loop a user would write — ``scipy.stats.bootstrap``
   per group and step. The loop is timed on ``--baseline-steps`` steps and scaled to the whole
   grid (it is linear in steps); the ratio's goal is ≥ 20×. On the timed steps the intervals must
   agree within Monte-Carlo error (reported as the largest difference over the interval width).
2. Coverage: on ``--trials`` independent normal samples, how often the 95 % interval holds the
   true mean (goal 93–97 %), for percentile and BCa at several numbers of seeds.

Run: ``.venv/bin/python benchmarks/bench_runs_stats.py`` (``--groups/--seeds/--steps/--n-boot`` to
scale down). TensorBoard reading is timed by ``benchmarks/bench_runs_tensorboard.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from interplab.runs import bootstrap as bs


def bench_speed(groups: int, seeds: int, steps: int, n_boot: int, baseline_steps: int) -> None:
    rng = np.random.default_rng(0)
    data = [rng.normal(size=(seeds, steps)).cumsum(axis=1) * 0.01 + g for g in range(groups)]
    t0 = time.perf_counter()
    ours = [bs.bootstrap_interval(x, "mean", 0.95, n_boot, "percentile", rng=g) for g, x in enumerate(data)]
    t_ours = time.perf_counter() - t0
    cols = np.linspace(0, steps - 1, baseline_steps).astype(int)
    t0 = time.perf_counter()
    ref_lo, ref_hi = np.empty(len(cols)), np.empty(len(cols))
    for k, j in enumerate(cols):
        res = stats.bootstrap(
            (data[0][:, j],), np.mean, n_resamples=n_boot, method="percentile", rng=k, vectorized=True
        ).confidence_interval
        ref_lo[k], ref_hi[k] = res.low, res.high
    t_loop = (time.perf_counter() - t0) / len(cols) * groups * steps
    width = ref_hi - ref_lo
    err = np.max(np.maximum(np.abs(ours[0].low[cols] - ref_lo), np.abs(ours[0].high[cols] - ref_hi)) / width)
    print(
        f"bootstrap {groups} groups × {seeds} seeds × {steps} steps, {n_boot} resamples: "
        f"ours {t_ours:.2f} s; scipy.stats.bootstrap loop {t_loop:.1f} s (timed on {len(cols)} steps, "
        f"scaled) → {t_loop / t_ours:.0f}× (goal ≥ 20×)"
    )
    print(f"  largest |ours − scipy| / interval width on the timed steps: {err:.3f} (Monte-Carlo error)")


def bench_coverage(trials: int, n_boot: int) -> None:
    rng = np.random.default_rng(1)
    for seeds in (10, 30):
        x = rng.normal(loc=2.0, scale=3.0, size=(seeds, trials))  # one trial per column
        for method in ("percentile", "bca"):
            iv = bs.bootstrap_interval(x, "mean", 0.95, n_boot, method, rng=2)
            cover = np.mean((iv.low <= 2.0) & (iv.high >= 2.0))
            print(f"coverage of 95 % {method:10s} intervals, {seeds:2d} seeds, {trials} trials: {cover:.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--baseline-steps", type=int, default=100)
    ap.add_argument("--trials", type=int, default=1000)
    args = ap.parse_args()
    bench_speed(args.groups, args.seeds, args.steps, args.n_boot, args.baseline_steps)
    bench_coverage(args.trials, args.n_boot)


if __name__ == "__main__":
    main()
