"""Wanda (Sun et al., 2023): prune by |W_ij|·‖X_j‖₂ per output row, no weight update.

Also magnitude pruning, the same selection with score |W_ij|.
"""

from __future__ import annotations

import torch

from interplab.masks.selection import Structure, lowest_per_matrix_reference, select_mask


def wanda_scores(weight: torch.Tensor, input_sq_norms: torch.Tensor) -> torch.Tensor:
    """Score |W_ij|·‖X_j‖₂, from the squared input norms ‖X_j‖² summed over calibration tokens."""
    return weight.abs() * input_sq_norms.clamp_min(0).sqrt().to(weight.dtype).unsqueeze(0)


def wanda_prune(
    weight: torch.Tensor, input_sq_norms: torch.Tensor, sparsity: float, structure: Structure
) -> torch.Tensor:
    """Pruned copy of ``weight`` [out, in] (float32): each row loses its ⌊C·s⌋ lowest Wanda scores
    (or the n lowest of every m consecutive inputs for N:M)."""
    w = weight.detach().float()
    mask = select_mask(wanda_scores(w, input_sq_norms.float()), sparsity, structure)
    return w.masked_fill(mask, 0.0)


def magnitude_prune(
    weight: torch.Tensor, sparsity: float, structure: Structure, scope: str = "row"
) -> torch.Tensor:
    """Pruned copy of ``weight`` [out, in] (float32): each row loses its ⌊C·s⌋ smallest |W_ij|
    (``scope="row"``), or one threshold over the whole matrix as the published baseline
    (``scope="matrix"``, unstructured only; N:M is always per group)."""
    w = weight.detach().float()
    if scope == "matrix" and not structure.is_nm:
        return w.masked_fill(lowest_per_matrix_reference(w.abs(), sparsity), 0.0)
    return w.masked_fill(select_mask(w.abs(), sparsity, structure), 0.0)
