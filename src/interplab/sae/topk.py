"""Row-wise top-k of a TopK SAE's pre-activations, in feature order — ``torch.topk`` made cheaper.

:func:`topk_sorted_by_index` returns what ``torch.topk(pre, k)`` followed by a sort of the indices
returns. A compiled kernel (numba) takes the smallest of ``k + 1`` chunk maxima of each row as a
lower bound of its (k+1)-th largest value, keeps the ``k + 1`` largest of the entries above it by
insertion, then emits the entries ``≥`` the k-th largest in index order. Where the top-k set is
not unique — the k-th and (k+1)-th largest values are equal, or the row holds a NaN — the row is
handed to ``torch.topk`` itself, so the result always equals the ``torch.topk`` path exactly
(``torch.topk`` decides ties the same way in both).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch


def _load_kernel() -> Any:
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency; torch.topk is the fallback
        return None

    @numba.njit(parallel=True, nogil=True, cache=True)
    def rows_topk(pre, k, out_idx, out_val, unsure):  # pragma: no cover - compiled
        n, d = pre.shape
        m = k + 1
        step = d // m
        for i in numba.prange(n):
            row = pre[i]
            # t = the smallest of m chunk maxima: at least m entries are ≥ t, so the m largest are
            t = row[0]
            for c in range(m):
                hi = d if c == m - 1 else (c + 1) * step
                mx = row[c * step]
                for j in range(c * step + 1, hi):
                    mx = max(mx, row[j])
                if c == 0 or mx < t:
                    t = mx
            cand = np.empty(d, pre.dtype)  # entries not below t (NaN included), branch-free
            nc = 0
            for j in range(d):
                v = row[j]
                cand[nc] = v
                nc += not (v < t)
            buf = np.empty(m, pre.dtype)  # the m largest candidates so far, descending
            cnt = 0
            nan = False
            for q in range(nc):
                v = cand[q]
                if v != v:
                    nan = True
                    break
                if cnt == m and v <= buf[m - 1]:
                    continue
                p = cnt if cnt < m else m - 1
                while p > 0 and buf[p - 1] < v:
                    buf[p] = buf[p - 1]
                    p -= 1
                buf[p] = v
                if cnt < m:
                    cnt += 1
            if nan or not buf[k - 1] > buf[k]:
                unsure[i] = True
                continue
            kth = buf[k - 1]
            c = 0
            for j in range(d):
                if row[j] >= kth:
                    out_idx[i, c] = j
                    out_val[i, c] = row[j]
                    c += 1

    return rows_topk


@functools.cache
def _kernel() -> Any:
    """The compiled kernel(s), built once per process (None without numba)."""
    return _load_kernel()


def _torch_path(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, idx = torch.topk(pre, k, dim=-1)
    idx, perm = idx.sort(dim=1)
    return values.gather(1, perm), idx


def topk_sorted_by_index(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)`` ``[n, k]`` of the ``k`` largest entries of each row of ``pre [n, d]``,
    indices ascending — equal to ``torch.topk`` followed by sorting the indices."""
    kernel = _kernel()
    usable = (
        kernel is not None
        and pre.dim() == 2
        and pre.device.type == "cpu"
        and pre.dtype in (torch.float32, torch.float64)
        and 0 < k < pre.shape[1]
        and not (pre.requires_grad and torch.is_grad_enabled())
    )
    if not usable:
        return _torch_path(pre, k)
    arr = pre.detach().contiguous().numpy()
    n = arr.shape[0]
    idx = np.empty((n, k), np.int64)
    val = np.empty((n, k), arr.dtype)
    unsure = np.zeros(n, np.bool_)
    kernel(arr, k, idx, val, unsure)
    values, indices = torch.from_numpy(val), torch.from_numpy(idx)
    redo = np.flatnonzero(unsure)
    if redo.size:
        rows = torch.from_numpy(redo)
        values[rows], indices[rows] = _torch_path(pre.detach()[rows], k)
    return values, indices
