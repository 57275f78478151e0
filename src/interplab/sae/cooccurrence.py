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
import functools
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

from interplab.sae.metric import Metric, get_metric

log = logging.getLogger(__name__)

DENSE_LIMIT = 8192
_BLOCK_BYTES = 8 << 20  # rows of C handled together by one kernel task


def _load_kernels() -> dict[str, Any] | None:
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; scipy/numpy are the fallback
        return None

    @numba.njit(parallel=True, nogil=True, cache=True)
    def pair_counts(indptr, feats, counts, bounds):  # pragma: no cover - compiled
        """counts[a, b] += 1 for every token and every pair a ≤ b of its sorted active features;
        block ``k`` owns rows ``bounds[k]:bounds[k+1]`` (no two threads write the same row)."""
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

    @numba.njit(parallel=True, nogil=True, cache=True)
    def symmetric(upper, out):  # pragma: no cover - compiled
        """out = upper + upperᵀ with the diagonal counted once, over 64×64 tiles of the triangle."""
        d = upper.shape[0]
        tile = 64
        nt = (d + tile - 1) // tile
        for bi in numba.prange(nt):
            i0 = bi * tile
            i1 = min(d, i0 + tile)
            for bj in range(bi, nt):
                j1 = min(d, (bj + 1) * tile)
                for i in range(i0, i1):
                    for j in range(max(bj * tile, i), j1):
                        v = upper[i, j]
                        out[i, j] = v
                        out[j, i] = v

    @numba.njit(parallel=True, nogil=True, cache=True)
    def phi(counts, n, inv_sd, n_tokens, out):  # pragma: no cover - compiled
        d = counts.shape[0]
        for i in numba.prange(d):
            for j in range(d):
                out[i, j] = (n_tokens * counts[i, j] - n[i] * n[j]) * inv_sd[i] * inv_sd[j]

    return {"pair_counts": pair_counts, "symmetric": symmetric, "phi": phi}


@functools.cache
def _kernels() -> dict[str, Any] | None:
    """The compiled kernel(s), built once per process (None without numba)."""
    return _load_kernels()


def token_csr(token: np.ndarray, feature: np.ndarray, n_tokens: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, features)`` of the firing matrix: each token's active features, sorted. Rows that
    arrive token-major (as ``nonzero`` yields them) need no sort."""
    token = np.asarray(token, dtype=np.int64)
    key = token * d + np.asarray(feature, dtype=np.int64)
    if key.size > 1 and not (key[1:] > key[:-1]).all():
        key = np.unique(key)
        token, feats = np.divmod(key, d)
        feats = feats.astype(np.int32)
    else:
        feats = np.asarray(feature, dtype=np.int32)
    indptr = np.searchsorted(token, np.arange(n_tokens + 1, dtype=np.int64)).astype(np.int64)
    return indptr, feats


def _row_blocks(feats: np.ndarray, d: int) -> np.ndarray:
    """Row-block boundaries of ``C`` balanced by work (pairs whose first feature is in the block)."""
    rows = max(1, _BLOCK_BYTES // (4 * d))
    n_blocks = max(2, -(-d // rows))
    cnt = np.bincount(feats, minlength=d).astype(np.float64)
    work = np.cumsum(cnt * np.arange(d, 0, -1) / d + 1e-9)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, n_blocks) / n_blocks)
    return np.unique(np.concatenate([[0], cuts, [d]])).astype(np.int64)


@dataclasses.dataclass
class CooccurrenceCounts:
    """Accumulates ``C = FᵀF`` from activation rows (see module docstring).

    Dense counts are int32 (half the memory traffic of int64) until the token count could overflow
    them, then int64.
    """

    d_sae: int
    dense_limit: int = DENSE_LIMIT
    use_kernel: bool = True
    n_tokens: int = 0

    def __post_init__(self) -> None:
        self.dense = self.d_sae <= self.dense_limit
        if self.dense:
            self._upper = np.zeros((self.d_sae, self.d_sae), np.int32)
        else:
            self._sparse = sp.csr_array((self.d_sae, self.d_sae), dtype=np.int64)

    def update(self, token_idx: np.ndarray, feature: np.ndarray, n_tokens: int, token_start: int = 0) -> None:
        """Add one shard's firing rows (tokens ``token_start .. token_start + n_tokens − 1``)."""
        self.n_tokens += int(n_tokens)
        if self.dense and self._upper.dtype == np.int32 and self.n_tokens > np.iinfo(np.int32).max:
            self._upper = self._upper.astype(np.int64)
        if len(feature) == 0:
            return
        local = np.asarray(token_idx, dtype=np.int64) - int(token_start)
        kernels = _kernels() if (self.dense and self.use_kernel) else None
        if kernels is not None:
            indptr, feats = token_csr(local, feature, int(n_tokens), self.d_sae)
            kernels["pair_counts"](indptr, feats, self._upper, _row_blocks(feats, self.d_sae))
            return
        F = sp.csr_array(
            (np.ones(len(feature), np.int64), (local, np.asarray(feature, dtype=np.int64))),
            shape=(int(n_tokens), self.d_sae),
        )
        prod = (F.T @ F).astype(np.int64)
        if self.dense:
            self._upper += sp.triu(prod).toarray().astype(self._upper.dtype)
        else:
            self._sparse = (self._sparse + prod).tocsr()

    def counts(self) -> np.ndarray | sp.csr_array:
        """The symmetric count matrix ``C`` (dense int32/int64, or scipy CSR above the dense limit)."""
        if not self.dense:
            return self._sparse
        kernels = _kernels() if self.use_kernel else None
        if kernels is not None:
            full = np.empty_like(self._upper)
            kernels["symmetric"](self._upper, full)
            return full
        full = self._upper + np.triu(self._upper, 1).T
        return full

    def upper_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(i, j, C_ij)`` for the non-zero counts with ``i ≤ j`` (a sparse, mergeable copy)."""
        if self.dense:
            i, j = np.nonzero(self._upper)
            return i.astype(np.int32), j.astype(np.int32), self._upper[i, j].astype(np.int64)
        coo = sp.coo_array(sp.triu(self._sparse))
        return coo.row.astype(np.int32), coo.col.astype(np.int32), coo.data.astype(np.int64)

    def add_upper_pairs(self, i: np.ndarray, j: np.ndarray, c: np.ndarray, n_tokens: int) -> None:
        """Add the :meth:`upper_pairs` of another token range (pairs ``(i, j)`` distinct, ``i ≤ j``)."""
        self.n_tokens += int(n_tokens)
        if self.dense and self._upper.dtype == np.int32 and self.n_tokens > np.iinfo(np.int32).max:
            self._upper = self._upper.astype(np.int64)
        i, j, c = (np.asarray(a, dtype=np.int64) for a in (i, j, c))
        if i.size == 0:
            return
        if self.dense:
            flat = self._upper.reshape(-1)
            flat[i * self.d_sae + j] += c.astype(self._upper.dtype)
            return
        off = i != j
        rows, cols = np.concatenate([i, j[off]]), np.concatenate([j, i[off]])
        vals = np.concatenate([c, c[off]])
        self._sparse = (self._sparse + sp.csr_array((vals, (rows, cols)), shape=self._sparse.shape)).tocsr()

    def firing_counts(self) -> np.ndarray:
        """``n_i = C[i, i]``."""
        if self.dense:
            return np.diagonal(self._upper).astype(np.int64)
        return self._sparse.diagonal().astype(np.int64)


def _dense_phi(counts: np.ndarray, n: np.ndarray, N: float) -> np.ndarray:
    # (N·C − n nᵀ) · s sᵀ with s = 1/sqrt(n (N − n)), 0 for zero variance
    var = n * (N - n)
    inv_sd = np.divide(1.0, np.sqrt(var), out=np.zeros_like(var), where=var > 0)
    kernels = _kernels()
    out = np.empty(counts.shape, np.float32)
    if kernels is not None:
        kernels["phi"](counts, n, inv_sd, N, out)
        return out
    for s in range(0, counts.shape[0], 1024):
        block = counts[s : s + 1024].astype(np.float64) * N - np.outer(n[s : s + 1024], n)
        out[s : s + 1024] = block * inv_sd[s : s + 1024, None] * inv_sd[None, :]
    return out


def _dense_jaccard(counts: np.ndarray, n: np.ndarray, N: float) -> np.ndarray:
    C = counts.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        union = n[:, None] + n[None, :] - C
        return np.where(union > 0, C / np.where(union > 0, union, 1.0), 0.0).astype(np.float32)


def _dense_pmi(counts: np.ndarray, n: np.ndarray, N: float) -> np.ndarray:
    C = counts.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(C * N) - np.log(np.outer(n, n))
        return np.where(C > 0, out, -np.inf).astype(np.float32)


def _sparse_phi(c: np.ndarray, ni: np.ndarray, nj: np.ndarray, N: float) -> np.ndarray:
    denom = np.sqrt(ni * (N - ni) * nj * (N - nj))
    return np.where(denom > 0, (N * c - ni * nj) / np.where(denom > 0, denom, 1.0), 0.0)


def _sparse_jaccard(c: np.ndarray, ni: np.ndarray, nj: np.ndarray, N: float) -> np.ndarray:
    union = ni + nj - c
    return np.where(union > 0, c / np.where(union > 0, union, 1.0), 0.0)


def _sparse_pmi(c: np.ndarray, ni: np.ndarray, nj: np.ndarray, N: float) -> np.ndarray:
    return np.log(c * N) - np.log(ni * nj)


# dense(counts [d, d], n [d] float64, N) -> float32 [d, d];
# sparse(c, n_i, n_j, N) on the stored pairs -> values (float64)
METRICS: dict[str, Metric] = {
    "phi": Metric(
        "`(N·C_ij − n_i n_j) / sqrt(n_i (N − n_i) n_j (N − n_j))`, 0 for a zero-variance feature",
        dense=_dense_phi,
        sparse=_sparse_phi,
    ),
    "jaccard": Metric(
        "`C_ij / (n_i + n_j − C_ij)`, 0 when neither fires", dense=_dense_jaccard, sparse=_sparse_jaccard
    ),
    "pmi": Metric(
        "`ln(C_ij · N / (n_i n_j))`, −inf when they never co-occur", dense=_dense_pmi, sparse=_sparse_pmi
    ),
}
COOCCURRENCE_METRICS = tuple(METRICS)


def dense_metric(counts: np.ndarray, n_tokens: int, metric: str) -> np.ndarray:
    """phi / jaccard / pmi (float32, ``[d, d]``) from dense counts (formulas in module docstring)."""
    entry = get_metric(METRICS, metric, "co-occurrence metric")
    n = np.diagonal(counts).astype(np.float64)
    return entry.dense(counts, n, float(n_tokens))  # type: ignore[misc]


#: stored entries handled at once by the sparse metric and top-k passes (bounds their scratch memory)
SPARSE_BLOCK = 1 << 22


def _entry_blocks(m: sp.csr_array, block: int = SPARSE_BLOCK) -> Iterator[tuple[int, int, slice, np.ndarray]]:
    """Row ranges ``[s, e)`` of ``m`` holding about ``block`` stored entries each (at least one row):
    ``(s, e, entries, rows)`` with the slice of those entries in ``m.data`` / ``m.indices`` and the
    row of each."""
    d = m.shape[0]
    s = 0
    while s < d:
        e = int(np.searchsorted(m.indptr, m.indptr[s] + block, side="right")) - 1
        e = min(d, max(e, s + 1))
        rows = np.repeat(np.arange(s, e), np.diff(m.indptr[s : e + 1]))
        yield s, e, slice(int(m.indptr[s]), int(m.indptr[e])), rows
        s = e


def sparse_metric(counts: sp.csr_array, n_tokens: int, metric: str) -> sp.csr_array:
    """The metric on the stored (co-occurring) pairs only, as a CSR matrix of float32 that shares the
    counts' structure: 4 bytes per stored pair, computed in row blocks of bounded scratch memory."""
    entry = get_metric(METRICS, metric, "co-occurrence metric")
    counts = sp.csr_array(counts)
    n = counts.diagonal().astype(np.float64)
    vals = np.empty(counts.nnz, np.float32)
    for _, _, entries, rows in _entry_blocks(counts):
        c = counts.data[entries].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            vals[entries] = entry.sparse(c, n[rows], n[counts.indices[entries]], float(n_tokens))  # type: ignore[misc]
    return sp.csr_array((vals, counts.indices, counts.indptr), shape=counts.shape)


def _sparse_topk(m: sp.csr_array, k: int, sign: float, idx_out: np.ndarray, val_out: np.ndarray) -> None:
    """Top-``k`` of each row of a CSR matrix (itself excluded), ordered as the dense path orders them:
    value descending (NaN last), ties by column; row blocks bound the scratch memory."""
    m = sp.csr_array(m)
    for s, e, entries, r in _entry_blocks(m):
        c = m.indices[entries]
        v = m.data[entries].astype(np.float32)
        keep = r != c
        r, c, v = r[keep], c[keep], v[keep]
        order = np.lexsort((c, -sign * v, r))
        r, c, v = r[order], c[order], v[order]
        starts = np.searchsorted(r, np.arange(s, e))
        rank = np.arange(r.size) - starts[r - s]
        sel = rank < k
        idx_out[r[sel], rank[sel]] = c[sel]
        val_out[r[sel], rank[sel]] = v[sel]


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
        _sparse_topk(matrix, k, sign, idx_out, val_out)
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


def row_topk(m: np.ndarray | sp.csr_array, feature: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest finite entries of row ``feature`` (itself excluded), ties by index."""
    if sp.issparse(m):
        row = sp.csr_array(m[[feature], :])
        cols, vals = row.indices, row.data
    else:
        cols, vals = np.arange(m.shape[1]), np.asarray(m[feature])
    keep = (cols != feature) & np.isfinite(vals)
    cols, vals = cols[keep], vals[keep]
    order = np.lexsort((cols, -vals))[:k]
    return cols[order], vals[order]
