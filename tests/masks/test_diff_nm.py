"""``masks diff`` against set arithmetic done by hand, N:M distances against brute force over every
mask, and the mismatch errors."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.masks.diff import diff_command, diff_mask_sets
from interplab.masks.mask_configs import DiffConfig
from interplab.masks.nm import nm_compliance


def _write_set(folder: Path, masks: dict[str, np.ndarray], seed: int = 0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name, kept in masks.items():
        weight = torch.tensor(kept * (rng.random(kept.shape) + 0.5), dtype=torch.float32)
        torch.save(weight, folder / name)
    return folder


def test_nm_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    for n, m, cols in [(2, 4, 8), (1, 3, 6), (4, 8, 8), (2, 4, 6)]:
        compliant = []
        for bits in itertools.product([False, True], repeat=cols):
            row = np.array(bits)
            padded = np.pad(row, (0, -cols % m))
            if all(g.sum() <= m - n for g in padded.reshape(-1, m)):
                compliant.append(row)
        compliant = np.array(compliant)
        for _ in range(20):
            row = rng.random(cols) < rng.random()
            brute = int((compliant ^ row).sum(axis=1).min())
            groups = np.pad(row, (0, -cols % m)).reshape(-1, m)
            result = nm_compliance(row[None, :], n, m)
            assert result.distance == brute
            assert result.violating_groups == sum(int(g.sum() > m - n) for g in groups)


def test_diff_matches_set_arithmetic(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shapes = {
        "layer0-mlp.up_proj.pt": (6, 16),
        "layer0-self_attn.q_proj.pt": (8, 8),
        "layer1-mlp.up_proj.pt": (6, 16),
    }
    masks_a = {k: rng.random(s) < 0.5 for k, s in shapes.items()}
    masks_b = {
        k: v ^ (rng.random(v.shape) < p) for (k, v), p in zip(masks_a.items(), [0.05, 0.0, 0.4], strict=True)
    }
    a = _write_set(tmp_path / "a", masks_a)
    b = _write_set(tmp_path / "b", masks_b, seed=1)
    result = diff_mask_sets(a, b)
    assert [(m.layer, m.component) for m in result.matrices] == [
        (0, "mlp.up_proj"), (0, "self_attn.q_proj"), (1, "mlp.up_proj"),
    ]  # fmt: skip
    inter_all = union_all = 0
    for m in result.matrices:
        ka, kb = masks_a[f"layer{m.layer}-{m.component}.pt"], masks_b[f"layer{m.layer}-{m.component}.pt"]
        set_a = {(i, j) for i, j in zip(*np.nonzero(ka), strict=True)}
        set_b = {(i, j) for i, j in zip(*np.nonzero(kb), strict=True)}
        assert m.jaccard == pytest.approx(len(set_a & set_b) / len(set_a | set_b))
        per_row = [
            sum(ka[i, j] != kb[i, j] for j in range(ka.shape[1])) / ka.shape[1] for i in range(ka.shape[0])
        ]
        assert m.row_hamming_mean == pytest.approx(np.mean(per_row))
        assert m.row_hamming_max == pytest.approx(max(per_row))
        inter_all += len(set_a & set_b)
        union_all += len(set_a | set_b)
    assert result.overall_jaccard == pytest.approx(inter_all / union_all)
    assert result.ranked[0].layer == 1  # the most perturbed matrix comes first
    assert result.matrices[1].jaccard == 1.0

    out = tmp_path / "out"
    diff_command(DiffConfig(a=a, b=b, out=out))
    data = json.loads((out / "diff.json").read_text())
    assert data["most_different"][0]["component"] == "mlp.up_proj" and data["most_different"][0]["layer"] == 1
    for name in (
        "diff.parquet",
        "diff.csv",
        "diff.md",
        "jaccard_heatmap.png",
        "jaccard_heatmap.pdf",
        "manifest.json",
    ):
        assert (out / name).is_file(), name


def test_diff_mismatches_name_the_matrix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = _write_set(
        tmp_path / "a", {"layer0-fc.pt": rng.random((4, 8)) < 0.5, "layer1-fc.pt": rng.random((4, 8)) < 0.5}
    )
    b = _write_set(
        tmp_path / "b", {"layer0-fc.pt": rng.random((4, 8)) < 0.5, "layer1-fc.pt": rng.random((4, 4)) < 0.5}
    )
    c = _write_set(tmp_path / "c", {"layer0-fc.pt": rng.random((4, 8)) < 0.5})
    with pytest.raises(InterplabError, match=r"layer1-fc.pt: shape \[4, 8\] in .* but \[4, 4\]"):
        diff_mask_sets(a, b)
    with pytest.raises(InterplabError, match=r"has no layer1-fc.pt"):
        diff_mask_sets(a, c)
    cli = [sys.executable, "-m", "interplab", "masks", "diff", str(a), str(b), "--out", str(tmp_path / "o")]
    proc = subprocess.run(cli, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "layer1-fc.pt" in proc.stderr
    assert not (tmp_path / "o").exists()
