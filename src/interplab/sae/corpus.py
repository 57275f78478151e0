"""Corpus → fixed-size token windows that remember where every token came from.

Texts are tokenised in batches with the (fast) tokenizer and without special tokens; each text's
token sequence is cut into consecutive chunks of ``context_size − n_special`` tokens, and every chunk
gets the model's own special tokens (``[CLS] … [SEP]`` for BERT, ``<bos>`` for Llama, none for
GPT-2) around it, so each window holds at most ``context_size`` tokens. Windows are right-padded.

Every token keeps ``(text_idx, position)`` — ``position`` is its index in its text's token
sequence. Special tokens and padding have ``position = -1``: they are fed to the model but never
counted in statistics (``token_mask``). Empty texts (nothing after tokenisation) are skipped and
counted.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interplab.common.errors import InterplabError

log = logging.getLogger(__name__)

TOKENIZE_CHUNK = 512  # texts per tokenizer call
DOCS_DEFAULT_MAX_TOKENS = 32_768  # default token budget when the built-in ``docs`` corpus is used


@dataclasses.dataclass
class TokenWindows:
    """All windows of a corpus, as padded tensors."""

    input_ids: Tensor  # [N, T] long, right-padded with the pad id
    attention_mask: Tensor  # [N, T]
    text_idx: Tensor  # [N] long: which text each window came from
    start_pos: Tensor  # [N] long: position of the window's first text token in its text
    n_texts: int
    n_empty_texts: int
    n_tokens: int  # text tokens (no padding, no special tokens)
    positions: Tensor | None = None  # [N, T] long: position in the text, -1 for special/padding
    n_special_tokens: int = 0  # special tokens added per window (prefix + suffix)
    context_size: int = 128
    truncated: bool = False  # stopped at max_tokens

    @property
    def n_windows(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def token_mask(self) -> Tensor:
        """``[N, T]`` bool: real text tokens (no padding, no special tokens)."""
        assert self.positions is not None
        return self.positions >= 0

    def summary(self) -> dict[str, Any]:
        """Counts for reports."""
        return {
            "n_texts": self.n_texts,
            "n_empty_texts": self.n_empty_texts,
            "n_windows": self.n_windows,
            "n_tokens": self.n_tokens,
            "context_size": self.context_size,
            "special_tokens_per_window": self.n_special_tokens,
            "truncated_at_max_tokens": self.truncated,
        }


@dataclasses.dataclass
class Batch:
    """A batch of windows; ``positions`` is ``-1`` for special tokens and padding."""

    input_ids: Tensor  # [B, T]
    attention_mask: Tensor  # [B, T]
    text_idx: Tensor  # [B, T] long (the window's text for every token)
    positions: Tensor  # [B, T] long
    window_idx: Tensor | None = None  # [B] long: index of each window in the TokenWindows

    @property
    def token_mask(self) -> Tensor:
        """``[B, T]`` bool: tokens that count (not padding, not special)."""
        return self.positions >= 0

    @property
    def n_tokens(self) -> int:
        return int(self.token_mask.sum())


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after a sequence (found by encoding one
    word with and without special tokens)."""
    probe = "hello"
    try:
        core = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
        full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    except Exception:  # a tokenizer that cannot tell adds nothing
        return [], []
    n = len(core)
    for i in range(len(full) - n + 1):
        if full[i : i + n] == core:
            return [int(t) for t in full[:i]], [int(t) for t in full[i + n :]]
    return [], []


def _pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def tokenize_corpus(
    tokenizer: Any,
    texts: Iterable[str],
    context_size: int = 128,
    max_tokens: int | None = None,
    add_special_tokens: bool = True,
) -> TokenWindows:
    """Tokenise ``texts`` into windows of at most ``context_size`` tokens (see module docstring).

    ``texts`` may be a lazy iterable: it is consumed in chunks only until ``max_tokens`` text tokens
    are collected.
    """
    if int(context_size) < 1:
        raise InterplabError(f"context size must be ≥ 1, got {context_size}")
    if max_tokens is not None and int(max_tokens) < 1:
        raise InterplabError(f"max tokens must be ≥ 1, got {max_tokens}")
    prefix, suffix = special_tokens(tokenizer) if add_special_tokens else ([], [])
    n_special = len(prefix) + len(suffix)
    chunk = int(context_size) - n_special
    if chunk < 1:
        raise InterplabError(
            f"context size {context_size} leaves no room for text after {n_special} special tokens"
        )
    lengths: list[np.ndarray] = []
    flats: list[np.ndarray] = []
    n_texts = 0
    n_tok = 0
    truncated = False
    iterator = iter(texts)
    while True:
        block = list(itertools.islice(iterator, TOKENIZE_CHUNK))
        if not block:
            break
        for i, t in enumerate(block):
            if not isinstance(t, str):
                raise InterplabError(f"text {n_texts + i} is {type(t).__name__}, expected a string")
        enc = tokenizer(block, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        lens = np.fromiter((len(e) for e in enc), dtype=np.int64, count=len(enc))
        flat = np.fromiter(itertools.chain.from_iterable(enc), dtype=np.int64, count=int(lens.sum()))
        n_texts += len(block)
        lengths.append(lens)
        flats.append(flat)
        n_tok += int(lens.sum())
        if max_tokens is not None and n_tok >= max_tokens:
            truncated = n_tok > max_tokens or next(iterator, None) is not None
            break
    if n_texts == 0:
        raise InterplabError("empty dataset: no texts to tokenise")
    lens = np.concatenate(lengths)
    flat = np.concatenate(flats)
    if max_tokens is not None and flat.size > max_tokens:
        # cut the token stream at max_tokens: trailing texts shortened or dropped
        ends = np.cumsum(lens)
        starts = ends - lens
        lens = np.clip(max_tokens - starts, 0, lens)
        flat = flat[:max_tokens]
        last = int(np.searchsorted(ends, max_tokens, side="left"))
        lens = lens[: last + 1]
    n_used_texts = int(lens.size)
    n_empty = int((lens == 0).sum())
    if n_empty == n_used_texts:
        raise InterplabError(f"dataset has only empty texts ({n_texts} texts, none with any token)")
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]])
    n_win = -(-lens // chunk)  # ceil; 0 for empty texts
    win_text = np.repeat(np.arange(n_used_texts), n_win)
    first_win = np.concatenate([[0], np.cumsum(n_win)[:-1]])
    win_rank = np.arange(win_text.size) - np.repeat(first_win, n_win)
    win_start = win_rank * chunk
    win_len = np.minimum(lens[win_text] - win_start, chunk)
    T = int(win_len.max()) + n_special
    cols = np.arange(chunk)
    text_valid = cols[None, :] < win_len[:, None]
    gather = offsets[win_text][:, None] + win_start[:, None] + cols[None, :]
    text_ids = np.where(text_valid, flat[np.minimum(gather, flat.size - 1)], -1)
    text_pos = np.where(text_valid, win_start[:, None] + cols[None, :], -1)
    N = win_text.size
    pad = _pad_id(tokenizer)
    ids = np.full((N, T), pad, dtype=np.int64)
    pos = np.full((N, T), -1, dtype=np.int64)
    mask = np.zeros((N, T), dtype=np.int64)
    if prefix:
        ids[:, : len(prefix)] = prefix
    body = slice(len(prefix), len(prefix) + min(chunk, T - n_special))
    width = body.stop - body.start
    ids[:, body] = np.where(text_valid[:, :width], text_ids[:, :width], pad)
    pos[:, body] = text_pos[:, :width]
    if suffix:
        # suffix right after the last text token of each window
        cols_s = len(prefix) + win_len[:, None] + np.arange(len(suffix))[None, :]
        ids[np.arange(N)[:, None], cols_s] = suffix
    mask[np.arange(T)[None, :] < (win_len + n_special)[:, None]] = 1
    return TokenWindows(
        input_ids=torch.from_numpy(ids),
        attention_mask=torch.from_numpy(mask),
        text_idx=torch.from_numpy(win_text.astype(np.int64)),
        start_pos=torch.from_numpy(win_start.astype(np.int64)),
        n_texts=n_texts if not truncated else n_used_texts,
        n_empty_texts=n_empty,
        n_tokens=int(lens.sum()),
        positions=torch.from_numpy(pos),
        n_special_tokens=n_special,
        context_size=int(context_size),
        truncated=truncated,
    )


def iter_batches(windows: TokenWindows, batch_size: int) -> Iterator[Batch]:
    """Consecutive batches of ``batch_size`` windows, trimmed to their longest window."""
    if int(batch_size) <= 0:
        raise InterplabError(f"batch size must be ≥ 1, got {batch_size}")
    N = windows.n_windows
    lengths = windows.attention_mask.sum(dim=1)
    for start in range(0, N, int(batch_size)):
        stop = min(N, start + int(batch_size))
        T = int(lengths[start:stop].max())
        positions = windows.positions[start:stop, :T] if windows.positions is not None else None
        if positions is None:  # windows built by hand: every non-padding token counts
            mask = windows.attention_mask[start:stop, :T]
            positions = torch.where(
                mask.bool(),
                windows.start_pos[start:stop, None] + torch.arange(T)[None, :],
                torch.full_like(mask, -1),
            )
        yield Batch(
            input_ids=windows.input_ids[start:stop, :T],
            attention_mask=windows.attention_mask[start:stop, :T],
            text_idx=windows.text_idx[start:stop, None].expand(-1, T).clone(),
            positions=positions,
            window_idx=torch.arange(start, stop),
        )


def n_batches(windows: TokenWindows, batch_size: int) -> int:
    """How many batches :func:`iter_batches` yields."""
    return -(-windows.n_windows // int(batch_size))


def check_context_size(model: Any, context_size: int) -> None:
    """Refuse windows longer than the model's position table (``max_position_embeddings`` /
    ``n_positions``)."""
    config = getattr(getattr(model, "model", model), "config", None)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if limit is not None and int(context_size) > int(limit):
        raise InterplabError(
            f"--context-size {context_size} exceeds the model's maximum of {limit} positions"
        )


def corpus_texts(data: str, max_tokens: int | None) -> tuple[Iterable[str], int | None]:
    """Texts for ``data`` (``docs`` streams lazily) and the effective token budget."""
    from interplab.common.data import BUILTIN_CORPORA, iter_docs_corpus, load_texts

    if str(data) in BUILTIN_CORPORA:
        return iter_docs_corpus(), (DOCS_DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens)
    return load_texts(data), max_tokens


def load_windows(
    tokenizer: Any, data: str = "docs", context_size: int = 128, max_tokens: int | None = None
) -> TokenWindows:
    """Load ``data`` (``docs`` or a file) and cut it into windows; errors name the data source."""
    texts, budget = corpus_texts(data, max_tokens)
    if isinstance(texts, list) and not texts:
        raise InterplabError(f"{data}: empty dataset (no texts)")
    try:
        return tokenize_corpus(tokenizer, texts, context_size=context_size, max_tokens=budget)
    except InterplabError as exc:
        msg = str(exc)
        if msg.startswith(("empty dataset", "dataset has only")):
            raise InterplabError(f"{data}: {msg}") from exc
        raise


def validate_run_args(batch_size: int, context_size: int, max_tokens: int | None) -> None:
    """Check numeric flags before anything is loaded."""
    if int(batch_size) <= 0:
        raise InterplabError(f"--batch-size must be ≥ 1, got {batch_size}")
    if int(context_size) <= 1:
        raise InterplabError(f"--context-size must be ≥ 2, got {context_size}")
    if max_tokens is not None and int(max_tokens) <= 0:
        raise InterplabError(f"--max-tokens must be ≥ 1, got {max_tokens}")
