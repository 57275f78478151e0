"""SparseGPT (Frantar & Alistarh, 2023): prune column block by column block with the
optimal-brain-surgeon (OBS) update of the not-yet-processed weights.

With H = 2XXᵀ/n (X: [in, tokens]) and U the upper Cholesky factor of H⁻¹, the columns are processed
left to right in blocks of 128. At the start of each block the mask is chosen from the saliency
w²/[U]_jj² (unstructured: the ⌊rows·cols·s⌋ lowest of the block; N:M: the n lowest of every m
columns of a row, chosen when the group starts). Each pruned weight's error δ = w/[U]_jj is
propagated to the columns on its right by W[:, j:] -= δ·U[j, j:].
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from interplab.common.errors import InterplabError
from interplab.masks.selection import Structure, prune_count

log = logging.getLogger(__name__)

BLOCK_SIZE = 128
PERCDAMP = 0.01


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run the per-column updates on one thread: each touches only rows × ≤128 numbers, and
    OpenMP's fork/join per tiny op costs more than it saves (10× slower on a busy 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _inverse_cholesky_upper(hessian: torch.Tensor, percdamp: float) -> torch.Tensor:
    """Upper Cholesky factor of (H + λI)⁻¹ with λ = percdamp·mean(diag H), more damping on failure."""
    eye = torch.eye(hessian.shape[0], dtype=hessian.dtype)
    mean_diag = hessian.diagonal().mean().clamp_min(1e-12)
    for factor in (1.0, 10.0, 100.0, 1000.0):
        damped = hessian + (percdamp * factor) * mean_diag * eye
        chol, info = torch.linalg.cholesky_ex(damped)
        if int(info) == 0:
            inv = torch.cholesky_inverse(chol)
            upper, info = torch.linalg.cholesky_ex(inv, upper=True)
            if int(info) == 0:
                if factor > 1.0:
                    log.warning("SparseGPT: Hessian needed %gx the usual dampening", factor)
                return upper
    raise InterplabError("SparseGPT: the input Hessian is not positive definite even after dampening")


def sparsegpt_prune(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float,
    structure: Structure,
    *,
    block_size: int = BLOCK_SIZE,
    percdamp: float = PERCDAMP,
    reference_count: bool = False,
) -> torch.Tensor:
    """Pruned and OBS-updated copy of ``weight`` [out, in] (float32).

    Unstructured blocks prune exactly ⌊rows·width·s⌋ weights; with ``reference_count`` they prune as
    the reference code does, every saliency ``<=`` the k-th smallest (k = ``int(rows·width·s)``,
    0-based), i.e. at least one more per block and more on ties.

    ``hessian`` is H = 2XXᵀ/n [in, in]. Inputs that never fire (zero diagonal) get diag 1 and their
    weight column set to 0, as in the reference implementation.
    """
    w = weight.detach().float().contiguous().clone()
    h = hessian.detach().float().clone()
    rows, cols = w.shape
    n, m = structure.n, structure.m
    if structure.is_nm and cols % m:
        raise InterplabError(f"N:M {structure.label}: {cols} inputs is not a multiple of {m}")
    dead = h.diagonal() == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    hinv = _inverse_cholesky_upper(h, percdamp)

    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        count = i2 - i1
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        d = hinv1.diagonal()
        mask1 = torch.zeros(rows, count, dtype=torch.bool)
        if not structure.is_nm:
            saliency = w1**2 / d.unsqueeze(0) ** 2
            if reference_count:
                thresh = torch.sort(saliency.flatten()).values[int(saliency.numel() * sparsity)]
                mask1 = saliency <= thresh
            else:
                k = prune_count(rows * count, sparsity)
                if k > 0:
                    order = torch.sort(saliency.flatten(), stable=True).indices[:k]
                    mask1.view(-1)[order] = True
        with _single_thread():
            for i in range(count):
                if structure.is_nm and i % m == 0:
                    sal = w1[:, i : i + m] ** 2 / d[i : i + m].unsqueeze(0) ** 2
                    pick = torch.sort(sal, dim=1, stable=True).indices[:, :n]
                    mask1[:, i : i + m].scatter_(1, pick, True)
                col = w1[:, i]
                q = col.masked_fill(mask1[:, i], 0.0)
                q1[:, i] = q
                err = (col - q) / d[i]
                w1[:, i:].sub_(torch.outer(err, hinv1[i, i:]))
                err1[:, i] = err
        w[:, i1:i2] = q1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w
