"""The SAE object: one module for standard (ReLU), TopK and JumpReLU sparse autoencoders.

Encoding follows SAELens: ``x' = norm_in(x) - b_dec·[apply_b_dec_to_input]``,
``pre = x' @ W_enc + b_enc``, then

* ``standard``: ``f = ReLU(pre)``
* ``topk``: the ``k`` largest entries of ``pre`` kept (then ReLU), all others zero
* ``jumprelu``: ``f = pre · [pre > threshold]`` (BatchTopK SAEs are exported in this form)

and decoding is ``x̂ = f @ W_dec + b_dec`` (then ``norm_out`` undoes a run-time input normalisation in
:meth:`SAE.forward`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from interplab.common.errors import InterplabError

ARCHITECTURES = ("standard", "topk", "jumprelu")
NORMALIZATIONS = ("none", "constant_norm_rescale", "layer_norm", "expected_average_only_in")


@dataclasses.dataclass
class SAEConfig:
    """What an SAE is and where it was trained (the hook it reads)."""

    d_in: int
    d_sae: int
    architecture: str  # "standard" (ReLU) | "topk" | "jumprelu"
    k: int | None = None
    apply_b_dec_to_input: bool = False
    normalize_activations: str = "none"
    hook_name: str | None = None  # TransformerLens style, e.g. "blocks.3.hook_resid_post"
    hook_layer: int | None = None
    model_name: str | None = None
    source_format: str = ""  # "saelens", "saelens-legacy", "sparsify", "export", "new"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise InterplabError(
                f"unknown SAE architecture {self.architecture!r}; expected one of: {', '.join(ARCHITECTURES)}"
            )
        if self.normalize_activations not in NORMALIZATIONS:
            raise InterplabError(
                f"unknown normalize_activations {self.normalize_activations!r}; expected one of: "
                f"{', '.join(NORMALIZATIONS)}"
            )
        if self.architecture == "topk":
            if self.k is None or not (1 <= int(self.k) <= self.d_sae):
                raise InterplabError(f"TopK SAE needs 1 ≤ k ≤ d_sae={self.d_sae}, got k={self.k}")
            self.k = int(self.k)


class SAE(nn.Module):
    """A sparse autoencoder with parameters ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``,
    ``W_dec [d_sae, d_in]``, ``b_dec [d_in]`` and ``threshold [d_sae]`` (used by JumpReLU only)."""

    def __init__(self, cfg: SAEConfig, dtype: torch.dtype = torch.float32, device: Any = "cpu") -> None:
        super().__init__()
        self.cfg = cfg
        kw = {"dtype": dtype, "device": device}
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, **kw))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, **kw))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in, **kw))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, **kw))
        self.threshold = nn.Parameter(torch.zeros(cfg.d_sae, **kw), requires_grad=False)

    @classmethod
    def from_weights(
        cls,
        cfg: SAEConfig,
        W_enc: Tensor,
        W_dec: Tensor,
        b_enc: Tensor | None = None,
        b_dec: Tensor | None = None,
        threshold: Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        device: Any = "cpu",
    ) -> SAE:
        """Build an SAE from tensors, checking every shape against ``cfg``."""
        sae = cls(cfg, dtype=dtype, device=device)
        expected = {
            "W_enc": (cfg.d_in, cfg.d_sae),
            "W_dec": (cfg.d_sae, cfg.d_in),
            "b_enc": (cfg.d_sae,),
            "b_dec": (cfg.d_in,),
            "threshold": (cfg.d_sae,),
        }
        given = {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec, "threshold": threshold}
        with torch.no_grad():
            for name, tensor in given.items():
                if tensor is None:
                    continue
                tensor = torch.as_tensor(tensor)
                if tuple(tensor.shape) != expected[name]:
                    raise InterplabError(
                        f"SAE tensor {name} has shape {list(tensor.shape)}, expected {list(expected[name])} "
                        f"(d_in={cfg.d_in}, d_sae={cfg.d_sae})"
                    )
                getattr(sae, name).copy_(tensor.to(dtype))
        if cfg.architecture == "jumprelu" and threshold is None:
            raise InterplabError("JumpReLU SAE needs a 'threshold' tensor of shape [d_sae]")
        return sae

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    # -- normalisation ---------------------------------------------------------------------------
    def normalise_input(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """``(x', state)``: the input in the space the SAE works in (``normalize_activations``) and
        what :meth:`restore_scale` needs to map a reconstruction back (None: no normalisation)."""
        mode = self.cfg.normalize_activations
        if mode == "constant_norm_rescale":
            coeff = (self.d_in**0.5) / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            return x * coeff, (coeff, torch.zeros_like(coeff))
        if mode == "layer_norm":
            mu = x.mean(dim=-1, keepdim=True)
            xc = x - mu
            std = xc.std(dim=-1, keepdim=True)
            return xc / (std + 1e-5), (1.0 / std, mu)
        return x, None

    def restore_scale(self, x: Tensor, state: tuple[Tensor, Tensor] | None) -> Tensor:
        """A reconstruction from the normalised space back in the input's own scale."""
        if state is None:
            return x
        scale, mu = state
        if self.cfg.normalize_activations == "constant_norm_rescale":
            return x / scale
        return x / scale + mu

    # -- encode / decode -------------------------------------------------------------------------
    def pre_activations(self, x: Tensor) -> Tensor:
        """Encoder pre-activations ``pre = x' @ W_enc + b_enc`` for inputs ``[..., d_in]``."""
        x = x.to(self.dtype)
        x, _ = self.normalise_input(x)
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def activation(self, pre: Tensor) -> Tensor:
        """Apply the architecture's activation function to pre-activations."""
        arch = self.cfg.architecture
        if arch == "standard":
            return torch.relu(pre)
        if arch == "jumprelu":
            return pre * (pre > self.threshold).to(pre.dtype)
        values, indices = torch.topk(pre, k=int(self.cfg.k), dim=-1)
        out = torch.zeros_like(pre)
        return out.scatter(-1, indices, torch.relu(values))

    def encode(self, x: Tensor) -> Tensor:
        """Feature activations ``[..., d_sae]`` of inputs ``[..., d_in]``."""
        if x.shape[-1] != self.d_in:
            raise InterplabError(f"SAE input has width {x.shape[-1]}, expected d_in={self.d_in}")
        return self.activation(self.pre_activations(x))

    def decode(self, f: Tensor) -> Tensor:
        """Reconstruction ``f @ W_dec + b_dec`` (in the normalised space when the SAE normalises)."""
        return f.to(self.dtype) @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction of ``x`` in the input's own scale."""
        x = x.to(self.dtype)
        _, state = self.normalise_input(x)
        x_hat = self.decode(self.encode(x))
        return self.restore_scale(x_hat, state)

    def encode_decode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(features, reconstruction)`` in one pass."""
        x = x.to(self.dtype)
        _, state = self.normalise_input(x)
        f = self.encode(x)
        return f, self.restore_scale(self.decode(f), state)

    def extra_repr(self) -> str:
        c = self.cfg
        k = f", k={c.k}" if c.architecture == "topk" else ""
        return f"{c.architecture}, d_in={c.d_in}, d_sae={c.d_sae}{k}, hook={c.hook_name}"
