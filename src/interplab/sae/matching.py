"""Matching the features of two SAEs: decoder cosine, activation correlation, one-to-one assignment,
best partners and 1-to-many splits. Pure array code; :mod:`interplab.sae.compare` does the I/O.

Formulas (A has ``d_a`` features, B has ``d_b``; ``N`` shared corpus tokens):

* decoder cosine ``C[i, j] = ⟨W_dec^A[i], W_dec^B[j]⟩ / (‖W_dec^A[i]‖ ‖W_dec^B[j]‖)``
  (0 where a row is all zeros);
* activation correlation (Pearson over all ``N`` tokens, a non-firing token counts as 0)
  ``R[i, j] = (N Σxy − Σx Σy) / sqrt((N Σx² − (Σx)²)(N Σy² − (Σy)²))``, ``Σxy`` from the sparse
  product ``Xᵀ Y`` of the two activation matrices (null for a feature that never fires);
* one-to-one matching: ``scipy.optimize.linear_sum_assignment`` maximising the summed score while
  ``max(d_a, d_b) ≤ ASSIGNMENT_LIMIT`` (its dense cost matrix is ``d_a·d_b·8`` bytes: 512 MiB at
  8 192²); above, each feature of A takes its best partner in B, searched in blocks of ``block``
  rows so that at most ``block · d_b · 4`` bytes of scores exist at once (64 MiB for 1 024 × 16 384);
* containment of a wide feature ``j`` in a narrow feature ``i``:
  ``c(j ⊂ i) = |fires(i) ∧ fires(j)| / |fires(j)|`` — the fraction of ``j``'s firing tokens on which
  ``i`` fires too. ``i`` *splits into* the wide features with ``c ≥ threshold`` whose best parent
  is ``i`` (at least two of them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment

from interplab.common.errors import require
from interplab.sae.configs import BLOCK_ROWS


def unit_rows(W: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Rows of ``W`` scaled to unit length (zero rows stay zero), float32 on the CPU."""
    W = torch.as_tensor(W).detach().float().cpu()
    norm = W.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, W / norm.clamp_min(1e-30), torch.zeros_like(W))


def decoder_cosine(W_a: torch.Tensor | np.ndarray, W_b: torch.Tensor | np.ndarray) -> np.ndarray:
    """The dense cosine matrix ``[d_a, d_b]`` of two decoders (float32)."""
    return (unit_rows(W_a) @ unit_rows(W_b).T).numpy()


def cosine_blocks(
    W_a: torch.Tensor | np.ndarray, W_b: torch.Tensor | np.ndarray, block: int = BLOCK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, C[start:start+block])`` blocks of the decoder cosine matrix (bounded memory)."""
    A, B = unit_rows(W_a), unit_rows(W_b)
    for s in range(0, A.shape[0], block):
        yield s, (A[s : s + block] @ B.T).numpy()


def best_partners(
    W_a: torch.Tensor | np.ndarray, W_b: torch.Tensor | np.ndarray, block: int = BLOCK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of A: the index and decoder cosine of its most similar row of B (ties → lowest
    index), computed block by block (at most ``block · d_b`` floats at a time)."""
    d_a = int(torch.as_tensor(W_a).shape[0])
    idx = np.zeros(d_a, np.int64)
    val = np.zeros(d_a, np.float32)
    for s, C in cosine_blocks(W_a, W_b, block):
        j = np.argmax(C, axis=1)
        idx[s : s + C.shape[0]] = j
        val[s : s + C.shape[0]] = C[np.arange(C.shape[0]), j]
    return idx, val


def assign(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching maximising the summed ``score`` (``linear_sum_assignment``); returns the
    matched ``(rows, cols)`` sorted by row; ``min(d_a, d_b)`` pairs. NaN scores count as −1."""
    s = np.nan_to_num(np.asarray(score, np.float64), nan=-1.0)
    rows, cols = linear_sum_assignment(s, maximize=True)
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)


# -- activations -----------------------------------------------------------------------------------
@dataclasses.dataclass
class ActivationMoments:
    """Per-feature sums of a sparse activation matrix ``X [N, d]`` (the terms of the correlation)."""

    n_tokens: int
    sum: np.ndarray  # Σx  [d]
    sum_sq: np.ndarray  # Σx² [d]
    count: np.ndarray  # firing tokens [d]

    @classmethod
    def of(cls, X: sp.csc_array) -> ActivationMoments:
        X = sp.csc_array(X)
        return cls(
            n_tokens=int(X.shape[0]),
            sum=np.asarray(X.sum(axis=0), np.float64).ravel(),
            sum_sq=np.asarray(X.multiply(X).sum(axis=0), np.float64).ravel(),
            count=np.diff(X.indptr).astype(np.int64),
        )

    @property
    def centred_ss(self) -> np.ndarray:
        """``N Σx² − (Σx)²`` (≥ 0; 0 for a feature that never fires or is constant)."""
        return np.maximum(self.n_tokens * self.sum_sq - self.sum**2, 0.0)


def _corr_from_cross(
    cross: np.ndarray, ma: ActivationMoments, mb: ActivationMoments, ia: np.ndarray, ib: np.ndarray
) -> np.ndarray:
    """Correlations from ``Σxy``: elementwise for pairs (1-D ``cross``) or a block (2-D)."""
    n = ma.n_tokens
    outer = np.multiply.outer if cross.ndim == 2 else np.multiply
    num = n * cross - outer(ma.sum[ia], mb.sum[ib])
    den = np.sqrt(outer(ma.centred_ss[ia], mb.centred_ss[ib]))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(r, -1.0, 1.0)


def pair_correlation(X: sp.csc_array, Y: sp.csc_array, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Pearson correlation of column ``ia[k]`` of ``X`` with column ``ib[k]`` of ``Y`` for each k
    (NaN where either never varies)."""
    require(X.shape[0] == Y.shape[0], f"activation matrices cover {X.shape[0]} and {Y.shape[0]} tokens")
    X, Y = sp.csc_array(X), sp.csc_array(Y)
    ma, mb = ActivationMoments.of(X), ActivationMoments.of(Y)
    ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    cross = np.asarray(X[:, ia].multiply(Y[:, ib]).sum(axis=0), np.float64).ravel()
    return _corr_from_cross(cross, ma, mb, ia, ib)


def correlation_blocks(
    X: sp.csc_array, Y: sp.csc_array, block: int = BLOCK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, R[start:start+block])`` blocks of the full correlation matrix ``[d_a, d_b]``."""
    X, Y = sp.csc_array(X), sp.csc_array(Y)
    ma, mb = ActivationMoments.of(X), ActivationMoments.of(Y)
    ib = np.arange(Y.shape[1])
    Yr = sp.csr_array(Y)
    for s in range(0, X.shape[1], block):
        ia = np.arange(s, min(X.shape[1], s + block))
        cross = (sp.csr_array(X[:, ia]).T @ Yr).toarray().astype(np.float64)
        yield s, _corr_from_cross(cross, ma, mb, ia, ib)


def best_correlated(
    X: sp.csc_array, Y: sp.csc_array, block: int = BLOCK_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """For each feature of X: the feature of Y with the highest activation correlation and that
    correlation (−1 index and NaN for a feature that never fires)."""
    idx = np.full(X.shape[1], -1, np.int64)
    val = np.full(X.shape[1], np.nan, np.float32)
    for s, R in correlation_blocks(X, Y, block):
        ok = ~np.all(np.isnan(R), axis=1)
        j = np.argmax(np.nan_to_num(R, nan=-2.0), axis=1)
        rows = np.arange(R.shape[0])
        idx[s : s + R.shape[0]] = np.where(ok, j, -1)
        val[s : s + R.shape[0]] = np.where(ok, R[rows, j], np.nan)
    return idx, val


@dataclasses.dataclass
class Split:
    """A narrow feature and the wide features it splits into (containment of each child in it)."""

    parent: int
    children: list[int]
    containment: list[float]


def splits(
    narrow: sp.csc_array, wide: sp.csc_array, threshold: float = 0.8, min_fires: int = 1
) -> list[Split]:
    """1-to-many splits of the narrow SAE's features into the wide SAE's by activation containment
    (see the module docstring); children sorted by containment, descending."""
    require(0 < threshold <= 1, f"--split-threshold must be in (0, 1], got {threshold}")
    Xb = sp.csc_array((sp.csc_array(narrow) != 0).astype(np.float32))
    Yb = sp.csc_array((sp.csc_array(wide) != 0).astype(np.float32))
    fires = np.diff(Yb.indptr)
    both = sp.csr_array(Yb.T @ Xb)  # [d_wide, d_narrow] co-firing counts
    parent = np.full(Yb.shape[1], -1, np.int64)
    contain = np.zeros(Yb.shape[1], np.float64)
    for j in range(both.shape[0]):
        lo, hi = both.indptr[j], both.indptr[j + 1]
        if hi == lo or fires[j] < min_fires:
            continue
        cols, vals = both.indices[lo:hi], both.data[lo:hi]
        k = int(np.lexsort((cols, -vals))[0])
        parent[j], contain[j] = int(cols[k]), float(vals[k]) / float(fires[j])
    keep = (parent >= 0) & (contain >= threshold)
    out: list[Split] = []
    for p in np.unique(parent[keep]):
        kids = np.flatnonzero(keep & (parent == p))
        if kids.size < 2:
            continue
        order = np.lexsort((kids, -contain[kids]))
        out.append(
            Split(
                parent=int(p),
                children=kids[order].tolist(),
                containment=contain[kids[order]].round(6).tolist(),
            )
        )
    return out
