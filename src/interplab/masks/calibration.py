"""Calibration data for layer-wise pruning: token windows drawn (seeded) from a text source, the
held-out windows used for the model-level quality check, and the inputs (hidden states plus the
keyword arguments such as attention masks and position embeddings) that block 0 receives.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from interplab.common.data import BUILTIN_CORPORA, load_texts
from interplab.common.errors import InterplabError
from interplab.common.models import StopForward, forward_kwargs

log = logging.getLogger(__name__)

POOL_FACTOR = 2  # the built-in corpus is read until the calibration pool holds 2× the tokens drawn


@dataclasses.dataclass
class CalibrationSet:
    """Calibration windows [nsamples, seqlen] and disjoint held-out windows [n_eval, seqlen]."""

    calibration: torch.Tensor
    held_out: torch.Tensor
    tokens_available: int
    texts_used: int


def _token_stream(tokenizer: Any, texts: list[str]) -> list[int]:
    """All texts tokenised without special tokens, joined by the EOS/SEP token when there is one."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    sep = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    stream: list[int] = []
    for piece in ids:
        stream.extend(piece)
        if sep is not None:
            stream.append(sep)
    return stream


def _load_stream(tokenizer: Any, data: str | Path, needed: int) -> tuple[list[int], int]:
    """Token stream of ``data``; the built-in corpus is read only until ``needed`` tokens are there."""
    if str(data) not in BUILTIN_CORPORA:
        texts = load_texts(data)
        return _token_stream(tokenizer, texts), len(texts)
    max_texts = max(64, math.ceil(needed / 40))
    while True:
        texts = load_texts(str(data), max_texts=max_texts)
        stream = _token_stream(tokenizer, texts)
        if len(stream) >= needed or len(texts) < max_texts:
            return stream, len(texts)
        max_texts *= 2


def _frame(window: torch.Tensor, tokenizer: Any, encoder: bool) -> torch.Tensor:
    """Encoders see ``[CLS] … [SEP]`` as in training: the first and last token are replaced."""
    if encoder and tokenizer.cls_token_id is not None and tokenizer.sep_token_id is not None:
        window = window.clone()
        window[:, 0] = tokenizer.cls_token_id
        window[:, -1] = tokenizer.sep_token_id
    return window


def build_calibration(
    tokenizer: Any,
    data: str | Path,
    *,
    nsamples: int,
    seqlen: int,
    seed: int,
    n_eval: int,
    encoder: bool,
) -> CalibrationSet:
    """Draw ``nsamples`` windows of ``seqlen`` tokens at seeded random offsets from the first part of
    the token stream; the last ``n_eval·seqlen`` tokens are held out as consecutive windows."""
    held = n_eval * seqlen
    stream, n_texts = _load_stream(tokenizer, data, POOL_FACTOR * nsamples * seqlen + held)
    pool_len = len(stream) - held
    if pool_len < seqlen:
        raise InterplabError(
            f"{data}: only {len(stream)} tokens after tokenisation; need at least "
            f"{seqlen + held} (--seqlen {seqlen} plus {n_eval} held-out windows); give more text "
            "or lower --seqlen"
        )
    ids = torch.tensor(stream, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, pool_len - seqlen + 1, (nsamples,), generator=gen)
    calibration = ids[starts.unsqueeze(1) + torch.arange(seqlen).unsqueeze(0)]
    held_out = ids[pool_len : pool_len + held].reshape(n_eval, seqlen)
    log.info(
        "calibration: %d windows of %d tokens from %d tokens (%d texts)",
        nsamples,
        seqlen,
        len(stream),
        n_texts,
    )
    return CalibrationSet(
        calibration=_frame(calibration, tokenizer, encoder),
        held_out=_frame(held_out, tokenizer, encoder),
        tokens_available=len(stream),
        texts_used=n_texts,
    )


@dataclasses.dataclass
class BlockInput:
    """What a block receives for one batch: hidden states, other positional args and keyword args."""

    hidden: torch.Tensor
    args: tuple
    kwargs: dict[str, Any]
    hidden_as_kwarg: bool = False

    def call(self, block: nn.Module, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``block`` on these inputs (or on ``hidden`` in their place); return its hidden states."""
        h = self.hidden if hidden is None else hidden
        if self.hidden_as_kwarg:
            out = block(*self.args, **{**self.kwargs, "hidden_states": h})
        else:
            out = block(h, *self.args, **self.kwargs)
        return out[0] if isinstance(out, tuple | list) else out


def capture_block_inputs(
    model: nn.Module, first_block: nn.Module, input_ids: torch.Tensor, batch_size: int
) -> list[BlockInput]:
    """Run the model on ``input_ids`` in batches, stopping at ``first_block`` to record its inputs."""
    captured: list[BlockInput] = []

    def hook(_module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        kwargs = dict(kwargs)
        if args:
            captured.append(BlockInput(args[0].detach(), tuple(args[1:]), kwargs))
        else:
            hidden = kwargs.pop("hidden_states")
            captured.append(BlockInput(hidden.detach(), (), kwargs, hidden_as_kwarg=True))
        raise StopForward

    handle = first_block.register_forward_pre_hook(hook, with_kwargs=True)
    device = next(model.parameters()).device
    extra = forward_kwargs(model)
    try:
        with torch.no_grad():
            for batch in input_ids.split(batch_size):
                batch = batch.to(device)
                try:
                    model(input_ids=batch, attention_mask=torch.ones_like(batch), **extra)
                except StopForward:
                    continue
                raise InterplabError("the model never called its first transformer block")
    finally:
        handle.remove()
    return captured
