"""Llama Scope (OpenMOSS ``lm-saes``) folders: ``hyperparams.json`` + ``checkpoints/final.safetensors``.

Weights ``encoder.weight [d_sae, d_model]``, ``encoder.bias``, ``decoder.weight [d_model, d_sae]``,
``decoder.bias``; hyperparameters ``d_model``, ``d_sae``, ``hook_point_in`` / ``hook_point_out``
(TransformerLens names; different for transcoders), ``act_fn`` (``jumprelu`` with the scalar
``jump_relu_threshold``, ``relu`` or ``topk`` with ``top_k``), ``norm_activation``
(``dataset-wise`` with ``dataset_average_activation_norm {in, out}``, or ``inference`` = already
folded), ``sparsity_include_decoder_norm``, ``use_decoder_bias``,
``apply_decoder_bias_to_pre_encoder``. The formula, with ``s_in = √d_model / norm_in`` and
``s_out = √d_model / norm_out`` (1 when folded) and ``n_i = ‖decoder.weight[:, i]‖``::

    x' = x·s_in  [− b_D]                          (b_D subtracted when apply_decoder_bias_to_pre_encoder)
    pre = x' E + b_E
    f = ReLU(pre) · [pre·n > θ]                   (jumprelu; [pre > θ] without sparsity_include_decoder_norm)
    x̂ = (f D + b_D) / s_out

Loaded as a JumpReLU SAE with the scales folded in: ``W_enc = s_in·Eᵀ``, per-feature threshold
``θ / n_i`` (or ``θ``), ``W_dec = Dᵀ / s_out``, ``b_dec = b_D / s_out``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from interplab.common.data import read_json
from interplab.common.errors import InterplabError
from interplab.sae.model import SAE, SAEConfig

HYPERPARAMS = "hyperparams.json"
WEIGHTS = ("checkpoints/final.safetensors", "final.safetensors")
ACT_FNS = ("jumprelu", "relu", "topk")


def _weights_file(folder: Path) -> Path | None:
    return next((folder / w for w in WEIGHTS if (folder / w).is_file()), None)


def detect(path: Path) -> bool:
    """A folder with ``hyperparams.json`` and ``checkpoints/final.safetensors`` (or ``final.safetensors``)."""
    folder = Path(path)
    return (folder / HYPERPARAMS).is_file() and _weights_file(folder) is not None


def _hook(name: Any) -> str | None:
    return None if not name else str(name).replace("ln2.hook_normalized", "hook_mlp_in")


def _scales(hp: dict[str, Any], d_model: int, file: Path) -> tuple[float, float]:
    mode = str(hp.get("norm_activation", "inference"))
    if mode in ("inference", "none"):
        return 1.0, 1.0
    if mode != "dataset-wise":
        raise InterplabError(
            f"{file}: norm_activation {mode!r} not supported; expected dataset-wise or inference"
        )
    norms = hp.get("dataset_average_activation_norm")
    if not isinstance(norms, dict) or "in" not in norms or "out" not in norms:
        raise InterplabError(
            f"{file}: norm_activation dataset-wise needs dataset_average_activation_norm.in/.out"
        )
    return math.sqrt(d_model) / float(norms["in"]), math.sqrt(d_model) / float(norms["out"])


def load(path: Path, dtype: torch.dtype = torch.float32, device: Any = "cpu") -> SAE:
    """Load a Llama Scope folder (see module docstring)."""
    from safetensors.torch import load_file

    folder = Path(path)
    hp_file = folder / HYPERPARAMS
    hp = read_json(hp_file)
    if not isinstance(hp, dict):
        raise InterplabError(f"{hp_file}: expected a JSON object")
    file = _weights_file(folder)
    assert file is not None
    try:
        t = {k: v.to(torch.float64) for k, v in load_file(str(file), device="cpu").items()}
    except Exception as exc:
        raise InterplabError(f"{file}: not a readable safetensors file ({exc})") from exc
    need = ("encoder.weight", "encoder.bias", "decoder.weight")
    missing = [n for n in need if n not in t]
    if missing:
        raise InterplabError(
            f"{file}: Llama Scope weights lack {', '.join(missing)} (found: {', '.join(sorted(t))})"
        )
    d_sae, d_model = (int(n) for n in t["encoder.weight"].shape)
    act_fn = str(hp.get("act_fn", "jumprelu")).lower()
    if act_fn not in ACT_FNS:
        raise InterplabError(
            f"{hp_file}: act_fn {act_fn!r} not supported; expected one of: {', '.join(ACT_FNS)}"
        )
    s_in, s_out = _scales(hp, int(hp.get("d_model", d_model)), hp_file)
    b_D = t.get("decoder.bias") if hp.get("use_decoder_bias", True) else None
    b_D = torch.zeros(t["decoder.weight"].shape[0], dtype=torch.float64) if b_D is None else b_D
    pre_bias = bool(hp.get("apply_decoder_bias_to_pre_encoder", False))
    if pre_bias and s_in != s_out:
        raise InterplabError(f"{hp_file}: apply_decoder_bias_to_pre_encoder with different in/out norms")
    w: dict[str, Any] = {
        "W_enc": t["encoder.weight"].T * s_in,
        "b_enc": t["encoder.bias"],
        "W_dec": t["decoder.weight"].T / s_out,
        "b_dec": b_D / s_out,
    }
    if act_fn == "jumprelu":
        theta = torch.full((d_sae,), float(hp["jump_relu_threshold"]), dtype=torch.float64)
        if hp.get("sparsity_include_decoder_norm", False):
            theta = theta / t["decoder.weight"].norm(dim=0).clamp_min(1e-12)
        w["threshold"] = theta
    elif act_fn == "topk" and hp.get("sparsity_include_decoder_norm", False):
        raise InterplabError(f"{hp_file}: topk with sparsity_include_decoder_norm is not supported")
    hook_in, hook_out = _hook(hp.get("hook_point_in")), _hook(hp.get("hook_point_out"))
    cfg = SAEConfig(
        d_in=d_model,
        d_sae=d_sae,
        d_out=int(t["decoder.weight"].shape[0]),
        architecture={"relu": "standard"}.get(act_fn, act_fn),
        k=int(hp["top_k"]) if act_fn == "topk" else None,
        apply_b_dec_to_input=pre_bias,
        hook_name=hook_in,
        hook_name_out=hook_out if hook_out and hook_out != hook_in else None,
        hook_layer=_layer(hook_in),
        model_name=hp.get("model_name"),
        source_format="llamascope",
    )
    sae = SAE.from_weights(cfg, dtype=dtype, device=device, **{k: v.to(torch.float32) for k, v in w.items()})
    sae.eval()
    return sae.requires_grad_(False)


def _layer(hook: str | None) -> int | None:
    m = re.match(r"blocks\.(\d+)\.", hook or "")
    return int(m.group(1)) if m else None
