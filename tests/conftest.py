"""Shared fixtures: tiny randomly initialised Hugging Face models saved with ``save_pretrained``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("INTERPLAB_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


def _save_tokenizer(folder: Path, vocab_size: int) -> None:
    """A small word-level tokenizer (built offline with `tokenizers`) saved next to the model."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [f"w{i}" for i in range(vocab_size - 4)]
    vocab = {"<unk>": 0, "<pad>": 1, "<bos>": 2, "<eos>": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )
    fast.save_pretrained(folder)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of tiny random GPT-2, Llama, Qwen2 and BERT models with a word-level tokenizer."""
    import torch
    from transformers import (
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("tiny_models")
    vocab = 64
    specs = {
        "gpt2": GPT2LMHeadModel(
            GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=128)
        ),
        "llama": LlamaForCausalLM(
            LlamaConfig(
                vocab_size=vocab,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=128,
            )
        ),
        "qwen": Qwen2ForCausalLM(
            Qwen2Config(
                vocab_size=vocab,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=128,
            )
        ),
        "bert": BertModel(
            BertConfig(
                vocab_size=vocab,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=128,
            )
        ),
    }
    out: dict[str, Path] = {}
    for name, model in specs.items():
        folder = root / name
        model.save_pretrained(folder)
        _save_tokenizer(folder, vocab)
        out[name] = folder
    return out


@pytest.fixture(scope="session")
def tiny_texts() -> list[str]:
    """Deterministic texts in the tiny tokenizer's vocabulary (words w0…w59)."""
    import random

    rng = random.Random(0)
    return [" ".join(f"w{rng.randrange(60)}" for _ in range(rng.randrange(5, 60))) for _ in range(40)]
