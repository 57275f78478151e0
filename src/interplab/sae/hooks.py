"""TransformerLens-style hook points on Hugging Face models, built from forward hooks on the model's
own modules.

=================  ==========================================================================
hook               module hooked (block ``L`` = ``find_blocks(model)[L]``)
=================  ==========================================================================
hook_resid_pre     input of block L (forward pre-hook) — equals ``hidden_states[L]``
hook_resid_post    output of block L — equals ``hidden_states[L + 1]`` (see note on the last layer)
hook_attn_out      output of the attention sub-module: ``self_attn`` (Llama/Qwen/Mistral), ``attn``
                   (GPT-2), ``attention`` (GPT-NeoX); BERT: ``attention.output.dense`` (the
                   projection added to the residual, before BERT's residual add + LayerNorm)
hook_mlp_out       output of ``mlp`` (Llama/Qwen/GPT-2/GPT-NeoX); BERT: ``output.dense`` (the MLP's
                   down projection, before the residual add + LayerNorm); OPT: ``fc2``
=================  ==========================================================================

``hook_mlp_in`` (for transcoders) is the *input* of the MLP module (forward pre-hook on ``mlp``;
OPT: ``fc1``; BERT: ``intermediate``), i.e. after the pre-MLP norm: TransformerLens's
``blocks.L.ln2.hook_normalized``, accepted as an alias. It is not one of :data:`HOOK_KINDS`.

Gemma-2 / Gemma-3 normalise each sub-layer's output before adding it to the residual stream
(``post_attention_layernorm``, ``post_feedforward_layernorm``); as in TransformerLens,
``hook_attn_out`` / ``hook_mlp_out`` are those norms' outputs, i.e. what is added to the residual.

Hugging Face applies the final norm (GPT-2 ``ln_f``, Llama ``norm``) to the *last* entry of
``output_hidden_states``; ``blocks.{n-1}.hook_resid_post`` is the block output before that norm,
as in TransformerLens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from interplab.common.errors import InterplabError
from interplab.common.models import LoadedModel, StopForward, find_blocks, forward_kwargs

if TYPE_CHECKING:
    from interplab.sae.model import SAE

log = logging.getLogger(__name__)

HOOK_KINDS = ("hook_resid_pre", "hook_resid_post", "hook_mlp_out", "hook_attn_out")
MLP_IN = "hook_mlp_in"  # transcoder inputs; TransformerLens: blocks.L.ln2.hook_normalized
_KIND_ALIASES = {"ln2.hook_normalized": MLP_IN}

_ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")
_MLP_NAMES = ("mlp", "feed_forward", "ffn", "fc2")  # OPT has no MLP module: fc2 is its output


@dataclasses.dataclass(frozen=True)
class HookPoint:
    """A hook point: block index, kind (one of :data:`HOOK_KINDS`) and the full name."""

    layer: int
    kind: str
    name: str  # f"blocks.{layer}.{kind}"


def unwrap_model(model: Any) -> nn.Module:
    return model.model if isinstance(model, LoadedModel) else model


def n_layers(model: Any) -> int:
    """Number of transformer blocks."""
    return len(find_blocks(unwrap_model(model))[1])


def valid_hook_names(model: Any) -> list[str]:
    """Every full hook name the model offers."""
    return [f"blocks.{layer}.{kind}" for layer in range(n_layers(model)) for kind in HOOK_KINDS]


def resolve_hook(model: Any, hook: str, layer: int | None = None) -> HookPoint:
    """Turn ``hook`` (``hook_resid_post`` with ``layer``, or ``blocks.L.hook_resid_post``) into a
    :class:`HookPoint`, checking the kind and the layer range."""
    n = n_layers(model)
    hook = str(hook).strip()
    m = re.fullmatch(r"blocks\.(-?\d+)\.([\w.]+)", hook)
    if m:
        full_layer, kind = int(m.group(1)), m.group(2)
        if layer is not None and int(layer) != full_layer:
            raise InterplabError(f"hook {hook!r} names layer {full_layer} but --layer is {layer}")
        layer = full_layer
    else:
        kind = hook
    kind = _KIND_ALIASES.get(kind, kind)
    if kind not in (*HOOK_KINDS, MLP_IN):
        raise InterplabError(
            f"unknown hook {hook!r}; expected one of: {', '.join(HOOK_KINDS)} "
            f"(with --layer 0..{n - 1}) or a full name such as blocks.0.hook_resid_post"
        )
    if layer is None:
        raise InterplabError(f"hook {hook!r} needs a layer: pass --layer 0..{n - 1} or blocks.L.{kind}")
    layer = int(layer)
    if not 0 <= layer < n:
        raise InterplabError(f"layer {layer} out of range: the model has {n} layers (valid: 0..{n - 1})")
    return HookPoint(layer=layer, kind=kind, name=f"blocks.{layer}.{kind}")


def hook_point_named(name: str) -> HookPoint:
    """The hook point of a full name already resolved on its model (e.g. stored in a database)."""
    m = re.fullmatch(r"blocks\.(\d+)\.([\w.]+)", str(name))
    if m is None:
        raise InterplabError(f"hook {name!r}: expected a full name such as blocks.0.hook_resid_post")
    return HookPoint(layer=int(m.group(1)), kind=m.group(2), name=str(name))


def _submodule(block: nn.Module, names: tuple[str, ...], what: str, block_name: str) -> nn.Module:
    for name in names:
        sub = getattr(block, name, None)
        if isinstance(sub, nn.Module):
            return sub
    children = ", ".join(n for n, _ in block.named_children())
    raise InterplabError(f"{block_name}: no {what} sub-module found (children: {children})")


def _is_bert_block(block: nn.Module) -> bool:
    attention = getattr(block, "attention", None)
    output = getattr(block, "output", None)
    return (
        attention is not None
        and isinstance(getattr(getattr(attention, "output", None), "dense", None), nn.Linear)
        and isinstance(getattr(output, "dense", None), nn.Linear)
    )


def hook_module(model: Any, hp: HookPoint) -> tuple[nn.Module, bool]:
    """The module whose output (or, for ``hook_resid_pre``, input) is the hook point; bool = pre-hook."""
    path, blocks = find_blocks(unwrap_model(model))
    block = blocks[hp.layer]
    block_name = f"{path}.{hp.layer}"
    if hp.kind == "hook_resid_pre":
        return block, True
    if hp.kind == "hook_resid_post":
        return block, False
    if hp.kind == MLP_IN:
        if _is_bert_block(block):
            return block.intermediate, True
        return _submodule(block, ("mlp", "feed_forward", "ffn", "fc1"), "MLP", block_name), True
    if _is_bert_block(block):
        return (block.attention.output.dense if hp.kind == "hook_attn_out" else block.output.dense), False
    if isinstance(getattr(block, "pre_feedforward_layernorm", None), nn.Module) and isinstance(
        getattr(block, "post_feedforward_layernorm", None), nn.Module
    ):  # Gemma-2/3 sandwich norms: the post-norm outputs are what is added to the residual
        post = "post_attention_layernorm" if hp.kind == "hook_attn_out" else "post_feedforward_layernorm"
        return getattr(block, post), False
    if hp.kind == "hook_attn_out":
        return _submodule(block, _ATTN_NAMES, "attention", block_name), False
    return _submodule(block, _MLP_NAMES, "MLP", block_name), False


def first_tensor(out: Any) -> Tensor:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, tuple | list) and out and isinstance(out[0], Tensor):
        return out[0]
    if hasattr(out, "last_hidden_state"):
        return out.last_hidden_state
    raise TypeError(f"cannot find the activation tensor in a module output of type {type(out).__name__}")


def _replace_first(out: Any, new: Tensor) -> Any:
    if isinstance(out, Tensor):
        return new
    if isinstance(out, tuple):
        return (new, *out[1:])
    if isinstance(out, list):
        return [new, *out[1:]]
    raise TypeError(f"cannot replace the activation in a module output of type {type(out).__name__}")


def _pre_input(args: tuple, kwargs: dict) -> Tensor:
    if args and isinstance(args[0], Tensor):
        return args[0]
    return kwargs["hidden_states"]


def run_forward(model: nn.Module, input_ids: Tensor, attention_mask: Tensor | None, **kwargs: Any) -> Any:
    dev = next(model.parameters()).device
    input_ids = input_ids.to(dev)
    if attention_mask is not None:
        attention_mask = attention_mask.to(dev)
    return model(input_ids=input_ids, attention_mask=attention_mask, **forward_kwargs(model), **kwargs)


@torch.no_grad()
def capture_activations(
    model: Any,
    hp: HookPoint,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    stop: bool = True,
) -> Tensor:
    """The activation at ``hp`` for a batch, ``[B, T, d]``. ``stop`` ends the forward pass right
    after the hooked module (nothing past the hook layer is computed)."""
    module = unwrap_model(model)
    target, pre = hook_module(module, hp)
    captured: dict[str, Tensor] = {}

    if pre:

        def pre_hook(_mod: nn.Module, args: tuple, kwargs: dict) -> None:
            captured["act"] = _pre_input(args, kwargs).detach()
            if stop:
                raise StopForward

        handle = target.register_forward_pre_hook(pre_hook, with_kwargs=True)
    else:

        def hook(_mod: nn.Module, _args: tuple, out: Any) -> None:
            captured["act"] = first_tensor(out).detach()
            if stop:
                raise StopForward

        handle = target.register_forward_hook(hook)
    try:
        run_forward(module, input_ids, attention_mask)
    except StopForward:
        pass
    finally:
        handle.remove()
    return unflatten_tokens(captured["act"], input_ids.shape)


def unflatten_tokens(act: Tensor, batch_shape: tuple[int, ...] | torch.Size) -> Tensor:
    """``[B·T, d]`` → ``[B, T, d]`` for modules that run on flattened tokens (OPT's ``fc2``)."""
    return act.reshape(*batch_shape[:2], -1) if act.dim() == 2 else act


@contextlib.contextmanager
def replace_activations(model: Any, hp: HookPoint, fn: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, every forward pass has the activation at ``hp`` replaced by ``fn(act)``."""
    module = unwrap_model(model)
    target, pre = hook_module(module, hp)
    if pre:

        def pre_hook(_mod: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            if args and isinstance(args[0], Tensor):
                new = fn(args[0])
                return (new.to(args[0].dtype), *args[1:]), kwargs
            act = kwargs["hidden_states"]
            kwargs = {**kwargs, "hidden_states": fn(act).to(act.dtype)}
            return args, kwargs

        handle = target.register_forward_pre_hook(pre_hook, with_kwargs=True)
    else:
        block = find_blocks(module)[1][hp.layer]
        shape: dict[str, torch.Size] = {}

        def block_pre_hook(_mod: nn.Module, args: tuple, kwargs: dict) -> None:
            shape["bt"] = _pre_input(args, kwargs).shape[:2]

        def hook(_mod: nn.Module, _args: tuple, out: Any) -> Any:
            act = first_tensor(out)
            new = fn(unflatten_tokens(act, shape.get("bt", act.shape))).reshape(act.shape)
            return _replace_first(out, new.to(act.dtype))

        handle = target.register_forward_hook(hook)
        block_handle = block.register_forward_pre_hook(block_pre_hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
        if not pre:
            block_handle.remove()


def hook_width(model: Any, hp: HookPoint) -> int:
    """Width of the activation at ``hp`` (from a one-token forward that stops at the hook)."""
    module = unwrap_model(model)
    dev = next(module.parameters()).device
    ids = torch.zeros((1, 1), dtype=torch.long, device=dev)
    act = capture_activations(module, hp, ids, torch.ones_like(ids), stop=True)
    return int(act.shape[-1])


def check_sae_width(model: Any, hp: HookPoint, d_in: int) -> int:
    """Raise when the SAE's ``d_in`` differs from the width of the hooked activation."""
    width = hook_width(model, hp)
    if width != d_in:
        raise InterplabError(
            f"SAE d_in={d_in} does not match the width {width} of the model's activation at {hp.name}"
        )
    return width


def resolve_sae_hook(loaded: LoadedModel, sae: SAE, hook: str | None, layer: int | None) -> HookPoint:
    """The hook point from the flags, falling back to the SAE's own ``hook_name`` / ``hook_layer``;
    checks that the SAE's d_in equals the hooked width."""
    if hook is None:
        hook = sae.cfg.hook_name
        if hook is None:
            why = sae.cfg.extra.get("hook_source")
            raise InterplabError(
                "no --hook given and the SAE config names no hook_name"
                + (f" ({why}); pass --hook, e.g. blocks.L.hook_resid_post" if why else "")
            )
        if layer is not None and hook.startswith("blocks."):
            hook = hook.split(".", 2)[2]
    if layer is None and not str(hook).startswith("blocks."):
        layer = sae.cfg.hook_layer
    hp = resolve_hook(loaded, hook, layer)
    if sae.cfg.hook_name and sae.cfg.hook_name.startswith("blocks.") and sae.cfg.hook_name != hp.name:
        log.warning("SAE was trained on %s but is applied at %s", sae.cfg.hook_name, hp.name)
    check_sae_width(loaded, hp, sae.d_in)
    return hp
