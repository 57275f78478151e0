"""``--component mlp.down_proj`` finds the same matrix role under another family's name."""

from __future__ import annotations

from interplab.masks.components import component_aliases
from interplab.masks.multi_seed import multi_seed_analysis


def test_down_proj_finds_minilm_output_dense(save_matrix, random_mask, tmp_path) -> None:
    save_matrix(random_mask, rel="mats/wanda/layer1-output.dense.pt")
    summary = multi_seed_analysis(
        "wanda", 1, "mlp.down_proj", tmp_path / "mats", seeds=1, n_similar=8, k_values=[2],
        output_dir_path=tmp_path / "ms", null_samples=0,
    )  # fmt: skip
    assert summary["matrix"]["name"] == "layer1-output.dense"
    assert "output.dense" in component_aliases("mlp.down_proj")
    assert "mlp.down_proj" in component_aliases("output.dense")
    assert component_aliases("made.up") == []
