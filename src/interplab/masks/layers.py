"""The prunable linear layers inside a transformer block, their weights as [out, in] matrices, and
the input statistics (Gram matrix XᵀX over calibration tokens, or only its diagonal) collected with
forward hooks.

GPT-2's ``Conv1D`` stores its weight as [in, out]; it is treated as a linear layer with the weight
transposed.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Protocol

import torch
from torch import nn


def _is_conv1d(module: nn.Module) -> bool:
    """GPT-2 style ``Conv1D`` (transformers.pytorch_utils.Conv1D): y = x @ W + b with W [in, out]."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight")


@dataclasses.dataclass
class LinearLayer:
    """A prunable linear layer: its path inside the block and whether its weight is transposed."""

    component: str
    module: nn.Module
    transposed: bool

    @property
    def shape(self) -> tuple[int, int]:
        out_f, in_f = self.module.weight.shape
        return (in_f, out_f) if self.transposed else (out_f, in_f)

    @property
    def in_features(self) -> int:
        return self.shape[1]

    def weight(self) -> torch.Tensor:
        """The weight as an [out, in] float32 tensor (a copy)."""
        w = self.module.weight.detach()
        return (w.t() if self.transposed else w).float().contiguous().clone()

    def set_weight(self, new: torch.Tensor) -> None:
        """Write an [out, in] tensor back into the module (in its own dtype and layout)."""
        param = self.module.weight
        value = new.t() if self.transposed else new
        with torch.no_grad():
            param.copy_(value.to(dtype=param.dtype, device=param.device))


def find_linear_layers(block: nn.Module) -> list[LinearLayer]:
    """Every ``nn.Linear`` and GPT-2 ``Conv1D`` inside ``block``, in module order."""
    found: list[LinearLayer] = []
    for name, module in block.named_modules():
        if isinstance(module, nn.Linear):
            found.append(LinearLayer(name, module, transposed=False))
        elif _is_conv1d(module):
            found.append(LinearLayer(name, module, transposed=True))
    return found


@dataclasses.dataclass
class GramStats:
    """Running Gram matrix G = Σ x xᵀ (float32, as the reference SparseGPT) of a layer's inputs and the number of tokens seen."""

    gram: torch.Tensor
    tokens: int = 0

    @classmethod
    def empty(cls, in_features: int) -> GramStats:
        return cls(torch.zeros(in_features, in_features, dtype=torch.float32))

    def add(self, x: torch.Tensor) -> None:
        """Add a batch of inputs [..., in]."""
        flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float32)
        self.gram.addmm_(flat.t(), flat)
        self.tokens += flat.shape[0]

    @property
    def sq_norms(self) -> torch.Tensor:
        """‖X_j‖² summed over the tokens, per input feature."""
        return self.gram.diagonal().clone()

    def hessian(self) -> torch.Tensor:
        """SparseGPT's H = 2XXᵀ/n (float32)."""
        return (2.0 * self.gram / max(self.tokens, 1)).float()


@dataclasses.dataclass
class NormStats:
    """Running per-input squared norms Σ x_j² (float32) and token count: all that Wanda and
    magnitude pruning need, O(in) memory instead of the O(in²) Gram matrix."""

    sums: torch.Tensor
    tokens: int = 0

    @classmethod
    def empty(cls, in_features: int) -> NormStats:
        return cls(torch.zeros(in_features, dtype=torch.float32))

    def add(self, x: torch.Tensor) -> None:
        """Add a batch of inputs [..., in]."""
        flat = x.detach().reshape(-1, x.shape[-1]).to(torch.float32)
        self.sums.add_(flat.square().sum(dim=0))
        self.tokens += flat.shape[0]

    @property
    def sq_norms(self) -> torch.Tensor:
        """‖X_j‖² summed over the tokens, per input feature."""
        return self.sums.clone()


@contextlib.contextmanager
def collect_input_stats(
    layers: list[LinearLayer], gram: bool = True
) -> Iterator[dict[str, GramStats | NormStats]]:
    """Forward hooks that accumulate each layer's input Gram matrix (``gram``) or only its
    per-input squared norms while the block runs."""
    kind = GramStats if gram else NormStats
    stats: dict[str, GramStats | NormStats] = {
        layer.component: kind.empty(layer.in_features) for layer in layers
    }
    with feed_inputs(layers, stats):
        yield stats


class InputSink(Protocol):
    """Anything that takes a batch of a layer's inputs."""

    def add(self, x: torch.Tensor) -> None: ...


@contextlib.contextmanager
def feed_inputs(layers: list[LinearLayer], sinks: Mapping[str, InputSink]) -> Iterator[None]:
    """Forward hooks passing each layer's input to ``sinks[layer.component].add`` while the block
    runs; the hooks are removed on exit."""
    handles = []
    for layer in layers:
        entry = sinks[layer.component]

        def hook(_module: nn.Module, args: tuple, _output: object, entry: InputSink = entry) -> None:
            entry.add(args[0])

        handles.append(layer.module.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
