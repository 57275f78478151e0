"""Per-feature summaries: one JSON object per feature, built from the streaming statistics, the
matrices and the activation database (contexts are read shard by shard, features in chunks, so
memory stays bounded for large SAEs)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interplab.common.atomic import save_npz
from interplab.common.models import LoadedModel
from interplab.sae.activation_db import Shard, iter_shard_tables
from interplab.sae.layout import DENSE_THRESHOLD, LOGITS_UNIT, FeatureSummary
from interplab.sae.stats import EXAMPLES_PER_QUANTILE, HIST_EDGES, FeatureStats, QuantileExamples

log = logging.getLogger(__name__)


def gather_tokens(db_path: Path, shards: list[Shard], token_idx: np.ndarray) -> dict[str, np.ndarray]:
    """``token_id``, ``text_idx`` and ``position`` of the given tokens (any order, repeats allowed),
    reading the token shards one at a time."""
    token_idx = np.asarray(token_idx, dtype=np.int64)
    out = {
        "token_id": np.full(token_idx.shape, -1, np.int64),
        "text_idx": np.full(token_idx.shape, -1, np.int64),
        "position": np.full(token_idx.shape, -1, np.int64),
    }
    flat = token_idx.ravel()
    for shard, table in iter_shard_tables(
        db_path, shards, kind="tokens", columns=["token_id", "text_idx", "position"]
    ):
        inside = (flat >= shard.token_start) & (flat < shard.token_end)
        if not inside.any():
            continue
        local = flat[inside] - shard.token_start
        for key in out:
            out[key].ravel()[inside] = table[key].to_numpy()[local]
    return out


@dataclasses.dataclass
class Contexts:
    """Context windows around example tokens: ``ids [m, 2r+1]`` (−1 outside the example's text)."""

    ids: np.ndarray
    text_idx: np.ndarray
    position: np.ndarray
    radius: int


def contexts_for(
    db_path: Path, shards: list[Shard], token_idx: np.ndarray, radius: int, n_tokens: int
) -> Contexts:
    """Token ids around each of ``token_idx`` (flattened), restricted to the same text."""
    centre = np.asarray(token_idx, dtype=np.int64).ravel()
    offsets = np.arange(-radius, radius + 1)
    window = centre[:, None] + offsets[None, :]
    valid = (window >= 0) & (window < n_tokens) & (centre[:, None] >= 0)
    got = gather_tokens(db_path, shards, np.where(valid, window, 0))
    centre_text = got["text_idx"][:, radius]
    same = valid & (got["text_idx"] == centre_text[:, None])
    ids = np.where(same, got["token_id"], -1)
    return Contexts(ids=ids, text_idx=centre_text, position=got["position"][:, radius], radius=radius)


def logit_effects(sae_W_dec: torch.Tensor, W_U: torch.Tensor | None, k: int = 10, chunk: int = 1024):
    """Top promoted / suppressed tokens of each feature's direct effect ``W_dec · W_Uᵀ`` (no final
    norm): ``(prom_idx, prom_val, supp_idx, supp_val)`` each ``[d_sae, k]``, or None without W_U."""
    if W_U is None:
        return None
    W_dec = sae_W_dec.detach().float().cpu()
    W_U = W_U.detach().float().cpu()
    d = W_dec.shape[0]
    k = min(k, W_U.shape[0])
    out = [
        np.zeros((d, k), np.int64),
        np.zeros((d, k), np.float32),
        np.zeros((d, k), np.int64),
        np.zeros((d, k), np.float32),
    ]
    for s in range(0, d, chunk):
        eff = W_dec[s : s + chunk] @ W_U.T
        pv, pi = torch.topk(eff, k, dim=1, largest=True)
        sv, si = torch.topk(eff, k, dim=1, largest=False)
        out[0][s : s + chunk], out[1][s : s + chunk] = pi.numpy(), pv.numpy()
        out[2][s : s + chunk], out[3][s : s + chunk] = si.numpy(), sv.numpy()
    return tuple(out)


LOGIT_ARRAYS = ("promoted_idx", "promoted_val", "suppressed_idx", "suppressed_val")


@dataclasses.dataclass(frozen=True)
class LogitUnit:
    """The logit effects of a database's SAE (None: the model has no unembedding of the SAE's
    width) and whether the model has a language-model head."""

    effects: tuple[np.ndarray, ...] | None
    has_lm_head: bool


def _unit_key(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def save_logit_unit(db: Path, key: dict[str, Any], unit: LogitUnit) -> Path:
    """Store ``unit``, computed for ``key`` (what it depends on), under ``db``."""
    arrays = dict(zip(LOGIT_ARRAYS, unit.effects, strict=True)) if unit.effects is not None else {}
    return save_npz(
        Path(db) / LOGITS_UNIT, {"key": _unit_key(key), "has_lm_head": unit.has_lm_head, **arrays}
    )


def load_logit_unit(db: Path, key: dict[str, Any]) -> LogitUnit | None:
    """The stored logit effects when they were computed for ``key``; None when absent or stale."""
    path = Path(db) / LOGITS_UNIT
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        if str(z["key"]) != _unit_key(key):
            return None
        effects = tuple(z[name] for name in LOGIT_ARRAYS) if LOGIT_ARRAYS[0] in z.files else None
        return LogitUnit(effects=effects, has_lm_head=bool(z["has_lm_head"]))


def model_logit_unit(loaded: LoadedModel, sae_W_dec: torch.Tensor) -> LogitUnit:
    """The logit effects of the SAE through ``loaded``'s unembedding (None without one of its width)."""
    W_U = unembedding(loaded.model)
    usable = W_U is not None and W_U.shape[1] == sae_W_dec.shape[1]
    return LogitUnit(effects=logit_effects(sae_W_dec, W_U if usable else None), has_lm_head=loaded.is_causal)


def unembedding(model: Any) -> torch.Tensor | None:
    """The model's output embedding matrix ``W_U [vocab, d_model]``, or None (e.g. BERT encoders)."""
    get = getattr(model, "get_output_embeddings", None)
    emb = get() if callable(get) else None
    weight = getattr(emb, "weight", None)
    return weight if isinstance(weight, torch.Tensor) else None


@dataclasses.dataclass
class SummaryInputs:
    """Everything the per-feature records are built from."""

    stats: FeatureStats
    quantiles: QuantileExamples
    db_path: Path
    shards: list[Shard]
    n_tokens: int
    tokenizer: Any
    similar: tuple[np.ndarray, np.ndarray]
    coactivating: tuple[np.ndarray, np.ndarray]
    cooccurrence_counts: Any  # dense array or scipy sparse (for the "count" of each co-active pair)
    logits: tuple[np.ndarray, ...] | None
    ablation: dict[int, dict[str, Any]]
    context_radius: int = 10
    n_neighbours: int = 10
    n_logits: int = 10


def _decode_table(tokenizer: Any, ids: np.ndarray) -> dict[int, str]:
    uniq = [int(i) for i in np.unique(ids) if i >= 0]
    return dict(zip(uniq, tokenizer.batch_decode([[i] for i in uniq]), strict=True))


def _shown_contexts(ctx: Contexts, table: dict[int, str], texts: list[str]) -> list[dict[str, Any]]:
    """The example keys that depend only on the context (one dict per context row, shared by every
    example centred on that token)."""
    r = ctx.radius
    ids = ctx.ids.tolist()
    centre = ctx.ids[:, r].tolist()
    before = (ctx.ids[:, :r] >= 0).sum(axis=1).tolist()
    return [
        {
            "token": table.get(c, ""),
            "token_id": c,
            "text_idx": t,
            "position": pos,
            "context": text,
            "context_tokens": [table.get(i, "") for i in row if i >= 0],
            "context_index": b,
        }
        for row, c, t, pos, text, b in zip(
            ids, centre, ctx.text_idx.tolist(), ctx.position.tolist(), texts, before, strict=True
        )
    ]


def _examples(
    shown: list[dict[str, Any]], rows: np.ndarray, values: np.ndarray, tokens: np.ndarray
) -> list[dict[str, Any]]:
    return [
        {"activation": v, "token_idx": t, **shown[row]}
        for row, v, t in zip(rows.tolist(), values.tolist(), tokens.tolist(), strict=True)
    ]


def iter_feature_records(inp: SummaryInputs, chunk: int = 4096) -> Iterator[FeatureSummary]:
    """Yield the summary of each feature in order (see docs/sae-analysis.md for every key)."""
    st = inp.stats
    d = st.d_sae
    density = st.density
    mean_active, mean_all, std_active = st.mean_active, st.mean_all, st.std_active
    n_bins = HIST_EDGES.size - 1
    counts = inp.cooccurrence_counts
    for s in range(0, d, chunk):
        feats = np.arange(s, min(d, s + chunk))
        top_t = st.top_tokens[feats]
        top_v = st.top_values[feats]
        q_t = inp.quantiles.token[feats].reshape(feats.size, -1)  # [c, nq · per_quantile]
        q_v = inp.quantiles.value[feats].reshape(feats.size, -1)
        per_q = inp.quantiles.per_quantile
        all_t = np.concatenate([top_t, q_t], axis=1)  # [c, k + nq]
        # a context is a function of its centre token: gather and decode each distinct one once
        centres, row_of = np.unique(all_t, return_inverse=True)
        row_of = row_of.reshape(all_t.shape)
        ctx = contexts_for(inp.db_path, inp.shards, centres, inp.context_radius, inp.n_tokens)
        ids_for_decode = ctx.ids
        logit_ids = (
            np.concatenate([inp.logits[0][feats].ravel(), inp.logits[2][feats].ravel()])
            if inp.logits
            else np.empty(0, np.int64)
        )
        table = _decode_table(inp.tokenizer, np.concatenate([ids_for_decode.ravel(), logit_ids]))
        texts = inp.tokenizer.batch_decode([row[row >= 0].tolist() for row in ctx.ids])
        shown = _shown_contexts(ctx, table, texts)
        k = top_t.shape[1]
        for ci, f in enumerate(feats):
            valid_top = np.flatnonzero(top_t[ci] >= 0)
            top_examples = _examples(shown, row_of[ci, valid_top], top_v[ci][valid_top], top_t[ci][valid_top])
            valid_q = np.flatnonzero(q_t[ci] >= 0)
            q_examples = _examples(shown, row_of[ci, k + valid_q], q_v[ci][valid_q], q_t[ci][valid_q])
            for col, ex in zip(valid_q, q_examples, strict=True):
                j = int(col) // per_q
                b = int(inp.quantiles.target_bin[f, j])
                ex["quantile"] = inp.quantiles.quantiles[j]
                ex["bin_lower"] = float(HIST_EDGES[b]) if b > 0 else 0.0
                ex["bin_upper"] = float(HIST_EDGES[b + 1]) if b < n_bins - 1 else None
            tok_counts: dict[str, list[float]] = {}
            for ex in top_examples:
                entry = tok_counts.setdefault(ex["token"], [0, ex["activation"]])
                entry[0] += 1
            hist = st.hist[f]
            nz = np.flatnonzero(hist)
            lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
            sim_i, sim_v = inp.similar[0][f], inp.similar[1][f]
            co_i, co_v = inp.coactivating[0][f], inp.coactivating[1][f]
            co_ok = (co_i >= 0) & np.isfinite(co_v)
            co_idx = co_i[co_ok]
            if hasattr(counts, "tocsr"):
                co_counts = np.asarray(counts[[int(f)], :].toarray()).ravel()[co_idx] if co_idx.size else []
            else:
                co_counts = counts[f, co_idx]
            record: FeatureSummary = {
                "feature": int(f),
                "density": float(density[f]),
                "n_fires": int(st.count[f]),
                "mean_activation": float(mean_active[f]),
                "mean_activation_all_tokens": float(mean_all[f]),
                "std_activation": float(std_active[f]),
                "max_activation": float(st.max[f]),
                "is_dead": bool(st.count[f] == 0),
                "is_dense": bool(density[f] > DENSE_THRESHOLD),
                "top_tokens": [
                    {"token": t, "count": int(c), "max_activation": float(m)}
                    for t, (c, m) in tok_counts.items()
                ],
                "top_examples": top_examples,
                "quantile_examples": q_examples,
                "logit_effects": None,
                "similar_features": [
                    {"feature": int(i), "value": float(v)}
                    for i, v in zip(sim_i, sim_v, strict=True)
                    if i >= 0
                ],
                "coactivating_features": [
                    {"feature": int(i), "value": float(v), "count": int(c)}
                    for i, v, c in zip(co_idx, co_v[co_ok], co_counts, strict=True)
                ],
                "activation_histogram": {
                    "bin_edges": HIST_EDGES[lo : hi + 1].tolist(),
                    "counts": hist[lo:hi].tolist(),
                },
                "ablation": inp.ablation.get(int(f)),
            }
            if inp.logits is not None:
                pi, pv, si, sv = (a[f] for a in inp.logits)
                record["logit_effects"] = {
                    "promoted": [
                        {"token": table.get(int(i), ""), "token_id": int(i), "value": float(v)}
                        for i, v in zip(pi, pv, strict=True)
                    ],
                    "suppressed": [
                        {"token": table.get(int(i), ""), "token_id": int(i), "value": float(v)}
                        for i, v in zip(si, sv, strict=True)
                    ],
                }
            yield record


def quantile_pass(
    stats: FeatureStats, db_path: Path, shards: list[Shard], per_quantile: int = EXAMPLES_PER_QUANTILE
) -> QuantileExamples:
    """Second pass over the stored rows choosing the quantile examples."""
    q = QuantileExamples(stats, per_quantile=per_quantile)
    for _shard, table in iter_shard_tables(db_path, shards):
        q.update(table["token_idx"].to_numpy(), table["feature"].to_numpy(), table["value"].to_numpy())
    return q
