"""Collect shards of the plan: the forward pass to the hook, the SAE codes, one shard's Parquet files
and its mergeable partial statistics, then the record that marks the shard complete.

A worker needs no communication: it writes only files named after its own shards, each atomically
(temporary name, then rename), the record last. Recollecting a shard writes the same content.

On a GPU the hot loop never waits for the host: dense activations and codes stay on the device,
only the sparse codes (and the per-token reconstruction terms) are copied, asynchronously, into
pinned host memory, and the host work of a batch is done after the next batch has been queued.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from interplab.common.atomic import atomic_path, write_json
from interplab.common.errors import InterplabError
from interplab.common.models import LoadedModel
from interplab.common.progress import make_progress
from interplab.sae.activation_db import (
    ACTIVATIONS_SCHEMA,
    ACTIVATIONS_WRITE_OPTIONS,
    ROW_GROUP_ROWS,
    TOKENS_SCHEMA,
)
from interplab.sae.collect import (
    TokenStrings,
    feature_major_order,
    slice_windows,
    sparse_codes,
    update_sparsity,
)
from interplab.sae.cooccurrence import CooccurrenceCounts
from interplab.sae.corpus import TokenWindows, iter_batches
from interplab.sae.hooks import HookPoint, capture_activations
from interplab.sae.metrics import ReconstructionStats, SparsityStats
from interplab.sae.model import SAE
from interplab.sae.partials import quantile_candidates, save_partial, shard_partial
from interplab.sae.shards import ShardSpec, partial_rel, record_path
from interplab.sae.stats import FeatureStats

log = logging.getLogger(__name__)


@dataclasses.dataclass
class WorkerContext:
    """What every shard of one database is collected with."""

    loaded: LoadedModel
    hp: HookPoint
    sae: SAE
    windows: TokenWindows
    db_path: Path
    fingerprint: dict[str, Any]
    plan_digest: str
    batch_size: int
    top_k: int
    cooccurrence_dense_limit: int
    examples_per_quantile: int
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))


@dataclasses.dataclass
class WorkerResult:
    """What one worker did."""

    collected: list[int]
    skipped: list[int]
    seconds: float
    seconds_forward: float


def _table(arrays: list[np.ndarray], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(a, f.type) for a, f in zip(arrays, schema, strict=True)], schema=schema
    )


def _write_parquet(path: Path, table: pa.Table, activations: bool) -> None:
    options = ACTIVATIONS_WRITE_OPTIONS if activations else {}
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS, **options)


def _host(t: torch.Tensor) -> torch.Tensor:
    """Start an asynchronous copy to pinned host memory (a plain copy on CPU)."""
    if t.device.type == "cpu":
        return t
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out


def collect_shard(ctx: WorkerContext, spec: ShardSpec, strings: TokenStrings) -> tuple[dict[str, Any], float]:
    """Collect one shard and write its files; returns its record and the forward seconds."""
    sae, d = ctx.sae, ctx.sae.d_sae
    sub = slice_windows(ctx.windows, spec.window_start, spec.window_end)
    sparsity, recon = SparsityStats(d), ReconstructionStats(sae.d_in)
    parts: list[tuple[torch.Tensor, ...]] = []
    tok_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_seen = 0
    t_fwd = 0.0
    pending: list[tuple[torch.Tensor, ...]] = []

    def drain() -> None:
        nonlocal n_seen
        for rows, cols, vals, x, x_hat, n in pending:
            if x.device.type != "cpu":
                torch.cuda.current_stream(x.device).synchronize()
            update_sparsity(sparsity, rows, cols, vals, int(n))
            recon.update(x, x_hat)
            parts.append(
                (rows.numpy().astype(np.int64) + spec.token_start + n_seen, cols.numpy(), vals.numpy())
            )
            n_seen += int(n)
        pending.clear()

    with torch.no_grad():
        for batch in iter_batches(sub, ctx.batch_size):
            tf = time.perf_counter()
            act = capture_activations(
                ctx.loaded,
                ctx.hp,
                batch.input_ids.to(ctx.device),
                batch.attention_mask.to(ctx.device),
                stop=True,
            )
            t_fwd += time.perf_counter() - tf
            mask = batch.token_mask.to(act.device, non_blocking=True)
            x = act[mask].to(device=sae.device)
            rows, cols, vals, x_hat = sparse_codes(sae, x)
            if x.device.type == "cpu":
                pending.append((rows, cols, vals.float(), x, x_hat, x.shape[0]))
            else:  # reconstruction terms need x and x̂: the float64 reduction runs on the host copy
                pending.append(
                    (_host(rows), _host(cols), _host(vals.float()), _host(x), _host(x_hat), x.shape[0])
                )
            keep = batch.token_mask
            tok_parts.append(
                (batch.input_ids[keep].numpy(), batch.text_idx[keep].numpy(), batch.positions[keep].numpy())
            )
            if x.device.type == "cpu":
                drain()
            elif len(pending) > 1:
                _drain_all_but_last(pending, drain)
        drain()

    if n_seen != spec.n_tokens:
        raise InterplabError(
            f"{ctx.db_path}: shard {spec.index} holds {n_seen} tokens, the plan says {spec.n_tokens}; "
            "the corpus changed under the database"
        )
    token_tm = _cat([p[0] for p in parts], np.int64)
    feature_tm = _cat([p[1] for p in parts], np.int32)
    value_tm = _cat([p[2] for p in parts], np.float32)
    ids, text, pos = (_cat([t[i] for t in tok_parts], np.int64) for i in range(3))
    order = feature_major_order(token_tm, feature_tm, len(ids), spec.token_start, d)
    token, feature, value = token_tm[order], feature_tm[order], value_tm[order]

    fstats = FeatureStats(d, ctx.top_k)
    fstats.update(token, feature, value, len(ids), spec.token_start)
    co = CooccurrenceCounts(d, dense_limit=ctx.cooccurrence_dense_limit)
    co.update(token_tm, feature_tm, len(ids), spec.token_start)
    cand = quantile_candidates(token, feature, value, ctx.examples_per_quantile)
    partial = shard_partial(
        fstats,
        co,
        sparsity,
        recon,
        cand,
        {"index": spec.index, "d_sae": d, "top_k": ctx.top_k, "per_quantile": ctx.examples_per_quantile},
    )
    db = ctx.db_path
    act_rel, tok_rel = f"activations/{spec.name}.parquet", f"tokens/{spec.name}.parquet"
    _write_parquet(db / act_rel, _table([token, feature, value], ACTIVATIONS_SCHEMA), activations=True)
    tok_idx = np.arange(spec.token_start, spec.token_end, dtype=np.int64)
    _write_parquet(
        db / tok_rel,
        _table(
            [tok_idx, text.astype(np.int64), pos.astype(np.int32), ids.astype(np.int32), strings(ids)],
            TOKENS_SCHEMA,
        ),
        activations=False,
    )
    save_partial(db / partial_rel(spec.index), partial)
    record = {
        **dataclasses.asdict(spec),
        "n_rows": int(token.size),
        "activations": act_rel,
        "tokens": tok_rel,
        "partial": partial_rel(spec.index),
        "plan_digest": ctx.plan_digest,
        "fingerprint": ctx.fingerprint,
    }
    write_json(record_path(db, spec.index), record)  # the shard is complete from here on
    return record, t_fwd


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)


def _drain_all_but_last(pending: list, drain: Any) -> None:
    """GPU: handle every queued batch but the newest, whose copies may still be in flight."""
    last = pending.pop()
    drain()
    pending.append(last)


def collect_shards(
    ctx: WorkerContext, specs: Sequence[ShardSpec], label: str = "collecting shards"
) -> WorkerResult:
    """Collect each of ``specs`` that has no record yet (a rerun fills only the missing ones)."""
    t0 = time.perf_counter()
    strings = TokenStrings(ctx.loaded.tokenizer)
    done, skipped = [], []
    t_fwd = 0.0
    with make_progress() as progress:
        task = progress.add_task(label, total=len(specs))
        for spec in specs:
            if record_path(ctx.db_path, spec.index).exists():
                skipped.append(spec.index)
            else:
                try:
                    _, tf = collect_shard(ctx, spec, strings)
                except OSError as exc:
                    raise InterplabError(
                        f"{ctx.db_path}: writing shard {spec.index} failed ({exc}); the {len(done)} shards "
                        "finished by this worker are kept — rerun the same command to fill the rest"
                    ) from exc
                t_fwd += tf
                done.append(spec.index)
            progress.advance(task)
    return WorkerResult(
        collected=done, skipped=skipped, seconds=time.perf_counter() - t0, seconds_forward=t_fwd
    )
