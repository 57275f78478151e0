"""The SAE object: one module for standard (ReLU), TopK and JumpReLU sparse autoencoders.

Encoding follows SAELens: ``x' = norm_in(x) - b_dec·[apply_b_dec_to_input]``,
``pre = x' @ W_enc + b_enc``, then

* ``standard``: ``f = ReLU(pre)``
* ``topk``: the ``k`` largest entries of ``pre`` kept (then ReLU), all others zero
* ``jumprelu``: ``f = ReLU(pre) · [pre > threshold]`` (as SAELens; differs from ``pre · [pre > θ]``
  where a threshold is negative; BatchTopK SAEs are exported in this form)
* ``gated`` (Rajamanoharan et al.; ``b_enc`` is zero): with ``h = x' @ W_enc``,
  ``f = [h + b_gate > 0] · ReLU(h · exp(r_mag) + b_mag)``

and decoding is ``x̂ = f @ W_dec + b_dec`` (then ``norm_out`` undoes a run-time input normalisation in
:meth:`SAE.forward`).

A *transcoder* (``hook_name_out`` set) reads one hook and predicts another: ``W_dec [d_sae, d_out]``,
``b_dec [d_out]``, no ``b_dec`` subtracted from its input, and with a skip connection
``ŷ = f @ W_dec + b_dec + x @ W_skipᵀ`` (``W_skip [d_out, d_in]``, in :meth:`SAE.forward` /
:meth:`SAE.encode_decode`; :meth:`SAE.decode` alone has no ``x``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from interplab.common.errors import InterplabError

ARCHITECTURES = ("standard", "topk", "jumprelu", "gated")
GATED_TENSORS = ("b_gate", "r_mag", "b_mag")  # [d_sae] each, gated SAEs only
NORMALIZATIONS = ("none", "constant_norm_rescale", "layer_norm", "expected_average_only_in")


@dataclasses.dataclass
class SAEConfig:
    """What an SAE is and where it was trained (the hook it reads)."""

    d_in: int
    d_sae: int
    architecture: str  # "standard" (ReLU) | "topk" | "jumprelu" | "gated"
    k: int | None = None
    apply_b_dec_to_input: bool = False
    normalize_activations: str = "none"
    hook_name: str | None = None  # TransformerLens style, e.g. "blocks.3.hook_resid_post"
    hook_layer: int | None = None
    model_name: str | None = None
    source_format: str = ""  # "saelens", "saelens-legacy", "sparsify", "export", "new"
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    d_out: int | None = None  # transcoders: width of the output hook (default d_in)
    hook_name_out: str | None = None  # transcoders: the hook whose activation the output predicts
    skip_connection: bool = False  # transcoders with W_skip

    @property
    def out_width(self) -> int:
        return int(self.d_out) if self.d_out is not None else self.d_in

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
        if self.apply_b_dec_to_input and self.out_width != self.d_in:
            raise InterplabError(
                f"apply_b_dec_to_input needs d_out = d_in, got d_out={self.d_out}, d_in={self.d_in}"
            )


class SAE(nn.Module):
    """A sparse autoencoder with parameters ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``,
    ``W_dec [d_sae, d_in]``, ``b_dec [d_in]`` and ``threshold [d_sae]`` (used by JumpReLU only)."""

    def __init__(self, cfg: SAEConfig, dtype: torch.dtype = torch.float32, device: Any = "cpu") -> None:
        super().__init__()
        self.cfg = cfg
        kw = {"dtype": dtype, "device": device}
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, **kw))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, **kw))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.out_width, **kw))
        self.b_dec = nn.Parameter(torch.zeros(cfg.out_width, **kw))
        self.W_skip = (
            nn.Parameter(torch.zeros(cfg.out_width, cfg.d_in, **kw)) if cfg.skip_connection else None
        )
        self.threshold = nn.Parameter(torch.zeros(cfg.d_sae, **kw), requires_grad=False)
        if cfg.architecture == "gated":
            for name in GATED_TENSORS:
                setattr(self, name, nn.Parameter(torch.zeros(cfg.d_sae, **kw)))

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
        **gated: Tensor | None,
    ) -> SAE:
        """Build an SAE from tensors, checking every shape against ``cfg`` (``b_gate``, ``r_mag``,
        ``b_mag`` for gated SAEs)."""
        sae = cls(cfg, dtype=dtype, device=device)
        expected = {
            "W_enc": (cfg.d_in, cfg.d_sae),
            "W_dec": (cfg.d_sae, cfg.out_width),
            "b_enc": (cfg.d_sae,),
            "b_dec": (cfg.out_width,),
            "threshold": (cfg.d_sae,),
        }
        given = {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec, "threshold": threshold}
        gated = {k: v for k, v in gated.items() if v is not None}
        W_skip = gated.pop("W_skip", None)
        if (W_skip is not None) != cfg.skip_connection:
            raise InterplabError("W_skip is given exactly when the config has skip_connection")
        if W_skip is not None:
            given["W_skip"] = W_skip
            expected["W_skip"] = (cfg.out_width, cfg.d_in)
        unknown = sorted(set(gated) - set(GATED_TENSORS))
        if unknown or (gated and cfg.architecture != "gated"):
            raise InterplabError(
                f"SAE tensors {', '.join(unknown or sorted(gated))} need architecture 'gated'"
            )
        if cfg.architecture == "gated":
            missing = [n for n in GATED_TENSORS if gated.get(n) is None]
            if missing:
                raise InterplabError(f"gated SAE needs tensors {', '.join(missing)} of shape [d_sae]")
            if b_enc is not None:
                raise InterplabError("gated SAE has no b_enc (its biases are b_gate and b_mag)")
            given.update(gated)
            expected.update(dict.fromkeys(GATED_TENSORS, (cfg.d_sae,)))
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
            return torch.relu(pre) * (pre > self.threshold).to(pre.dtype)
        if arch == "gated":
            h = pre  # b_enc is zero for gated SAEs
            gate = (h + self.b_gate > 0).to(pre.dtype)
            return gate * torch.relu(h * torch.exp(self.r_mag) + self.b_mag)
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
        """Reconstruction of ``x`` in the input's own scale (a transcoder's prediction of its output)."""
        return self.encode_decode(x)[1]

    def encode_decode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(features, reconstruction)`` in one pass."""
        x = x.to(self.dtype)
        _, state = self.normalise_input(x)
        f = self.encode(x)
        x_hat = self.restore_scale(self.decode(f), state)
        if self.W_skip is not None:
            x_hat = x_hat + x @ self.W_skip.T
        return f, x_hat

    def extra_repr(self) -> str:
        c = self.cfg
        k = f", k={c.k}" if c.architecture == "topk" else ""
        return f"{c.architecture}, d_in={c.d_in}, d_sae={c.d_sae}{k}, hook={c.hook_name}"
