"""Fixtures for the sae tests: SAE factories and SAE folders written by hand in every format."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from interplab.sae.model import SAE, SAEConfig


def make_perfect_sae(d_in: int, hook_name: str | None = None) -> SAE:
    """ReLU SAE with W_enc = [I, −I], W_dec = [I; −I], zero biases: x̂ = ReLU(x) − ReLU(−x) = x."""
    eye = torch.eye(d_in)
    cfg = SAEConfig(d_in=d_in, d_sae=2 * d_in, architecture="standard", hook_name=hook_name)
    sae = SAE.from_weights(cfg, W_enc=torch.cat([eye, -eye], dim=1), W_dec=torch.cat([eye, -eye], dim=0))
    return sae.requires_grad_(False)


def make_random_weights(d_in: int, d_sae: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random SAE tensors (W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec, threshold)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(d_in, d_sae, generator=g) / d_in**0.5,
        "W_dec": torch.randn(d_sae, d_in, generator=g) / d_sae**0.5,
        "b_enc": torch.randn(d_sae, generator=g) * 0.1,
        "b_dec": torch.randn(d_in, generator=g) * 0.1,
        "threshold": torch.rand(d_sae, generator=g) * 0.2,
    }


@pytest.fixture
def perfect_sae() -> Callable[..., SAE]:
    """Factory: ``perfect_sae(d_in, hook_name=None)`` → the perfect-reconstruction SAE."""
    return make_perfect_sae


@pytest.fixture
def random_sae_weights() -> Callable[..., dict[str, torch.Tensor]]:
    """Factory: ``random_sae_weights(d_in, d_sae, seed=0)`` → dict of SAE tensors."""
    return make_random_weights


def write_saelens(folder: Path, w: dict[str, torch.Tensor], cfg: dict) -> Path:
    """SAELens v6 folder written by hand (cfg.json + sae_weights.safetensors)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in w.items()}, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


def write_sparsify(folder: Path, w: dict[str, torch.Tensor], k: int) -> Path:
    """sparsify hook-point folder (cfg.json + sae.safetensors with encoder.weight [d_sae, d_in])."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        "encoder.weight": w["W_enc"].T.contiguous(),
        "encoder.bias": w["b_enc"].contiguous(),
        "W_dec": w["W_dec"].contiguous(),
        "b_dec": w["b_dec"].contiguous(),
    }
    save_file(tensors, str(folder / "sae.safetensors"))
    d_in = w["W_enc"].shape[0]
    cfg = {
        "activation": "topk",
        "expansion_factor": 2,
        "normalize_decoder": True,
        "num_latents": w["W_enc"].shape[1],
        "k": k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": d_in,
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return folder


def write_export(folder: Path, w: dict[str, torch.Tensor], cfg: dict, history: list | None = None) -> Path:
    """Export folder (weights.pt + config.json [+ history.json])."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.clone() for k, v in w.items()}, folder / "weights.pt")
    (folder / "config.json").write_text(json.dumps(cfg))
    if history is not None:
        (folder / "history.json").write_text(json.dumps(history))
    return folder


@pytest.fixture
def sae_folders(tmp_path: Path) -> dict[str, Path]:
    """One small SAE folder per format (d_in = 32 to fit the tiny models, d_sae = 64), all from the
    same random weights: ``saelens`` (JumpReLU), ``saelens_topk``, ``saelens_legacy`` (ReLU, flat config),
    ``sparsify`` (TopK k=8), ``export`` (TopK k=8, with history.json)."""
    w = make_random_weights(32, 64, seed=1)
    base = {"d_in": 32, "d_sae": 64, "dtype": "float32", "device": "cpu", "normalize_activations": "none"}
    meta = {"model_name": "tiny", "hook_name": "blocks.1.hook_resid_post", "hook_layer": 1}
    return {
        "saelens": write_saelens(
            tmp_path / "saelens",
            w,
            {**base, "architecture": "jumprelu", "apply_b_dec_to_input": True, "metadata": meta},
        ),
        "saelens_topk": write_saelens(
            tmp_path / "saelens_topk",
            {k: v for k, v in w.items() if k != "threshold"},
            {**base, "architecture": "topk", "k": 8, "apply_b_dec_to_input": False, "metadata": meta},
        ),
        "saelens_legacy": write_saelens(
            tmp_path / "saelens_legacy",
            {k: v for k, v in w.items() if k != "threshold"},
            {
                **base,
                "hook_point": "blocks.0.hook_resid_pre",
                "hook_point_layer": 0,
                "activation_fn_str": "relu",
                "apply_b_dec_to_input": True,
            },
        ),
        "sparsify": write_sparsify(tmp_path / "layers.1", w, k=8),
        "export": write_export(
            tmp_path / "export",
            {k: v for k, v in w.items() if k != "threshold"},
            {
                "d_in": 32,
                "d_sae": 64,
                "k": 8,
                "sae_type": "topk",
                "hook_layer": 1,
                "hook_name": "hook_resid_post",
            },
            history=[{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}],
        ),
    }


@pytest.fixture
def perfect_sae_folder(tmp_path: Path) -> Path:
    """A SAELens folder holding the perfect-reconstruction SAE for the tiny models (d_in = 32)."""
    from interplab.sae.formats import save_sae

    return save_sae(make_perfect_sae(32, "blocks.1.hook_resid_post"), tmp_path / "perfect_sae")


@pytest.fixture
def tiny_text_file(tmp_path: Path, tiny_texts: list[str]) -> Path:
    """``tiny_texts`` as a JSON list file."""
    p = tmp_path / "texts.json"
    p.write_text(json.dumps(tiny_texts))
    return p


# ---- sae-analyze fixtures (owner: sae-analyze) ------------------------------------------------------
@pytest.fixture(scope="session")
def sae_analysis(
    tiny_models: dict[str, Path], tiny_texts: list[str], tmp_path_factory: pytest.TempPathFactory
):
    """One complete ``run_comprehensive_analysis`` on the tiny GPT-2 with a random 40-feature SAE
    (features 0..3 can never fire), shared by the analyze tests (read-only)."""
    from analyze_support import AnalysisSetup, run_analysis, write_sae, write_texts

    root = tmp_path_factory.mktemp("sae_analysis")
    sae = write_sae(root / "sae")
    data = write_texts(root / "texts.json", tiny_texts)
    out = root / "analysis"
    return AnalysisSetup(
        model=tiny_models["gpt2"],
        sae=sae,
        data=data,
        out=out,
        result=run_analysis(tiny_models["gpt2"], sae, data, out),
    )
