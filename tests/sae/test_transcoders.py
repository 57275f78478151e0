"""Transcoders (input hook ≠ output hook): SAELens and sparsify layouts against their formulas, and
``sae quick`` / ``sae analyze`` splicing the prediction at the output hook of the tiny GPT-2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from interplab.common.models import load_model
from interplab.sae.corpus import iter_batches, tokenize_corpus
from interplab.sae.formats import load_sae
from interplab.sae.hooks import capture_activations, replace_activations, resolve_hook
from interplab.sae.quick import quick_check

D, D_SAE, K = 32, 48, 6


def _weights(seed: int, skip: bool = False, jump: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = {
        "W_enc": torch.randn(D, D_SAE, generator=g) * D**-0.5,
        "b_enc": torch.randn(D_SAE, generator=g) * 0.1,
        "W_dec": torch.randn(D_SAE, D, generator=g) * D_SAE**-0.5,
        "b_dec": torch.randn(D, generator=g) * 0.1,
    }
    if skip:
        w["W_skip"] = torch.randn(D, D, generator=g) * 0.1
    if jump:
        w["threshold"] = torch.rand(D_SAE, generator=g) * 0.2
    return w


def saelens_transcoder(root: Path, arch: str, seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    from conftest import write_saelens

    w = _weights(seed, skip=arch == "skip_transcoder", jump=arch == "jumprelu_transcoder")
    cfg = {
        "architecture": arch,
        "d_in": D,
        "d_sae": D_SAE,
        "d_out": D,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "metadata": {
            "sae_lens_version": "6.5.0",
            "hook_name": "blocks.1.ln2.hook_normalized",
            "hook_name_out": "blocks.1.hook_mlp_out",
        },
    }
    return write_saelens(root / arch, w, cfg), w


def sparsify_transcoder(root: Path, seed: int = 1) -> tuple[Path, dict[str, torch.Tensor]]:
    from safetensors.torch import save_file

    w = _weights(seed, skip=True)
    folder = root / "layers.1.mlp"
    folder.mkdir(parents=True)
    tensors = {
        "encoder.weight": w["W_enc"].T.contiguous(),
        "encoder.bias": w["b_enc"],
        "W_dec": w["W_dec"],
        "b_dec": w["b_dec"],
        "W_skip": w["W_skip"],
    }
    save_file(tensors, str(folder / "sae.safetensors"))
    cfg = {
        "activation": "topk",
        "k": K,
        "num_latents": D_SAE,
        "transcode": True,
        "skip_connection": True,
        "d_in": D,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder, w


def _formula(w: dict[str, torch.Tensor], x: torch.Tensor, act: str) -> tuple[torch.Tensor, torch.Tensor]:
    w = {k: v.double() for k, v in w.items()}
    pre = x @ w["W_enc"] + w["b_enc"]  # no b_dec subtracted: b_dec lives in the output space
    if act == "relu":
        f = pre.clamp_min(0)
    elif act == "jumprelu":
        f = pre.clamp_min(0) * (pre > w["threshold"])
    else:
        top = pre.topk(K, dim=-1)
        f = torch.zeros_like(pre).scatter(-1, top.indices, top.values.clamp_min(0))
    y = f @ w["W_dec"] + w["b_dec"]
    if "W_skip" in w:
        y = y + x @ w["W_skip"].T
    return f, y


CASES = {
    "transcoder": ("relu", lambda root: saelens_transcoder(root, "transcoder")),
    "skip_transcoder": ("relu", lambda root: saelens_transcoder(root, "skip_transcoder")),
    "jumprelu_transcoder": ("jumprelu", lambda root: saelens_transcoder(root, "jumprelu_transcoder")),
    "sparsify": ("topk", sparsify_transcoder),
}


@pytest.mark.parametrize("name", list(CASES))
def test_transcoder_formula(tmp_path, name):
    act, write = CASES[name]
    folder, w = write(tmp_path)
    sae = load_sae(folder)
    assert sae.cfg.hook_name == "blocks.1.hook_mlp_in" and sae.cfg.hook_name_out == "blocks.1.hook_mlp_out"
    x = torch.randn(300, D, generator=torch.Generator().manual_seed(3))
    f_ref, y_ref = _formula(w, x.double(), act)
    f, y = sae.encode_decode(x)
    assert torch.equal(f != 0, f_ref != 0)
    torch.testing.assert_close(f.double(), f_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-6, atol=1e-6)


def test_quick_splices_prediction_at_output_hook(tiny_models, tiny_texts, tiny_text_file, tmp_path):
    """Reconstruction = prediction vs the true MLP output; CE with the prediction spliced in at
    hook_mlp_out, recomputed here with a hand-made splice from plain forward passes."""
    folder, w = saelens_transcoder(tmp_path, "skip_transcoder")
    model = tiny_models["gpt2"]
    r = quick_check(str(model), folder, data=str(tiny_text_file), context_size=16, batch_size=128)
    assert r["run"]["hook"] == "blocks.1.hook_mlp_in" and r["run"]["hook_out"] == "blocks.1.hook_mlp_out"
    lm = load_model(model)
    win = tokenize_corpus(lm.tokenizer, tiny_texts, context_size=16)
    batch = next(iter_batches(win, 128))
    assert batch.input_ids.shape[0] == win.n_windows  # one batch holds the whole corpus
    ids, attn, mask = batch.input_ids, batch.attention_mask, batch.token_mask
    x = capture_activations(lm, resolve_hook(lm, "hook_mlp_in", 1), ids, attn)
    y = capture_activations(lm, resolve_hook(lm, "hook_mlp_out", 1), ids, attn)
    _, y_hat = _formula(w, x.double(), "relu")
    err = ((y.double() - y_hat) ** 2).sum(-1)[mask]
    assert r["reconstruction"]["mse_per_token"] == pytest.approx(float(err.mean()), rel=1e-5)
    assert r["reconstruction"]["n_tokens"] == int(mask.sum())
    with torch.no_grad():
        clean = lm.model(input_ids=ids, attention_mask=attn).logits
        spliced_act = torch.where(mask[..., None], y_hat.float(), y)
        with replace_activations(lm, resolve_hook(lm, "hook_mlp_out", 1), lambda a: spliced_act):
            spliced = lm.model(input_ids=ids, attention_mask=attn).logits
    pos = mask[:, :-1] & attn[:, 1:].bool()  # SAELens CE positions (no special tokens here)
    targets = ids[:, 1:][pos]

    def ce(logits):
        return float(torch.nn.functional.cross_entropy(logits[:, :-1][pos].double(), targets))

    abl = r["ablation"]
    assert abl["baseline_loss"] == pytest.approx(ce(clean), rel=1e-5)
    assert abl["sae_reconstruction_loss"] == pytest.approx(ce(spliced), rel=1e-5)
    assert abl["spliced_at"] == "blocks.1.hook_mlp_out"


@pytest.mark.slow
def test_analyze_runs_a_transcoder(tiny_models, tiny_text_file, tmp_path):
    from analyze_support import ANALYSIS_OPTIONS

    from interplab.sae.analyzer import run_comprehensive_analysis

    folder, _ = sparsify_transcoder(tmp_path)
    opts = {**ANALYSIS_OPTIONS, "max_tokens": 200}
    res = run_comprehensive_analysis(
        str(tiny_models["gpt2"]), folder, None, None, str(tiny_text_file), 4, tmp_path / "a", **opts
    )
    quick = quick_check(
        str(tiny_models["gpt2"]), folder, data=str(tiny_text_file), context_size=16, max_tokens=200
    )
    assert (
        res.summary["hook"] == "blocks.1.hook_mlp_in"
        and res.results["sae"]["hook_name_out"] == "blocks.1.hook_mlp_out"
    )
    rec = res.results["reconstruction"]
    assert rec["mse_per_token"] == pytest.approx(quick["reconstruction"]["mse_per_token"], rel=1e-6)
    assert res.results["ablation"]["spliced_at"] == "blocks.1.hook_mlp_out"
    assert res.results["sparsity"]["l0_mean"] == pytest.approx(quick["sparsity"]["l0_mean"])


@pytest.mark.parametrize("arch", ["skip_transcoder", "jumprelu_transcoder"])
def test_saved_transcoder_reads_back_in_saelens(tmp_path, arch):
    """``save_sae`` writes SAELens's transcoder layout: SAELens loads it with both hooks and gives the
    same prediction; a TopK transcoder (no SAELens layout) is refused before anything is written."""
    sae_lens = pytest.importorskip("sae_lens")
    from interplab.common.errors import InterplabError
    from interplab.sae.formats import save_sae

    folder, w = saelens_transcoder(tmp_path, arch)
    ours = load_sae(folder)
    saved = save_sae(ours, tmp_path / "saved")
    theirs = sae_lens.SAE.load_from_disk(str(saved), device="cpu")
    assert theirs.cfg.architecture() == arch
    assert theirs.cfg.metadata.hook_name == "blocks.1.ln2.hook_normalized"
    assert theirs.cfg.metadata.hook_name_out == "blocks.1.hook_mlp_out"
    x = torch.randn(200, D, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        y_theirs = theirs(x)
    _, y_ref = _formula(w, x.double(), "jumprelu" if arch == "jumprelu_transcoder" else "relu")
    torch.testing.assert_close(y_theirs.double(), y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(load_sae(saved).encode_decode(x)[1], y_theirs, rtol=1e-5, atol=1e-5)
    topk, _ = sparsify_transcoder(tmp_path)
    with pytest.raises(InterplabError, match="topk transcoder with W_skip has no SAELens layout"):
        save_sae(load_sae(topk), tmp_path / "never")
    assert not (tmp_path / "never").exists()
