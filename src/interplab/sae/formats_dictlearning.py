"""dictionary_learning (saprmarks/dictionary_learning) folders: ``ae.pt`` + ``config.json``.

``config.json`` holds ``{"trainer": {"dict_class": …, "activation_dim", "dict_size", "k", "layer",
"lm_name", "submodule_name", …}}``; ``ae.pt`` is the dictionary's ``state_dict`` (read with
``weights_only=True``). Parameter names, layouts and the documented encode/decode per class
(``x`` raw activations; ``nn.Linear`` weights are ``[out, in]``):

=========================  ===============================================  ==========================
``dict_class``             state dict                                       features ``f`` / ``x̂``
=========================  ===============================================  ==========================
``AutoEncoder``            ``encoder.weight`` [d_sae, d_in], ``encoder.``   ``ReLU(E(x − bias))``;
                           ``bias``, ``decoder.weight`` [d_in, d_sae],      ``D f + bias``
                           ``bias`` [d_in]
``AutoEncoderNew``         ``encoder.weight/bias``, ``decoder.weight/bias``  ``ReLU(E x)``; ``D f``
``AutoEncoderTopK``        ``encoder.weight/bias``, ``decoder.weight``,      top-k of ``ReLU(E(x − b_dec))``;
                           ``b_dec``, ``k``, ``threshold`` (scalar)         ``D f + b_dec``
``BatchTopKSAE``           as TopK                                          ``a·[a > threshold]`` with
                                                                            ``a = ReLU(E(x − b_dec))``
``MatryoshkaBatchTopKSAE`` ``W_enc`` [d_in, d_sae], ``b_enc``, ``W_dec``    as BatchTopK with
                           [d_sae, d_in], ``b_dec``, ``k``, ``threshold``   ``a = ReLU((x − b_dec) W_enc + b_enc)``
``JumpReluAutoEncoder``    ``W_enc``, ``b_enc``, ``W_dec``, ``b_dec``,      ``ReLU(pre·[pre > θ])``,
                           ``threshold`` [d_sae]                            ``pre = x W_enc + b_enc``
``GatedAutoEncoder``       ``encoder.weight`` (no bias), ``decoder_bias``,  gated, ``h = E(x − decoder_bias)``
                           ``r_mag``, ``gate_bias``, ``mag_bias``,
                           ``decoder.weight``
=========================  ===============================================  ==========================

BatchTopK SAEs run with their learned threshold at inference (the library's default,
``use_threshold=True``), i.e. as JumpReLU; a threshold that is still negative (never learned)
keeps every positive activation. ``submodule_name`` gives the hook: ``resid_post_layer_L`` →
``blocks.L.hook_resid_post``, ``mlp_out_layer_L`` → ``hook_mlp_out``, ``attn_out_layer_L`` →
``hook_attn_out`` (also without the underscore before ``L``, and ``resid_out`` / ``mlp`` /
``attn``); with another name only ``layer`` is taken and ``--hook`` must give the kind.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from interplab.common.data import read_json
from interplab.common.errors import InterplabError
from interplab.sae.model import SAE, SAEConfig

WEIGHTS = "ae.pt"
CONFIG = "config.json"
DICT_CLASSES = (
    "AutoEncoder",
    "AutoEncoderNew",
    "AutoEncoderTopK",
    "BatchTopKSAE",
    "MatryoshkaBatchTopKSAE",
    "JumpReluAutoEncoder",
    "GatedAutoEncoder",
)
_SUBMODULE_KINDS = {
    "resid_post": "hook_resid_post",
    "resid_out": "hook_resid_post",
    "resid": "hook_resid_post",
    "resid_pre": "hook_resid_pre",
    "mlp_out": "hook_mlp_out",
    "mlp": "hook_mlp_out",
    "attn_out": "hook_attn_out",
    "attn": "hook_attn_out",
}


def detect(path: Path) -> bool:
    """A folder with ``ae.pt`` and ``config.json``."""
    folder = Path(path)
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


def hook_from_submodule(name: str | None, layer: Any) -> tuple[str | None, int | None]:
    """``(hook_name, layer)`` from ``submodule_name`` (e.g. ``resid_post_layer_12``) and ``layer``."""
    m = re.fullmatch(
        r"(resid_post|resid_out|resid_pre|resid|mlp_out|mlp|attn_out|attn)_layer_?(\d+)", name or ""
    )
    if m:
        return f"blocks.{int(m.group(2))}.{_SUBMODULE_KINDS[m.group(1)]}", int(m.group(2))
    return None, (int(layer) if isinstance(layer, int | float | str) and str(layer).isdigit() else None)


def _state_dict(file: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InterplabError(f"{file}: cannot load with torch.load(weights_only=True) ({exc})") from exc
    if isinstance(obj, dict) and isinstance(obj.get("ae"), dict):  # a training checkpoint
        obj = obj["ae"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InterplabError(
            f"{file}: expected a state dict (parameter name → tensor), got {type(obj).__name__}"
        )
    return {str(k): v.to(torch.float32) for k, v in obj.items()}


def _need(sd: dict[str, torch.Tensor], names: tuple[str, ...], file: Path, dict_class: str) -> None:
    missing = [n for n in names if n not in sd]
    if missing:
        raise InterplabError(
            f"{file}: {dict_class} state dict lacks {', '.join(missing)} (found: {', '.join(sorted(sd))})"
        )


def _tensors(
    sd: dict[str, torch.Tensor], dict_class: str, file: Path
) -> tuple[str, dict[str, Any], int | None]:
    """``(architecture, SAE tensors, k)`` for one ``dict_class``."""
    linear = ("encoder.weight", "decoder.weight")
    if dict_class == "AutoEncoder":
        _need(sd, (*linear, "encoder.bias", "bias"), file, dict_class)
        t = {"W_enc": sd["encoder.weight"].T, "b_enc": sd["encoder.bias"], "W_dec": sd["decoder.weight"].T}
        return "standard", {**t, "b_dec": sd["bias"], "apply_b_dec_to_input": True}, None
    if dict_class == "AutoEncoderNew":
        _need(sd, (*linear, "encoder.bias", "decoder.bias"), file, dict_class)
        t = {"W_enc": sd["encoder.weight"].T, "b_enc": sd["encoder.bias"], "W_dec": sd["decoder.weight"].T}
        return "standard", {**t, "b_dec": sd["decoder.bias"], "apply_b_dec_to_input": False}, None
    if dict_class in ("AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE"):
        if dict_class == "MatryoshkaBatchTopKSAE":
            _need(sd, ("W_enc", "b_enc", "W_dec", "b_dec", "k", "threshold"), file, dict_class)
            t = {"W_enc": sd["W_enc"], "b_enc": sd["b_enc"], "W_dec": sd["W_dec"]}
        else:
            _need(sd, (*linear, "encoder.bias", "b_dec", "k"), file, dict_class)
            t = {
                "W_enc": sd["encoder.weight"].T,
                "b_enc": sd["encoder.bias"],
                "W_dec": sd["decoder.weight"].T,
            }
        t.update(b_dec=sd["b_dec"], apply_b_dec_to_input=True)
        k = int(sd["k"].item())
        if dict_class == "AutoEncoderTopK":
            return "topk", t, k
        _need(sd, ("threshold",), file, dict_class)
        d_sae = t["W_enc"].shape[1]
        return "jumprelu", {**t, "threshold": sd["threshold"].reshape(-1).expand(d_sae).clone()}, k
    if dict_class == "JumpReluAutoEncoder":
        _need(sd, ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"), file, dict_class)
        t = {n: sd[n] for n in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}
        return "jumprelu", {**t, "apply_b_dec_to_input": False}, None
    _need(sd, (*linear, "decoder_bias", "r_mag", "gate_bias", "mag_bias"), file, dict_class)
    t = {
        "W_enc": sd["encoder.weight"].T,
        "W_dec": sd["decoder.weight"].T,
        "b_dec": sd["decoder_bias"],
        "b_gate": sd["gate_bias"],
        "r_mag": sd["r_mag"],
        "b_mag": sd["mag_bias"],
    }
    return "gated", {**t, "apply_b_dec_to_input": True}, None


def load(path: Path, dtype: torch.dtype = torch.float32, device: Any = "cpu") -> SAE:
    """Load a dictionary_learning folder (``ae.pt`` + ``config.json``) as an SAE."""
    folder = Path(path)
    raw = read_json(folder / CONFIG)
    trainer = raw.get("trainer") if isinstance(raw, dict) else None
    if not isinstance(trainer, dict):
        raise InterplabError(f"{folder / CONFIG}: expected a 'trainer' object (dictionary_learning config)")
    dict_class = str(trainer.get("dict_class", ""))
    if dict_class not in DICT_CLASSES:
        raise InterplabError(
            f"{folder / CONFIG}: unknown trainer.dict_class {dict_class!r}; known: {', '.join(DICT_CLASSES)}"
        )
    file = folder / WEIGHTS
    arch, t, k = _tensors(_state_dict(file), dict_class, file)
    apply_b_dec = bool(t.pop("apply_b_dec_to_input"))
    d_in, d_sae = (int(n) for n in t["W_enc"].shape)
    for key, value in (("activation_dim", d_in), ("dict_size", d_sae)):
        if key in trainer and int(trainer[key]) != value:
            raise InterplabError(f"{folder / CONFIG}: trainer.{key}={trainer[key]} but {file} holds {value}")
    hook_name, layer = hook_from_submodule(trainer.get("submodule_name"), trainer.get("layer"))
    cfg = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        architecture=arch,
        k=k if arch == "topk" else None,
        apply_b_dec_to_input=apply_b_dec,
        hook_name=hook_name,
        hook_layer=layer,
        model_name=trainer.get("lm_name"),
        source_format="dictionary_learning",
        extra={"dict_class": dict_class, **({"k": k} if k is not None else {})},
    )
    sae = SAE.from_weights(cfg, dtype=dtype, device=device, **t)
    sae.eval()
    return sae.requires_grad_(False)
