"""Downsampling long curves for plotting, keeping their shape: min/max per bucket or LTTB.

Both return sorted indices into the input (first and last point always kept), so the same
selection can be applied to a curve's interval bounds. Random sampling is never used: it drops the
spikes a reader is looking for.

* ``minmax``: the points are cut into ``n_out // 2`` equal-count buckets; each keeps its minimum
  and its maximum (in step order), so every extreme survives.
* ``lttb``: Largest-Triangle-Three-Buckets (Steinarsson 2013): the first and last points, and in
  each of ``n_out − 2`` buckets the point forming the largest triangle with the previously kept
  point and the mean of the next bucket.
"""

from __future__ import annotations

import itertools

import numpy as np

from interplab.common.errors import InterplabError, one_of

METHODS = ("lttb", "minmax", "none")


def minmax_indices(y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of the minimum and maximum of each of ``n_out // 2`` buckets (plus both ends)."""
    n = len(y)
    if n <= n_out:
        return np.arange(n)
    n_buckets = max(1, n_out // 2)
    edges = np.linspace(0, n, n_buckets + 1).astype(np.int64)
    vals = np.where(np.isnan(y), np.inf, y)
    keep = [0, n - 1]
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            keep.append(lo + int(np.argmin(vals[lo:hi])))
            keep.append(lo + int(np.argmax(np.where(np.isinf(vals[lo:hi]), -np.inf, vals[lo:hi]))))
    return np.unique(np.array(keep, dtype=np.int64))


def lttb_indices(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Largest-Triangle-Three-Buckets selection of ``n_out`` points."""
    n = len(y)
    if n <= n_out or n_out < 3:
        return np.arange(n) if n <= n_out else np.array([0, n - 1])
    x = np.asarray(x, dtype=np.float64)
    y = np.nan_to_num(np.asarray(y, dtype=np.float64))
    edges = np.linspace(1, n - 1, n_out - 1).astype(np.int64)  # n_out - 2 buckets over the interior
    out = np.empty(n_out, dtype=np.int64)
    out[0], out[-1] = 0, n - 1
    prev = 0
    for b in range(n_out - 2):
        lo, hi = edges[b], edges[b + 1]
        nlo, nhi = edges[b + 1], (edges[b + 2] if b + 2 < len(edges) else n)
        cx, cy = x[nlo:nhi].mean(), y[nlo:nhi].mean()
        ax, ay = x[prev], y[prev]
        area = np.abs((ax - cx) * (y[lo:hi] - ay) - (ax - x[lo:hi]) * (cy - ay))
        prev = lo + int(np.argmax(area))
        out[b + 1] = prev
    return out


def downsample_indices(x: np.ndarray, y: np.ndarray, n_out: int, method: str = "lttb") -> np.ndarray:
    """Indices kept by ``method`` (``lttb`` | ``minmax`` | ``none``)."""
    one_of(method, list(METHODS), "--downsample")
    if n_out < 4 and method != "none":
        raise InterplabError(f"--max-points must be ≥ 4, got {n_out}")
    if method == "none":
        return np.arange(len(y))
    if method == "minmax":
        return minmax_indices(np.asarray(y, dtype=np.float64), n_out)
    return lttb_indices(x, y, n_out)
