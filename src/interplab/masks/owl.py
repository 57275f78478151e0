"""OWL layerwise sparsity (Yin et al., 2024, "Outlier Weighed Layerwise Sparsity"), as the authors'
code computes it.

For each block ℓ, the Wanda scores S = |W|·‖X‖₂ of all its linear layers are pooled; the block's
outlier ratio is D_ℓ = #{S > M · mean(S)} / #S (the reference reports it in percent; the scale
cancels below). With λ the spread and s the target sparsity:

    k_ℓ = 2λ · (D_ℓ − min D) / (max D − min D)          (in [0, 2λ])
    density_ℓ = k_ℓ − mean(k) + (1 − s)
    sparsity_ℓ = 1 − density_ℓ

so the mean sparsity is exactly s, and blocks with more outliers are pruned less. The scores come
from one pass through the *unpruned* model (each block fed by the unpruned blocks before it), as in
the reference. When every block has the same outlier ratio, the profile is uniform. The reference
replaces a sparsity ≤ 0 by 0.01; here a λ that pushes any block outside (0, 1) is an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from interplab.common.errors import InterplabError
from interplab.common.progress import track
from interplab.masks.calibration import capture_block_inputs
from interplab.masks.configs import DEFAULT_LAMBDA, DEFAULT_M
from interplab.masks.layers import collect_input_stats, find_linear_layers
from interplab.masks.wanda import wanda_scores

PROFILES = ("uniform", "owl")


@dataclasses.dataclass
class OwlProfile:
    """Per-block outlier ratios (fractions) and the resulting sparsities."""

    lam: float
    m: float
    outlier_ratios: list[float]
    sparsities: list[float]

    def record(self) -> dict[str, object]:
        return {
            "profile": "owl",
            "lambda": self.lam,
            "m": self.m,
            "layers": [
                {"layer": i, "outlier_ratio": r, "sparsity": s}
                for i, (r, s) in enumerate(zip(self.outlier_ratios, self.sparsities, strict=True))
            ],
        }


def outlier_ratio(scores: Sequence[torch.Tensor], m: float) -> float:
    """Fraction of the pooled ``scores`` above ``m`` × their mean."""
    flat = torch.cat([s.flatten().float() for s in scores])
    return float((flat > flat.mean() * m).sum()) / flat.numel()


def owl_sparsities(ratios: Sequence[float], target: float, lam: float) -> list[float]:
    """Per-block sparsities from the outlier ratios (formula in the module docstring)."""
    d = np.asarray(ratios, dtype=np.float64)
    spread = d.max() - d.min()
    k = (d - d.min()) / spread * 2.0 * lam if spread > 0 else np.zeros_like(d)
    density = k - k.mean() + (1.0 - target)
    sparsity = 1.0 - density
    bad = np.flatnonzero((sparsity <= 0) | (sparsity >= 1))
    if bad.size:
        i = int(bad[0])
        raise InterplabError(
            f"--owl-lambda {lam}: gives layer {i} sparsity {sparsity[i]:.4f}, outside (0, 1) "
            f"at target sparsity {target}; use a smaller lambda"
        )
    return [float(v) for v in sparsity]


def check_owl_lambda(lam: float, target: float) -> float:
    """λ must be positive; the worst case of the formula is target ± 2λ."""
    if not (isinstance(lam, int | float) and lam > 0 and np.isfinite(lam)):
        raise InterplabError(f"--owl-lambda {lam!r}: expected a positive number, e.g. {DEFAULT_LAMBDA}")
    return float(lam)


def owl_profile(
    model: nn.Module,
    blocks: nn.ModuleList,
    calibration: torch.Tensor,
    *,
    target: float,
    lam: float = DEFAULT_LAMBDA,
    m: float = DEFAULT_M,
    batch_size: int = 8,
) -> OwlProfile:
    """Outlier ratio of every block of the unpruned model and the OWL sparsities (O(in) memory)."""
    if not m > 0:
        raise InterplabError(f"--owl-m {m!r}: expected a positive number, e.g. {DEFAULT_M}")
    ratios: list[float] = []
    inputs = capture_block_inputs(model, blocks[0], calibration, batch_size)
    for index in track(range(len(blocks)), "OWL outlier ratios", total=len(blocks)):
        block = blocks[index]
        layers = find_linear_layers(block)
        with collect_input_stats(layers, gram=False) as stats, torch.no_grad():
            outputs = [item.call(block) for item in inputs]
        scores = [wanda_scores(layer.weight(), stats[layer.component].sq_norms) for layer in layers]
        ratios.append(outlier_ratio(scores, m))
        inputs = [dataclasses.replace(item, hidden=h) for item, h in zip(inputs, outputs, strict=True)]
    return OwlProfile(lam, m, ratios, owl_sparsities(ratios, target, lam))
