"""Linear-layer discovery (incl. GPT-2 Conv1D), input statistics and the relative output error."""

from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from interplab.masks.layers import collect_input_stats, find_linear_layers
from interplab.masks.quality import relative_output_error


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.ModuleDict({"c_attn": Conv1D(12, 4)})  # GPT-2 style: weight [in=4, out=12]
        self.mlp = nn.Sequential(nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn["c_attn"](x))


def test_find_linear_layers_and_conv1d_orientation() -> None:
    torch.manual_seed(0)
    block = _Block()
    layers = {layer.component: layer for layer in find_linear_layers(block)}
    assert list(layers) == ["attn.c_attn", "mlp.0", "mlp.2"]
    conv = layers["attn.c_attn"]
    assert conv.transposed and conv.shape == (12, 4)
    w = conv.weight()
    x = torch.randn(5, 4)
    assert torch.allclose(x @ w.T + block.attn["c_attn"].bias, block.attn["c_attn"](x), atol=1e-6)
    new = torch.arange(48, dtype=torch.float32).reshape(12, 4)
    conv.set_weight(new)
    assert torch.equal(block.attn["c_attn"].weight, new.T)
    assert layers["mlp.0"].shape == (6, 12) and not layers["mlp.0"].transposed


def test_hooks_collect_gram_of_each_layer_input() -> None:
    torch.manual_seed(1)
    block = _Block()
    layers = find_linear_layers(block)
    xs = [torch.randn(2, 3, 4), torch.randn(1, 5, 4)]
    with collect_input_stats(layers) as stats:
        for x in xs:
            block(x)
    flat = torch.cat([x.reshape(-1, 4) for x in xs])
    assert stats["attn.c_attn"].tokens == 11
    assert torch.allclose(stats["attn.c_attn"].gram, flat.T @ flat, atol=1e-5)
    hidden = torch.relu(block.mlp[0](block.attn["c_attn"](flat))).detach()
    assert torch.allclose(stats["mlp.2"].gram, hidden.T @ hidden, atol=1e-4)
    assert torch.allclose(stats["mlp.2"].hessian(), 2 * hidden.T @ hidden / 11, atol=1e-4)
    assert not block.attn["c_attn"]._forward_hooks  # hooks removed


def test_relative_output_error_matches_direct_computation() -> None:
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(7, 9, generator=gen)
    pruned = w * (torch.rand(7, 9, generator=gen) > 0.5)
    x = torch.randn(9, 50, generator=gen)
    direct = torch.linalg.norm((w - pruned) @ x) / torch.linalg.norm(w @ x)
    assert abs(relative_output_error(w, pruned, x @ x.T) - float(direct)) < 1e-5
    assert relative_output_error(w, w.clone(), x @ x.T) == 0.0
