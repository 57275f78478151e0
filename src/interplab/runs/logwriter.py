"""Write offline runs in W&B's own format without the SDK (fast; for benchmarks and tests).

The records are ``wandb_internal_pb2.Record`` messages of the same kinds and shapes the SDK
writes in offline mode (header, run with config and tags, one history and one summary record per
logged step, exit), framed by :func:`interplab.runs.leveldb_log.encode_log` (byte-identical to
the SDK's framing, tested). The folder layout is the SDK's: ``<root>/wandb/offline-run-<time>-<id>/
run-<id>.wandb``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from interplab.runs.leveldb_log import write_log


def _json(value: Any) -> str:
    """JSON as W&B writes it (NaN, Infinity, -Infinity allowed; ints as ints)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _records(
    run_id: str,
    name: str,
    project: str,
    config: Mapping[str, Any],
    tags: Sequence[str],
    steps: np.ndarray,
    metrics: Mapping[str, np.ndarray],
    start: datetime,
    exit_code: int | None,
) -> Iterator[bytes]:
    from wandb.proto import wandb_internal_pb2 as pb

    num = 0

    def rec() -> Any:
        nonlocal num
        num += 1
        r = pb.Record()
        r.num = num
        return r

    r = rec()
    r.header.version_info.producer = "interplab-logwriter"
    r._info.stream_id = run_id
    yield r.SerializeToString()
    r = rec()
    r.run.run_id = run_id
    r.run.project = project
    r.run.display_name = name
    r.run.tags.extend(tags)
    r.run.start_time.FromDatetime(start)
    item = r.run.config.update.add()
    item.key, item.value_json = "_wandb", "{}"
    for key, value in config.items():
        item = r.run.config.update.add()
        item.key, item.value_json = key, _json(value)
    r._info.stream_id = run_id
    yield r.SerializeToString()
    t0 = start.timestamp()
    names = list(metrics)
    columns = [np.asarray(metrics[k], dtype=np.float64) for k in names]
    for i, step in enumerate(np.asarray(steps).tolist()):
        values = [
            (k, repr(float(col[i]))) for k, col in zip(names, columns, strict=True) if not math.isnan(col[i])
        ]
        texts = [(k, v) for k, v in values]
        runtime = 0.001 * i
        texts += [("_timestamp", repr(t0 + runtime)), ("_runtime", repr(runtime)), ("_step", str(step))]
        h = rec()
        for key, text in texts:
            it = h.history.item.add()
            it.nested_key.append(key)
            it.value_json = text
        h.history.step.num = step
        yield h.SerializeToString()
        s = rec()
        for key, text in texts:
            it = s.summary.update.add()
            it.nested_key.append(key)
            it.value_json = text
        yield s.SerializeToString()
    if exit_code is not None:
        r = rec()
        r.exit.exit_code = exit_code
        r._info.stream_id = run_id
        yield r.SerializeToString()


def write_offline_run(
    root: str | Path,
    run_id: str,
    metrics: Mapping[str, np.ndarray],
    steps: np.ndarray | None = None,
    name: str | None = None,
    project: str = "interplab",
    config: Mapping[str, Any] | None = None,
    tags: Sequence[str] = (),
    start: datetime | None = None,
    exit_code: int | None = 0,
) -> Path:
    """Write one offline run under ``root/wandb``; NaN in a metric means "not logged at that step".

    Returns the ``run-<id>.wandb`` path.
    """
    n = len(next(iter(metrics.values()))) if metrics else 0
    steps = np.arange(n) if steps is None else np.asarray(steps)
    start = start or datetime(2025, 1, 1, tzinfo=UTC)
    folder = Path(root) / "wandb" / f"offline-run-{start:%Y%m%d_%H%M%S}-{run_id}"
    (folder / "files").mkdir(parents=True, exist_ok=True)
    payloads = _records(
        run_id, name or run_id, project, dict(config or {}), list(tags), steps, metrics, start, exit_code
    )
    return write_log(folder / f"run-{run_id}.wandb", payloads)
