"""How much pruning changed things: per matrix the relative output error ‖(W−Ŵ)X‖/‖WX‖ on the
calibration inputs, and for the model the perplexity (causal LMs) and the cosine between final
hidden states before and after pruning on held-out windows.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from interplab.common.models import forward_kwargs


def relative_output_error(weight: torch.Tensor, pruned: torch.Tensor, gram: torch.Tensor) -> float:
    """‖(W−Ŵ)X‖_F / ‖WX‖_F computed exactly from the Gram matrix G = XXᵀ of the inputs:
    ‖AX‖²_F = Σ (A G) ⊙ A."""
    g = gram.double()
    w = weight.double()
    delta = w - pruned.double()
    num = float(((delta @ g) * delta).sum().clamp_min(0))
    den = float(((w @ g) * w).sum().clamp_min(0))
    return math.sqrt(num / den) if den > 0 else math.nan


@dataclasses.dataclass
class Snapshot:
    """A model's outputs on the held-out windows: summed token NLL (causal) and final hidden states."""

    nll_sum: float | None
    n_predicted: int
    hidden: torch.Tensor

    @property
    def perplexity(self) -> float | None:
        if self.nll_sum is None or self.n_predicted == 0:
            return None
        return math.exp(self.nll_sum / self.n_predicted)


@dataclasses.dataclass
class QualityResult:
    """Model-level quality before and after pruning on held-out windows."""

    kind: str
    n_windows: int
    tokens: int
    perplexity_before: float | None
    perplexity_after: float | None
    hidden_cosine_mean: float
    hidden_cosine_min: float


def snapshot(model: nn.Module, windows: torch.Tensor, is_causal: bool, batch_size: int) -> Snapshot:
    """Run the model on ``windows`` [n, seqlen]: next-token NLL for causal LMs, final hidden states."""
    device = next(model.parameters()).device
    extra = forward_kwargs(model)
    nll = 0.0
    count = 0
    hidden: list[torch.Tensor] = []
    with torch.no_grad():
        for batch in windows.split(batch_size):
            batch = batch.to(device)
            out = model(
                input_ids=batch, attention_mask=torch.ones_like(batch), output_hidden_states=True, **extra
            )
            last = getattr(out, "last_hidden_state", None)
            hidden.append((last if last is not None else out.hidden_states[-1]).float().cpu())
            if is_causal:
                logits = out.logits[:, :-1].float()
                target = batch[:, 1:]
                nll += float(
                    torch.nn.functional.cross_entropy(
                        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum"
                    )
                )
                count += target.numel()
    return Snapshot(nll if is_causal else None, count, torch.cat(hidden))


def compare(before: Snapshot, after: Snapshot, is_causal: bool) -> QualityResult:
    """Perplexity before/after (causal) and per-token cosine of final hidden states."""
    cos = torch.nn.functional.cosine_similarity(before.hidden, after.hidden, dim=-1)
    return QualityResult(
        kind="perplexity" if is_causal else "hidden_cosine",
        n_windows=int(before.hidden.shape[0]),
        tokens=int(before.hidden.shape[0] * before.hidden.shape[1]),
        perplexity_before=before.perplexity,
        perplexity_after=after.perplexity,
        hidden_cosine_mean=float(cos.mean()),
        hidden_cosine_min=float(cos.min()),
    )
