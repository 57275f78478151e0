"""Speed of reading one WIDE offline W&B run (thousands of logged keys), measured in one run.

A run logging ``--keys`` metrics at every one of ``--steps`` steps (per-layer/per-head statistics,
the SDK's record mix: one history and one summary record per step, written once by
``interplab.runs.logwriter``) is read:

1. cold with ``fetch_runs`` (empty Parquet cache: decode with the compiled fast path, build the
   history frame, write the cache) — goal: 20,000 keys × 1,000 steps in under 10 s;
2. warm (cache filled);
3. the reference decoder (protobuf ``Record`` per record) on the first ``--reference-steps`` steps
   of the same run, against the fast decoder on those same bytes (identical histories asserted);
   the ratio is printed, and the reference's time for the whole run is extrapolated from it.

Run: ``.venv/bin/python benchmarks/bench_runs_wide.py`` (``--keys``/``--steps`` to scale down,
``--data DIR`` to keep the generated log; it is reused when present).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def key_names(n_keys: int) -> list[str]:
    """Per-layer, per-head statistic names, as interpretability runs log them."""
    stats = ["attn_entropy", "attn_max", "grad_norm", "act_mean", "act_std"]
    return [f"layer{k // 500}/head{(k // 5) % 100}/{stats[k % 5]}" for k in range(n_keys)]


def generate(data: Path, run_id: str, n_keys: int, n_steps: int) -> Path:
    """Write the wide run once (reused when the marker matches)."""
    from interplab.runs.logwriter import write_offline_run

    marker = data / f".complete-{run_id}"
    if marker.exists():
        return next(data.glob(f"wandb/*-{run_id}/run-{run_id}.wandb"))
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    metrics = {k: rng.normal(size=n_steps).round(6) for k in key_names(n_keys)}
    path = write_offline_run(data, run_id, metrics, config={"n_keys": n_keys}, tags=["wide"])
    marker.touch()
    size = path.stat().st_size / 1e6
    print(f"generated {n_keys} keys × {n_steps} steps ({size:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("--steps", type=int, default=1_000)
    ap.add_argument("--reference-steps", type=int, default=20, help="steps decoded by the reference")
    ap.add_argument("--data", type=Path, default=None, help="where the generated run lives (kept)")
    args = ap.parse_args()

    from interplab.runs import fetch_runs
    from interplab.runs.cache import HistoryCache
    from interplab.runs.offline import decode_log, decode_log_exact

    tmp = tempfile.TemporaryDirectory(prefix="bench_runs_wide_")
    data = args.data or Path(tmp.name) / "data"
    full = generate(data / "full", f"wide{args.keys}x{args.steps}", args.keys, args.steps)
    ref_steps = min(args.reference_steps, args.steps)
    prefix = generate(data / "prefix", f"wide{args.keys}x{ref_steps}", args.keys, ref_steps)
    decode_log(prefix)  # load (or, in a fresh checkout, compile) the kernels outside the timings
    size = full.stat().st_size / 1e6

    cache = HistoryCache(Path(tmp.name) / "cache")
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    (run,) = fetch_runs(full, cache=cache)
    hist = run.history()
    cold = time.perf_counter() - t0
    cold_cpu = time.process_time() - c0  # what the read costs when the machine is not shared
    assert hist.shape == (args.steps, args.keys + 3), hist.shape
    t0 = time.perf_counter()
    (again,) = fetch_runs(full, cache=cache)
    warm = time.perf_counter() - t0
    assert again.history().shape == hist.shape

    t0 = time.perf_counter()
    fast_prefix = decode_log(prefix)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_prefix = decode_log_exact(prefix)
    t_ref = time.perf_counter() - t0
    pd.testing.assert_frame_equal(fast_prefix.history, ref_prefix.history)
    ref_full = t_ref * full.stat().st_size / prefix.stat().st_size

    print(f"wide run: {args.keys} keys × {args.steps} steps, {size:.0f} MB log")
    print(
        f"cold fetch_runs (decode + frame + cache write): {cold:.2f} s wall, {cold_cpu:.2f} s CPU "
        f"(goal < 10 s at 20,000 × 1,000; load average {load_before:.1f} before)"
    )
    print(
        f"warm fetch_runs (Parquet cache):               {warm:.2f} s  ({cold / warm:.1f}× faster than cold)"
    )
    print(
        f"first {ref_steps} steps ({prefix.stat().st_size / 1e6:.0f} MB): fast {t_fast:.2f} s, "
        f"reference {t_ref:.2f} s → fast path {t_ref / t_fast:.1f}× faster (identical histories)"
    )
    print(
        f"reference decoder on the whole run (extrapolated): {ref_full:.0f} s → cold is "
        f"{ref_full / cold:.1f}× faster; load average {os.getloadavg()[0]:.1f}"
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
