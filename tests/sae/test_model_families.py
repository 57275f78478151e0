"""Hook points on more model families (tiny random models saved with ``save_pretrained``): Gemma-2,
Gemma-3, Qwen-3, Mistral, Phi-3, GPT-J and OPT. Hooks equal ``output_hidden_states``, each block
decomposes into what its sub-layers add to the residual stream, and the stopped forward equals the
full one at the hook."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from interplab.common.models import find_blocks, load_model
from interplab.sae.hooks import HOOK_KINDS, capture_activations, replace_activations, resolve_hook

SMALL = {"vocab_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 128}
TOKENS = {"pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 3}


def _configs() -> dict[str, object]:
    import transformers as tf

    llama_like = {**SMALL, **TOKENS, "hidden_size": 32, "intermediate_size": 64, "num_key_value_heads": 2}
    return {
        "gemma2": tf.Gemma2Config(
            **llama_like,
            head_dim=8,
            sliding_window=4,
            final_logit_softcapping=30.0,
            attn_logit_softcapping=50.0,
        ),
        "gemma3": tf.Gemma3TextConfig(**llama_like, head_dim=8, sliding_window=4),
        "qwen3": tf.Qwen3Config(**llama_like, head_dim=8),
        "mistral": tf.MistralConfig(**llama_like, sliding_window=4),
        "phi3": tf.Phi3Config(**llama_like),
        "gptj": tf.GPTJConfig(
            vocab_size=64, n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=128, **TOKENS
        ),
        "opt": tf.OPTConfig(**SMALL, **TOKENS, hidden_size=32, ffn_dim=64, word_embed_proj_dim=32),
    }


# the final norm Hugging Face applies to the last entry of hidden_states
FINAL_NORM = {
    "gemma2": "model.norm",
    "gemma3": "model.norm",
    "qwen3": "model.norm",
    "mistral": "model.norm",
    "phi3": "model.norm",
    "gptj": "transformer.ln_f",
    "opt": "model.decoder.final_layer_norm",
}


@pytest.fixture(scope="module")
def family_models(tiny_models, tmp_path_factory) -> dict[str, Path]:
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("families")
    out = {}
    for name, cfg in _configs().items():
        torch.manual_seed(0)
        folder = root / name
        AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
        for f in Path(tiny_models["llama"]).iterdir():  # the tiny word-level tokenizer
            if f.name.startswith(("tokenizer", "special_tokens")):
                shutil.copy(f, folder / f.name)
        out[name] = folder
    return out


def _inputs():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 60, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = 1
    return ids, mask


def _attr(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("family", list(FINAL_NORM))
def test_family_hooks(family_models, family):
    lm = load_model(family_models[family])
    assert lm.is_causal
    ids, mask = _inputs()
    with torch.no_grad():
        hs = lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    n = len(find_blocks(lm.model)[1])
    assert n == 2 and len(hs) == n + 1
    real = mask.bool()
    for layer in range(n):
        acts = {
            k: capture_activations(lm, resolve_hook(lm, k, layer), ids, mask, stop=False) for k in HOOK_KINDS
        }
        torch.testing.assert_close(acts["hook_resid_pre"], hs[layer], rtol=0, atol=0)
        if layer < n - 1:
            torch.testing.assert_close(acts["hook_resid_post"], hs[layer + 1], rtol=0, atol=0)
        else:  # the last hidden state has the final norm applied; the hook is the block output before it
            with torch.no_grad():
                normed = _attr(lm.model, FINAL_NORM[family])(acts["hook_resid_post"])
            torch.testing.assert_close(normed[real], hs[-1][real], rtol=1e-5, atol=1e-5)
        # what the sub-layers add to the residual stream (Gemma: after their post-norms; GPT-J: parallel)
        torch.testing.assert_close(
            (acts["hook_resid_pre"] + acts["hook_attn_out"] + acts["hook_mlp_out"])[real],
            acts["hook_resid_post"][real],
            rtol=1e-5,
            atol=1e-5,
        )
        for kind in HOOK_KINDS:  # the stopped forward equals the full one at the hook
            early = capture_activations(lm, resolve_hook(lm, kind, layer), ids, mask, stop=True)
            torch.testing.assert_close(early, acts[kind], rtol=0, atol=0)


@pytest.mark.parametrize("family", ["opt", "gemma2", "gptj"])
def test_family_splice(family_models, family):
    """Splicing at hook_mlp_out sees ``[B, T, d]`` activations (OPT's fc2 runs on flattened tokens):
    the identity leaves the logits unchanged, a doubled MLP output equals the hand-made residual."""
    lm = load_model(family_models[family])
    ids, mask = _inputs()
    hp = resolve_hook(lm, "hook_mlp_out", 1)
    seen = []

    def identity(a):
        seen.append(tuple(a.shape))
        return a.clone()

    with torch.no_grad():
        clean = lm.model(input_ids=ids, attention_mask=mask).logits
        with replace_activations(lm, hp, identity):
            same = lm.model(input_ids=ids, attention_mask=mask).logits
        with replace_activations(lm, hp, torch.zeros_like):
            zero = lm.model(input_ids=ids, attention_mask=mask).logits
    assert seen == [(3, 10, 32)]
    torch.testing.assert_close(same, clean, rtol=0, atol=0)
    assert not torch.allclose(zero, clean)
    # zeroing the last MLP output = the final norm and unembedding of resid_post − mlp_out
    acts = {
        k: capture_activations(lm, resolve_hook(lm, k, 1), ids, mask)
        for k in ("hook_resid_post", "hook_mlp_out")
    }
    with torch.no_grad():
        h = _attr(lm.model, FINAL_NORM[family])(acts["hook_resid_post"] - acts["hook_mlp_out"])
        expected = lm.model.get_output_embeddings()(h)
    if family == "gemma2":  # final logit soft-capping
        cap = lm.model.config.final_logit_softcapping
        expected = torch.tanh(expected / cap) * cap
    real = mask.bool()
    torch.testing.assert_close(zero[real], expected[real], rtol=1e-4, atol=1e-4)
