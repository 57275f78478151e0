"""Reading and writing SAE folders: SAELens (v6 and older flat configs), sparsify, and the export
folder (``weights.pt`` + ``config.json``). :func:`load_sae` recognises the format from the files.

=====================  ===========================================  =========================
format                 files                                        weights
=====================  ===========================================  =========================
``saelens``            ``cfg.json`` + ``sae_weights.safetensors``   W_enc, W_dec, b_enc, b_dec
                                                                    (+ threshold / log_threshold)
``saelens-legacy``     same files; flat config (``hook_point``,     same
                       ``activation_fn_str``, ``hook_layer``)
``sparsify``           ``cfg.json`` + ``sae.safetensors``           encoder.weight [d_sae, d_in],
                                                                    encoder.bias, W_dec, b_dec
``export``             ``weights.pt`` + ``config.json``             W_enc, W_dec, b_enc, b_dec
                       (+ ``history.json``)                         (+ threshold)
=====================  ===========================================  =========================

Gemma Scope, dictionary_learning, Llama Scope and transcoder folders have modules of their own
(``formats_gemmascope``, ``formats_dictlearning``, ``formats_llamascope``, ``formats_transcoder``);
every format is an entry of the :data:`FORMATS` registry, those four checked first.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from interplab.common.atomic import atomic_path, write_json
from interplab.common.data import read_json
from interplab.common.errors import InterplabError
from interplab.sae import formats_dictlearning, formats_gemmascope, formats_llamascope, formats_transcoder
from interplab.sae.model import GATED_TENSORS, SAE, SAEConfig

log = logging.getLogger(__name__)

SAELENS_CFG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
SPARSIFY_WEIGHTS = "sae.safetensors"
EXPORT_WEIGHTS = "weights.pt"
EXPORT_CFG = "config.json"
HISTORY = "history.json"

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}

_ARCH_ALIASES = {
    "standard": "standard",
    "relu": "standard",
    "vanilla": "standard",
    "l1": "standard",
    "topk": "topk",
    "top_k": "topk",
    "top-k": "topk",
    "jumprelu": "jumprelu",
    "jump_relu": "jumprelu",
    "batchtopk": "batchtopk",
    "batch_topk": "batchtopk",
    "batch-topk": "batchtopk",
    "matryoshka_batchtopk": "batchtopk",
    "gated": "gated",
}


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A torch dtype from a dtype or a name such as ``float32`` / ``bf16``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).removeprefix("torch.").lower()
    if name not in DTYPES:
        raise InterplabError(f"unknown dtype {dtype!r}; expected one of: {', '.join(DTYPES)}")
    return DTYPES[name]


def _read_json(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise InterplabError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise InterplabError(f"{path}: not a readable safetensors file ({exc})") from exc


def _architecture(value: Any, path: Path, key: str) -> str:
    arch = _ARCH_ALIASES.get(str(value).lower().replace(" ", ""))
    if arch is None:
        raise InterplabError(
            f"{path}: unsupported SAE architecture {key}={value!r}; supported: standard (relu), topk, "
            "jumprelu, gated, batchtopk (exported as jumprelu)"
        )
    return arch


def _int(cfg: dict[str, Any], key: str, path: Path) -> int:
    value = cfg.get(key)
    if value is None:
        raise InterplabError(f"{path}: config key {key!r} is missing")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise InterplabError(f"{path}: config key {key!r} must be an integer, got {value!r}") from exc


def layer_from_hook_name(hook_name: str | None) -> int | None:
    """The layer index in ``blocks.L.…`` / ``layers.L…`` / ``model.layers.L…`` names."""
    if not hook_name:
        return None
    m = re.search(r"(?:blocks|layers|h|layer)\.(\d+)", hook_name)
    return int(m.group(1)) if m else None


def _full_hook_name(hook_name: str | None, layer: int | None) -> str | None:
    """``hook_resid_post`` + layer 3 → ``blocks.3.hook_resid_post``; full names pass through."""
    if not hook_name:
        return None
    if not hook_name.startswith("blocks.") and hook_name.startswith("hook_") and layer is not None:
        return f"blocks.{layer}.{hook_name}"
    return hook_name


def _sparsify_hook_name(folder_name: str) -> tuple[str | None, int | None]:
    """sparsify names folders after the module hooked: ``layers.6`` (block output),
    ``layers.6.mlp`` or ``layers.6.self_attn`` / ``.attn`` / ``.attention``."""
    m = re.fullmatch(
        r"(?:model\.|transformer\.|gpt_neox\.)?(?:layers|h|layer)\.(\d+)(?:\.(\w+))?", folder_name
    )
    if not m:
        return None, None
    layer = int(m.group(1))
    sub = m.group(2)
    kind = {
        None: "hook_resid_post",
        "mlp": "hook_mlp_out",
        "self_attn": "hook_attn_out",
        "attn": "hook_attn_out",
        "attention": "hook_attn_out",
    }.get(sub)
    return (f"blocks.{layer}.{kind}" if kind else folder_name), layer


def _normalize_mode(value: Any) -> str:
    if value is None or value is False:
        return "none"
    if value is True:
        return "expected_average_only_in"
    return str(value)


def _finish(
    cfg: SAEConfig,
    tensors: dict[str, torch.Tensor | None],
    path: Path,
    dtype: torch.dtype,
    device: Any,
    scaling_factor: float | None = None,
) -> SAE:
    """Fold legacy scale factors, turn BatchTopK into JumpReLU, and build the SAE in float32 first."""
    w = {k: (None if v is None else v.to(torch.float32)) for k, v in tensors.items()}
    if w.get("threshold") is None and w.get("log_threshold") is not None:
        w["threshold"] = torch.exp(w["log_threshold"])
    if cfg.normalize_activations == "expected_average_only_in":
        if scaling_factor is not None:
            # x·s fed to the SAE: fold s into the encoder and decoder so inputs are raw activations
            w["W_enc"] = w["W_enc"] * scaling_factor
            w["W_dec"] = w["W_dec"] / scaling_factor
            if w.get("b_dec") is not None:
                w["b_dec"] = w["b_dec"] / scaling_factor
        else:
            log.warning(
                "%s: normalize_activations=expected_average_only_in but no scaling factor stored; "
                "using raw activations",
                path,
            )
        cfg.normalize_activations = "none"
    finetune = w.get("scaling_factor")
    if finetune is not None and finetune.shape == (cfg.d_sae,) and not torch.all(finetune == 1):
        w["W_dec"] = w["W_dec"] * finetune[:, None]
    if cfg.architecture == "batchtopk":  # type: ignore[comparison-overlap]
        if w.get("threshold") is None:
            raise InterplabError(
                f"{path}: BatchTopK SAE without a 'threshold' (export it as JumpReLU, or set a threshold)"
            )
        cfg.architecture = "jumprelu"
    for name in ("W_enc", "W_dec"):
        if w.get(name) is None:
            raise InterplabError(f"{path}: weights have no {name!r} tensor")
    sae = SAE.from_weights(
        cfg,
        W_enc=w["W_enc"],
        W_dec=w["W_dec"],
        b_enc=None if cfg.architecture == "gated" else w.get("b_enc"),
        b_dec=w.get("b_dec"),
        threshold=w.get("threshold"),
        dtype=dtype,
        device=device,
        **({n: w.get(n) for n in GATED_TENSORS} if cfg.architecture == "gated" else {}),
    )
    sae.eval()
    sae.requires_grad_(False)  # loaded SAEs are for inference
    return sae


def _threshold_tensor(value: Any, d_sae: int) -> torch.Tensor | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return torch.full((d_sae,), float(value))
    return torch.as_tensor(value, dtype=torch.float32)


def _hook_layer(given: Any, hook_name: str | None) -> int | None:
    """The config's layer, else the one in the hook name."""
    layer = layer_from_hook_name(hook_name) if given is None else given
    return None if layer is None else int(layer)


def _make_cfg(raw: dict[str, Any], arch: str, k: Any, **kwargs: Any) -> SAEConfig:
    """SAEConfig with the fields SAELens-style configs (``raw``) share: ``k`` (TopK only),
    ``apply_b_dec_to_input`` and ``normalize_activations``; it tolerates the intermediate
    ``batchtopk`` architecture until :func:`_finish`."""
    final = "jumprelu" if arch == "batchtopk" else arch
    cfg = SAEConfig(
        architecture=final,
        k=int(k) if k is not None and arch == "topk" else None,
        apply_b_dec_to_input=bool(raw.get("apply_b_dec_to_input", True)),
        normalize_activations=_normalize_mode(raw.get("normalize_activations", "none")),
        **kwargs,
    )
    if arch == "batchtopk":
        cfg.architecture = "batchtopk"  # resolved to jumprelu in _finish
    return cfg


def fold_decoder_norm(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """``W_enc``, ``b_enc``, ``W_dec`` with the decoder row norms ``n_i = ‖W_dec[i]‖`` folded in.

    An SAE with ``rescale_acts_by_decoder_norm`` computes ``pre·n`` before its activation function and
    decodes ``(f / n) W_dec``; ``W_enc·n``, ``b_enc·n`` and ``W_dec / n`` give the same features and
    reconstruction from the plain formulas (SAELens's own fold; thresholds are already in the units
    of ``pre·n``)."""
    missing = [k for k in ("W_enc", "b_enc", "W_dec") if k not in tensors]
    if missing:
        raise InterplabError(f"{path}: rescale_acts_by_decoder_norm needs {', '.join(missing)}")
    W_dec = tensors["W_dec"].to(torch.float32)
    norms = W_dec.norm(dim=-1).clamp_min(1e-8)
    return {
        "W_enc": tensors["W_enc"].to(torch.float32) * norms[None, :],
        "b_enc": tensors["b_enc"].to(torch.float32) * norms,
        "W_dec": W_dec / norms[:, None],
    }


def _load_saelens(folder: Path, dtype: torch.dtype, device: Any) -> SAE:
    cfg_path = folder / SAELENS_CFG
    raw = _read_json(cfg_path)
    meta = raw.get("metadata") or raw.get("meta") or {}
    if not isinstance(meta, dict):
        meta = {}
    legacy = "hook_point" in raw or "activation_fn_str" in raw or ("hook_name" in raw and not meta)
    fn_kwargs = raw.get("activation_fn_kwargs") or {}
    if "architecture" in raw:
        arch = _architecture(raw["architecture"], cfg_path, "architecture")
    else:
        fn = str(raw.get("activation_fn_str", "relu")).lower()
        arch = "topk" if fn == "topk" else _architecture(fn, cfg_path, "activation_fn_str")
    if arch == "standard" and str(raw.get("activation_fn_str", "relu")).lower() == "topk":
        arch = "topk"
    k = raw.get("k", fn_kwargs.get("k") if isinstance(fn_kwargs, dict) else None)
    hook_name = meta.get("hook_name") or raw.get("hook_name") or raw.get("hook_point")
    hook_layer = _hook_layer(
        meta.get("hook_layer", raw.get("hook_layer", raw.get("hook_point_layer"))), hook_name
    )
    cfg = _make_cfg(
        raw,
        arch,
        k,
        d_in=_int(raw, "d_in", cfg_path),
        d_sae=_int(raw, "d_sae", cfg_path),
        hook_name=hook_name,
        hook_layer=hook_layer,
        model_name=meta.get("model_name") or raw.get("model_name"),
        source_format="saelens-legacy" if legacy else "saelens",
    )
    tensors = _read_safetensors(folder / SAELENS_WEIGHTS)
    if raw.get("rescale_acts_by_decoder_norm"):
        tensors.update(fold_decoder_norm(tensors, folder / SAELENS_WEIGHTS))
    scaling = raw.get("norm_scaling_factor", raw.get("scaling_factor"))
    if arch == "batchtopk" and "threshold" not in tensors:
        tensors["threshold"] = _threshold_tensor(raw.get("threshold"), cfg.d_sae)  # type: ignore[assignment]
    return _finish(cfg, dict(tensors), folder, dtype, device, scaling)


def _load_sparsify(folder: Path, dtype: torch.dtype, device: Any) -> SAE:
    cfg_path = folder / SAELENS_CFG
    raw = _read_json(cfg_path)
    if raw.get("transcode"):
        raise InterplabError(f"{cfg_path}: transcode=true is a transcoder, not an autoencoder; not supported")
    if raw.get("skip_connection"):
        raise InterplabError(f"{cfg_path}: skip_connection=true (W_skip) is not supported")
    activation = str(raw.get("activation", "topk")).lower()
    if activation != "topk":
        raise InterplabError(f"{cfg_path}: sparsify activation {activation!r} not supported; expected 'topk'")
    tensors = _read_safetensors(folder / SPARSIFY_WEIGHTS)
    enc = tensors.get("encoder.weight")
    if enc is None:
        raise InterplabError(f"{folder / SPARSIFY_WEIGHTS}: no 'encoder.weight' tensor")
    d_sae, d_in = enc.shape
    if "d_in" in raw and int(raw["d_in"]) != d_in:
        raise InterplabError(f"{cfg_path}: d_in={raw['d_in']} but encoder.weight has {d_in} columns")
    hook_name, layer = _sparsify_hook_name(folder.name)
    cfg = SAEConfig(
        d_in=int(d_in),
        d_sae=int(d_sae),
        architecture="topk",
        k=_int(raw, "k", cfg_path),
        apply_b_dec_to_input=True,
        hook_name=hook_name,
        hook_layer=layer,
        source_format="sparsify",
    )
    w = {
        "W_enc": enc.T,
        "b_enc": tensors.get("encoder.bias"),
        "W_dec": tensors.get("W_dec"),
        "b_dec": tensors.get("b_dec"),
    }
    return _finish(cfg, w, folder, dtype, device)


def _unwrap_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "sae_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise InterplabError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            out[str(key)] = value
    for key, value in list(out.items()):  # "sae.W_enc" → "W_enc"
        out.setdefault(key.split(".")[-1], value)
    return out


def _orient(t: torch.Tensor | None, rows: int, cols: int, name: str, path: Path) -> torch.Tensor | None:
    """Accept a weight stored transposed (``nn.Linear`` layout) when its shape says so."""
    if t is None or tuple(t.shape) == (rows, cols):
        return t
    if tuple(t.shape) == (cols, rows):
        return t.T
    raise InterplabError(f"{path}: {name} has shape {list(t.shape)}, expected {[rows, cols]}")


def _load_export(folder: Path, dtype: torch.dtype, device: Any) -> SAE:
    cfg_path = folder / EXPORT_CFG
    raw = _read_json(cfg_path)
    wpath = folder / EXPORT_WEIGHTS
    try:
        obj = torch.load(wpath, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InterplabError(f"{wpath}: cannot load with torch.load(weights_only=True) ({exc})") from exc
    tensors = _unwrap_state(obj, wpath)
    if "W_enc" not in tensors and "encoder.weight" in tensors:
        tensors["W_enc"] = tensors["encoder.weight"].T
    if "b_enc" not in tensors and "encoder.bias" in tensors:
        tensors["b_enc"] = tensors["encoder.bias"]
    W_dec = tensors.get("W_dec")
    d_in = raw.get("d_in", raw.get("d_model", raw.get("act_size")))
    d_sae = raw.get("d_sae", raw.get("dict_size", raw.get("num_latents")))
    if (d_in is None or d_sae is None) and W_dec is not None:
        d_sae, d_in = W_dec.shape if d_sae is None or d_in is None else (d_sae, d_in)
    if d_in is None or d_sae is None:
        raise InterplabError(f"{cfg_path}: config needs 'd_in' and 'd_sae'")
    d_in, d_sae = int(d_in), int(d_sae)
    type_key = next(
        (k for k in ("architecture", "sae_type", "type", "activation", "activation_fn") if k in raw), None
    )
    k = raw.get("k", raw.get("topk", raw.get("top_k")))
    if type_key is not None:
        arch = _architecture(raw[type_key], cfg_path, type_key)
    else:
        arch = "topk" if k is not None else ("jumprelu" if "threshold" in tensors else "standard")
    hook_name = raw.get("hook_name") or raw.get("hook_point")
    hook_layer = _hook_layer(raw.get("hook_layer", raw.get("layer")), hook_name)
    cfg = _make_cfg(
        raw,
        arch,
        k,
        d_in=d_in,
        d_sae=d_sae,
        hook_name=_full_hook_name(hook_name, hook_layer),
        hook_layer=hook_layer,
        model_name=raw.get("model_name") or raw.get("model"),
        source_format="export",
    )
    w: dict[str, torch.Tensor | None] = {
        "W_enc": _orient(tensors.get("W_enc"), d_in, d_sae, "W_enc", wpath),
        "W_dec": _orient(W_dec, d_sae, d_in, "W_dec", wpath),
        "b_enc": tensors.get("b_enc"),
        "b_dec": tensors.get("b_dec"),
        "threshold": tensors.get("threshold"),
        "log_threshold": tensors.get("log_threshold"),
    }
    if arch == "batchtopk" and w["threshold"] is None:
        w["threshold"] = _threshold_tensor(raw.get("threshold"), d_sae)
    return _finish(cfg, w, folder, dtype, device, raw.get("norm_scaling_factor"))


@dataclasses.dataclass(frozen=True)
class FormatEntry:
    """One SAE folder format: ``detect(folder)`` says whether the folder holds it, ``load(folder,
    dtype, device)`` reads it, ``files`` names the expected files for error messages."""

    detect: Callable[[Path], bool]
    load: Callable[[Path, torch.dtype, Any], SAE]
    files: str


def _has(*names: str) -> Callable[[Path], bool]:
    def detect(folder: Path) -> bool:
        return all((folder / n).is_file() for n in names)

    return detect


# checked in order; a new format is one more entry (detector and loader may live in their own module).
# The formats with a module of their own come first: a transcoder folder is also a SAELens / sparsify
# folder, so it must be recognised before those.
FORMATS: dict[str, FormatEntry] = {
    "transcoder": FormatEntry(
        formats_transcoder.detect,
        formats_transcoder.load,
        "",  # SAELens / sparsify files with a transcoder config: listed with those
    ),
    "gemmascope": FormatEntry(formats_gemmascope.detect, formats_gemmascope.load, "params.npz (Gemma Scope)"),
    "dictionary_learning": FormatEntry(
        formats_dictlearning.detect,
        formats_dictlearning.load,
        "ae.pt + config.json (dictionary_learning)",
    ),
    "llamascope": FormatEntry(
        formats_llamascope.detect,
        formats_llamascope.load,
        "hyperparams.json + checkpoints/final.safetensors (Llama Scope)",
    ),
    "saelens": FormatEntry(
        _has(SAELENS_CFG, SAELENS_WEIGHTS), _load_saelens, f"{SAELENS_CFG} + {SAELENS_WEIGHTS} (SAELens)"
    ),
    "sparsify": FormatEntry(
        _has(SAELENS_CFG, SPARSIFY_WEIGHTS),
        _load_sparsify,
        f"{SAELENS_CFG} + {SPARSIFY_WEIGHTS} (sparsify hook-point folder)",
    ),
    "export": FormatEntry(
        _has(EXPORT_WEIGHTS, EXPORT_CFG),
        _load_export,
        f"{EXPORT_WEIGHTS} + {EXPORT_CFG} [+ {HISTORY}] (export folder)",
    ),
}


def expected_file_sets() -> tuple[str, ...]:
    """The file set of every registered format (for error messages)."""
    return tuple(e.files for e in FORMATS.values() if e.files)


def detect_format(folder: Path) -> str:
    """Which registered format a folder holds (first match in :data:`FORMATS`) or an error naming the
    files found and the file sets expected."""
    if folder.is_dir():
        for name, entry in FORMATS.items():
            if entry.detect(folder):
                return name
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    subdirs = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and ((p / SPARSIFY_WEIGHTS).exists() or (p / SAELENS_WEIGHTS).exists())
    )
    hint = f"; SAE sub-folders here (pass one of them): {', '.join(subdirs)}" if subdirs else ""
    listed = sorted(names)
    found = ", ".join(listed[:20]) + (f", … ({len(listed) - 20} more)" if len(listed) > 20 else "")
    found = found or "nothing"
    raise InterplabError(
        f"{folder}: not a recognised SAE folder (found: {found}); expected one of: "
        f"{'; '.join(expected_file_sets())}{hint}"
    )


def load_sae(path: str | Path, dtype: torch.dtype | str = torch.float32, device: Any = "cpu") -> SAE:
    """Load an SAE folder in any supported format (fp32 unless ``dtype`` says otherwise)."""
    folder = Path(path).expanduser()
    if folder.is_file():
        folder = folder.parent
    if not folder.exists():
        raise InterplabError(
            f"{folder}: SAE folder not found (expected a folder with {' or '.join(expected_file_sets())})"
        )
    dtype = resolve_dtype(dtype)
    fmt = detect_format(folder)
    sae = FORMATS[fmt].load(folder, dtype, device)
    log.debug("loaded %s SAE from %s: %s", sae.cfg.source_format, folder, sae)
    return sae


def load_history(path: str | Path) -> list[dict[str, Any]] | None:
    """Training history (``history.json``: a list of per-step dicts, or ``{"history": [...]}``) or None."""
    p = Path(path)
    p = p / HISTORY if p.is_dir() else p
    if not p.exists():
        return None
    data = read_json(p)
    if isinstance(data, dict):
        for key in ("history", "steps", "log"):
            if isinstance(data.get(key), list):
                return data[key]
        # dict of metric -> list
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if lists:
            n = max(len(v) for v in lists.values())
            return [{k: (v[i] if i < len(v) else None) for k, v in lists.items()} for i in range(n)]
        return None
    return data if isinstance(data, list) else None


SAELENS_FORMAT_VERSION = "6.0.0"  # the cfg.json schema written; SAELens < 6 configs are flat


def saelens_config_dict(sae: SAE) -> dict[str, Any]:
    """The SAELens v6 ``cfg.json`` of ``sae``. ``metadata.sae_lens_version`` tells SAELens (≥ 6) that
    the config is in its v6 layout; without it SAELens reads it as a pre-6 flat config and drops
    ``metadata.hook_name`` / ``model_name``."""
    c = sae.cfg
    cfg: dict[str, Any] = {
        "architecture": c.architecture,
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": str(sae.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": bool(c.apply_b_dec_to_input),
        "normalize_activations": c.normalize_activations,
        "reshape_activations": "none",
        "metadata": {
            "model_name": c.model_name,
            "hook_name": c.hook_name,
            "hook_layer": c.hook_layer,
            "hook_head_index": None,
            "context_size": c.extra.get("context_size"),
            "dataset_path": c.extra.get("dataset_path"),
            "prepend_bos": c.extra.get("prepend_bos"),
            "sae_lens_version": SAELENS_FORMAT_VERSION,
            "sae_lens_training_version": None,
            "trained_with": "interplab",
        },
    }
    if c.architecture == "topk":
        cfg["k"] = c.k
    if c.hook_name_out:  # a transcoder, in SAELens's transcoder layout
        archs = {
            "standard": "skip_transcoder" if c.skip_connection else "transcoder",
            "jumprelu": "jumprelu_transcoder",
        }
        if c.architecture not in archs or (c.skip_connection and c.architecture != "standard"):
            raise InterplabError(
                f"a {c.architecture} transcoder{' with W_skip' if c.skip_connection else ''} has no SAELens "
                "layout (SAELens has transcoder, skip_transcoder, jumprelu_transcoder)"
            )
        cfg["architecture"] = archs[c.architecture]
        cfg["d_out"] = c.out_width
        meta = cfg["metadata"]
        meta["hook_name"] = (c.hook_name or "").replace("hook_mlp_in", "ln2.hook_normalized") or None
        meta["hook_name_out"] = c.hook_name_out
    return cfg


def save_sae(sae: SAE, folder: str | Path, history: list[dict] | None = None) -> Path:
    """Write ``sae`` as a SAELens v6 folder (``cfg.json``, ``sae_weights.safetensors``) plus
    ``history.json`` when given. Each file is written atomically."""
    from safetensors.torch import save_file

    cfg = saelens_config_dict(sae)  # refuses what SAELens cannot hold before anything is written
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    names = (
        ("W_enc", "W_dec", "b_dec", *GATED_TENSORS)
        if sae.cfg.architecture == "gated"
        else ("W_enc", "W_dec", "b_enc", "b_dec")
    )
    names += ("W_skip",) if sae.cfg.skip_connection else ()
    tensors = {name: getattr(sae, name).detach().to("cpu").contiguous().clone() for name in names}
    if sae.cfg.architecture == "jumprelu":
        tensors["threshold"] = sae.threshold.detach().to("cpu").contiguous().clone()
    with atomic_path(out / SAELENS_WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    write_json(out / SAELENS_CFG, cfg)
    if history is not None:
        write_json(out / HISTORY, history)
    return out
