"""``masks extract``: checkpoints written by the ``compressed-tensors`` package itself (sparse-bitmask
and sparse-24-bitmask, single file and sharded) and by ``masks prune --save-model`` decode to the
exact masks and weights that went in; bad checkpoints fail with one line and write nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from interplab.common.errors import InterplabError
from interplab.masks.checkpoint_formats import pack_mask, unpack_mask
from interplab.masks.extract import extract_masks
from interplab.masks.mask_configs import ExtractConfig

ct = pytest.importorskip("compressed_tensors.compressors")
ct_config = pytest.importorskip("compressed_tensors.config")


def _masked_state(folder: Path, fmt: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The tiny model's weights with every block weight pruned to a known mask (2:4 or random)."""
    state = load_file(str(folder / "model.safetensors"))
    gen = torch.Generator().manual_seed(seed)
    for name, value in state.items():
        if ".layers." in name and name.endswith(".weight") and value.ndim == 2:
            if fmt == "sparse-24-bitmask":
                groups = torch.rand(value.shape[0], value.shape[1] // 4, 4, generator=gen)
                keep = groups.argsort(dim=2)[:, :, 2:]
                mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, keep, True).reshape(value.shape)
            else:
                mask = torch.rand(value.shape, generator=gen) < 0.3
            state[name] = value * mask + mask * 1e-3 * torch.sign(value)  # no kept value is exactly 0
    return state


def _write_compressed(src: Path, dst: Path, fmt: str, shards: int = 1) -> dict[str, torch.Tensor]:
    """Copy ``src`` to ``dst`` with its block weights compressed by compressed-tensors."""
    shutil.copytree(src, dst)
    (dst / "model.safetensors").unlink()
    dense = _masked_state(src, fmt)
    config_cls = ct_config.BitmaskConfig if fmt == "sparse-bitmask" else ct_config.Sparse24BitMaskConfig
    sparse_config = config_cls()
    compressor = ct.BaseCompressor.load_from_registry(fmt, config=sparse_config)
    targets = {n for n in dense if ".layers." in n and n.endswith(".weight") and dense[n].ndim == 2}
    compressed = compressor.compress(dense, compression_targets={n[: -len(".weight")] for n in targets})
    compressed = {k: v.contiguous() for k, v in compressed.items()}
    keys = sorted(compressed)
    if shards == 1:
        save_file(compressed, str(dst / "model.safetensors"))
    else:
        weight_map = {}
        for i in range(shards):
            part = keys[i::shards]
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: compressed[k] for k in part}, str(dst / fname))
            weight_map.update(dict.fromkeys(part, fname))
        (dst / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map})
        )
    config = json.loads((dst / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "compressed-tensors",
        "format": fmt,
        "sparsity_config": sparse_config.model_dump() | {"targets": ["Linear"], "ignore": ["lm_head"]},
    }
    (dst / "config.json").write_text(json.dumps(config))
    return {n: dense[n] for n in targets}


def _component(name: str) -> tuple[int, str]:
    rest = name.split(".layers.", 1)[1][: -len(".weight")]
    layer, component = rest.split(".", 1)
    return int(layer), component


@pytest.mark.parametrize(
    ("fmt", "shards"), [("sparse-bitmask", 1), ("sparse-24-bitmask", 1), ("sparse-bitmask", 2)]
)
def test_compressed_checkpoint_decodes_to_the_masks_encoded(
    tiny_models: dict[str, Path], tmp_path: Path, fmt: str, shards: int
) -> None:
    ckpt = tmp_path / "published"
    expected = _write_compressed(tiny_models["llama"], ckpt, fmt, shards)
    result = extract_masks(ExtractConfig(model_dir=ckpt, out=tmp_path / "masks", label="pub"))
    folder = tmp_path / "masks" / "pub"
    assert result.out_dir == folder and result.format == fmt
    assert len(result.matrices) == len(expected) == 14
    for name, weight in expected.items():
        layer, component = _component(name)
        got = torch.load(folder / f"layer{layer}-{component}.pt", weights_only=True)
        assert torch.equal(got, weight.float()), name
        assert torch.equal(got != 0, weight != 0)
    report = json.loads((folder / "pruning_report.json").read_text())
    assert report["command"] == "masks extract" and report["method"] == "pub"
    assert report["structure"] == ("2:4" if fmt == "sparse-24-bitmask" else "unstructured")
    zeros = sum(int((w == 0).sum()) for w in expected.values())
    total = sum(w.numel() for w in expected.values())
    assert report["summary"]["overall_sparsity"] == pytest.approx(zeros / total)
    assert all(m["format"] == fmt and m["stored_zeros"] == 0 for m in report["matrices"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert "pruning_report.json" in manifest["files"]


def test_pack_unpack_match_numpy_little_bit_order() -> None:
    rng = np.random.default_rng(0)
    mask = rng.random((5, 19)) < 0.4
    packed = pack_mask(mask)
    assert packed.shape == (5, 3)
    # bit b of byte j is column 8j + b, computed by hand
    for r in range(5):
        for c in range(19):
            assert bool((packed[r, c // 8] >> (c % 8)) & 1) == mask[r, c]
    assert np.array_equal(unpack_mask(packed, (5, 19), "w"), mask)


def test_prune_save_model_round_trips(
    tiny_models: dict[str, Path], tiny_texts: list[str], tmp_path: Path
) -> None:
    from interplab.masks.prune import prune_model

    data = tmp_path / "texts.json"
    data.write_text(json.dumps(tiny_texts))
    for name in ("llama", "gpt2"):
        out = tmp_path / name
        prune_model(
            tiny_models[name], out=out, method="magnitude", data=data, save_model=True,
            nsamples=4, seqlen=16, eval_samples=2, batch_size=4,
        )  # fmt: skip
        extract_masks(ExtractConfig(model_dir=out / "magnitude" / "model", out=out, label="again"))
        pruned = sorted((out / "magnitude").glob("layer*.pt"))
        assert pruned and sorted(p.name for p in (out / "again").glob("layer*.pt")) == [
            p.name for p in pruned
        ]
        for path in pruned:
            a = torch.load(path, weights_only=True)
            b = torch.load(out / "again" / path.name, weights_only=True)
            assert torch.equal(a, b), (name, path.name)


def _error(config: ExtractConfig) -> str:
    with pytest.raises(InterplabError) as info:
        extract_masks(config)
    return str(info.value)


def test_bad_checkpoints_fail_with_one_line_and_write_nothing(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    out = tmp_path / "out"
    assert "no safetensors weights" in _error(ExtractConfig(model_dir=empty, out=out))

    unknown = tmp_path / "unknown"
    shutil.copytree(tiny_models["llama"], unknown)
    config = json.loads((unknown / "config.json").read_text())
    config["quantization_config"] = {"sparsity_config": {"format": "marlin-24"}}
    (unknown / "config.json").write_text(json.dumps(config))
    msg = _error(ExtractConfig(model_dir=unknown, out=out))
    assert "'marlin-24'" in msg and "sparse-bitmask" in msg and "sparse-24-bitmask" in msg

    bad = tmp_path / "bad"
    _write_compressed(tiny_models["llama"], bad, "sparse-bitmask")
    state = load_file(str(bad / "model.safetensors"))
    key = "model.layers.1.mlp.up_proj.bitmask"
    state[key] = state[key][:, :-1].contiguous()
    save_file(state, str(bad / "model.safetensors"))
    msg = _error(ExtractConfig(model_dir=bad, out=out))
    assert "model.layers.1.mlp.up_proj.bitmask" in msg and "does not match" in msg
    assert not out.exists()


def test_cli_extract_exit_codes(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    _write_compressed(tiny_models["llama"], ckpt, "sparse-24-bitmask")
    from typer.testing import CliRunner

    from interplab.cli import app

    ok = CliRunner().invoke(app, ["masks", "extract", str(ckpt), "--out", str(tmp_path / "o")])
    assert ok.exit_code == 0, ok.output
    assert "ckpt: 14 matrices (sparse-24-bitmask, 2:4)" in ok.output
    assert (tmp_path / "o" / "ckpt" / "layer0-mlp.down_proj.pt").is_file()
    run = [sys.executable, "-m", "interplab", "masks", "extract"]
    bad = subprocess.run(
        [*run, str(tmp_path / "nope"), "--out", str(tmp_path / "o2")], capture_output=True, text=True
    )
    assert (
        bad.returncode == 2 and bad.stderr.startswith("error:") and len(bad.stderr.strip().splitlines()) == 1
    )
    assert not (tmp_path / "o2").exists()
