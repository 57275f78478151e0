"""Streaming per-feature statistics, updated from activation rows (token_idx, feature, value).

Everything is vectorised over the rows of a shard (``np.bincount``, one lexsort for the top-k),
so the cost is linear in the number of non-zero activations and the state is ``O(d_sae · k)``:

* ``count``, ``sum``, ``sum_sq`` (float64), ``max`` per feature;
* the top-k activations of each feature with their ``token_idx`` (value descending, earlier token
  first among ties), merged shard by shard;
* a histogram of each feature's non-zero activations over fixed log-spaced bins
  (:data:`HIST_EDGES`; values below the first edge fall into the first bin, values above the last
  into the last bin);
* examples near activation quantiles, chosen in a second pass (:class:`QuantileExamples`): for each
  feature and quantile q the bin holding the q-quantile is found from the histogram, and
  ``per_quantile`` of the activations in that bin are sampled uniformly over the corpus — the rows
  with the smallest hash of ``(token_idx, feature)`` (:mod:`interplab.sae.sampling`), so the choice
  is deterministic and exactly mergeable across shards.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

HIST_EDGES = np.logspace(-3, 3, 61)  # 60 bins, 10 per decade from 1e-3 to 1e3
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
EXAMPLES_PER_QUANTILE = 5


def hist_bins(values: np.ndarray, edges: np.ndarray = HIST_EDGES) -> np.ndarray:
    """Bin index of each value (open-ended first and last bins)."""
    n_bins = edges.size - 1
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, n_bins - 1)


def _descending_float_key(value: np.ndarray) -> np.ndarray:
    """uint32 keys whose ascending order is the descending order of the float32 values."""
    bits = np.ascontiguousarray(value, dtype=np.float32).view(np.uint32)
    ascending = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))
    return ~ascending


def _load_topk_kernel() -> Any:
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; the sort path is the fallback
        return None

    @numba.njit(nogil=True, cache=True)
    def segment_topk(starts, keys, k, out_rows):  # pragma: no cover - compiled
        """For each feature's rows ``starts[f]:starts[f+1]`` (in token order) keep the row indices of
        the ``k`` smallest ``keys`` (earlier row first among equal keys) in ``out_rows[f]``, sorted —
        the first ``k`` of a stable sort of the segment by key."""
        for f in range(starts.shape[0] - 1):
            n = 0
            for r in range(starts[f], starts[f + 1]):
                kr = keys[r]
                if n == k and kr >= keys[out_rows[f, k - 1]]:
                    continue
                j = n if n < k else k - 1
                while j > 0 and keys[out_rows[f, j - 1]] > kr:
                    out_rows[f, j] = out_rows[f, j - 1]
                    j -= 1
                out_rows[f, j] = r
                if n < k:
                    n += 1

    return segment_topk


@functools.cache
def _topk_kernel() -> Any:
    """The compiled kernel(s), built once per process (None without numba)."""
    return _load_topk_kernel()


def _feature_token_sorted(token: np.ndarray, feature: np.ndarray) -> bool:
    """Whether rows are sorted by (feature, token) — as shards store them."""
    if feature.size < 2:
        return True
    same = feature[1:] == feature[:-1]
    return bool(((feature[1:] > feature[:-1]) | (same & (token[1:] > token[:-1]))).all())


def _feature_value_order(token: np.ndarray, feature: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Row order by (feature, value descending, token). Rows already sorted by (feature, token) —
    as shards store them — need one stable sort on a packed 64-bit (feature, value) key."""
    if feature.size > 1 and _feature_token_sorted(token, feature) and int(feature.max()) < 2**31:
        key = (feature.astype(np.uint64) << np.uint64(32)) | _descending_float_key(value).astype(np.uint64)
        return np.argsort(key, kind="stable")
    return np.lexsort((token, -value, feature))


@dataclasses.dataclass
class FeatureStats:
    """Per-feature streaming statistics (see module docstring)."""

    d_sae: int
    top_k: int = 20
    n_tokens: int = 0
    count: np.ndarray = dataclasses.field(init=False)
    sum: np.ndarray = dataclasses.field(init=False)
    sum_sq: np.ndarray = dataclasses.field(init=False)
    max: np.ndarray = dataclasses.field(init=False)
    top_values: np.ndarray = dataclasses.field(init=False)
    top_tokens: np.ndarray = dataclasses.field(init=False)
    hist: np.ndarray = dataclasses.field(init=False)
    l0_hist: np.ndarray = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        d, k = int(self.d_sae), int(self.top_k)
        self.count = np.zeros(d, np.int64)
        self.sum = np.zeros(d, np.float64)
        self.sum_sq = np.zeros(d, np.float64)
        self.max = np.zeros(d, np.float32)
        self.top_values = np.full((d, k), -np.inf, np.float32)
        self.top_tokens = np.full((d, k), -1, np.int64)
        self.hist = np.zeros((d, HIST_EDGES.size - 1), np.int64)
        self.l0_hist = np.zeros(d + 1, np.int64)  # tokens with L0 = j

    def update(
        self,
        token_idx: np.ndarray,
        feature: np.ndarray,
        value: np.ndarray,
        n_tokens: int,
        token_start: int = 0,
    ) -> None:
        """Add the rows of one shard covering tokens ``token_start .. token_start + n_tokens − 1``."""
        d, k = self.d_sae, self.top_k
        feature = np.asarray(feature, dtype=np.int64)
        value = np.asarray(value, dtype=np.float32)
        token_idx = np.asarray(token_idx, dtype=np.int64)
        self.n_tokens += int(n_tokens)
        l0 = np.bincount(token_idx - int(token_start), minlength=int(n_tokens))
        self.l0_hist += np.bincount(l0, minlength=d + 1)[: d + 1]
        if feature.size == 0:
            return
        v64 = value.astype(np.float64)
        self.count += np.bincount(feature, minlength=d)
        self.sum += np.bincount(feature, weights=v64, minlength=d)
        self.sum_sq += np.bincount(feature, weights=v64 * v64, minlength=d)
        n_bins = HIST_EDGES.size - 1
        self.hist += np.bincount(feature * n_bins + hist_bins(value), minlength=d * n_bins).reshape(d, n_bins)
        kernel = _topk_kernel()
        if (
            kernel is not None
            and k > 0
            and int(feature.max()) < d
            and _feature_token_sorted(token_idx, feature)
        ):
            # rows in (feature, token) order: per-feature segments, top-k by insertion (compiled)
            starts = np.searchsorted(feature, np.arange(d + 1))
            present = np.flatnonzero(starts[1:] > starts[:-1])
            seg_max = np.maximum.reduceat(value, starts[present])
            self.max[present] = np.maximum(self.max[present], seg_max)
            rows = np.full((d, k), -1, np.int64)
            kernel(starts, _descending_float_key(value), k, rows)
            got = rows >= 0
            cand_v = np.full((d, k), -np.inf, np.float32)
            cand_t = np.full((d, k), -1, np.int64)
            cand_v[got] = value[rows[got]]
            cand_t[got] = token_idx[rows[got]]
            self._merge_top(cand_v, cand_t)
            return
        self._max_sorted(feature, value)
        # top-k candidates of this shard: sort by (feature, -value, token), keep rank < k per feature
        order = _feature_value_order(token_idx, feature, value)
        f_sorted = feature[order]
        starts = np.searchsorted(f_sorted, np.arange(d))
        rank = np.arange(f_sorted.size) - starts[f_sorted]
        keep = rank < k
        cand_v = np.full((d, k), -np.inf, np.float32)
        cand_t = np.full((d, k), -1, np.int64)
        cand_v[f_sorted[keep], rank[keep]] = value[order][keep]
        cand_t[f_sorted[keep], rank[keep]] = token_idx[order][keep]
        self._merge_top(cand_v, cand_t)

    def merge(self, other: FeatureStats) -> None:
        """Add the statistics of later tokens (e.g. the next shard): the same result as feeding
        ``other``'s rows to :meth:`update` after this object's own."""
        self.n_tokens += other.n_tokens
        self.l0_hist += other.l0_hist
        self.count += other.count
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        self.hist += other.hist
        np.maximum(self.max, other.max, out=self.max)
        self._merge_top(other.top_values, other.top_tokens)

    def _max_sorted(self, feature: np.ndarray, value: np.ndarray) -> None:
        order = np.argsort(feature, kind="stable")
        f_sorted = feature[order]
        uniq, first = np.unique(f_sorted, return_index=True)
        self.max[uniq] = np.maximum(self.max[uniq], np.maximum.reduceat(value[order], first))

    def _merge_top(self, cand_v: np.ndarray, cand_t: np.ndarray) -> None:
        """Merge candidates into the running top-k. Old entries come first, so a stable sort on
        value keeps the earlier token first among equal values (candidates are later tokens)."""
        vals = np.concatenate([self.top_values, cand_v], axis=1)
        toks = np.concatenate([self.top_tokens, cand_t], axis=1)
        idx = np.argsort(-vals, axis=1, kind="stable")[:, : self.top_k]
        self.top_values = np.take_along_axis(vals, idx, axis=1)
        self.top_tokens = np.take_along_axis(toks, idx, axis=1)

    # -- derived ---------------------------------------------------------------------------------
    @property
    def density(self) -> np.ndarray:
        """Fraction of tokens on which each feature fires."""
        return self.count / max(self.n_tokens, 1)

    @property
    def mean_active(self) -> np.ndarray:
        """Mean activation over the tokens where the feature fires (0 for dead features)."""
        return np.divide(self.sum, self.count, out=np.zeros(self.d_sae), where=self.count > 0)

    @property
    def mean_all(self) -> np.ndarray:
        """Mean activation over all tokens (zeros included)."""
        return self.sum / max(self.n_tokens, 1)

    @property
    def std_active(self) -> np.ndarray:
        """Standard deviation of the activation over the tokens where the feature fires."""
        var = np.divide(self.sum_sq, self.count, out=np.zeros(self.d_sae), where=self.count > 0)
        return np.sqrt(np.maximum(var - self.mean_active**2, 0.0))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "n_tokens": np.array(self.n_tokens),
            "count": self.count,
            "sum": self.sum,
            "sum_sq": self.sum_sq,
            "max": self.max,
            "top_values": self.top_values,
            "top_tokens": self.top_tokens,
            "hist": self.hist,
            "l0_hist": self.l0_hist,
        }

    def summary(self) -> dict[str, Any]:
        """Corpus-level numbers for reports."""
        alive = self.count > 0
        return {
            "n_tokens": self.n_tokens,
            "n_features": self.d_sae,
            "n_alive": int(alive.sum()),
            "mean_density": float(self.density.mean()),
            "median_density_alive": float(np.median(self.density[alive])) if alive.any() else 0.0,
            "max_activation": float(self.max.max()) if self.d_sae else 0.0,
        }


class QuantileExamples:
    """Second pass over the rows: ``per_quantile`` sampled examples per (feature, quantile), see the
    module docstring. ``token`` / ``value`` are ``[d_sae, n_quantiles, per_quantile]`` (−1 / NaN where
    a bin holds fewer rows), each row of examples ordered by hash (the sampling order)."""

    def __init__(
        self,
        stats: FeatureStats,
        quantiles: tuple[float, ...] = QUANTILES,
        per_quantile: int = EXAMPLES_PER_QUANTILE,
    ) -> None:
        self.quantiles = tuple(quantiles)
        self.per_quantile = int(per_quantile)
        d, nq, m = stats.d_sae, len(self.quantiles), self.per_quantile
        cum = np.cumsum(stats.hist, axis=1)
        # bin holding the q-quantile: first bin whose cumulative count reaches ceil(q · count)
        target_rank = np.maximum(np.ceil(np.outer(stats.count, self.quantiles)), 1)  # [d, nq]
        self.target_bin = np.stack(
            [(cum < target_rank[:, [j]]).sum(axis=1) for j in range(nq)],
            axis=1,
        ).astype(np.int64)
        self.target_bin[stats.count == 0] = -1
        self.token = np.full((d, nq, m), -1, np.int64)
        self.value = np.full((d, nq, m), np.nan, np.float32)

    def update(self, token_idx: np.ndarray, feature: np.ndarray, value: np.ndarray) -> None:
        """Consider activation rows (any order, any split into calls; repeated rows are ignored)."""
        from interplab.sae.sampling import bottom_k, example_hash

        feature = np.asarray(feature, dtype=np.int64)
        token_idx = np.asarray(token_idx, dtype=np.int64)
        value = np.asarray(value, dtype=np.float32)
        bins = hist_bins(value)
        nq, m = len(self.quantiles), self.per_quantile
        for j in range(nq):
            match = np.flatnonzero(bins == self.target_bin[feature, j])
            held = self.token[:, j, :] >= 0
            old_f = np.nonzero(held)[0]
            t = np.concatenate([self.token[:, j, :][held], token_idx[match]])
            f = np.concatenate([old_f, feature[match]])
            v = np.concatenate([self.value[:, j, :][held], value[match]])
            # drop rows already held (a row fed twice must not take two places)
            key = np.unique(np.stack([f, t], axis=1), axis=0, return_index=True)[1]
            t, f, v = t[key], f[key], v[key]
            rows, rank = bottom_k(f, example_hash(t, f), t, m)
            self.token[:, j, :] = -1
            self.value[:, j, :] = np.nan
            self.token[f[rows], j, rank] = t[rows]
            self.value[f[rows], j, rank] = v[rows]
