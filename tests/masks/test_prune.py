"""``prune_model`` / ``interplab masks prune`` end to end on tiny Llama, Qwen, GPT-2 and BERT models."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.masks.prune import prune_model

SMALL = {"nsamples": 8, "seqlen": 16, "eval_samples": 2, "batch_size": 4}
EXPECTED_COMPONENTS = {
    "llama": {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
    },
    "qwen": {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
    },
    "gpt2": {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"},
    "bert": {
        "attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense", "intermediate.dense", "output.dense",
    },
}  # fmt: skip
SHAPES = {  # [out, in] of some matrices of the tiny models (hidden 32, intermediate 64)
    "llama": {"self_attn.k_proj": [16, 32], "mlp.down_proj": [32, 64]},
    "gpt2": {"attn.c_attn": [96, 32], "mlp.c_proj": [32, 128]},
    "bert": {"intermediate.dense": [64, 32], "output.dense": [32, 64]},
}


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory: pytest.TempPathFactory, tiny_texts: list[str]) -> Path:
    path = tmp_path_factory.mktemp("prune_data") / "texts.json"
    path.write_text(json.dumps(tiny_texts), encoding="utf-8")
    return path


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("name", ["llama", "qwen", "gpt2", "bert"])
def test_wanda_outputs_on_tiny_models(
    name: str, tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path
) -> None:
    result = prune_model(
        tiny_models[name], out=tmp_path, method="wanda", sparsity=0.5, data=texts_file, **SMALL
    )
    folder = tmp_path / "wanda"
    assert result.out_dir == folder
    report = json.loads((folder / "pruning_report.json").read_text())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {m["component"] for m in report["matrices"]} == EXPECTED_COMPONENTS[name]
    assert sorted({m["layer"] for m in report["matrices"]}) == [0, 1]
    expected_files = {f"layer{m['layer']}-{m['component']}.pt" for m in report["matrices"]}
    reports = {"pruning_report.json", "pruning_report.md", "pruning_report.html"}
    assert expected_files | reports == set(manifest["files"])
    assert set(_files(folder)) == expected_files | reports | {"manifest.json"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    for m in report["matrices"]:
        assert set(m) == {
            "layer",
            "component",
            "shape",
            "sparsity",
            "relative_output_error",
            "seconds",
            "file",
        }
        tensor = torch.load(folder / m["file"], weights_only=True)
        assert tensor.dtype == torch.float32 and list(tensor.shape) == m["shape"]
        _rows, cols = m["shape"]
        zeros_per_row = (tensor == 0).sum(dim=1)
        assert bool((zeros_per_row == math.floor(cols * 0.5)).all())  # random init: no zeros before
        assert m["sparsity"] == pytest.approx(float((tensor == 0).float().mean()))
        assert 0 < m["relative_output_error"] < 1 and m["seconds"] >= 0
        if m["component"] in SHAPES.get(name, {}):
            assert m["shape"] == SHAPES[name][m["component"]]
    assert set(report) >= {
        "model",
        "method",
        "structure",
        "sparsity",
        "calibration",
        "matrices",
        "summary",
        "quality",
    }
    assert report["calibration"]["nsamples"] == 8 and report["calibration"]["seqlen"] == 16
    assert report["summary"]["overall_sparsity"] == pytest.approx(0.5)
    quality = report["quality"]
    assert -1 <= quality["hidden_cosine_mean"] <= 1 and quality["n_windows"] == 2
    if name == "bert":
        assert quality["kind"] == "hidden_cosine" and quality["perplexity_before"] is None
    else:
        assert quality["kind"] == "perplexity"
        assert quality["perplexity_before"] > 1 and quality["perplexity_after"] > 1
    assert "## Matrices" in (folder / "pruning_report.md").read_text()


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_sparsegpt_and_wanda_have_lower_output_error_than_magnitude(
    name: str, tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path
) -> None:
    errors = {
        method: prune_model(
            tiny_models[name], out=tmp_path, method=method, data=texts_file, **SMALL
        ).mean_relative_output_error
        for method in ("magnitude", "wanda", "sparsegpt")
    }
    assert errors["sparsegpt"] < errors["magnitude"]
    assert errors["wanda"] < errors["magnitude"]


@pytest.mark.parametrize("method", ["wanda", "sparsegpt", "magnitude"])
def test_n_of_m_on_llama(method: str, tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path) -> None:
    result = prune_model(tiny_models["llama"], out=tmp_path, method=method, structure="2:4", sparsity=0.3,
                         data=texts_file, **SMALL)  # fmt: skip
    assert result.sparsity == 0.5 and result.structure == "2:4"
    for m in result.matrices:
        tensor = torch.load(result.out_dir / m.file, weights_only=True)
        zeros = (tensor == 0).reshape(tensor.shape[0], -1, 4).sum(dim=2)
        assert bool((zeros == 2).all()) if method != "sparsegpt" else bool((zeros >= 2).all())


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_save_model_round_trips(
    name: str, tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = prune_model(tiny_models[name], out=tmp_path, method="sparsegpt", data=texts_file, save_model=True,
                         **SMALL)  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(result.out_dir / "model")
    AutoTokenizer.from_pretrained(result.out_dir / "model")
    blocks = model.model.layers if name == "llama" else model.transformer.h
    for m in result.matrices:
        weight = blocks[m.layer].get_submodule(m.component).weight.detach()
        if name == "gpt2":  # Conv1D keeps [in, out]
            weight = weight.T
        saved = torch.load(result.out_dir / m.file, weights_only=True)
        assert torch.equal(weight, saved)
        assert float((weight == 0).float().mean()) == pytest.approx(m.sparsity)
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert "model/config.json" in manifest["files"]


def test_saved_model_files_follow_the_umask(
    tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path
) -> None:
    old = os.umask(0o022)
    try:
        result = prune_model(tiny_models["llama"], out=tmp_path, method="magnitude", data=texts_file,
                             save_model=True, **SMALL)  # fmt: skip
    finally:
        os.umask(old)
    files = [p for p in (result.out_dir / "model").rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}


def test_minilm_on_builtin_docs(tmp_path: Path) -> None:
    result = prune_model(out=tmp_path, nsamples=4, seqlen=32, eval_samples=2)
    assert result.method == "wanda" and len(result.matrices) == 36
    report = json.loads((tmp_path / "wanda" / "pruning_report.json").read_text())
    assert report["calibration"]["data"] == "docs" and report["model"]["architecture"] == "BertModel"
    assert report["summary"]["overall_sparsity"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 0.0}, "strictly between 0 and 1"),
        ({"sparsity": 1.0}, "strictly between 0 and 1"),
        ({"structure": "4:2"}, "0 < N < M"),
        ({"structure": "2/4"}, "expected 'unstructured' or N:M"),
        ({"method": "obs"}, "expected one of: magnitude, wanda, sparsegpt"),
        ({"structure": "3:5"}, "not a multiple of 5"),
        ({"seqlen": 1000}, "accepts at most 128 positions"),
        ({"seqlen": 600, "nsamples": 1}, "accepts at most"),
    ],
)
def test_bad_arguments_write_nothing(
    kwargs: dict, message: str, tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = {**SMALL, **kwargs}
    with pytest.raises(InterplabError, match=message) as info:
        prune_model(tiny_models["llama"], out=out, data=texts_file, **args)
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_model_path_that_is_not_a_model(tmp_path: Path, texts_file: Path) -> None:
    not_model = tmp_path / "empty"
    not_model.mkdir()
    out = tmp_path / "out"
    with pytest.raises(InterplabError, match="not a model folder"):
        prune_model(not_model, out=out, data=texts_file, **SMALL)
    with pytest.raises(InterplabError, match="model path not found"):
        prune_model(tmp_path / "missing", out=out, data=texts_file, **SMALL)
    assert not out.exists()


def test_failure_keeps_previous_results(
    tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path
) -> None:
    prune_model(tiny_models["bert"], out=tmp_path, method="magnitude", data=texts_file, **SMALL)
    before = {p: p.read_bytes() for p in (tmp_path / "magnitude").iterdir()}
    short = tmp_path / "short.txt"
    short.write_text("w1 w2 w3\n", encoding="utf-8")
    with pytest.raises(InterplabError, match=r"only \d+ tokens"):
        prune_model(tiny_models["bert"], out=tmp_path, method="magnitude", data=short, **SMALL)
    assert {p: p.read_bytes() for p in (tmp_path / "magnitude").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["magnitude", "short.txt"]


def test_cli_prune(tiny_models: dict[str, Path], texts_file: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from interplab.cli import app

    args = ["masks", "prune", "--model", str(tiny_models["qwen"]), "--method", "sparsegpt", "--structure", "4:8",
            "--data", str(texts_file), "--nsamples", "8", "--seqlen", "16", "--eval-samples", "2",
            "--out", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "sparsegpt: 14 matrices" in result.output
    report = json.loads((tmp_path / "sparsegpt" / "pruning_report.json").read_text())
    assert report["structure"] == "4:8" and report["sparsity"] == 0.5


def test_cli_bad_input_is_one_line_and_exit_2(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "interplab", "masks", "prune", "--model", str(tiny_models["llama"]),
         "--sparsity", "1.5", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --sparsity 1.5: expected a fraction strictly between 0 and 1, e.g. 0.5"
    ]
    assert not out.exists()
