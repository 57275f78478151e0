"""Feature co-occurrence from ONE sparse product of the binary firing matrix.

Let ``F ∈ {0,1}^{N×d}`` (``F[t, i] = 1`` when feature ``i`` fires on token ``t``) and
``C = FᵀF``: ``C[i, j]`` counts the tokens where both fire and ``n_i = C[i, i]`` is feature ``i``'s
firing count. Every metric is a function of ``C``, ``n`` and ``N``:

* phi (Pearson correlation of the two binary firing indicators)::

      phi_ij = (N·C_ij − n_i·n_j) / sqrt(n_i (N − n_i) · n_j (N − n_j))

  defined as 0 when a feature has zero variance (never fires, or fires on every token);
* jaccard ``C_ij / (n_i + n_j − C_ij)`` (0 when neither fires);
* pmi ``log(C_ij · N / (n_i · n_j))`` (−inf when the two never co-occur; natural log).

``C`` is accumulated shard by shard. While ``d_sae ≤ dense_limit`` it is a dense int64 matrix
filled by a compiled kernel (numba) that walks each token's sorted list of active features and adds
one to ``C[a, b]`` for every pair ``a ≤ b`` — ``Σ_t L0_t²/2`` increments instead of the ``N·d²``
of a dense product; the kernel splits the rows of ``C`` into cache-sized blocks handled in
parallel. Without numba, or above ``dense_limit``, scipy's sparse ``FᵀF`` is used (kept sparse
above the limit, where only co-occurring pairs are stored and neighbours are top-k lists).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)

COOCCURRENCE_METRICS = ("phi", "jaccard", "pmi")
DENSE_LIMIT = 8192
_BLOCK_BYTES = 4 << 20  # rows of C handled together by one kernel task


def _load_kernel() -> Any:
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; scipy path is the fallback
        return None

    @numba.njit(parallel=True, nogil=True, cache=True)
    def pair_counts(indptr, feats, counts, bounds):  # pragma: no cover - compiled
        for blk in numba.prange(bounds.shape[0] - 1):
            lo = bounds[blk]
            hi = bounds[blk + 1]
            for t in range(indptr.shape[0] - 1):
                s = indptr[t]
                e = indptr[t + 1]
                left = s
                right = e
                while left < right:  # first active feature >= lo
                    mid = (left + right) >> 1
                    if feats[mid] < lo:
                        left = mid + 1
                    else:
                        right = mid
                for a in range(left, e):
                    fa = feats[a]
                    if fa >= hi:
                        break
                    row = counts[fa]
                    for b in range(a, e):
                        row[feats[b]] += 1

    return pair_counts


_KERNEL: list[Any] = []


def _kernel() -> Any:
    if not _KERNEL:
        _KERNEL.append(_load_kernel())
    return _KERNEL[0]


def token_csr(token: np.ndarray, feature: np.ndarray, n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, features)`` of the firing matrix: each token's active features, sorted."""
    token = np.asarray(token, dtype=np.int64)
    feature = np.asarray(feature, dtype=np.int64)
    order = np.lexsort((feature, token))
    indptr = np.searchsorted(token[order], np.arange(n_tokens + 1)).astype(np.int64)
    return indptr, feature[order]


def _row_blocks(feats: np.ndarray, d: int) -> np.ndarray:
    """Row-block boundaries of ``C`` balanced by work (pairs whose first feature is in the block)."""
    rows = max(1, _BLOCK_BYTES // (8 * d))
    n_blocks = max(2, -(-d // rows))
    cnt = np.bincount(feats, minlength=d).astype(np.float64)
    work = np.cumsum(cnt * np.arange(d, 0, -1) / d + 1e-9)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, n_blocks) / n_blocks)
    return np.unique(np.concatenate([[0], cuts, [d]])).astype(np.int64)


@dataclasses.dataclass
class CooccurrenceCounts:
    """Accumulates ``C = FᵀF`` from activation rows (see module docstring)."""

    d_sae: int
    dense_limit: int = DENSE_LIMIT
    use_kernel: bool = True
    n_tokens: int = 0

    def __post_init__(self) -> None:
        self.dense = self.d_sae <= self.dense_limit
        if self.dense:
            self._upper = np.zeros((self.d_sae, self.d_sae), np.int64)
        else:
            self._sparse = sp.csr_array((self.d_sae, self.d_sae), dtype=np.int64)

    def update(self, token_idx: np.ndarray, feature: np.ndarray, n_tokens: int, token_start: int = 0) -> None:
        """Add one shard's firing rows (tokens ``token_start .. token_start + n_tokens − 1``)."""
        self.n_tokens += int(n_tokens)
        if len(feature) == 0:
            return
        local = np.asarray(token_idx, dtype=np.int64) - int(token_start)
        kernel = _kernel() if (self.dense and self.use_kernel) else None
        if kernel is not None:
            indptr, feats = token_csr(local, feature, int(n_tokens))
            kernel(indptr, feats, self._upper, _row_blocks(feats, self.d_sae))
            return
        F = sp.csr_array(
            (np.ones(len(feature), np.int64), (local, np.asarray(feature, dtype=np.int64))),
            shape=(int(n_tokens), self.d_sae),
        )
        prod = (F.T @ F).astype(np.int64)
        if self.dense:
            self._upper += sp.triu(prod).toarray()
        else:
            self._sparse = (self._sparse + prod).tocsr()

    def counts(self) -> np.ndarray | sp.csr_array:
        """The symmetric count matrix ``C`` (dense int64, or scipy CSR above the dense limit)."""
        if self.dense:
            up = self._upper
            return up + np.triu(up, 1).T
        return self._sparse

    def firing_counts(self) -> np.ndarray:
        """``n_i = C[i, i]``."""
        if self.dense:
            return np.diagonal(self._upper).copy()
        return self._sparse.diagonal().astype(np.int64)


def dense_metric(counts: np.ndarray, n_tokens: int, metric: str) -> np.ndarray:
    """phi / jaccard / pmi (float32, ``[d, d]``) from dense counts (formulas in module docstring)."""
    C = counts.astype(np.float64)
    n = np.diagonal(C).copy()
    N = float(n_tokens)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "phi":
            var = n * (N - n)
            denom = np.sqrt(np.outer(var, var))
            out = np.where(denom > 0, (N * C - np.outer(n, n)) / np.where(denom > 0, denom, 1.0), 0.0)
        elif metric == "jaccard":
            union = n[:, None] + n[None, :] - C
            out = np.where(union > 0, C / np.where(union > 0, union, 1.0), 0.0)
        elif metric == "pmi":
            out = np.log(C * N) - np.log(np.outer(n, n))
            out = np.where(C > 0, out, -np.inf)
        else:
            raise ValueError(metric)
    return out.astype(np.float32)


def sparse_metric(counts: sp.csr_array, n_tokens: int, metric: str) -> sp.csr_array:
    """The metric on the stored (co-occurring) pairs only, as a CSR matrix of float32."""
    coo = sp.coo_array(counts)
    n = counts.diagonal().astype(np.float64)
    i, j, c = coo.row, coo.col, coo.data.astype(np.float64)
    N = float(n_tokens)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "phi":
            var = n * (N - n)
            denom = np.sqrt(var[i] * var[j])
            vals = np.where(denom > 0, (N * c - n[i] * n[j]) / np.where(denom > 0, denom, 1.0), 0.0)
        elif metric == "jaccard":
            union = n[i] + n[j] - c
            vals = np.where(union > 0, c / np.where(union > 0, union, 1.0), 0.0)
        elif metric == "pmi":
            vals = np.log(c * N) - np.log(n[i] * n[j])
        else:
            raise ValueError(metric)
    return sp.csr_array((vals.astype(np.float32), (i, j)), shape=counts.shape)


def topk_neighbours(
    matrix: np.ndarray | sp.csr_array, k: int, largest: bool = True, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` neighbours of every row, excluding the row itself: ``(indices, values)`` of shape
    ``[d, k]`` sorted best first (index −1 / value NaN where a row has fewer candidates)."""
    d = matrix.shape[0]
    k = max(0, min(int(k), d - 1))
    idx_out = np.full((d, k), -1, np.int64)
    val_out = np.full((d, k), np.nan, np.float32)
    if k == 0:
        return idx_out, val_out
    sign = 1.0 if largest else -1.0
    if sp.issparse(matrix):
        coo = sp.coo_array(matrix)
        keep = coo.row != coo.col
        r, c, v = coo.row[keep], coo.col[keep], coo.data[keep].astype(np.float32)
        order = np.lexsort((c, -sign * v, r))
        r, c, v = r[order], c[order], v[order]
        starts = np.searchsorted(r, np.arange(d))
        rank = np.arange(r.size) - starts[r]
        sel = rank < k
        idx_out[r[sel], rank[sel]] = c[sel]
        val_out[r[sel], rank[sel]] = v[sel]
        return idx_out, val_out
    for s in range(0, d, chunk):
        block = np.array(matrix[s : s + chunk], dtype=np.float64) * sign
        rows = np.arange(block.shape[0])
        block[rows, s + rows] = -np.inf  # exclude self
        block = np.where(np.isnan(block), -np.inf, block)
        part = np.argpartition(-block, k - 1, axis=1)[:, :k]
        pv = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, -pv), axis=1)
        part = np.take_along_axis(part, order, axis=1)
        pv = np.take_along_axis(pv, order, axis=1)
        idx_out[s : s + chunk] = part
        val_out[s : s + chunk] = (pv * sign).astype(np.float32)
    return idx_out, val_out
