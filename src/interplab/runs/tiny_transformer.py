"""A tiny attention-only transformer (no MLPs, no layer norm) for in-context Markov chains.

Tokens and positions have learned embeddings added into a residual stream of width ``d_model``;
each layer adds causal multi-head self-attention; a linear unembedding gives next-state logits.
``init_scale`` multiplies the initial query and key weights: a small scale starts every head at
(almost) uniform attention, which lengthens the unigram phase before induction-style heads form.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class TinyConfig:
    """Shape and initialisation of :class:`AttnOnlyTransformer`."""

    n_states: int = 3
    seq_len: int = 64
    d_model: int = 32
    n_layers: int = 2
    n_heads: int = 1
    init_scale: float = 1.0


class CausalSelfAttention(nn.Module):
    """Causal multi-head self-attention that can return its attention pattern."""

    def __init__(self, d_model: int, n_heads: int, init_scale: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.o = nn.Linear(d_model, d_model, bias=False)
        with torch.no_grad():
            self.q.weight.mul_(init_scale)
            self.k.weight.mul_(init_scale)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, d]`` → (output ``[B, T, d]``, attention ``[B, H, T, T]``)."""
        B, T, _ = x.shape
        shape = (B, T, self.n_heads, self.d_head)
        q = self.q(x).view(shape).transpose(1, 2)
        k = self.k(x).view(shape).transpose(1, 2)
        v = self.v(x).view(shape).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        attn = scores.masked_fill(mask, float("-inf")).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(B, T, -1)
        return self.o(out), attn


class AttnOnlyTransformer(nn.Module):
    """Embeddings → ``n_layers`` residual attention layers → unembedding."""

    def __init__(self, cfg: TinyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.n_states, cfg.d_model)
        self.pos = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.layers = nn.ModuleList(
            CausalSelfAttention(cfg.d_model, cfg.n_heads, cfg.init_scale) for _ in range(cfg.n_layers)
        )
        self.unembed = nn.Linear(cfg.d_model, cfg.n_states, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``x [B, T]`` → (logits ``[B, T, n_states]``, per-layer attention ``[B, H, T, T]``)."""
        h = self.tok(x) + self.pos(torch.arange(x.shape[1], device=x.device))
        patterns = []
        for layer in self.layers:
            out, attn = layer(h)
            h = h + out
            patterns.append(attn)
        return self.unembed(h), patterns
