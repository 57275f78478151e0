"""Transcoders: SAEs whose input hook and output hook differ (an MLP's input → its output).

* **SAELens** folders (``cfg.json`` + ``sae_weights.safetensors``) with ``architecture`` ``transcoder``,
  ``skip_transcoder`` or ``jumprelu_transcoder``: ``W_enc [d_in, d_sae]``, ``b_enc``,
  ``W_dec [d_sae, d_out]``, ``b_dec [d_out]`` (+ ``W_skip [d_out, d_in]``, + ``threshold``);
  ``metadata.hook_name`` is the input hook and ``metadata.hook_name_out`` the output hook. Formula
  (no ``b_dec`` subtracted from the input): ``f = act(x W_enc + b_enc)``,
  ``ŷ = f W_dec + b_dec [+ x W_skipᵀ]`` with ``act`` = ReLU, or ``ReLU(pre)·[pre > θ]``.
* **sparsify** hook-point folders (``cfg.json`` with ``transcode: true`` + ``sae.safetensors``):
  ``encoder.weight [d_sae, d_in]``, ``encoder.bias``, ``W_dec [d_sae, d_in]``, ``b_dec``
  (+ ``W_skip`` with ``skip_connection``); TopK on ``x W_encᵀ + b_enc`` (no ``b_dec`` subtracted),
  ``ŷ = f W_dec + b_dec [+ x W_skipᵀ]``. ``layers.L.mlp`` reads the MLP's input
  (``blocks.L.hook_mlp_in``) and predicts its output (``blocks.L.hook_mlp_out``); ``layers.L`` maps
  ``hook_resid_pre`` → ``hook_resid_post``.

TransformerLens's MLP input ``blocks.L.ln2.hook_normalized`` is our ``blocks.L.hook_mlp_in``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from interplab.common.data import read_json
from interplab.common.errors import InterplabError
from interplab.sae.model import SAE, SAEConfig

CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"
SAELENS_ARCHS = {"transcoder": "standard", "skip_transcoder": "standard", "jumprelu_transcoder": "jumprelu"}


def _cfg(folder: Path) -> dict[str, Any] | None:
    try:
        raw = read_json(folder / CFG)
    except InterplabError:
        return None
    return raw if isinstance(raw, dict) else None


def detect(path: Path) -> bool:
    """A SAELens transcoder folder or a sparsify folder with ``transcode: true``."""
    folder = Path(path)
    if not (folder / CFG).is_file():
        return False
    raw = _cfg(folder) or {}
    if (folder / SAELENS_WEIGHTS).is_file():
        return str(raw.get("architecture", "")).lower() in SAELENS_ARCHS
    return (folder / SPARSIFY_WEIGHTS).is_file() and bool(raw.get("transcode"))


def _tl_hook(name: str | None) -> str | None:
    """TransformerLens's MLP-input name → ours."""
    return None if name is None else name.replace("ln2.hook_normalized", "hook_mlp_in")


def _sparsify_hooks(folder_name: str) -> tuple[str | None, str | None, int | None]:
    m = re.fullmatch(
        r"(?:model\.|transformer\.|gpt_neox\.)?(?:layers|h|layer)\.(\d+)(?:\.(\w+))?", folder_name
    )
    if not m:
        return None, None, None
    layer, sub = int(m.group(1)), m.group(2)
    pairs = {None: ("hook_resid_pre", "hook_resid_post"), "mlp": ("hook_mlp_in", "hook_mlp_out")}
    if sub not in pairs:
        return None, None, layer
    kind_in, kind_out = pairs[sub]
    return f"blocks.{layer}.{kind_in}", f"blocks.{layer}.{kind_out}", layer


def _read(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return {k: v.to(torch.float32) for k, v in load_file(str(file), device="cpu").items()}
    except Exception as exc:
        raise InterplabError(f"{file}: not a readable safetensors file ({exc})") from exc


def _need(t: dict[str, torch.Tensor], names: tuple[str, ...], file: Path) -> None:
    missing = [n for n in names if n not in t]
    if missing:
        raise InterplabError(
            f"{file}: transcoder weights lack {', '.join(missing)} (found: {', '.join(sorted(t))})"
        )


def _config(
    w: dict[str, torch.Tensor], hook_in: str | None, hook_out: str | None, no_hook_out: str, **fields: Any
) -> SAEConfig:
    """A transcoder's config from its weights (``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_out]``,
    ``W_skip`` if any) and hooks, with no ``b_dec`` subtracted from the input; ``no_hook_out`` is the
    error when the output hook is unknown."""
    if hook_out is None:
        raise InterplabError(no_hook_out)
    d_in, d_sae = (int(n) for n in w["W_enc"].shape)
    return SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        d_out=int(w["W_dec"].shape[1]),
        apply_b_dec_to_input=False,
        hook_name=hook_in,
        hook_name_out=hook_out,
        skip_connection="W_skip" in w,
        **fields,
    )


def _load_saelens(folder: Path, raw: dict[str, Any]) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    file = folder / SAELENS_WEIGHTS
    t = _read(file)
    arch_name = str(raw["architecture"]).lower()
    skip = arch_name == "skip_transcoder"
    names = ("W_enc", "b_enc", "W_dec", "b_dec") + (("W_skip",) if skip else ())
    names += ("threshold",) if SAELENS_ARCHS[arch_name] == "jumprelu" else ()
    _need(t, names, file)
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    hook_in = _tl_hook(meta.get("hook_name") or raw.get("hook_name"))
    hook_out = _tl_hook(meta.get("hook_name_out") or raw.get("hook_name_out"))
    w = {n: t[n] for n in names}
    cfg = _config(
        w,
        hook_in,
        hook_out,
        f"{folder / CFG}: transcoder config needs metadata.hook_name_out (the output hook)",
        architecture=SAELENS_ARCHS[arch_name],
        hook_layer=_layer(hook_in),
        model_name=meta.get("model_name") or raw.get("model_name"),
        source_format="saelens-transcoder",
    )
    return cfg, w


def _layer(hook: str | None) -> int | None:
    m = re.match(r"blocks\.(\d+)\.", hook or "")
    return int(m.group(1)) if m else None


def _load_sparsify(folder: Path, raw: dict[str, Any]) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    file = folder / SPARSIFY_WEIGHTS
    t = _read(file)
    activation = str(raw.get("activation", "topk")).lower()
    if activation != "topk":
        raise InterplabError(
            f"{folder / CFG}: sparsify activation {activation!r} not supported; expected 'topk'"
        )
    skip = bool(raw.get("skip_connection"))
    _need(t, ("encoder.weight", "encoder.bias", "W_dec", "b_dec") + (("W_skip",) if skip else ()), file)
    hook_in, hook_out, layer = _sparsify_hooks(folder.name)
    w = {"W_enc": t["encoder.weight"].T, "b_enc": t["encoder.bias"], "W_dec": t["W_dec"], "b_dec": t["b_dec"]}
    if skip:
        w["W_skip"] = t["W_skip"]
    cfg = _config(
        w,
        hook_in,
        hook_out,
        f"{folder}: a sparsify transcoder folder is named after its module (layers.L or layers.L.mlp), "
        f"got {folder.name!r}",
        architecture="topk",
        k=int(raw["k"]) if "k" in raw else None,
        hook_layer=layer,
        source_format="sparsify-transcoder",
    )
    return cfg, w


def load(path: Path, dtype: torch.dtype = torch.float32, device: Any = "cpu") -> SAE:
    """Load a SAELens or sparsify transcoder folder."""
    folder = Path(path)
    raw = read_json(folder / CFG)
    if not isinstance(raw, dict):
        raise InterplabError(f"{folder / CFG}: expected a JSON object")
    cfg, w = (
        _load_saelens(folder, raw) if (folder / SAELENS_WEIGHTS).is_file() else _load_sparsify(folder, raw)
    )
    sae = SAE.from_weights(cfg, dtype=dtype, device=device, **w)
    sae.eval()
    return sae.requires_grad_(False)
