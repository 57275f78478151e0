"""Corpus windows: every text token appears once, at its (text_idx, position); no padding counted."""

from __future__ import annotations

import json

import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.common.models import load_model
from interplab.sae.corpus import iter_batches, load_windows, special_tokens, tokenize_corpus


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    return load_model(tiny_models["gpt2"]).tokenizer


@pytest.fixture(scope="module")
def bert_tokenizer():
    return load_model("minilm").tokenizer


def _check_windows(tok, texts, w, max_tokens=None):
    """Brute force: rebuild each text's token list from the windows and compare with the tokenizer."""
    seqs = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    rebuilt: dict[int, dict[int, int]] = {}
    for n in range(w.n_windows):
        ti = int(w.text_idx[n])
        for col in range(w.input_ids.shape[1]):
            p = int(w.positions[n, col])
            if p < 0:
                continue
            assert w.attention_mask[n, col] == 1
            assert p not in rebuilt.setdefault(ti, {}), "token appears twice"
            rebuilt[ti][p] = int(w.input_ids[n, col])
    total = 0
    for ti, seq in enumerate(seqs):
        got = rebuilt.get(ti, {})
        budget = None if max_tokens is None else max(0, max_tokens - total)
        want = seq if budget is None else seq[:budget]
        assert [got[p] for p in sorted(got)] == want, ti
        assert sorted(got) == list(range(len(want)))
        total += len(want)
    assert w.n_tokens == total == int(w.token_mask.sum())


def test_windows_cover_every_token_once(tokenizer, tiny_texts):
    texts = [*tiny_texts[:10], "", "   ", tiny_texts[10]]
    w = tokenize_corpus(tokenizer, texts, context_size=16)
    _check_windows(tokenizer, texts, w)
    assert w.n_texts == 13 and w.n_empty_texts == 2
    assert w.input_ids.shape[1] <= 16
    # windows of a text start at multiples of the window length, in order
    for ti in w.text_idx.unique():
        starts = w.start_pos[w.text_idx == ti]
        assert starts.tolist() == list(range(0, 16 * len(starts), 16))
    # padding: attention 0, pad id, never counted
    assert (w.input_ids[w.attention_mask == 0] == tokenizer.pad_token_id).all()
    assert int(w.attention_mask.sum()) == w.n_tokens  # no special tokens for this tokenizer


def test_max_tokens_cuts_the_stream(tokenizer, tiny_texts):
    w = tokenize_corpus(tokenizer, iter(tiny_texts), context_size=8, max_tokens=100)
    assert w.n_tokens == 100 and w.truncated
    _check_windows(tokenizer, tiny_texts, w, max_tokens=100)


def test_special_tokens_wrap_each_window(bert_tokenizer):
    assert special_tokens(bert_tokenizer) == ([101], [102])
    texts = ["the cat sat on the mat " * 5, "hello"]
    w = tokenize_corpus(bert_tokenizer, texts, context_size=10)
    _check_windows(bert_tokenizer, texts, w)
    for n in range(w.n_windows):
        length = int(w.attention_mask[n].sum())
        assert w.input_ids[n, 0] == 101 and w.input_ids[n, length - 1] == 102
        assert w.positions[n, 0] == -1 and w.positions[n, length - 1] == -1
    assert int(w.attention_mask.sum()) == w.n_tokens + 2 * w.n_windows


def test_batches_keep_text_and_positions(tokenizer, tiny_texts):
    w = tokenize_corpus(tokenizer, tiny_texts, context_size=12)
    seen = 0
    for b in iter_batches(w, 5):
        assert b.input_ids.shape == b.positions.shape == b.text_idx.shape
        assert torch.equal(b.text_idx[:, 0], w.text_idx[b.window_idx])
        assert torch.equal(b.positions, w.positions[b.window_idx, : b.positions.shape[1]])
        seen += b.n_tokens
    assert seen == w.n_tokens
    with pytest.raises(InterplabError, match="batch size must be ≥ 1, got 0"):
        next(iter_batches(w, 0))


def test_bad_corpora(tokenizer, tmp_path):
    with pytest.raises(InterplabError, match="empty dataset"):
        tokenize_corpus(tokenizer, [])
    with pytest.raises(InterplabError, match="only empty texts"):
        tokenize_corpus(tokenizer, ["", "  ", "\n"])
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    with pytest.raises(InterplabError, match=r"empty.json: empty dataset"):
        load_windows(tokenizer, str(empty))
    blanks = tmp_path / "blanks.json"
    blanks.write_text(json.dumps(["", ""]))
    with pytest.raises(InterplabError, match=r"blanks.json: dataset has only empty texts"):
        load_windows(tokenizer, str(blanks))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "w1"}\n{"text": \n')
    with pytest.raises(InterplabError, match=r"broken.jsonl: malformed JSON on line 2"):
        load_windows(tokenizer, str(broken))
    with pytest.raises(InterplabError, match="context size"):
        tokenize_corpus(tokenizer, ["w1"], context_size=0)


def test_docs_corpus_streams_to_the_budget(tokenizer):
    w = load_windows(tokenizer, "docs", context_size=32, max_tokens=500)
    assert w.n_tokens == 500 and w.n_windows >= 500 // 32
