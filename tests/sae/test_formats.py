"""Loaders: every format written by hand from the same weights loads to the same SAE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.sae.formats import load_history, load_sae, save_sae
from interplab.sae.model import SAE, SAEConfig
from tests.sae.conftest import make_random_weights, write_export, write_saelens, write_sparsify


def _x(n=40, d=32, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * 2


def _ref_topk(x, w, k, apply_b_dec):
    n = {kk: v.double().numpy() for kk, v in w.items()}
    xi = x.double().numpy()
    pre = (xi - n["b_dec"] if apply_b_dec else xi) @ n["W_enc"] + n["b_enc"]
    f = np.zeros_like(pre)
    idx = np.argsort(-pre, axis=1)[:, :k]
    rows = np.arange(len(pre))[:, None]
    f[rows, idx] = np.maximum(pre[rows, idx], 0)
    return f, f @ n["W_dec"] + n["b_dec"]


def test_each_format_loads_to_the_formula(sae_folders):
    w = make_random_weights(32, 64, seed=1)
    n = {k: v.double().numpy() for k, v in w.items()}
    x = _x()
    xi = x.double().numpy()

    jr = load_sae(sae_folders["saelens"])
    assert (jr.cfg.architecture, jr.cfg.source_format, jr.cfg.hook_name, jr.cfg.hook_layer) == (
        "jumprelu",
        "saelens",
        "blocks.1.hook_resid_post",
        1,
    )
    pre = (xi - n["b_dec"]) @ n["W_enc"] + n["b_enc"]
    f_ref = pre * (pre > n["threshold"])
    np.testing.assert_allclose(jr.encode(x).numpy(), f_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jr(x).numpy(), f_ref @ n["W_dec"] + n["b_dec"], rtol=1e-4, atol=1e-5)

    legacy = load_sae(sae_folders["saelens_legacy"])
    assert (legacy.cfg.architecture, legacy.cfg.source_format) == ("standard", "saelens-legacy")
    assert (legacy.cfg.hook_name, legacy.cfg.hook_layer) == ("blocks.0.hook_resid_pre", 0)
    f_ref = np.maximum(pre, 0)
    np.testing.assert_allclose(legacy.encode(x).numpy(), f_ref, rtol=1e-5, atol=1e-5)

    topk = load_sae(sae_folders["saelens_topk"])
    f_ref, x_ref = _ref_topk(x, w, 8, apply_b_dec=False)
    assert topk.cfg.k == 8 and not topk.cfg.apply_b_dec_to_input
    np.testing.assert_allclose(topk.encode(x).numpy(), f_ref, rtol=1e-5, atol=1e-5)

    # sparsify and the export folder hold the same TopK SAE (b_dec subtracted from the input)
    f_ref, x_ref = _ref_topk(x, w, 8, apply_b_dec=True)
    for name in ("sparsify", "export"):
        sae = load_sae(sae_folders[name])
        assert sae.cfg.architecture == "topk" and sae.cfg.k == 8, name
        assert sae.cfg.hook_name == "blocks.1.hook_resid_post" and sae.cfg.hook_layer == 1, name
        np.testing.assert_allclose(sae.encode(x).numpy(), f_ref, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(sae(x).numpy(), x_ref, rtol=1e-4, atol=1e-5, err_msg=name)
    assert load_sae(sae_folders["sparsify"]).cfg.source_format == "sparsify"


def test_save_round_trip_every_format(sae_folders, tmp_path):
    x = _x(seed=3)
    for name, folder in sae_folders.items():
        sae = load_sae(folder)
        back = load_sae(save_sae(sae, tmp_path / f"re_{name}", history=[{"step": 1}]))
        assert back.cfg.architecture == sae.cfg.architecture and back.cfg.k == sae.cfg.k
        assert back.cfg.hook_name == sae.cfg.hook_name
        assert back.cfg.source_format == "saelens"
        torch.testing.assert_close(back.encode(x), sae.encode(x))
        torch.testing.assert_close(back(x), sae(x))
        cfg = json.loads((tmp_path / f"re_{name}" / "cfg.json").read_text())
        assert cfg["metadata"]["hook_name"] == sae.cfg.hook_name
        assert ("k" in cfg) == (sae.cfg.architecture == "topk")
        assert load_history(tmp_path / f"re_{name}") == [{"step": 1}]


def test_export_variants(tmp_path):
    w = make_random_weights(32, 64, seed=2)
    # nn.Linear layout (W_enc stored [d_sae, d_in]), nested state dict, batchtopk with a scalar threshold
    folder = write_export(
        tmp_path / "e",
        {"W_enc": w["W_enc"].T, "W_dec": w["W_dec"], "b_enc": w["b_enc"], "b_dec": w["b_dec"]},
        {
            "d_in": 32,
            "d_sae": 64,
            "architecture": "batchtopk",
            "threshold": 0.05,
            "apply_b_dec_to_input": False,
        },
    )
    sae = load_sae(folder)
    assert sae.cfg.architecture == "jumprelu"
    torch.testing.assert_close(sae.threshold, torch.full((64,), 0.05))
    torch.testing.assert_close(sae.W_enc, w["W_enc"])
    wrapped = tmp_path / "wrapped"
    wrapped.mkdir()
    torch.save(
        {"state_dict": {f"sae.{k}": v for k, v in w.items() if k != "threshold"}}, wrapped / "weights.pt"
    )
    (wrapped / "config.json").write_text(json.dumps({"d_in": 32, "d_sae": 64, "sae_type": "relu"}))
    assert load_sae(wrapped).cfg.architecture == "standard"
    assert load_history(tmp_path / "nothing") is None


def test_dtype_on_request(sae_folders):
    sae = load_sae(sae_folders["saelens"], dtype="bfloat16")
    assert sae.W_enc.dtype == torch.bfloat16
    assert load_sae(sae_folders["saelens"]).W_enc.dtype == torch.float32
    with pytest.raises(InterplabError, match="unknown dtype 'int3'"):
        load_sae(sae_folders["saelens"], dtype="int3")


def test_log_threshold_and_expected_average_scaling(tmp_path):
    w = make_random_weights(32, 64, seed=4)
    tensors = {k: v for k, v in w.items() if k != "threshold"}
    tensors["log_threshold"] = torch.log(w["threshold"])
    cfg = {
        "d_in": 32,
        "d_sae": 64,
        "architecture": "jumprelu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "expected_average_only_in",
        "norm_scaling_factor": 2.5,
        "metadata": {"hook_name": "blocks.0.hook_mlp_out"},
    }
    sae = load_sae(write_saelens(tmp_path / "s", tensors, cfg))
    torch.testing.assert_close(sae.threshold, w["threshold"])
    x = _x(seed=5)
    # the original SAE sees x·s; the loaded one folds s in and takes raw x
    orig = SAE.from_weights(
        SAEConfig(d_in=32, d_sae=64, architecture="jumprelu", apply_b_dec_to_input=True), **w
    )
    torch.testing.assert_close(sae.encode(x), orig.encode(x * 2.5).detach(), rtol=1e-4, atol=1e-5)
    assert sae.cfg.normalize_activations == "none"


def test_missing_and_unrecognised_folders(tmp_path, sae_folders):
    with pytest.raises(InterplabError, match="SAE folder not found"):
        load_sae(tmp_path / "nope")
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "model.bin").write_bytes(b"x")
    (odd / "notes.txt").write_text("hi")
    with pytest.raises(InterplabError) as exc:
        load_sae(odd)
    msg = str(exc.value)
    assert "found: model.bin, notes.txt" in msg
    assert "cfg.json + sae_weights.safetensors" in msg and "weights.pt + config.json" in msg
    assert "cfg.json + sae.safetensors" in msg
    # a sparsify checkpoint root with hook-point sub-folders: the error names them
    with pytest.raises(InterplabError, match=r"pass one of them\): layers\.1"):
        load_sae(sae_folders["sparsify"].parent)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cfg.json").write_text("{not json")
    (bad / "sae_weights.safetensors").write_bytes(b"junk")
    with pytest.raises(InterplabError, match=r"cfg.json: malformed JSON at line 1"):
        load_sae(bad)
    (bad / "cfg.json").write_text(json.dumps({"d_in": 32, "d_sae": 64, "architecture": "standard"}))
    with pytest.raises(InterplabError, match="not a readable safetensors file"):
        load_sae(bad)
    unknown = write_saelens(
        tmp_path / "g",
        {"W_enc": torch.zeros(2, 3)},
        {"d_in": 2, "d_sae": 3, "architecture": "matching_pursuit"},
    )
    with pytest.raises(InterplabError, match="unsupported SAE architecture architecture='matching_pursuit'"):
        load_sae(unknown)


def test_sparsify_transcoder_is_a_transcoder(tmp_path):
    w = make_random_weights(32, 64)
    folder = write_sparsify(tmp_path / "layers.0.mlp", w, k=4)
    assert load_sae(folder).cfg.hook_name == "blocks.0.hook_mlp_out"
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["transcode"] = True
    (folder / "cfg.json").write_text(json.dumps(cfg))
    sae = load_sae(folder)  # transcode=true: the MLP's input → its output
    assert sae.cfg.hook_name == "blocks.0.hook_mlp_in" and sae.cfg.hook_name_out == "blocks.0.hook_mlp_out"
    assert sae.cfg.source_format == "sparsify-transcoder" and not sae.cfg.apply_b_dec_to_input
