"""Which weights to prune: the sparsity structure (unstructured or N:M) and the choice of the
lowest-scoring entries per output row or per group of M consecutive inputs.

All selections use a stable sort, so ties are broken by the lower input index first.
"""

from __future__ import annotations

import dataclasses
import math
import re

import torch

from interplab.common.errors import InterplabError

METHODS = ("magnitude", "wanda", "sparsegpt")
MAGNITUDE_SCOPES = ("row", "matrix")
_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclasses.dataclass(frozen=True)
class Structure:
    """Sparsity structure: unstructured (``n == m == 0``) or N:M (prune ``n`` of every ``m`` inputs)."""

    n: int = 0
    m: int = 0

    @property
    def is_nm(self) -> bool:
        return self.m > 0

    @property
    def label(self) -> str:
        return f"{self.n}:{self.m}" if self.is_nm else "unstructured"

    @property
    def sparsity(self) -> float:
        """The sparsity an N:M structure implies (n/m)."""
        return self.n / self.m if self.is_nm else math.nan


def parse_structure(text: str) -> Structure:
    """Parse ``unstructured`` or ``N:M`` (``0 < N < M``), e.g. ``2:4``."""
    if text.strip().lower() == "unstructured":
        return Structure()
    match = _NM.match(text)
    if not match:
        raise InterplabError(
            f"--structure {text!r}: expected 'unstructured' or N:M with integers 0 < N < M, e.g. '2:4'"
        )
    n, m = int(match.group(1)), int(match.group(2))
    if not 0 < n < m:
        raise InterplabError(f"--structure {text!r}: N:M needs 0 < N < M (got N={n}, M={m}), e.g. '2:4'")
    return Structure(n, m)


def check_sparsity(sparsity: float) -> float:
    """Return ``sparsity`` if it lies strictly between 0 and 1."""
    if not (isinstance(sparsity, int | float) and math.isfinite(sparsity) and 0.0 < sparsity < 1.0):
        raise InterplabError(
            f"--sparsity {sparsity!r}: expected a fraction strictly between 0 and 1, e.g. 0.5"
        )
    return float(sparsity)


def check_method(method: str) -> str:
    """Return ``method`` if it is a known pruning method."""
    if method not in METHODS:
        raise InterplabError(
            f"--method {method!r}: unknown pruning method; expected one of: {', '.join(METHODS)}"
        )
    return method


def prune_count(columns: int, sparsity: float) -> int:
    """Entries pruned per output row: ⌊C·s⌋ (with a tolerance so 0.5·10 is 5, not 4)."""
    return math.floor(columns * sparsity + 1e-9)


def lowest_per_row(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean mask (True = prune) of the ⌊C·s⌋ lowest scores of every row (stable sort)."""
    k = prune_count(scores.shape[1], sparsity)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if k > 0:
        order = torch.sort(scores, dim=1, stable=True).indices[:, :k]
        mask.scatter_(1, order, True)
    return mask


def lowest_n_of_m(scores: torch.Tensor, structure: Structure) -> torch.Tensor:
    """Boolean mask (True = prune) of the ``n`` lowest scores in every group of ``m`` consecutive
    inputs of every row (stable sort). The number of inputs must be a multiple of ``m``."""
    rows, cols = scores.shape
    n, m = structure.n, structure.m
    if cols % m:
        raise InterplabError(f"N:M {structure.label}: {cols} inputs is not a multiple of {m}")
    groups = scores.reshape(rows, cols // m, m)
    order = torch.sort(groups, dim=2, stable=True).indices[:, :, :n]
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(2, order, True)
    return mask.reshape(rows, cols)


def lowest_per_matrix_reference(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean mask (True = prune) by one threshold over the whole matrix, as the published
    magnitude baseline (Wanda repository): every score ``<=`` the k-th smallest, k = ``int(numel·s)``
    (0-based), so ⌊numel·s⌋ + 1 entries or more on ties."""
    thresh = torch.sort(scores.flatten()).values[int(scores.numel() * sparsity)]
    return scores <= thresh


def select_mask(scores: torch.Tensor, sparsity: float, structure: Structure) -> torch.Tensor:
    """Per-row (unstructured) or per-group (N:M) selection of the entries to prune."""
    return lowest_n_of_m(scores, structure) if structure.is_nm else lowest_per_row(scores, sparsity)
