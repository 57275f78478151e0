"""The published SAE layouts: each written by the test with random weights, loaded by ``load_sae``,
checked against a hand-written copy of the source's documented formula, and run through
``sae quick`` and ``sae analyze`` on the tiny GPT-2."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.sae.formats import load_sae
from interplab.sae.quick import quick_check

D_IN, D_SAE, K = 32, 48, 6
Formula = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _rand(g: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g) * scale


def _relu(t: torch.Tensor) -> torch.Tensor:
    return t.clamp_min(0)


# ---- writers: each returns (folder, formula) ------------------------------------------------------
def gemma_scope(root: Path, seed: int = 0) -> tuple[Path, Formula]:
    """``params.npz`` at ``<suite>/layer_<L>/width_<W>/average_l0_<N>/``; JumpReLU on raw inputs."""
    g = torch.Generator().manual_seed(seed)
    p = {
        "W_enc": _rand(g, D_IN, D_SAE, scale=D_IN**-0.5),
        "W_dec": _rand(g, D_SAE, D_IN, scale=D_SAE**-0.5),
        "b_enc": _rand(g, D_SAE, scale=0.1),
        "b_dec": _rand(g, D_IN, scale=0.1),
        "threshold": torch.rand(D_SAE, generator=g) * 0.3,
    }
    folder = root / "gemma-scope-2b-pt-res" / "layer_1" / "width_16k" / "average_l0_10"
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", **{k: v.numpy() for k, v in p.items()})

    def formula(x):
        pre = x @ p["W_enc"].double() + p["b_enc"].double()
        f = (pre > p["threshold"].double()) * _relu(pre)
        return f, f @ p["W_dec"].double() + p["b_dec"].double()

    return folder, formula


def _dl_folder(root: Path, name: str, sd: dict[str, torch.Tensor], trainer: dict) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    torch.save(sd, folder / "ae.pt")
    (folder / "config.json").write_text(json.dumps({"trainer": trainer, "buffer": {"ctx_len": 128}}))
    return folder


def _dl_trainer(dict_class: str, **kw) -> dict:
    return {
        "dict_class": dict_class,
        "activation_dim": D_IN,
        "dict_size": D_SAE,
        "layer": 1,
        "lm_name": "tiny-gpt2",
        "submodule_name": "resid_post_layer_1",
        **kw,
    }


def _linear(g, n_out: int, n_in: int, bias: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    return _rand(g, n_out, n_in, scale=n_in**-0.5), (_rand(g, n_out, scale=0.1) if bias else None)


def dl_autoencoder(root: Path, seed: int = 1) -> tuple[Path, Formula]:
    g = torch.Generator().manual_seed(seed)
    E, be = _linear(g, D_SAE, D_IN)
    D, _ = _linear(g, D_IN, D_SAE, bias=False)
    bias = _rand(g, D_IN, scale=0.1)
    sd = {"bias": bias, "encoder.weight": E, "encoder.bias": be, "decoder.weight": D}
    folder = _dl_folder(root, "autoencoder", sd, _dl_trainer("AutoEncoder"))

    def formula(x):
        f = _relu((x - bias.double()) @ E.double().T + be.double())
        return f, f @ D.double().T + bias.double()

    return folder, formula


def dl_autoencoder_new(root: Path, seed: int = 2) -> tuple[Path, Formula]:
    g = torch.Generator().manual_seed(seed)
    E, be = _linear(g, D_SAE, D_IN)
    D, bd = _linear(g, D_IN, D_SAE)
    sd = {"encoder.weight": E, "encoder.bias": be, "decoder.weight": D, "decoder.bias": bd}
    folder = _dl_folder(root, "autoencoder_new", sd, _dl_trainer("AutoEncoderNew"))

    def formula(x):
        f = _relu(x @ E.double().T + be.double())
        return f, f @ D.double().T + bd.double()

    return folder, formula


def _dl_topk_sd(g, matryoshka: bool = False) -> dict[str, torch.Tensor]:
    E, be = _linear(g, D_SAE, D_IN)
    D, _ = _linear(g, D_IN, D_SAE, bias=False)
    sd = {
        "k": torch.tensor(K, dtype=torch.int),
        "threshold": torch.tensor(0.15),
        "b_dec": _rand(g, D_IN, scale=0.1),
    }
    if matryoshka:
        sd.update(
            W_enc=E.T.contiguous(), b_enc=be, W_dec=D.T.contiguous(), group_sizes=torch.tensor([16, 32])
        )
    else:
        sd.update({"encoder.weight": E, "encoder.bias": be, "decoder.weight": D})
    return sd


def dl_topk(root: Path, seed: int = 3) -> tuple[Path, Formula]:
    g = torch.Generator().manual_seed(seed)
    sd = _dl_topk_sd(g)
    folder = _dl_folder(root, "topk", sd, _dl_trainer("AutoEncoderTopK", k=K))
    E, be, D, bd = (sd[n].double() for n in ("encoder.weight", "encoder.bias", "decoder.weight", "b_dec"))

    def formula(x):
        a = _relu((x - bd) @ E.T + be)
        top = a.topk(K, dim=-1)
        f = torch.zeros_like(a).scatter(-1, top.indices, top.values)
        return f, f @ D.T + bd

    return folder, formula


def _batchtopk(root: Path, seed: int, dict_class: str) -> tuple[Path, Formula]:
    g = torch.Generator().manual_seed(seed)
    matryoshka = dict_class == "MatryoshkaBatchTopKSAE"
    sd = _dl_topk_sd(g, matryoshka)
    folder = _dl_folder(root, dict_class, sd, _dl_trainer(dict_class, k=K))
    if matryoshka:
        W_enc, be, W_dec = sd["W_enc"].double(), sd["b_enc"].double(), sd["W_dec"].double()
    else:
        W_enc, be, W_dec = (
            sd["encoder.weight"].double().T,
            sd["encoder.bias"].double(),
            sd["decoder.weight"].double().T,
        )
    bd, thr = sd["b_dec"].double(), float(sd["threshold"])

    def formula(x):
        a = _relu((x - bd) @ W_enc + be)
        f = a * (a > thr)
        return f, f @ W_dec + bd

    return folder, formula


def dl_batchtopk(root: Path, seed: int = 4) -> tuple[Path, Formula]:
    return _batchtopk(root, seed, "BatchTopKSAE")


def dl_matryoshka(root: Path, seed: int = 5) -> tuple[Path, Formula]:
    return _batchtopk(root, seed, "MatryoshkaBatchTopKSAE")


def dl_jumprelu(root: Path, seed: int = 6) -> tuple[Path, Formula]:
    g = torch.Generator().manual_seed(seed)
    sd = {
        "W_enc": _rand(g, D_IN, D_SAE, scale=D_IN**-0.5),
        "b_enc": _rand(g, D_SAE, scale=0.1),
        "W_dec": _rand(g, D_SAE, D_IN, scale=D_SAE**-0.5),
        "b_dec": _rand(g, D_IN, scale=0.1),
        "threshold": torch.rand(D_SAE, generator=g) * 0.4 - 0.1,  # a few negative thresholds
    }
    folder = _dl_folder(root, "jumprelu", sd, _dl_trainer("JumpReluAutoEncoder"))
    W_enc, b_enc, W_dec, b_dec, thr = (
        sd[n].double() for n in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")
    )

    def formula(x):
        pre = x @ W_enc + b_enc  # apply_b_dec_to_input is False in the library
        f = _relu(pre * (pre > thr))
        return f, f @ W_dec + b_dec

    return folder, formula


def _gated_formula(W_enc, b_dec, b_gate, r_mag, b_mag, W_dec) -> Formula:
    def formula(x):
        h = (x - b_dec) @ W_enc
        f = (h + b_gate > 0) * _relu(torch.exp(r_mag) * h + b_mag)
        return f, f @ W_dec + b_dec

    return formula


def dl_gated(root: Path, seed: int = 7) -> tuple[Path, Formula]:
    g = torch.Generator().manual_seed(seed)
    E, _ = _linear(g, D_SAE, D_IN, bias=False)
    D, _ = _linear(g, D_IN, D_SAE, bias=False)
    sd = {
        "decoder_bias": _rand(g, D_IN, scale=0.1),
        "r_mag": _rand(g, D_SAE, scale=0.3),
        "gate_bias": _rand(g, D_SAE, scale=0.1),
        "mag_bias": _rand(g, D_SAE, scale=0.1),
        "encoder.weight": E,
        "decoder.weight": D,
    }
    folder = _dl_folder(root, "gated", sd, _dl_trainer("GatedAutoEncoder"))
    d = {k: v.double() for k, v in sd.items()}
    return folder, _gated_formula(
        d["encoder.weight"].T,
        d["decoder_bias"],
        d["gate_bias"],
        d["r_mag"],
        d["mag_bias"],
        d["decoder.weight"].T,
    )


def saelens_gated(root: Path, seed: int = 8) -> tuple[Path, Formula]:
    from conftest import write_saelens

    g = torch.Generator().manual_seed(seed)
    w = {
        "W_enc": _rand(g, D_IN, D_SAE, scale=D_IN**-0.5),
        "W_dec": _rand(g, D_SAE, D_IN, scale=D_SAE**-0.5),
        "b_dec": _rand(g, D_IN, scale=0.1),
        "b_gate": _rand(g, D_SAE, scale=0.1),
        "r_mag": _rand(g, D_SAE, scale=0.3),
        "b_mag": _rand(g, D_SAE, scale=0.1),
    }
    cfg = {
        "architecture": "gated",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "metadata": {
            "sae_lens_version": "6.0.0",
            "hook_name": "blocks.1.hook_resid_post",
            "model_name": "tiny",
        },
    }
    folder = write_saelens(root / "saelens_gated", w, cfg)
    d = {k: v.double() for k, v in w.items()}
    return folder, _gated_formula(d["W_enc"], d["b_dec"], d["b_gate"], d["r_mag"], d["b_mag"], d["W_dec"])


def llama_scope(root: Path, seed: int = 9) -> tuple[Path, Formula]:
    """``hyperparams.json`` + ``checkpoints/final.safetensors``; dataset-wise input/output norms and a
    scalar threshold compared with ``pre·‖decoder column‖``."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    E, bE = _linear(g, D_SAE, D_IN)
    D = _rand(g, D_IN, D_SAE) * torch.rand(1, D_SAE, generator=g) * 0.5  # columns far from unit norm
    bD = _rand(g, D_IN, scale=0.1)
    folder = root / "Llama3_1-8B-Base-L1R-8x"
    (folder / "checkpoints").mkdir(parents=True)
    save_file(
        {"encoder.weight": E, "encoder.bias": bE, "decoder.weight": D.contiguous(), "decoder.bias": bD},
        str(folder / "checkpoints" / "final.safetensors"),
    )
    hp = {
        "d_model": D_IN,
        "d_sae": D_SAE,
        "hook_point_in": "blocks.1.hook_resid_post",
        "hook_point_out": "blocks.1.hook_resid_post",
        "act_fn": "jumprelu",
        "jump_relu_threshold": 0.2,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": 3.0, "out": 2.5},
        "sparsity_include_decoder_norm": True,
        "use_decoder_bias": True,
        "apply_decoder_bias_to_pre_encoder": False,
        "top_k": 50,
    }
    (folder / "hyperparams.json").write_text(json.dumps(hp))
    s_in, s_out = D_IN**0.5 / 3.0, D_IN**0.5 / 2.5
    E, bE, D, bD = E.double(), bE.double(), D.double(), bD.double()
    n = D.norm(dim=0)

    def formula(x):
        pre = (x * s_in) @ E.T + bE
        f = _relu(pre) * (pre * n > 0.2)
        return f, (f @ D.T + bD) / s_out

    return folder, formula


WRITERS = {
    "llamascope": llama_scope,
    "gemmascope": gemma_scope,
    "dl_AutoEncoder": dl_autoencoder,
    "dl_AutoEncoderNew": dl_autoencoder_new,
    "dl_AutoEncoderTopK": dl_topk,
    "dl_BatchTopKSAE": dl_batchtopk,
    "dl_MatryoshkaBatchTopKSAE": dl_matryoshka,
    "dl_JumpReluAutoEncoder": dl_jumprelu,
    "dl_GatedAutoEncoder": dl_gated,
    "saelens_gated": saelens_gated,
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_loads_to_the_documented_formula(tmp_path, name):
    folder, formula = WRITERS[name](tmp_path)
    sae = load_sae(folder)
    assert sae.cfg.hook_name == "blocks.1.hook_resid_post"
    x = torch.randn(400, D_IN, generator=torch.Generator().manual_seed(11))
    f_ref, x_hat_ref = formula(x.double())
    f, x_hat = sae.encode_decode(x)
    assert 0 < int((f_ref != 0).sum()) < f_ref.numel()  # the formula's gates are exercised
    assert torch.equal(f != 0, f_ref != 0)
    torch.testing.assert_close(f.double(), f_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x_hat.double(), x_hat_ref, rtol=1e-6, atol=1e-6)


def test_gemma_scope_params_file_and_hook_from_path(tmp_path):
    folder, _ = gemma_scope(tmp_path)
    sae = load_sae(folder / "params.npz")
    assert sae.cfg.source_format == "gemmascope" and sae.cfg.architecture == "jumprelu"
    assert "from the path" in sae.cfg.extra["hook_source"]
    mlp = tmp_path / "gemma-scope-9b-pt-mlp" / "layer_7" / "width_131k" / "average_l0_50"
    mlp.mkdir(parents=True)
    (mlp / "params.npz").write_bytes((folder / "params.npz").read_bytes())
    assert load_sae(mlp).cfg.hook_name == "blocks.7.hook_mlp_out"
    bare = tmp_path / "somewhere"
    bare.mkdir()
    (bare / "params.npz").write_bytes((folder / "params.npz").read_bytes())
    s = load_sae(bare)
    assert s.cfg.hook_name is None and s.cfg.hook_layer is None


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["gemmascope", "dl_BatchTopKSAE", "dl_GatedAutoEncoder", "saelens_gated", "llamascope"]
)
def test_quick_and_analyze_run_every_format(tiny_models, tiny_text_file, tmp_path, name):
    from analyze_support import ANALYSIS_OPTIONS

    from interplab.sae.analyzer import run_comprehensive_analysis

    folder, _ = WRITERS[name](tmp_path)
    r = quick_check(
        str(tiny_models["gpt2"]), folder, data=str(tiny_text_file), context_size=16, max_tokens=200
    )
    assert r["run"]["hook"] == "blocks.1.hook_resid_post"
    assert r["run"]["sae_format"] == load_sae(folder).cfg.source_format
    assert np.isfinite(r["ablation"]["loss_recovered"]) and r["sparsity"]["n_tokens"] == 200
    model, data, out = str(tiny_models["gpt2"]), str(tiny_text_file), tmp_path / "analysis"
    res = run_comprehensive_analysis(
        model, folder, None, None, data, 4, out, **ANALYSIS_OPTIONS, max_tokens=200
    )
    assert res.summary["hook"] == "blocks.1.hook_resid_post"
    assert res.summary["d_sae"] == D_SAE and res.summary["n_tokens"] == 200
    assert res.results["sae"]["source_format"] == r["run"]["sae_format"]


def test_bad_published_folders_one_line(tmp_path):
    bad = tmp_path / "gemma"
    bad.mkdir()
    np.savez(bad / "params.npz", W_enc=np.zeros((4, 8), np.float32), foo=np.zeros(3, np.float32))
    with pytest.raises(InterplabError, match=r"missing W_dec, b_enc, b_dec, threshold \(found: W_enc, foo\)"):
        load_sae(bad)
    folder, _ = dl_topk(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["trainer"]["dict_class"] = "FancySAE"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        InterplabError, match=r"unknown trainer.dict_class 'FancySAE'; known: AutoEncoder, .*GatedAutoEncoder"
    ):
        load_sae(folder)
    notsd = tmp_path / "notsd"
    notsd.mkdir()
    torch.save([torch.zeros(3)], notsd / "ae.pt")
    (notsd / "config.json").write_text(json.dumps({"trainer": _dl_trainer("AutoEncoder")}))
    with pytest.raises(InterplabError, match="expected a state dict"):
        load_sae(notsd)


@pytest.mark.slow
def test_path_without_layer_and_no_hook_is_one_line_exit_2(tmp_path, tiny_models):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "params.npz").write_bytes((gemma_scope(tmp_path / "g2")[0] / "params.npz").read_bytes())
    cmd = [
        sys.executable,
        "-m",
        "interplab",
        "sae",
        "quick",
        "--sae",
        str(bare),
        "--model",
        str(tiny_models["gpt2"]),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("[transformers]")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and "names no layer" in lines[0] and "--hook" in lines[0]


def test_gated_saved_and_read_by_saelens(tmp_path):
    """A gated SAE written by ``save_sae`` reads back in SAELens's ``GatedSAE`` with equal outputs."""
    sae_lens = pytest.importorskip("sae_lens")
    from interplab.sae.formats import save_sae

    folder, formula = saelens_gated(tmp_path)
    ours = load_sae(folder)
    saved = save_sae(ours, tmp_path / "resaved")
    theirs = sae_lens.SAE.load_from_disk(str(saved), device="cpu")
    assert theirs.cfg.architecture() == "gated"
    x = torch.randn(300, D_IN, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        f_theirs = theirs.encode(x)
        x_hat_theirs = theirs.decode(f_theirs)
    f_ref, x_hat_ref = formula(x.double())
    torch.testing.assert_close(f_theirs.double(), f_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_hat_theirs.double(), x_hat_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(load_sae(saved).encode_decode(x)[1], x_hat_theirs, rtol=1e-5, atol=1e-5)
