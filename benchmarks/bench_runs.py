"""Speed of reading offline W&B runs (``interplab.runs``), measured in one run.

1. Parse speed in MB/s of ``run-<id>.wandb`` logs: the compiled fast path vs the reference
   decoder (protobuf ``Record`` per record, the obvious baseline), on the same files; the decoded
   histories must be identical.
2. 50 runs × 20,000 steps × 5 metrics (logs in W&B's format, written once by
   ``interplab.runs.logwriter``) into one DataFrame with ``fetch_runs`` + ``get_runs_data``:
   cold (empty Parquet cache; target < 5 s on 2 cores) and warm (cache filled; target ≥ 5× faster).

Run: ``.venv/bin/python benchmarks/bench_runs.py`` (``--runs``/``--steps`` to scale down,
``--data DIR`` to keep the generated logs; they are reused when present).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

METRICS = ["loss", "val_loss", "acc", "kl_div_prefix_1_teacher_val", "grad_norm"]


def generate(data: Path, n_runs: int, n_steps: int) -> list[Path]:
    """Write the benchmark runs once (reused when the marker matches)."""
    from interplab.runs.logwriter import write_offline_run

    marker = data / f".complete-{n_runs}x{n_steps}"
    if marker.exists():
        return sorted(data.glob("wandb/*/run-*.wandb"))
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for i in range(n_runs):
        steps = np.arange(n_steps)
        base = 1.0 / (1.0 + steps / 500.0)
        metrics = {m: base * (1 + 0.1 * j) + rng.normal(0, 0.01, n_steps) for j, m in enumerate(METRICS)}
        metrics["val_loss"][steps % 10 != 0] = np.nan  # evaluated every 10 steps
        write_offline_run(
            data,
            f"bench{i:04d}",
            metrics,
            steps,
            config={"seed": i % 5, "init_scale": [0.01, 1.0][i % 2], "model": {"n_layers": 2}},
            tags=["bench", f"seed{i % 5}"],
        )
    marker.touch()
    print(f"generated {n_runs} runs × {n_steps} steps in {time.perf_counter() - t0:.1f} s under {data}")
    return sorted(data.glob("wandb/*/run-*.wandb"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--data", type=Path, default=None, help="where the generated runs live (kept)")
    ap.add_argument("--reference-runs", type=int, default=3, help="logs timed with the reference decoder")
    args = ap.parse_args()
    data = args.data or Path(tempfile.gettempdir()) / f"interplab-bench-runs-{args.runs}x{args.steps}"
    logs = generate(data, args.runs, args.steps)
    total_mb = sum(f.stat().st_size for f in logs) / 1e6
    print(f"{len(logs)} logs, {total_mb:.1f} MB, {os.cpu_count()} CPU cores")

    from interplab.runs import fetch_runs, get_runs_data
    from interplab.runs.offline import decode_log, decode_log_exact

    t0 = time.perf_counter()
    decode_log(logs[0])  # load (or, in a fresh checkout, compile) the kernels outside the timings
    print(
        f"compiled kernels ready in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.1f}"
    )

    # 1. parse speed, fast vs reference, on the same files
    subset = logs[: args.reference_runs]
    sub_mb = sum(f.stat().st_size for f in subset) / 1e6
    t0 = time.perf_counter()
    fast = [decode_log(f) for f in subset]
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = [decode_log_exact(f) for f in subset]
    t_ref = time.perf_counter() - t0
    for a, b in zip(fast, ref, strict=True):
        pd.testing.assert_frame_equal(a.history, b.history)
        assert a.summary == b.summary and a.config == b.config
    print(
        f"parse (1 thread, {len(subset)} logs, {sub_mb:.1f} MB): fast {sub_mb / t_fast:.1f} MB/s, "
        f"reference (protobuf per record) {sub_mb / t_ref:.1f} MB/s → {t_ref / t_fast:.1f}× faster"
    )

    # 2. all runs into one DataFrame, cold then warm cache
    with tempfile.TemporaryDirectory() as cache:
        os.environ["INTERPLAB_CACHE"] = cache
        t0 = time.perf_counter()
        df = get_runs_data(fetch_runs(data), METRICS)
        t_cold = time.perf_counter() - t0
        warm_times = []
        for _ in range(3):  # cold happens once by definition; warm is the best of three
            t0 = time.perf_counter()
            df_warm = get_runs_data(fetch_runs(data), METRICS)
            warm_times.append(time.perf_counter() - t0)
        t_warm = min(warm_times)
    pd.testing.assert_frame_equal(df, df_warm)
    assert len(df) == args.runs * args.steps, len(df)
    print(
        f"{args.runs} runs × {args.steps} steps × {len(METRICS)} metrics → DataFrame {df.shape}: "
        f"cold {t_cold:.2f} s ({total_mb / t_cold:.0f} MB/s; target < 5 s), warm {t_warm:.2f} s "
        f"(best of {', '.join(f'{t:.2f}' for t in warm_times)}) "
        f"→ {t_cold / t_warm:.1f}× faster (target ≥ 5×)"
    )


if __name__ == "__main__":
    main()
