"""``hamming`` / ``multi-exec`` results: JSON schema, values against brute force, files written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from interplab.common.errors import InterplabError
from interplab.masks.multi_exec import hamming_analysis, multi_exec_analysis

EXECUTION_KEYS = {
    "feature_idx",
    "neighbor_indices",
    "hamming_distances",
    "hamming_counts",
    "min_hamming",
    "max_hamming",
    "hamming_range",
    "mean_within",
    "mean_between",
    "separation_ratio",
    "separation_label",
    "inertia",
    "cluster_sizes",
    "cluster_balance",
    "cluster_labels",
    "cluster_hamming",
    "nn_hamming",
    "nn_index",
    "separation_z",
    "separation_percentile",
    "nn_z",
    "nn_percentile",
    "null_separation_mean",
    "null_nn_hamming_mean",
    "tile_shape",
    "tiles_total",
    "tiles_original",
    "tiles_clustered",
    "tile_reduction",
    "tiles_null_original",
    "tiles_null_clustered",
    "union_efficiency",
    "mean_union_efficiency",
    "null",
}


def assert_valid_figure(path) -> None:
    png, pdf = path.with_suffix(".png"), path.with_suffix(".pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_multi_exec_json_schema_and_values(save_matrix, random_mask, tmp_path) -> None:
    path = save_matrix(random_mask)
    out = tmp_path / "res" / "wanda_down.json"
    result = multi_exec_analysis(
        path, n_executions=3, n_features=10, n_clusters=3, seed=5, null_samples=3, output_json=out
    )
    data = json.loads(out.read_text())
    assert set(data) >= {"matrix", "config", "executions", "aggregate", "whole_matrix"}
    assert data["matrix"]["shape"] == [96, 48] and data["matrix"]["name"] == "layer1-mlp.down_proj"
    assert data["matrix"]["path"] == str(path)
    assert data["config"]["n_executions"] == 3 and data["config"]["n_clusters"] == 3
    feats = [e["feature_idx"] for e in data["executions"]]
    assert len(set(feats)) == 3
    for e in data["executions"]:
        assert set(e) >= EXECUTION_KEYS
        fi = e["feature_idx"]
        brute = (random_mask != random_mask[fi]).sum(axis=1)
        order = [fi, *[i for i in np.lexsort((np.arange(48), brute)) if i != fi][:9]]
        assert e["neighbor_indices"] == order
        assert e["hamming_counts"] == brute[order].tolist()
        assert e["hamming_distances"] == pytest.approx((brute[order] / 96).tolist())
        assert e["min_hamming"] == pytest.approx(brute[order[1:]].min() / 96)
        assert e["hamming_range"] == pytest.approx(e["max_hamming"] - e["min_hamming"])
        assert sum(e["cluster_sizes"]) == 10 and len(e["cluster_hamming"]) == 3
        assert len(e["null"]["separation_ratio"]["samples"]) == 3
    for key in ("separation_ratio", "mean_within", "tiles_original"):
        vals = [e[key] for e in data["executions"]]
        agg = data["aggregate"][key]
        assert agg["mean"] == pytest.approx(np.mean(vals)) and agg["std"] == pytest.approx(np.std(vals))
        assert agg["min"] == min(vals) and agg["max"] == max(vals)
    assert data["whole_matrix"]["n_pairs"] == 48 * 47 // 2
    assert_valid_figure(tmp_path / "res" / "wanda_down_hamming_distribution.png")
    assert (tmp_path / "res" / "wanda_down.md").read_text().startswith("# Mask structure")
    assert (
        json.loads((tmp_path / "res" / "wanda_down.manifest.json").read_text())["command"]
        == "masks multi-exec"
    )
    assert result["executions"][0]["feature_idx"] == feats[0]


def test_hamming_given_feature_and_rows_axis(save_matrix, random_mask) -> None:
    cols = hamming_analysis(
        save_matrix(random_mask), feature_idx=7, n_features=8, n_clusters=2, null_samples=0
    )
    rows = hamming_analysis(
        save_matrix(random_mask.T, rel="t.pt"),
        feature_idx=7,
        n_features=8,
        n_clusters=2,
        null_samples=0,
        axis="rows",
    )
    a, b = cols["executions"][0], rows["executions"][0]
    assert a["feature_idx"] == 7 and a["neighbor_indices"][0] == 7
    assert a["neighbor_indices"] == b["neighbor_indices"] and a["separation_ratio"] == b["separation_ratio"]
    assert a["null_samples"] == 0 and a["separation_z"] != a["separation_z"]  # NaN without a null model


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_features": 49}, "more than the 48 features"),
        ({"n_features": 3, "n_clusters": 4}, "fewer than the 4 clusters"),
        ({"n_clusters": 1}, "at least 2"),
        ({"feature_idx": 48, "n_features": 8}, "out of range"),
        ({"null_samples": 1}, "null-samples"),
    ],
)
def test_bad_input_writes_nothing(save_matrix, random_mask, tmp_path, kwargs, message) -> None:
    out = tmp_path / "out" / "r.json"
    with pytest.raises(InterplabError, match=message):
        hamming_analysis(save_matrix(random_mask), output_json=out, **kwargs)
    assert not (tmp_path / "out").exists()
