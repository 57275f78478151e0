"""Hook points equal ``output_hidden_states`` and the sub-layer decomposition of each block."""

from __future__ import annotations

import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.common.models import find_blocks, load_model
from interplab.sae.hooks import (
    capture_activations,
    check_sae_width,
    hook_width,
    replace_activations,
    resolve_hook,
    valid_hook_names,
)

ARCHS = ("gpt2", "llama", "qwen", "bert")


@pytest.fixture(scope="module")
def models(tiny_models):
    return {name: load_model(tiny_models[name]) for name in ARCHS}


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 60, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = 1
    return ids, mask


def _final_norm(lm):
    m = lm.model
    for path in ("transformer.ln_f", "model.norm"):
        obj = m
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    return None


@pytest.mark.parametrize("arch", ARCHS)
def test_resid_hooks_equal_hidden_states(models, arch):
    lm = models[arch]
    ids, mask = _inputs()
    with torch.no_grad():
        hs = lm.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    n = len(find_blocks(lm.model)[1])
    for layer in range(n):
        pre = capture_activations(lm, resolve_hook(lm, "hook_resid_pre", layer), ids, mask)
        torch.testing.assert_close(pre, hs[layer], rtol=0, atol=0)
        post = capture_activations(lm, resolve_hook(lm, f"blocks.{layer}.hook_resid_post", None), ids, mask)
        norm = _final_norm(lm)
        if layer == n - 1 and norm is not None:
            # HF applies the final norm to its last hidden state; the hook is the block output before it
            torch.testing.assert_close(norm(post), hs[layer + 1], rtol=1e-5, atol=1e-5)
            assert not torch.allclose(post, hs[layer + 1])
        else:
            torch.testing.assert_close(post, hs[layer + 1], rtol=0, atol=0)


@pytest.mark.parametrize("arch", ("gpt2", "llama", "qwen"))
def test_pre_norm_block_decomposes_into_attn_and_mlp(models, arch):
    """resid_post = resid_pre + attn_out + mlp_out in pre-norm blocks."""
    lm = models[arch]
    ids, mask = _inputs(1)
    for layer in range(2):
        acts = {
            kind: capture_activations(lm, resolve_hook(lm, kind, layer), ids, mask, stop=False)
            for kind in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_post")
        }
        torch.testing.assert_close(
            acts["hook_resid_pre"] + acts["hook_attn_out"] + acts["hook_mlp_out"],
            acts["hook_resid_post"],
            rtol=1e-5,
            atol=1e-5,
        )


def test_bert_sublayers_are_the_dense_projections(models):
    """BERT (post-LN): LN1(attn_out + resid_pre) = mid; LN2(mlp_out + mid) = resid_post."""
    lm = models["bert"]
    ids, mask = _inputs(2)
    block = find_blocks(lm.model)[1][0]
    get = {
        kind: capture_activations(lm, resolve_hook(lm, kind, 0), ids, mask)
        for kind in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_post")
    }
    with torch.no_grad():
        mid = block.attention.output.LayerNorm(get["hook_attn_out"] + get["hook_resid_pre"])
        post = block.output.LayerNorm(get["hook_mlp_out"] + mid)
    torch.testing.assert_close(post, get["hook_resid_post"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_stop_early_same_activations_and_skips_later_blocks(models, arch):
    lm = models[arch]
    ids, mask = _inputs(3)
    blocks = find_blocks(lm.model)[1]
    calls = []
    handle = blocks[1].register_forward_hook(lambda *_: calls.append(1))
    try:
        for kind in ("hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out"):
            hp = resolve_hook(lm, kind, 0)
            early = capture_activations(lm, hp, ids, mask, stop=True)
            assert not calls, kind
            full = capture_activations(lm, hp, ids, mask, stop=False)
            assert calls, kind
            calls.clear()
            torch.testing.assert_close(early, full, rtol=0, atol=0)
    finally:
        handle.remove()


@pytest.mark.parametrize("arch", ("gpt2", "bert"))
def test_replace_activations(models, arch):
    lm = models[arch]
    ids, mask = _inputs(4)
    hp = resolve_hook(lm, "hook_resid_post", 0)
    with torch.no_grad():
        clean = lm.model(input_ids=ids, attention_mask=mask)[0]
        with replace_activations(lm, hp, lambda a: a.clone()):
            same = lm.model(input_ids=ids, attention_mask=mask)[0]
        with replace_activations(lm, hp, torch.zeros_like):
            zero = lm.model(input_ids=ids, attention_mask=mask)[0]
        # the hook is gone afterwards
        after = lm.model(input_ids=ids, attention_mask=mask)[0]
    torch.testing.assert_close(same, clean)
    torch.testing.assert_close(after, clean)
    assert not torch.allclose(zero, clean)
    # resid_pre of layer 1 replaced by zeros = resid_post of layer 0 replaced by zeros
    with torch.no_grad(), replace_activations(lm, resolve_hook(lm, "hook_resid_pre", 1), torch.zeros_like):
        zero_pre = lm.model(input_ids=ids, attention_mask=mask)[0]
    torch.testing.assert_close(zero_pre, zero)


def test_hook_errors(models):
    lm = models["gpt2"]
    with pytest.raises(InterplabError) as exc:
        resolve_hook(lm, "hook_resid_mid", 0)
    assert "hook_resid_pre, hook_resid_post, hook_mlp_out, hook_attn_out" in str(exc.value)
    with pytest.raises(InterplabError, match=r"layer 5 out of range: the model has 2 layers \(valid: 0..1\)"):
        resolve_hook(lm, "hook_resid_post", 5)
    with pytest.raises(InterplabError, match="out of range"):
        resolve_hook(lm, "blocks.-1.hook_resid_post", None)
    with pytest.raises(InterplabError, match="names layer 1 but --layer is 0"):
        resolve_hook(lm, "blocks.1.hook_mlp_out", 0)
    with pytest.raises(InterplabError, match="needs a layer"):
        resolve_hook(lm, "hook_mlp_out", None)
    hp = resolve_hook(lm, "hook_mlp_out", 1)
    assert hp.name == "blocks.1.hook_mlp_out" and hook_width(lm, hp) == 32
    with pytest.raises(
        InterplabError, match=r"SAE d_in=48 does not match the width 32 .* blocks.1.hook_mlp_out"
    ):
        check_sae_width(lm, hp, 48)
    assert len(valid_hook_names(lm)) == 8


def test_gpt_neox_hooks(tmp_path):
    """GPT-NeoX (parallel residual): hooks equal hidden states and resid_post = pre + attn + mlp."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        use_parallel_residual=True,
    )
    model = GPTNeoXForCausalLM(cfg).eval()
    ids, mask = _inputs(5)
    with torch.no_grad():
        hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    acts = {
        kind: capture_activations(model, resolve_hook(model, kind, 0), ids, mask)
        for kind in ("hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_post")
    }
    torch.testing.assert_close(acts["hook_resid_pre"], hs[0], rtol=0, atol=0)
    torch.testing.assert_close(acts["hook_resid_post"], hs[1], rtol=0, atol=0)
    torch.testing.assert_close(
        acts["hook_resid_pre"] + acts["hook_attn_out"] + acts["hook_mlp_out"],
        acts["hook_resid_post"],
        rtol=1e-5,
        atol=1e-5,
    )
