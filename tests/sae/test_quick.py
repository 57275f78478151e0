"""The quick check end to end on tiny models, through the function and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from interplab.cli import app
from interplab.common.errors import InterplabError
from interplab.common.models import load_model
from interplab.sae.corpus import tokenize_corpus
from interplab.sae.hooks import capture_activations, resolve_hook
from interplab.sae.quick import quick_check


@pytest.mark.parametrize("arch", ["gpt2", "qwen"])
def test_perfect_sae_scores(tiny_models, tiny_text_file, perfect_sae_folder, tiny_texts, arch):
    r = quick_check(
        model=str(tiny_models[arch]),
        sae_path=perfect_sae_folder,
        data=str(tiny_text_file),
        batch_size=4,
        context_size=16,
    )
    s = r.sections
    assert set(s) >= {"sparsity", "dead_features", "reconstruction", "ablation", "run"}
    assert s["run"]["hook"] == "blocks.1.hook_resid_post"  # from the SAE config
    rec, abl, sp = s["reconstruction"], s["ablation"], s["sparsity"]
    assert rec["mse_per_element"] == 0 == rec["mse_per_token"] and rec["explained_variance"] == 1
    assert rec["cosine_similarity"] == pytest.approx(1) and rec["l2_ratio"] == pytest.approx(1)
    assert abl["loss_recovered"] == pytest.approx(1, abs=1e-9) and abl["kl_score"] == pytest.approx(
        1, abs=1e-6
    )
    assert abl["substitute"] is None
    assert abl["zero_ablation_loss"] != abl["baseline_loss"]
    # L0 = d_in when no activation is exactly zero (checked here on the same tokens)
    lm = load_model(tiny_models[arch])
    w = tokenize_corpus(lm.tokenizer, tiny_texts, context_size=16)
    act = capture_activations(lm, resolve_hook(lm, "hook_resid_post", 1), w.input_ids, w.attention_mask)
    x = act[w.token_mask]
    assert (x != 0).all()
    assert sp["l0_mean"] == 32 and sp["l0_std"] == 0 and sp["n_tokens"] == w.n_tokens == x.shape[0]
    # features i and i+32 split the sign of dimension i: frequency = fraction of tokens with x_i > 0
    np.testing.assert_allclose(sp["feature_frequency"][:32], (x > 0).double().mean(0).numpy())
    assert s["dead_features"]["dead_indices"] == np.flatnonzero((x > 0).sum(0) == 0).tolist()
    assert sp["l1_mean"] == pytest.approx(float(x.abs().sum(1).double().mean()), rel=1e-6)


def test_bert_without_lm_head_says_substitute(tiny_models, tiny_text_file, perfect_sae_folder):
    r = quick_check(
        str(tiny_models["bert"]),
        perfect_sae_folder,
        layer=0,
        hook="hook_attn_out",
        data=str(tiny_text_file),
        context_size=16,
    )
    assert r["run"]["hook"] == "blocks.0.hook_attn_out"
    assert "no LM head" in r["ablation"]["substitute"]
    assert r["ablation"]["loss_recovered"] == pytest.approx(1.0)
    assert r["reconstruction"]["explained_variance"] == 1


def test_cli_writes_json(tiny_models, tiny_text_file, perfect_sae_folder, tmp_path):
    out = tmp_path / "q.json"
    res = CliRunner().invoke(
        app,
        [
            "sae",
            "quick",
            "--model",
            str(tiny_models["gpt2"]),
            "--sae",
            str(perfect_sae_folder),
            "--layer",
            "1",
            "--hook",
            "hook_resid_post",
            "--data",
            str(tiny_text_file),
            "--batch-size",
            "3",
            "--max-tokens",
            "200",
            "--context-size",
            "32",
            "--output-json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "reconstruction" in res.output and "explained_variance" in res.output
    data = json.loads(out.read_text())
    assert data["sparsity"]["n_tokens"] == 200 == data["run"]["n_tokens"]
    assert len(data["sparsity"]["feature_frequency"]) == 64
    for key in ("l0_mean", "l0_std", "l1_mean", "l1_std", "n_features"):
        assert key in data["sparsity"]
    for key in (
        "n_dead",
        "pct_dead",
        "dead_indices",
        "n_frequency_below_1e-5",
        "n_frequency_below_1e-6",
        "n_dense",
    ):
        assert key in data["dead_features"]
    for key in ("mse_per_element", "mse_per_token", "explained_variance", "cosine_similarity", "l2_ratio"):
        assert key in data["reconstruction"]
    for key in (
        "baseline_loss",
        "zero_ablation_loss",
        "sae_reconstruction_loss",
        "loss_recovered",
        "kl_score",
    ):
        assert key in data["ablation"]


def test_bad_inputs(tiny_models, tiny_text_file, perfect_sae_folder, tmp_path, sae_folders):
    gpt2 = str(tiny_models["gpt2"])
    data = str(tiny_text_file)
    cases = [
        (dict(sae_path=tmp_path / "missing"), "SAE folder not found"),
        (dict(sae_path=tmp_path), "not a recognised SAE folder"),
        (dict(sae_path=perfect_sae_folder, batch_size=0), "--batch-size must be ≥ 1, got 0"),
        (dict(sae_path=perfect_sae_folder, hook="hook_resid_mid", layer=0), "unknown hook 'hook_resid_mid'"),
        (dict(sae_path=perfect_sae_folder, layer=7, hook="hook_resid_post"), "layer 7 out of range"),
    ]
    blanks = tmp_path / "blanks.json"
    blanks.write_text(json.dumps(["", " "]))
    broken = tmp_path / "broken.json"
    broken.write_text('["w1", ')
    cases += [
        (dict(sae_path=perfect_sae_folder, data=str(blanks)), "only empty texts"),
        (dict(sae_path=perfect_sae_folder, data=str(broken)), "broken.json: malformed JSON at line 1"),
    ]
    for kwargs, message in cases:
        kwargs = {"model": gpt2, "data": data, **kwargs}
        with pytest.raises(InterplabError, match=message.replace("(", r"\(").replace(")", r"\)")):
            quick_check(**kwargs)
    # SAE width 32 on minilm's 384-wide residual stream
    with pytest.raises(
        InterplabError, match=r"SAE d_in=32 does not match the width 384 .* blocks.1.hook_resid_post"
    ):
        quick_check("minilm", perfect_sae_folder, data=data)


def test_cli_error_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "interplab", "sae", "quick", "--sae", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "SAE folder not found" in lines[0]


def test_topk_sae_from_sparsify_folder(tiny_models, tiny_text_file, sae_folders):
    r = quick_check(
        str(tiny_models["llama"]),
        sae_folders["sparsify"],
        data=str(tiny_text_file),
        context_size=16,
        max_tokens=150,
    )
    assert r["sparsity"]["l0_mean"] <= 8
    assert r["run"]["hook"] == "blocks.1.hook_resid_post" and r["run"]["sae_format"] == "sparsify"
    assert torch.isfinite(torch.tensor(r["reconstruction"]["explained_variance"]))


def test_context_size_beyond_position_table(tiny_models, tiny_text_file, perfect_sae_folder):
    with pytest.raises(
        InterplabError, match="--context-size 512 exceeds the model's maximum of 128 positions"
    ):
        quick_check(str(tiny_models["gpt2"]), perfect_sae_folder, data=str(tiny_text_file), context_size=512)
