"""Our SAE numbers and files held against the field's conventions: splicing only at text tokens,
SAELens's CE / KL positions, decoder-norm rescaling, JumpReLU, SAELens-readable folders, MSE names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from interplab.common.models import load_model
from interplab.sae.corpus import iter_batches, tokenize_corpus
from interplab.sae.formats import load_sae, save_sae
from interplab.sae.hooks import resolve_hook
from interplab.sae.metrics import batch_ablation
from interplab.sae.model import SAE, SAEConfig
from interplab.sae.quick import quick_check

BOS = 2


@pytest.fixture(scope="module")
def bos_llama(tiny_models, tmp_path_factory) -> Path:
    """The tiny Llama with a tokenizer that puts ``<bos>`` before every sequence."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    folder = tmp_path_factory.mktemp("bos_llama") / "llama"
    shutil.copytree(tiny_models["llama"], folder)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", BOS)])
    tok.save(str(folder / "tokenizer.json"))
    return folder


def _random_sae(d_in: int, d_sae: int, seed: int, arch: str = "standard", **kw) -> SAE:
    from conftest import make_random_weights

    w = make_random_weights(d_in, d_sae, seed)
    if arch != "jumprelu":
        w.pop("threshold")
    sae = SAE.from_weights(SAEConfig(d_in=d_in, d_sae=d_sae, architecture=arch, **kw), **w)
    return sae.requires_grad_(False)


def _hand_positions(ids, attn, pos, convention):
    """CE and KL positions by a loop over every window and position (the documented definitions)."""
    B, T = ids.shape
    ce, kl = [], []
    for b in range(B):
        for t in range(T):
            text = bool(pos[b, t] >= 0)
            has_next = t + 1 < T and bool(attn[b, t + 1])
            if convention == "saelens":
                if text and has_next:
                    ce.append((b, t))
                if text:
                    kl.append((b, t))
            elif t + 1 < T and bool(attn[b, t]) and bool(pos[b, t + 1] >= 0):
                ce.append((b, t))
                kl.append((b, t))
    return ce, kl


@pytest.mark.parametrize("convention", ["saelens", "interplab"])
def test_splice_keeps_special_tokens_and_positions_follow_convention(bos_llama, tiny_texts, convention):
    """Llama at blocks.0.hook_resid_pre (= input embeddings): the SAE replaces the embeddings of text
    tokens only; BOS keeps its own. CE/KL recomputed from plain forwards at hand-listed positions."""
    lm = load_model(bos_llama)
    w = tokenize_corpus(lm.tokenizer, tiny_texts[:5], context_size=12)
    assert w.n_special_tokens == 1 and bool((w.input_ids[:, 0] == BOS).all())
    batch = next(iter_batches(w, 5))
    hp = resolve_hook(lm, "hook_resid_pre", 0)
    sae = _random_sae(32, 64, seed=3)
    d = batch_ablation(lm, hp, sae, batch, convention=convention)

    m = lm.model
    ids, attn, pos = batch.input_ids, batch.attention_mask, batch.positions
    with torch.no_grad():
        emb = m.get_input_embeddings()(ids)
        spliced_emb = emb.clone()
        for b in range(ids.shape[0]):
            for t in range(ids.shape[1]):
                if pos[b, t] >= 0:
                    spliced_emb[b, t] = sae(emb[b, t])
        zero_emb = torch.zeros_like(emb)
        if convention == "interplab":  # zero only at text tokens
            zero_emb = torch.where((pos >= 0)[..., None], zero_emb, emb)
        logits = {
            name: m(inputs_embeds=e, attention_mask=attn).logits.double()
            for name, e in (("clean", emb), ("sae", spliced_emb), ("zero", zero_emb))
        }
    ce_pos, kl_pos = _hand_positions(ids, attn, pos, convention)

    def ce(name):
        lg = logits[name]
        return torch.stack([F.cross_entropy(lg[b, t], ids[b, t + 1]) for b, t in ce_pos])

    def kl(name):
        out = []
        for b, t in kl_pos:
            p = torch.softmax(logits["clean"][b, t], -1)
            q = torch.softmax(logits[name][b, t], -1)
            out.append((p * (p.log() - q.log())).sum())
        return torch.stack(out)

    assert d["clean_loss"].numel() == len(ce_pos) and d["kl_sae"].numel() == len(kl_pos)
    for name in ("clean", "sae", "zero"):
        torch.testing.assert_close(d[f"{name}_loss"].double(), ce(name), rtol=1e-4, atol=1e-5)
    for name in ("sae", "zero"):
        torch.testing.assert_close(d[f"kl_{name}"].double(), kl(name), rtol=1e-3, atol=1e-5)


def test_quick_writes_convention_and_position_counts(bos_llama, tiny_texts, tmp_path):
    data = tmp_path / "texts.json"
    data.write_text(json.dumps(tiny_texts[:8]))
    sae_dir = save_sae(_random_sae(32, 64, seed=4, hook_name="blocks.1.hook_resid_post"), tmp_path / "sae")
    lm = load_model(bos_llama)
    w = tokenize_corpus(lm.tokenizer, tiny_texts[:8], context_size=16)
    per_window = w.token_mask.sum(1)
    counts = {}
    for convention in ("saelens", "interplab"):
        r = quick_check(str(bos_llama), sae_dir, data=str(data), context_size=16, eval_convention=convention)
        abl = r["ablation"]
        assert abl["eval_convention"] == r["run"]["eval_convention"] == convention
        counts[convention] = (abl["n_positions_loss"], abl["n_positions_kl"])
    # SAELens: CE from every text token that has a next token, KL at every text token;
    # interplab: CE and KL at the positions predicting a text token (BOS → first text token included)
    assert counts["saelens"] == (int((per_window - 1).sum()), w.n_tokens)
    assert counts["interplab"] == (w.n_tokens, w.n_tokens)


def test_rescale_acts_by_decoder_norm_folded_at_load(tmp_path):
    """A SAELens TopK folder with ``rescale_acts_by_decoder_norm`` and decoder rows far from unit norm:
    codes and reconstructions equal SAELens's formula (pre·‖W_dec_i‖, top-k, then (f/‖W_dec_i‖)·W_dec)."""
    from conftest import write_saelens

    g = torch.Generator().manual_seed(5)
    d_in, d_sae, k = 16, 48, 6
    w = {
        "W_enc": torch.randn(d_in, d_sae, generator=g),
        "W_dec": torch.randn(d_sae, d_in, generator=g) * torch.rand(d_sae, 1, generator=g) * 5,
        "b_enc": torch.randn(d_sae, generator=g),
        "b_dec": torch.randn(d_in, generator=g),
    }
    cfg = {
        "architecture": "topk",
        "d_in": d_in,
        "d_sae": d_sae,
        "k": k,
        "rescale_acts_by_decoder_norm": True,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "metadata": {"sae_lens_version": "6.5.0", "hook_name": "blocks.0.hook_resid_post"},
    }
    folder = write_saelens(tmp_path / "topk", w, cfg)
    sae = load_sae(folder)
    x = torch.randn(200, d_in, generator=g)
    n = w["W_dec"].norm(dim=1)
    pre = ((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"]) * n
    vals, idx = pre.topk(k, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    x_hat = (f / n) @ w["W_dec"] + w["b_dec"]
    f_ours, x_hat_ours = sae.encode_decode(x)
    torch.testing.assert_close(f_ours, f, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_hat_ours, x_hat, rtol=1e-4, atol=1e-4)  # float32, |x̂| up to ~50


def test_jumprelu_is_relu_times_step():
    """A negative threshold lets negative pre-activations through ``pre·[pre > θ]``; ``ReLU(pre)·[pre > θ]``
    does not."""
    sae = _random_sae(16, 32, seed=6, arch="jumprelu")
    with torch.no_grad():
        sae.threshold.copy_(torch.linspace(-1.0, 0.5, 32))
    x = torch.randn(100, 16, generator=torch.Generator().manual_seed(6)) * 2
    pre = (x @ sae.W_enc + sae.b_enc).detach()
    expected = torch.relu(pre) * (pre > sae.threshold).float()
    assert bool(((pre < 0) & (pre > sae.threshold)).any())  # the case that differs
    torch.testing.assert_close(sae.encode(x), expected, rtol=0, atol=0)
    assert bool((sae.encode(x) >= 0).all())


@pytest.mark.parametrize("arch", ["standard", "topk", "jumprelu"])
def test_saved_folder_reads_back_in_saelens(tmp_path, arch):
    """``save_sae`` → SAELens's own ``SAE.load_from_disk``: metadata kept, same codes and reconstructions."""
    sae_lens = pytest.importorskip("sae_lens")
    kw = {"k": 5} if arch == "topk" else {}
    ours = _random_sae(16, 40, seed=7, arch=arch, hook_name="blocks.2.hook_resid_post", hook_layer=2, **kw)
    ours.cfg.model_name = "tiny-model"
    if arch == "jumprelu":
        with torch.no_grad():
            ours.threshold.copy_(torch.linspace(-0.3, 0.3, 40))
    folder = save_sae(ours, tmp_path / arch)
    theirs = sae_lens.SAE.load_from_disk(str(folder), device="cpu")
    assert theirs.cfg.architecture() == arch
    assert theirs.cfg.metadata.hook_name == "blocks.2.hook_resid_post"
    assert theirs.cfg.metadata.model_name == "tiny-model"
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(8)) * 3
    with torch.no_grad():
        f_theirs = theirs.encode(x)
        x_hat_theirs = theirs.decode(f_theirs)
    f_ours, x_hat_ours = ours.encode_decode(x)
    torch.testing.assert_close(f_ours, f_theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x_hat_ours, x_hat_theirs, rtol=1e-6, atol=1e-6)
    # and the folder SAELens would write is read back by us to the same SAE
    theirs.save_model(str(tmp_path / f"{arch}_from_saelens"))
    again = load_sae(tmp_path / f"{arch}_from_saelens")
    assert again.cfg.hook_name == "blocks.2.hook_resid_post"
    torch.testing.assert_close(again.encode_decode(x)[1], x_hat_theirs, rtol=1e-6, atol=1e-6)


def test_saelens_topk_rescaled_matches_saelens_itself(tmp_path):
    """The same rescaled TopK folder through SAELens's loader and ours."""
    sae_lens = pytest.importorskip("sae_lens")
    from conftest import write_saelens

    g = torch.Generator().manual_seed(9)
    w = {
        "W_enc": torch.randn(16, 48, generator=g),
        "W_dec": torch.randn(48, 16, generator=g) * 3,
        "b_enc": torch.randn(48, generator=g),
        "b_dec": torch.randn(16, generator=g),
    }
    cfg = {
        "architecture": "topk",
        "d_in": 16,
        "d_sae": 48,
        "k": 7,
        "rescale_acts_by_decoder_norm": True,
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "dtype": "float32",
        "device": "cpu",
        "metadata": {"sae_lens_version": sae_lens.__version__, "hook_name": "blocks.0.hook_resid_post"},
    }
    folder = write_saelens(tmp_path / "topk", w, cfg)
    theirs = sae_lens.SAE.load_from_disk(str(folder), device="cpu")
    x = torch.randn(200, 16, generator=g)
    with torch.no_grad():
        f_theirs = theirs.encode(x)
        x_hat_theirs = theirs.decode(f_theirs)
    f_ours, x_hat_ours = load_sae(folder).encode_decode(x)
    assert torch.equal(f_ours != 0, f_theirs != 0)  # the same firing decisions
    torch.testing.assert_close(f_ours, f_theirs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_hat_ours, x_hat_theirs, rtol=1e-4, atol=1e-4)  # float32 rounding


def test_unknown_convention_is_one_line(tmp_path):
    from interplab.common.errors import InterplabError

    with pytest.raises(
        InterplabError, match=r"unknown --eval-convention 'tl'; expected one of: saelens, interplab"
    ):
        quick_check("minilm", tmp_path, eval_convention="tl")
