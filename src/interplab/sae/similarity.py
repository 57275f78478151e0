"""Feature similarity from the SAE decoder: rows ``W_dec[i]`` are the features' directions.

* ``cosine``: ``W_dec[i]·W_dec[j] / (‖W_dec[i]‖ ‖W_dec[j]‖)`` (0 for a zero row);
* ``dot``: ``W_dec[i]·W_dec[j]``;
* ``euclidean``: ``‖W_dec[i] − W_dec[j]‖`` (smaller = more similar).

The full ``[d_sae, d_sae]`` float32 matrix is built while ``d_sae ≤ dense_limit`` (16384);
nearest-neighbour lists are always computed in row chunks, so large SAEs never hold the full matrix.
"""

from __future__ import annotations

import numpy as np
import torch

from interplab.sae.metric import SIMILARITY as METRICS
from interplab.sae.metric import get_metric

SIMILARITY_METRICS = tuple(METRICS)


def larger_is_closer(metric: str) -> bool:
    """Whether the nearest neighbours under ``metric`` are its largest values (False: a distance)."""
    return get_metric(METRICS, metric, "similarity metric").larger_is_more_related


def _prepared(W_dec: torch.Tensor | np.ndarray, metric: str) -> torch.Tensor:
    W = torch.as_tensor(np.asarray(W_dec) if isinstance(W_dec, np.ndarray) else W_dec.detach())
    W = W.to(torch.float32).cpu()
    if metric == "cosine":
        norms = W.norm(dim=1, keepdim=True)
        W = torch.where(norms > 0, W / norms.clamp_min(1e-12), torch.zeros_like(W))
    return W


def _block(W: torch.Tensor, rows: slice, metric: str, sq: torch.Tensor | None) -> torch.Tensor:
    prod = W[rows] @ W.T
    if metric == "euclidean":
        assert sq is not None
        return (sq[rows, None] + sq[None, :] - 2 * prod).clamp_min(0).sqrt()
    return prod


def similarity_matrix(
    W_dec: torch.Tensor | np.ndarray, metric: str = "cosine", chunk: int = 4096
) -> np.ndarray:
    """The dense ``[d_sae, d_sae]`` similarity (or distance) matrix, float32."""
    W = _prepared(W_dec, metric)
    d = W.shape[0]
    sq = (W * W).sum(dim=1) if metric == "euclidean" else None
    out = np.empty((d, d), np.float32)
    for s in range(0, d, chunk):
        out[s : s + chunk] = _block(W, slice(s, s + chunk), metric, sq).numpy()
    if metric == "euclidean":
        np.fill_diagonal(out, 0.0)
    return out


def similarity_topk(
    W_dec: torch.Tensor | np.ndarray, k: int, metric: str = "cosine", chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar features of each feature (itself excluded), best first:
    ``(indices int64 [d, k], values float32 [d, k])`` — largest cosine/dot, smallest distance."""
    W = _prepared(W_dec, metric)
    d = W.shape[0]
    k = max(0, min(int(k), d - 1))
    sq = (W * W).sum(dim=1) if metric == "euclidean" else None
    idx = np.zeros((d, k), np.int64)
    val = np.zeros((d, k), np.float32)
    if k == 0:
        return idx, val
    largest = larger_is_closer(metric)
    for s in range(0, d, chunk):
        block = _block(W, slice(s, s + chunk), metric, sq)
        rows = torch.arange(block.shape[0])
        block[rows, s + rows] = -torch.inf if largest else torch.inf
        v, i = torch.topk(block, k, dim=1, largest=largest, sorted=True)
        idx[s : s + chunk] = i.numpy()
        val[s : s + chunk] = v.numpy()
    return idx, val


def row_topk(W: torch.Tensor, feature: int, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` features nearest to ``feature`` by ``metric`` (itself excluded), best first."""
    Wp = _prepared(W, metric)
    sq = (Wp * Wp).sum(dim=1) if metric == "euclidean" else None
    row = _block(Wp, slice(feature, feature + 1), metric, sq)[0]
    largest = larger_is_closer(metric)
    row[feature] = -torch.inf if largest else torch.inf
    k = min(k, row.numel() - 1)
    v, i = torch.topk(row, k, largest=largest)
    return i.numpy(), v.numpy()
