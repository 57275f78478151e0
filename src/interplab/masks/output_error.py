"""Relative output error ‖(W−Ŵ)X‖_F / ‖WX‖_F measured on the fly, for methods that collect no Gram
matrix: forward hooks on the unpruned layers accumulate ‖Δx‖² and ‖Wx‖² batch by batch, so the
memory is O(out · batch tokens) instead of O(in²)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator

import torch

from interplab.masks.layers import LinearLayer, feed_inputs


@dataclasses.dataclass
class ErrorStats:
    """Running ‖(W−Ŵ)X‖² and ‖WX‖² of one layer."""

    delta_t: torch.Tensor  # (W − Ŵ)ᵀ, [in, out]
    weight_t: torch.Tensor  # Wᵀ, [in, out]
    num: float = 0.0
    den: float = 0.0

    def add(self, x: torch.Tensor) -> None:
        flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float32)
        self.num += float((flat @ self.delta_t).double().square().sum())
        self.den += float((flat @ self.weight_t).double().square().sum())

    @property
    def relative_error(self) -> float:
        return math.sqrt(self.num / self.den) if self.den > 0 else math.nan


@contextlib.contextmanager
def collect_output_errors(
    layers: list[LinearLayer], pruned: dict[str, torch.Tensor]
) -> Iterator[dict[str, ErrorStats]]:
    """Hooks on the (still unpruned) ``layers`` measuring each one's error against ``pruned[component]``."""
    stats: dict[str, ErrorStats] = {}
    for layer in layers:
        weight = layer.weight()
        delta = weight - pruned[layer.component]
        stats[layer.component] = ErrorStats(delta.t().contiguous(), weight.t().contiguous())
    with feed_inputs(layers, stats):
        yield stats
