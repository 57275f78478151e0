"""Speed of reading TensorBoard runs (``interplab.runs.sources.tensorboard``), measured in one run.

R runs × T steps × K scalar tags (default 50 × 20 000 × 5), written once with torch's
``SummaryWriter``, into one DataFrame per run (step + one column per tag):

* ours cold (Parquet cache empty) and warm (cache filled);
* the ``EventAccumulator`` loop a user would write (``Reload()``, then ``Scalars(tag)`` per tag,
  pivoted into a DataFrame);
* ``tbparse.SummaryReader`` (``pivot=True``) when installed.

Every reader's values are checked equal to ours. Run: ``.venv/bin/python
benchmarks/bench_runs_tensorboard.py`` (``--runs/--steps`` to scale down; ``--data DIR`` keeps
the generated files and reuses them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TAGS = ["loss", "val_loss", "acc", "lr", "grad_norm"]


def generate(data: Path, n_runs: int, n_steps: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    marker = data / f".complete-{n_runs}x{n_steps}"
    if marker.exists():
        return
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for i in range(n_runs):
        w = SummaryWriter(str(data / f"run{i:03d}"), max_queue=10_000, flush_secs=3600)
        values = rng.normal(size=(len(TAGS), n_steps)).cumsum(axis=1)
        for step in range(n_steps):
            for k, tag in enumerate(TAGS):
                w.add_scalar(tag, values[k, step], step)
        w.close()
    marker.touch()
    print(f"generated {n_runs} runs × {n_steps} steps × {len(TAGS)} tags in {time.perf_counter() - t0:.1f} s")


def accumulator_loop(data: Path) -> dict[str, pd.DataFrame]:
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    out = {}
    for run_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})
        acc.Reload()
        cols = {}
        for tag in acc.Tags()["scalars"]:
            events = acc.Scalars(tag)
            cols[tag] = pd.Series([e.value for e in events], index=[e.step for e in events])
        out[run_dir.name] = pd.DataFrame(cols).rename_axis("_step").reset_index()
    return out


def tbparse_read(data: Path) -> pd.DataFrame | None:
    try:
        from tbparse import SummaryReader
    except ImportError:
        return None
    return SummaryReader(str(data), pivot=True, extra_columns={"dir_name"}).scalars


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--skip-tbparse", action="store_true")
    args = ap.parse_args()
    from interplab.runs.cache import HistoryCache
    from interplab.runs.sources.tensorboard import tensorboard_runs

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "tb"
        generate(data, args.runs, args.steps)
        cache = HistoryCache(Path(tmp) / "cache")
        t0 = time.perf_counter()
        cold = tensorboard_runs(data, cache=cache)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = tensorboard_runs(data, cache=cache)
        t_warm = time.perf_counter() - t0
        assert all(a.history().equals(b.history()) for a, b in zip(cold, warm, strict=True))
        t0 = time.perf_counter()
        ref = accumulator_loop(data)
        t_acc = time.perf_counter() - t0
        for run in cold:
            mine = run.history().set_index("_step")[TAGS]
            theirs = ref[run.id].set_index("_step")[TAGS]
            assert np.array_equal(mine.to_numpy(), theirs.to_numpy()), run.id
        n = f"{args.runs} runs × {args.steps} steps × {len(TAGS)} tags"
        print(
            f"{n}: ours cold {t_cold:.2f} s, warm (Parquet cache) {t_warm:.2f} s ({t_cold / t_warm:.0f}× faster)"
        )
        print(
            f"  EventAccumulator loop {t_acc:.2f} s → ours cold {t_acc / t_cold:.1f}×, warm {t_acc / t_warm:.0f}×"
        )
        if not args.skip_tbparse:
            t0 = time.perf_counter()
            tbp = tbparse_read(data)
            t_tbp = time.perf_counter() - t0
            if tbp is not None:
                assert len(tbp) == args.runs * args.steps
                print(
                    f"  tbparse {t_tbp:.2f} s → ours cold {t_tbp / t_cold:.1f}×, warm {t_tbp / t_warm:.0f}×"
                )


if __name__ == "__main__":
    main()
