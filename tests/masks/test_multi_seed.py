"""``multi-seed``: the documented folder layout, metrics summary and error messages."""

from __future__ import annotations

import json

import pytest

from interplab.common.errors import InterplabError
from interplab.masks.multi_seed import multi_seed_analysis

FIGURES = ("spy_plot", "statistics", "tsne", "distance_heatmap")


def test_multi_seed_folder(save_matrix, random_mask, tmp_path) -> None:
    save_matrix(random_mask, rel="mats/wanda/layer1-mlp.down_proj.pt")
    out = tmp_path / "ms"
    summary = multi_seed_analysis(
        "wanda",
        1,
        "mlp.down_proj",
        tmp_path / "mats",
        seeds=2,
        n_similar=16,
        k_values=[2, 3],
        output_dir_path=out,
        null_samples=2,
    )
    runs = summary["runs"]
    assert [(r["seed"], r["k"]) for r in runs] == [(0, 2), (0, 3), (1, 2), (1, 3)]
    for r in runs:
        s, k, f = r["seed"], r["k"], r["feature_idx"]
        for name in FIGURES:
            base = out / f"seed_{s}" / f"k_{k}" / f"seed{s}_k{k}_feat{f}_{name}"
            assert base.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
            assert base.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
        assert len(r["neighbor_indices"]) == 16 and len(r["cluster_sizes"]) == k
    for name in ("summary_separation_ratios", "summary_distances", "hamming_distribution"):
        assert (out / "summary" / f"{name}.png").exists() and (out / "summary" / f"{name}.pdf").exists()
    data = json.loads((out / "summary" / "metrics_summary.json").read_text())
    assert set(data) >= {"matrix", "config", "summary", "runs", "whole_matrix"}
    assert set(data["summary"]) == {"2", "3"}
    sep2 = [r["separation_ratio"] for r in runs if r["k"] == 2]
    assert data["summary"]["2"]["separation_ratio"]["mean"] == pytest.approx(sum(sep2) / 2)
    assert "| 2 |" in (out / "summary" / "README.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "summary/metrics_summary.json" in manifest["files"]
    assert any(f.endswith("_tsne.pdf") for f in manifest["files"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sparsegpt", 1, "mlp.down_proj"), "unknown method 'sparsegpt'.*wanda"),
        (("wanda", 4, "mlp.down_proj"), "unknown layer 4.*layers present: 1, 2"),
        (
            ("wanda", 1, "self_attn.q_proj"),
            "unknown component 'self_attn.q_proj'.*mlp.down_proj, mlp.up_proj",
        ),
    ],
)
def test_unknown_matrix_lists_what_exists(save_matrix, random_mask, tmp_path, args, message) -> None:
    for rel in ("layer1-mlp.down_proj.pt", "layer1-mlp.up_proj.pt", "layer2-mlp.down_proj.pt"):
        save_matrix(random_mask, rel=f"mats/wanda/{rel}")
    with pytest.raises(InterplabError, match=message):
        multi_seed_analysis(
            *args, tmp_path / "mats", seeds=1, n_similar=8, k_values=[2], output_dir_path=tmp_path / "o"
        )
    assert not (tmp_path / "o").exists()


def test_bad_k_and_sizes(save_matrix, random_mask, tmp_path) -> None:
    save_matrix(random_mask, rel="mats/wanda/layer1-mlp.down_proj.pt")
    for kwargs, message in (
        ({"k_values": [1]}, "at least 2"),
        ({"k_values": [2, 20], "n_similar": 16}, "fewer than the 20 clusters"),
        ({"n_similar": 100}, "more than the 48 features"),
    ):
        args = {"seeds": 1, "n_similar": 8, "k_values": [2], **kwargs}
        with pytest.raises(InterplabError, match=message):
            multi_seed_analysis(
                "wanda", 1, "mlp.down_proj", tmp_path / "mats", output_dir_path=tmp_path / "o", **args
            )
    assert not (tmp_path / "o").exists()
