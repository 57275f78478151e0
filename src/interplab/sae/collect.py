"""The collection pass: ONE forward pass per batch (stopped after the hooked layer) feeds the
activation database, the per-feature statistics, the co-occurrence counts, sparsity and
reconstruction.

Per batch: activation at the hook → ``f, x̂ = SAE(x)`` for the batch's text tokens →
``SparsityStats``/``ReconstructionStats`` (sae.metrics) → the non-zero entries of ``f`` (one
``nonzero`` on the ``[n_tok, d_sae]`` matrix) are buffered as rows. When a shard is full its rows
are written (see :mod:`interplab.sae.activation_db`), then fed to :class:`~interplab.sae.stats.FeatureStats`
and :class:`~interplab.sae.cooccurrence.CooccurrenceCounts`, and the sparsity/reconstruction
accumulators are snapshotted beside the shard.

Resume: shards listed in the database manifest (same fingerprint) are not recomputed; their rows
are read back and replayed into the per-feature statistics and co-occurrence counts (the same
per-shard updates in the same order, so results equal an uninterrupted run exactly), and the
sparsity/reconstruction accumulators are restored from the last shard's snapshot.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from interplab.common.errors import InterplabError
from interplab.common.models import LoadedModel
from interplab.common.progress import make_progress, track
from interplab.sae.activation_db import (
    ACTIVATIONS_SCHEMA,
    TOKENS_SCHEMA,
    ActivationDBWriter,
    iter_shard_tables,
)
from interplab.sae.cooccurrence import DENSE_LIMIT as CO_DENSE_LIMIT
from interplab.sae.cooccurrence import CooccurrenceCounts
from interplab.sae.corpus import TokenWindows, iter_batches
from interplab.sae.hooks import HookPoint, capture_activations
from interplab.sae.metrics import ReconstructionStats, SparsityStats
from interplab.sae.model import SAE
from interplab.sae.stats import FeatureStats
from interplab.sae.topk import topk_sorted_by_index

log = logging.getLogger(__name__)

SHARD_TOKENS = 32_768
SHARD_ROWS = 4_000_000


# -- accumulator snapshots (no pickle: arrays in an .npz, kinds in a JSON string) ------------------
def _flatten(obj: Any, prefix: str, arrays: dict[str, np.ndarray], kinds: dict[str, str]) -> None:
    for name, value in vars(obj).items():
        key = f"{prefix}.{name}"
        if isinstance(value, torch.Tensor):
            arrays[key] = value.detach().cpu().numpy()
            kinds[key] = f"tensor:{str(value.dtype).removeprefix('torch.')}"
        elif isinstance(value, np.ndarray):
            arrays[key] = value
            kinds[key] = "ndarray"
        elif isinstance(value, bool | int | float | str) or value is None:
            kinds[key] = "json"
            arrays[key] = np.array(json.dumps(value))
        elif hasattr(value, "__dict__"):
            kinds[key] = "object"
            _flatten(value, key, arrays, kinds)
        else:
            raise TypeError(f"cannot snapshot {key} of type {type(value).__name__}")


def snapshot_state(objects: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every attribute of the given accumulators as arrays (for ``np.savez``)."""
    arrays: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for name, obj in objects.items():
        _flatten(obj, name, arrays, kinds)
    arrays["__kinds__"] = np.array(json.dumps(kinds))
    return arrays


def restore_state(objects: dict[str, Any], state: dict[str, np.ndarray]) -> None:
    """Put a :func:`snapshot_state` back into freshly built accumulators of the same types."""
    kinds: dict[str, str] = json.loads(str(state["__kinds__"]))
    for key in sorted(kinds, key=lambda k: k.count(".")):
        kind = kinds[key]
        head, *path = key.split(".")
        parent = objects[head]
        for part in path[:-1]:
            parent = getattr(parent, part)
        if kind == "object":
            continue
        if kind.startswith("tensor:"):
            value: Any = torch.from_numpy(np.array(state[key])).to(getattr(torch, kind.split(":", 1)[1]))
        elif kind == "ndarray":
            value = np.array(state[key])
        else:
            value = json.loads(str(state[key]))
        setattr(parent, path[-1], value)


def sparse_codes(sae: SAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(rows, cols, values, x̂)`` of ``sae`` on ``x [n, d_in]``: the non-zero codes in token-major
    order (features ascending within a token) and the reconstruction.

    Equal to ``nonzero`` of ``sae.encode(x)`` and to ``sae(x)``, but without dense ``[n, d_sae]``
    work after the encoder matmul where the SAE allows: a TopK SAE's codes come straight from
    ``topk``, and ``x̂`` is a sparse × dense product (``nnz · d_in`` instead of ``n · d_sae · d_in``).
    """
    n = x.shape[0]
    if sae.cfg.normalize_activations != "none":
        f, x_hat = sae.encode_decode(x)
        rows, cols = torch.nonzero(f, as_tuple=True)
        return rows, cols, f[rows, cols], x_hat
    if sae.cfg.architecture == "topk":
        k = int(sae.cfg.k or 1)
        values, idx = topk_sorted_by_index(sae.pre_activations(x), k)
        values = torch.relu(values)
        keep = values != 0
        rows = torch.arange(n, device=x.device)[:, None].expand(-1, k)[keep]
        cols, vals = idx[keep], values[keep]
    else:
        f = sae.encode(x)
        rows, cols = torch.nonzero(f, as_tuple=True)
        vals = f[rows, cols]
    codes = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), vals, (n, sae.d_sae), is_coalesced=True, check_invariants=False
    )
    x_hat = torch.sparse.mm(codes, sae.W_dec) + sae.b_dec
    return rows, cols, vals, x_hat


def update_sparsity(
    stats: SparsityStats, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, n: int
) -> None:
    """``SparsityStats.update`` from the non-zero codes (O(nnz) instead of O(n · d_sae)); the same
    fields and formulas as feeding the dense ``[n, d_sae]`` codes."""
    if n == 0:
        return
    d = stats.d_sae
    v64 = vals.detach().to(torch.float64).cpu()
    rows, cols = rows.cpu(), cols.cpu()
    in_batch = torch.bincount(cols, minlength=d)
    stats.counts += in_batch
    stats.act_sum += torch.bincount(cols, weights=v64, minlength=d)
    # dense max over the batch includes the zeros of tokens where the feature is silent
    start = torch.where(in_batch < n, 0.0, float("-inf")).to(torch.float64)
    batch_max = start.scatter_reduce(0, cols, v64, reduce="amax", include_self=True)
    stats.act_max = torch.maximum(stats.act_max, batch_max)
    stats.l0.update(torch.bincount(rows, minlength=n).to(torch.float64))
    stats.l1.update(torch.bincount(rows, weights=v64.abs(), minlength=n))
    stats.n_tokens += int(n)


class TokenStrings:
    """``token_id → decoded string`` by array lookup; each vocabulary id is decoded once."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.table = np.full(max(len(tokenizer), 1), None, dtype=object)

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.empty(0, dtype=object)
        top = int(ids.max())
        if top >= self.table.size:
            self.table = np.concatenate([self.table, np.full(top + 1 - self.table.size, None, object)])
        uniq = np.unique(ids)
        missing = uniq[np.equal(self.table[uniq], None)]
        if missing.size:
            decoded = self.tokenizer.batch_decode([[int(i)] for i in missing])
            self.table[missing] = np.array(decoded, dtype=object)
        return self.table[ids]


def slice_windows(windows: TokenWindows, start: int, stop: int | None = None) -> TokenWindows:
    """Windows ``start:stop`` as a new :class:`TokenWindows` (token counts recomputed)."""
    sl = slice(start, stop)
    positions = windows.positions[sl] if windows.positions is not None else None
    n_tok = int((positions >= 0).sum()) if positions is not None else int(windows.attention_mask[sl].sum())
    return dataclasses.replace(
        windows,
        input_ids=windows.input_ids[sl],
        attention_mask=windows.attention_mask[sl],
        text_idx=windows.text_idx[sl],
        start_pos=windows.start_pos[sl],
        positions=positions,
        n_tokens=n_tok,
    )


@dataclasses.dataclass
class CollectionResult:
    """Accumulators after the pass, and what the pass did."""

    feature_stats: FeatureStats
    cooccurrence: CooccurrenceCounts
    sparsity: SparsityStats
    reconstruction: ReconstructionStats
    db_path: Path
    n_tokens: int
    n_shards: int
    resumed_shards: int
    seconds: float
    seconds_forward: float = 0.0
    quantiles: Any = None  # QuantileExamples already chosen (a sharded merge), else a second pass
    missing_token_ranges: list[list[int]] = dataclasses.field(default_factory=list)  # partial merge

    @property
    def sections(self) -> dict[str, dict[str, Any]]:
        """The quick-check sections ``sparsity``, ``dead_features`` and ``reconstruction``."""
        out = self.sparsity.result()
        out["reconstruction"] = self.reconstruction.result()
        return out


class _ShardBuffer:
    def __init__(self) -> None:
        self.act: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.tok: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.n_tokens = 0
        self.n_rows = 0

    def add(self, token: np.ndarray, feature: np.ndarray, value: np.ndarray, ids, text, pos) -> None:
        self.act.append((token, feature, value))
        self.tok.append((ids, text, pos))
        self.n_tokens += len(ids)
        self.n_rows += len(token)


def collect(
    loaded: LoadedModel,
    hp: HookPoint,
    sae: SAE,
    windows: TokenWindows,
    db_path: str | Path,
    fingerprint: dict[str, Any],
    batch_size: int = 8,
    top_k: int = 20,
    shard_tokens: int = SHARD_TOKENS,
    shard_rows: int = SHARD_ROWS,
    cooccurrence_dense_limit: int = CO_DENSE_LIMIT,
    overwrite: bool = False,
    writer_factory: Any = ActivationDBWriter,
) -> CollectionResult:
    """Run the collection pass over ``windows`` into the database at ``db_path`` (see module doc)."""
    t0 = time.perf_counter()
    writer = writer_factory(db_path, fingerprint, windows.n_windows, sae.d_sae, overwrite=overwrite)
    fstats = FeatureStats(sae.d_sae, top_k)
    co = CooccurrenceCounts(sae.d_sae, dense_limit=cooccurrence_dense_limit)
    sparsity = SparsityStats(sae.d_sae)
    recon = ReconstructionStats(sae.d_in)
    accumulators = {"sparsity": sparsity, "reconstruction": recon}

    resumed = len(writer.shards)
    if resumed:
        log.info(
            "resuming: %d complete shards (%d windows) found in %s", resumed, writer.windows_done, db_path
        )
        for shard, table in track(
            iter_shard_tables(writer.path, writer.shards), "replaying stored shards", total=len(writer.shards)
        ):
            _feed(
                fstats,
                co,
                table["token_idx"].to_numpy(),
                table["feature"].to_numpy(),
                table["value"].to_numpy(),
                shard.n_tokens,
                shard.token_start,
            )
        state = writer.load_state()
        if state is None:
            raise InterplabError(
                f"{db_path}: the last shard has no accumulator snapshot; rerun with --overwrite"
            )
        restore_state(accumulators, state)

    strings = TokenStrings(loaded.tokenizer)
    base = writer.windows_done
    rest = slice_windows(windows, base)
    buf = _ShardBuffer()
    t_fwd = 0.0
    n_batches = -(-rest.n_windows // int(batch_size))

    def flush(window_end: int) -> None:
        token_major, feature_tm, value_tm, ids, text, pos = _concat(buf)
        order = feature_major_order(token_major, feature_tm, len(ids), writer.tokens_done, sae.d_sae)
        token, feature, value = token_major[order], feature_tm[order], value_tm[order]
        act_table = pa.Table.from_arrays(
            [pa.array(token, pa.int64()), pa.array(feature, pa.int32()), pa.array(value, pa.float32())],
            schema=ACTIVATIONS_SCHEMA,
        )
        start = writer.tokens_done
        tok_table = pa.Table.from_arrays(
            [
                pa.array(np.arange(start, start + len(ids), dtype=np.int64)),
                pa.array(text, pa.int64()),
                pa.array(pos.astype(np.int32), pa.int32()),
                pa.array(ids.astype(np.int32), pa.int32()),
                pa.array(strings(ids), pa.string()),
            ],
            schema=TOKENS_SCHEMA,
        )
        try:
            writer.write_shard(window_end, act_table, tok_table, snapshot_state(accumulators))
        except OSError as exc:
            raise InterplabError(
                f"{db_path}: writing shard {len(writer.shards)} failed ({exc}); the "
                f"{len(writer.shards)} complete shards are kept — rerun the same command to resume"
            ) from exc
        fstats.update(token, feature, value, len(ids), start)  # same row order as a replay
        co.update(token_major, feature_tm, len(ids), start)  # integer counts: order is irrelevant

    with make_progress() as progress, torch.no_grad():
        task = progress.add_task("collecting SAE activations", total=n_batches)
        for batch in iter_batches(rest, batch_size):
            tf = time.perf_counter()
            act = capture_activations(loaded, hp, batch.input_ids, batch.attention_mask, stop=True)
            t_fwd += time.perf_counter() - tf
            mask = batch.token_mask.to(act.device)
            x = act[mask].to(device=sae.device)
            rows, cols, vals, x_hat = sparse_codes(sae, x)
            update_sparsity(sparsity, rows, cols, vals, int(x.shape[0]))
            recon.update(x, x_hat)
            token_start = writer.tokens_done + buf.n_tokens
            buf.add(
                rows.cpu().numpy().astype(np.int64) + token_start,
                cols.cpu().numpy().astype(np.int32),
                vals.float().cpu().numpy(),
                batch.input_ids[batch.token_mask].numpy(),
                batch.text_idx[batch.token_mask].numpy(),
                batch.positions[batch.token_mask].numpy(),
            )
            assert batch.window_idx is not None
            window_end = base + int(batch.window_idx[-1]) + 1
            if buf.n_tokens >= shard_tokens or buf.n_rows >= shard_rows:
                flush(window_end)
                buf = _ShardBuffer()
            progress.advance(task)
        if buf.n_tokens or not writer.shards:
            flush(windows.n_windows)
    writer.write_manifest()
    return CollectionResult(
        feature_stats=fstats,
        cooccurrence=co,
        sparsity=sparsity,
        reconstruction=recon,
        db_path=Path(db_path),
        n_tokens=writer.tokens_done,
        n_shards=len(writer.shards),
        resumed_shards=resumed,
        seconds=time.perf_counter() - t0,
        seconds_forward=t_fwd,
    )


def feature_major_order(
    token: np.ndarray, feature: np.ndarray, n_tokens: int, token_start: int, d_sae: int
) -> np.ndarray:
    """Permutation putting rows in (feature, token_idx) order — the Parquet row order.

    Rows arrive token-major (``token`` non-decreasing, each token's features distinct), so a stable
    sort on the feature alone gives that order; with ``d_sae ≤ 65536`` the feature fits uint16 and
    numpy's stable sort is a linear-time radix sort. Otherwise one stable sort of a combined key.
    """
    if d_sae <= 1 << 16 and (token.size < 2 or bool((token[1:] >= token[:-1]).all())):
        return np.argsort(feature.astype(np.uint16), kind="stable")
    key = feature.astype(np.int64) * max(n_tokens, 1) + (token - token_start)
    return np.argsort(key, kind="stable")


def _concat(buf: _ShardBuffer) -> tuple[np.ndarray, ...]:
    def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)

    return (
        cat([a[0] for a in buf.act], np.int64),
        cat([a[1] for a in buf.act], np.int32),
        cat([a[2] for a in buf.act], np.float32),
        cat([t[0] for t in buf.tok], np.int64),
        cat([t[1] for t in buf.tok], np.int64),
        cat([t[2] for t in buf.tok], np.int64),
    )


def _feed(
    fstats: FeatureStats,
    co: CooccurrenceCounts,
    token: np.ndarray,
    feature: np.ndarray,
    value: np.ndarray,
    n_tokens: int,
    token_start: int,
) -> None:
    fstats.update(token, feature, value, n_tokens, token_start)
    co.update(token, feature, n_tokens, token_start)
