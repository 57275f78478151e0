"""Mergeable partial statistics of one shard, and their reduction in shard order.

A shard's partial holds everything the analysis needs from its rows, in a form whose merge equals
one pass over all rows (integers exactly, float64 sums up to rounding, top-k and samples exactly):

==========================  ===================================================================
``fstats.*``                firing counts, Σ value, Σ value² (float64), maxima, the L0 histogram
                            (dense ``[d_sae]``); the activation histogram and the per-feature
                            top-k candidates as sparse ``(index, value)`` lists
``co.*``                    co-occurrence pair counts ``(i, j, C_ij)`` with ``i ≤ j`` (sparse)
``sparsity.*``              the float64 sums and Welford moments of L0 / L1 (``SparsityStats``)
``reconstruction.*``        Σ squared error, moments of x, cosine / L2-ratio sums
``quantile.*``              quantile-example candidates: per (feature, histogram bin) the
                            ``per_quantile`` rows with the smallest example hash
==========================  ===================================================================

Reduction (:class:`PartialReducer`) adds counts and sums, takes maxima, merges the top-k lists
with the earlier shard first (ties keep the earlier token, as one pass does), merges moments with
Chan et al.'s parallel update, and keeps a running bottom-k per (feature, bin) of the candidates —
bounded by ``d_sae · n_bins · per_quantile`` rows whatever the number of shards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from interplab.common.atomic import save_npz
from interplab.common.errors import InterplabError
from interplab.sae.collect import restore_state, snapshot_state
from interplab.sae.cooccurrence import CooccurrenceCounts
from interplab.sae.metrics import ReconstructionStats, SparsityStats
from interplab.sae.sampling import bottom_k, example_hash
from interplab.sae.stats import HIST_EDGES, FeatureStats, hist_bins

PARTIAL_VERSION = 1
N_BINS = HIST_EDGES.size - 1


def quantile_candidates(
    token_idx: np.ndarray, feature: np.ndarray, value: np.ndarray, per_quantile: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (feature, histogram bin) the ``per_quantile`` rows of smallest example hash."""
    feature = np.asarray(feature, dtype=np.int64)
    token_idx = np.asarray(token_idx, dtype=np.int64)
    value = np.asarray(value, dtype=np.float32)
    group = feature * N_BINS + hist_bins(value)
    rows, _ = bottom_k(group, example_hash(token_idx, feature), token_idx, per_quantile)
    return token_idx[rows], feature[rows], value[rows]


def shard_partial(
    fstats: FeatureStats,
    co: CooccurrenceCounts,
    sparsity: SparsityStats,
    reconstruction: ReconstructionStats,
    candidates: tuple[np.ndarray, np.ndarray, np.ndarray],
    meta: dict[str, Any],
) -> dict[str, np.ndarray]:
    """The arrays of one shard's partial (for ``np.savez``; nothing pickled)."""
    top = np.nonzero(fstats.top_tokens >= 0)
    hist = np.flatnonzero(fstats.hist)
    ci, cj, cc = co.upper_pairs()
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps({**meta, "version": PARTIAL_VERSION})),
        "fstats.n_tokens": np.array(fstats.n_tokens, np.int64),
        "fstats.count": fstats.count,
        "fstats.sum": fstats.sum,
        "fstats.sum_sq": fstats.sum_sq,
        "fstats.max": fstats.max,
        "fstats.l0_hist": fstats.l0_hist,
        "fstats.hist_index": hist.astype(np.int64),
        "fstats.hist_count": fstats.hist.reshape(-1)[hist],
        "fstats.top_feature": top[0].astype(np.int32),
        "fstats.top_rank": top[1].astype(np.int32),
        "fstats.top_value": fstats.top_values[top],
        "fstats.top_token": fstats.top_tokens[top],
        "co.n_tokens": np.array(co.n_tokens, np.int64),
        "co.i": ci,
        "co.j": cj,
        "co.count": cc.astype(np.int32) if cc.size == 0 or cc.max() < 2**31 else cc,
        "quantile.token": candidates[0].astype(np.int64),
        "quantile.feature": candidates[1].astype(np.int32),
        "quantile.value": candidates[2].astype(np.float32),
    }
    arrays.update(snapshot_state({"sparsity": sparsity, "reconstruction": reconstruction}))
    return arrays


def save_partial(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a partial as a compressed ``.npz`` (co-occurrence pairs dominate; they compress well)."""
    save_npz(path, arrays)


def load_partial(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InterplabError(
            f"{path}: unreadable partial statistics ({exc}); delete the shard's record to recollect it"
        ) from exc


class PartialReducer:
    """Reduces shard partials, added in shard order, into the one-pass accumulators."""

    def __init__(self, d_sae: int, d_in: int, top_k: int, dense_limit: int, per_quantile: int) -> None:
        self.d_sae, self.d_in, self.top_k, self.per_quantile = (
            int(d_sae),
            int(d_in),
            int(top_k),
            int(per_quantile),
        )
        self.fstats = FeatureStats(self.d_sae, self.top_k)
        self.co = CooccurrenceCounts(self.d_sae, dense_limit=dense_limit)
        self.sparsity = SparsityStats(self.d_sae)
        self.reconstruction = ReconstructionStats(self.d_in)
        self.cand = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
        self.n_shards = 0

    def add(self, p: dict[str, np.ndarray]) -> None:
        """Merge the next shard's partial."""
        meta = json.loads(str(p["meta"]))
        if meta.get("d_sae") != self.d_sae or meta.get("top_k") != self.top_k:
            raise InterplabError(
                f"partial of shard {meta.get('index')}: d_sae/top_k {meta.get('d_sae')}/{meta.get('top_k')} "
                f"differ from {self.d_sae}/{self.top_k}"
            )
        d, k = self.d_sae, self.top_k
        shard = FeatureStats(d, k)
        shard.n_tokens = int(p["fstats.n_tokens"])
        for name in ("count", "sum", "sum_sq", "max", "l0_hist"):
            setattr(shard, name, p[f"fstats.{name}"])
        shard.hist.reshape(-1)[p["fstats.hist_index"]] = p["fstats.hist_count"]
        f, r = p["fstats.top_feature"], p["fstats.top_rank"]
        shard.top_values[f, r] = p["fstats.top_value"]
        shard.top_tokens[f, r] = p["fstats.top_token"]
        self.fstats.merge(shard)
        self.co.add_upper_pairs(p["co.i"], p["co.j"], p["co.count"], int(p["co.n_tokens"]))

        sp_, rc = SparsityStats(d), ReconstructionStats(self.d_in)
        restore_state({"sparsity": sp_, "reconstruction": rc}, p)
        self.sparsity.merge(sp_)
        self.reconstruction.merge(rc)

        t = np.concatenate([self.cand[0], p["quantile.token"]])
        ft = np.concatenate([self.cand[1], p["quantile.feature"].astype(np.int64)])
        v = np.concatenate([self.cand[2], p["quantile.value"]])
        keep, _ = bottom_k(ft * N_BINS + hist_bins(v), example_hash(t, ft), t, self.per_quantile)
        self.cand = (t[keep], ft[keep], v[keep])
        self.n_shards += 1
