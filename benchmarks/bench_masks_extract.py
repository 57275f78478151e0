"""Throughput of ``masks extract`` on a 2:4 compressed-tensors checkpoint against loading the dense
equivalent with ``safetensors``, in one run.

A synthetic Llama-shaped checkpoint (``--blocks`` blocks of q/k/v/o ``hidden×hidden`` and
gate/up/down ``hidden×inter`` matrices, bfloat16, 2:4 by magnitude) is written twice into a
temporary folder: dense (``model.safetensors``) and ``sparse-24-bitmask`` (written with our
``pack_mask``, the layout compressed-tensors documents: ``.shape``, ``.compressed`` [R, C/2],
``.bitmask`` little-endian bits). Timed (best of ``--repeats``):

- dense load: ``safetensors.torch.load_file`` of the dense checkpoint, every tensor converted to
  float32 (the baseline: what reading the masks of a dense checkpoint needs at least; without the
  conversion the load is a lazy memory map that touches nothing);
- decode: our reader decoding every 2:4 weight to a dense float32 matrix (no output);
- extract: the whole ``masks extract`` command (decode + write the float32 ``.pt`` files + report).

Throughput is the dense bf16 weight bytes (what the checkpoint represents) per second.

Run: ``.venv/bin/python benchmarks/bench_masks_extract.py`` (``--hidden``/``--inter``/``--blocks``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from interplab.common.timing import best_time
from interplab.masks import checkpoint_formats as cf
from interplab.masks.extract import extract_masks
from interplab.masks.mask_configs import ExtractConfig

COMPONENTS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
MLP = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def make_weights(hidden: int, inter: int, blocks: int) -> dict[str, torch.Tensor]:
    """2:4-pruned bf16 weights of a Llama-shaped model (largest two of every four kept)."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for i in range(blocks):
        shapes = {c: (hidden, hidden) for c in COMPONENTS}
        shapes.update(
            {
                "mlp.gate_proj": (inter, hidden),
                "mlp.up_proj": (inter, hidden),
                "mlp.down_proj": (hidden, inter),
            }
        )
        for comp, shape in shapes.items():
            w = torch.randn(shape, generator=gen)
            groups = w.abs().reshape(shape[0], -1, 4)
            keep = groups.argsort(dim=2)[:, :, 2:]
            mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, keep, True).reshape(shape)
            state[f"model.layers.{i}.{comp}.weight"] = (w * mask).to(torch.bfloat16)
    return state


def write_checkpoints(state: dict[str, torch.Tensor], root: Path) -> tuple[Path, Path]:
    dense, sparse = root / "dense", root / "sparse24"
    dense.mkdir()
    sparse.mkdir()
    save_file(state, str(dense / "model.safetensors"))
    compressed: dict[str, torch.Tensor] = {}
    for name, w in state.items():
        module = name[: -len(".weight")]
        mask = w != 0
        compressed[f"{module}.shape"] = torch.tensor(list(w.shape)).reshape(-1, 1)
        compressed[f"{module}.compressed"] = w[mask].reshape(w.shape[0], w.shape[1] // 2).contiguous()
        compressed[f"{module}.bitmask"] = torch.from_numpy(cf.pack_mask(mask.numpy()))
    save_file(compressed, str(sparse / "model.safetensors"))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "quantization_config": {
            "quant_method": "compressed-tensors",
            "sparsity_config": {
                "format": "sparse-24-bitmask",
                "sparsity_structure": "2:4",
                "targets": ["Linear"],
            },
        },
    }
    (sparse / "config.json").write_text(json.dumps(config))
    return dense, sparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--inter", type=int, default=2816)
    parser.add_argument("--blocks", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    state = make_weights(args.hidden, args.inter, args.blocks)
    dense_bytes = sum(w.numel() * w.element_size() for w in state.values())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dense, sparse = write_checkpoints(state, root)
        sparse_bytes = (sparse / "model.safetensors").stat().st_size

        def decode() -> None:
            names = cf.safetensors_index(sparse)
            entries = cf.find_block_matrices(names, cf.tensor_shapes(names), cf.SPARSE_24_BITMASK)
            for _entry, _decoded in cf.iter_matrices(entries, names, transpose=False):
                pass

        def dense_load() -> None:
            for tensor in load_file(str(dense / "model.safetensors")).values():
                tensor.float()

        t_dense = best_time(dense_load, args.repeats)
        t_decode = best_time(decode, args.repeats)
        t_extract = best_time(
            lambda: extract_masks(ExtractConfig(model_dir=sparse, out=root / "out", label="m")), args.repeats
        )
    mb = dense_bytes / 1e6
    print(
        f"{len(state)} matrices, {mb:.0f} MB dense bf16, {sparse_bytes / 1e6:.0f} MB compressed 2:4, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'step':<44} {'seconds':>8} {'MB/s':>8} {'x dense load':>13}")
    for label, t in (
        ("dense load (load_file + float32)", t_dense),
        ("decode 2:4 (our reader, no output)", t_decode),
        ("masks extract (decode + write .pt + report)", t_extract),
    ):
        print(f"{label:<44} {t:>8.3f} {mb / t:>8.0f} {t_dense / t:>13.2f}")


if __name__ == "__main__":
    main()
