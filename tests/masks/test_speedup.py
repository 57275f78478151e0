"""``masks speedup``: roofline formulas against a hand calculation, tile counts against brute force,
the permutation search on a planted (hidden) block structure against the null model, and the
command end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from interplab.masks.mask_configs import SpeedupConfig
from interplab.masks.permute import permutation_search
from interplab.masks.roofline import Machine, MaskCounts, format_cost, speedups
from interplab.masks.speedup import matrix_structure, speedup_command
from interplab.masks.tiles import count_nonempty_tiles

TOY = Machine("toy", tensor_flops=100.0, simt_flops=10.0, bandwidth=50.0, value_bytes=2)


def test_roofline_hand_calculation_24_mask() -> None:
    kept = np.zeros((32, 32), dtype=bool)
    kept[:, 0::4] = kept[:, 1::4] = True  # 2:4, nnz 512
    c = MaskCounts.of(kept)
    assert (c.nnz, c.blocks16, c.blocks32, c.tiles, c.is_24) == (512, 4, 1, 8, True)
    b = 4
    io = 2 * 32 * b + 2 * 32 * b  # 512
    dense = format_cost("dense", c, b, TOY)
    assert dense.flops == 2 * 1024 * 4 and dense.bytes == 2 * 1024 + io
    assert dense.seconds == pytest.approx(8192 / 100)  # compute-bound: 81.92 vs 2560/50 = 51.2
    sparse24 = format_cost("2:4", c, b, TOY)
    assert sparse24.flops == 4096 and sparse24.bytes == 1024 + 128 + io
    assert sparse24.seconds == pytest.approx(40.96)
    csr = format_cost("csr", c, b, TOY)
    assert csr.bytes == 6 * 512 + 4 * 33 + io and csr.seconds == pytest.approx(4096 / 10)
    tiled = format_cost("tiled", c, b, TOY)  # 2 × 4 tiles of 16×8, all non-empty
    assert tiled.flops == 2 * 8 * 128 * 4 and tiled.bytes == 2 * 512 + 8 * 128 / 8 + 4 * 8 + io
    rows = {r["format"]: r for r in speedups(c, TOY, (4,))}
    assert rows["2:4"]["speedup"] == pytest.approx(2.0)
    assert rows["csr"]["speedup"] == pytest.approx(81.92 / 409.6)
    assert rows["bsr16"]["speedup"] == pytest.approx(1.0)


def test_roofline_hand_calculation_block_mask() -> None:
    kept = np.zeros((32, 32), dtype=bool)
    kept[:16, :16] = True  # one dense 16×16 block
    c = MaskCounts.of(kept)
    assert (c.nnz, c.blocks16, c.blocks32, c.tiles, c.is_24) == (256, 1, 1, 2, False)
    assert format_cost("2:4", c, 4, TOY) is None
    bsr = format_cost("bsr16", c, 4, TOY)
    # FLOPs 2·256·4 = 2048 → 20.48; bytes 2·256 + 4·1 + 4·3 + 512 = 1040 → 20.8 (memory-bound)
    assert bsr.bytes == 1040 and bsr.seconds == pytest.approx(20.8) and bsr.bound == "memory"
    rows = {r["format"]: r for r in speedups(c, TOY, (4,))}
    assert rows["bsr16"]["speedup"] == pytest.approx(81.92 / 20.8)
    assert rows["tiled"]["speedup"] == pytest.approx(81.92 / 21.28)  # 2·256 + 2·128/8 + 4·2 + 512 = 1064
    assert rows["2:4"]["speedup"] is None


def _brute_tiles(kept: np.ndarray, tr: int, tc: int) -> int:
    count = 0
    for i in range(0, kept.shape[0], tr):
        for j in range(0, kept.shape[1], tc):
            count += bool(kept[i : i + tr, j : j + tc].any())
    return count


@pytest.mark.parametrize("tile", [(16, 8), (16, 16), (32, 32)])
def test_tile_counts_match_brute_force(tile: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    for density in (0.001, 0.01, 0.05):
        kept = rng.random((70, 90)) < density
        assert count_nonempty_tiles(kept, tile) == _brute_tiles(kept, *tile)
    row = matrix_structure(kept)
    assert row[f"tiles{tile[0]}x{tile[1]}_nonempty"] == _brute_tiles(kept, *tile)


def test_permutation_search_recovers_hidden_blocks() -> None:
    rng = np.random.default_rng(1)
    planted = np.zeros((64, 64), dtype=bool)
    for k in range(4):
        planted[16 * k : 16 * k + 16, 16 * k : 16 * k + 16] = rng.random((16, 16)) < 0.6
    hidden = planted[rng.permutation(64)][:, rng.permutation(64)]
    result = permutation_search(hidden, tile=(16, 8), rounds=3)
    best_possible = count_nonempty_tiles(planted, (16, 8))  # 8 of 32
    assert result.original > 2 * best_possible
    assert result.searched == best_possible
    assert sorted(result.row_order) == list(range(64)) and sorted(result.col_order) == list(range(64))
    assert count_nonempty_tiles(hidden[result.row_order][:, result.col_order], (16, 8)) == result.searched
    assert result.null_searched > result.searched  # the null model has no block structure to find


def test_speedup_command_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    masks = tmp_path / "wanda"
    masks.mkdir()
    for name, shape in {"layer0-mlp.up_proj.pt": (32, 64), "layer1-mlp.up_proj.pt": (32, 64)}.items():
        w = rng.standard_normal(shape) * (rng.random(shape) < 0.3)
        torch.save(torch.tensor(w, dtype=torch.float32), masks / name)
    result = speedup_command(
        SpeedupConfig(masks_dir=masks, machines="a100,h100", batch_sizes="1,4096", rounds=1)
    )
    out = masks / "speedup"
    assert result.out_dir == out
    data = json.loads((out / "speedup.json").read_text())
    assert set(data["median_speedup"]) == {"A100-SXM4-80GB", "H100-SXM5-80GB"}
    assert data["median_speedup"]["A100-SXM4-80GB"]["2:4"]["1"] is None  # random masks are not 2:4
    for name in (
        "matrices.parquet",
        "roofline.parquet",
        "speedup.md",
        "roofline_speedup.png",
        "manifest.json",
    ):
        assert (out / name).is_file(), name
    assert len(result.roofline) == 2 * 2 * 2 * 6
    proc = subprocess.run(
        [sys.executable, "-m", "interplab", "masks", "speedup", str(masks), "--machines", "tpu"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "'tpu'" in proc.stderr and "a100" in proc.stderr
