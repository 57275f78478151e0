"""Collect shards of the plan: the forward pass to the hook, the SAE codes, one shard's Parquet files
and its mergeable partial statistics, then the record that marks the shard complete.

A worker needs no communication: it writes only files named after its own shards, each atomically
(temporary name, then rename), the record last. Recollecting a shard writes the same content.

On a GPU (:func:`device_batch`) the hot loop does not wait for the device: dense activations and
codes stay there, only the sparse codes and a few reconstruction sums are copied, asynchronously,
into pinned host memory, and a batch's host-side bookkeeping runs once the next batch is queued
(waiting on that batch's own CUDA event, not on the stream).
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
from interplab.sae.metrics import Moments, ReconstructionStats, SparsityStats, merge_moments
from interplab.sae.model import SAE
from interplab.sae.partials import quantile_candidates, save_partial, shard_partial
from interplab.sae.shards import ShardSpec, partial_rel, record_path
from interplab.sae.stats import FeatureStats

log = logging.getLogger(__name__)


@dataclasses.dataclass
class WorkerContext:
    """What every shard of one database is collected with; ``plan_params`` (the plan's ``params``:
    batch size, top-k, examples per quantile, co-occurrence dense limit) shape every shard."""

    loaded: LoadedModel
    hp: HookPoint
    sae: SAE
    windows: TokenWindows
    db_path: Path
    fingerprint: dict[str, Any]
    plan_params: dict[str, Any]
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    def param(self, name: str) -> int:
        return int(self.plan_params[name])


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
    """Start an asynchronous copy to pinned host memory (the tensor itself on CPU)."""
    if t.device.type == "cpu":
        return t
    out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    out.copy_(t, non_blocking=True)
    return out


class _Done:
    """Stands in for a CUDA event on CPU (work is already finished)."""

    def synchronize(self) -> None:
        return None


def reconstruction_terms(x: torch.Tensor, x_hat: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-batch sums :meth:`ReconstructionStats.update` adds, as device tensors (no host sync:
    masks become ``torch.where`` instead of boolean indexing)."""
    x, x_hat = x.to(torch.float64), x_hat.to(torch.float64)
    resid = ((x - x_hat) ** 2).sum(dim=1)
    mean = x.mean(dim=0)
    centred = (x - mean) ** 2
    total = centred.sum(dim=1)
    ok = total > 0
    norm_x = x.norm(dim=1)
    nz = norm_x > 0
    one = torch.ones_like(total)
    return {
        "sse": resid.sum(),
        "mean": mean,
        "m2": centred.sum(dim=0),
        "ev_sum": torch.where(ok, 1.0 - resid / torch.where(ok, total, one), 0.0).sum(),
        "ev_n": ok.sum(),
        "cos_sum": torch.nn.functional.cosine_similarity(x, x_hat, dim=1, eps=1e-12).sum(),
        "ratio_sum": torch.where(nz, x_hat.norm(dim=1) / torch.where(nz, norm_x, one), 0.0).sum(),
        "ratio_n": nz.sum(),
    }


def add_reconstruction_terms(recon: ReconstructionStats, terms: dict[str, torch.Tensor], n: int) -> None:
    """Add :func:`reconstruction_terms` (host copies) to ``recon``: the same fields as ``update``."""
    if n == 0:
        return
    recon.sse += float(terms["sse"])
    recon.x_moments = merge_moments(recon.x_moments, Moments(n, terms["mean"].cpu(), terms["m2"].cpu()))
    recon.ev_legacy_sum += float(terms["ev_sum"])
    recon.ev_legacy_n += int(terms["ev_n"])
    recon.cos_sum += float(terms["cos_sum"])
    recon.ratio_sum += float(terms["ratio_sum"])
    recon.ratio_n += int(terms["ratio_n"])
    recon.n_tokens += int(n)


@dataclasses.dataclass
class DeviceBatch:
    """One batch's results on their way to the host: fixed-shape sparse codes (``[n, k]`` for a
    TopK SAE, zeros dropped on the host) or, for other SAEs, the non-zero codes; reconstruction
    terms; an event marking the end of the copies."""

    n: int
    rows: torch.Tensor | None
    cols: torch.Tensor
    vals: torch.Tensor
    terms: dict[str, torch.Tensor]
    ready: Any

    def sparse(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rows, cols, vals)`` in token-major order, features ascending within a token."""
        if self.rows is not None:
            return self.rows, self.cols, self.vals
        keep = self.vals != 0
        k = self.cols.shape[1]
        rows = torch.arange(self.n)[:, None].expand(-1, k)[keep]
        return rows, self.cols[keep], self.vals[keep]


@torch.no_grad()
def device_batch(sae: SAE, act: torch.Tensor, token_mask: torch.Tensor) -> DeviceBatch:
    """SAE codes and reconstruction terms of one batch without waiting for the device: the token
    selection uses indices known on the host, a TopK SAE's codes keep their fixed ``[n, k]`` shape
    (the decoder is an ``embedding_bag`` over them), and every result is copied to pinned memory
    asynchronously. SAEs without a fixed number of codes per token need one ``nonzero``."""
    flat = token_mask.reshape(-1).nonzero().squeeze(1)  # host tensor: no device sync
    n = int(flat.numel())
    x = act.reshape(-1, act.shape[-1]).index_select(0, flat.to(act.device, non_blocking=True))
    x = x.to(device=sae.device)
    rows = None
    if sae.cfg.architecture == "topk" and sae.cfg.normalize_activations == "none" and n > 0:
        pre = sae.pre_activations(x)
        values, idx = torch.topk(pre, int(sae.cfg.k or 1), dim=1)
        idx, perm = idx.sort(dim=1)
        values = torch.relu(values.gather(1, perm))
        W = sae.W_dec
        x_hat = torch.nn.functional.embedding_bag(idx, W, per_sample_weights=values.to(W.dtype), mode="sum")
        x_hat = x_hat + sae.b_dec
        cols, vals = idx, values.float()
    else:
        r, cols, vals, x_hat = sparse_codes(sae, x)
        rows, vals = _host(r), vals.float()
    terms = {k: _host(v) for k, v in reconstruction_terms(x, x_hat).items()}
    cols, vals = _host(cols), _host(vals)
    if x.device.type == "cuda":
        ready: Any = torch.cuda.Event()
        ready.record()
    else:
        ready = _Done()
    return DeviceBatch(n=n, rows=rows, cols=cols, vals=vals, terms=terms, ready=ready)


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
        for item in pending:
            if isinstance(item, DeviceBatch):
                item.ready.synchronize()  # this batch's copies only; later batches keep running
                rows, cols, vals = item.sparse()
                n = item.n
                update_sparsity(sparsity, rows, cols, vals, n)
                add_reconstruction_terms(recon, item.terms, n)
            else:
                rows, cols, vals, x, x_hat, n = item
                update_sparsity(sparsity, rows, cols, vals, int(n))
                recon.update(x, x_hat)
            parts.append(
                (rows.numpy().astype(np.int64) + spec.token_start + n_seen, cols.numpy(), vals.numpy())
            )
            n_seen += int(n)
        pending.clear()

    on_device = ctx.device.type != "cpu"
    with torch.no_grad():
        for batch in iter_batches(sub, ctx.param("batch_size")):
            tf = time.perf_counter()
            act = capture_activations(
                ctx.loaded,
                ctx.hp,
                batch.input_ids.to(ctx.device, non_blocking=True),
                batch.attention_mask.to(ctx.device, non_blocking=True),
                stop=True,
            )
            t_fwd += time.perf_counter() - tf
            if on_device:
                pending.append(device_batch(sae, act, batch.token_mask))
            else:
                x = act[batch.token_mask.to(act.device)].to(device=sae.device)
                rows, cols, vals, x_hat = sparse_codes(sae, x)
                pending.append((rows, cols, vals.float(), x, x_hat, x.shape[0]))
            keep = batch.token_mask
            tok_parts.append(
                (batch.input_ids[keep].numpy(), batch.text_idx[keep].numpy(), batch.positions[keep].numpy())
            )
            if not on_device:
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

    top_k, per_quantile = ctx.param("top_k"), ctx.param("examples_per_quantile")
    fstats = FeatureStats(d, top_k)
    fstats.update(token, feature, value, len(ids), spec.token_start)
    co = CooccurrenceCounts(d, dense_limit=ctx.param("cooccurrence_dense_limit"))
    co.update(token_tm, feature_tm, len(ids), spec.token_start)
    cand = quantile_candidates(token, feature, value, per_quantile)
    partial = shard_partial(
        fstats,
        co,
        sparsity,
        recon,
        cand,
        {"index": spec.index, "d_sae": d, "top_k": top_k, "per_quantile": per_quantile},
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
        "plan": ctx.plan_params,
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
