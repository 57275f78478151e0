"""``report``: comparative table over results, findings and Jaccard overlap between methods."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from interplab.common.errors import InterplabError
from interplab.masks.multi_exec import multi_exec_analysis
from interplab.masks.multi_seed import multi_seed_analysis
from interplab.masks.report import comparative_report, parse_matrix_path


def test_parse_matrix_path() -> None:
    assert parse_matrix_path("x/wanda/layer3-self_attn.q_proj.pt") == ("wanda", 3, "self_attn.q_proj")


def test_report_rows_findings_and_jaccard(save_matrix, planted_mask, random_mask, tmp_path) -> None:
    w = save_matrix(planted_mask, rel="mats/wanda/layer1-mlp.down_proj.pt")
    s = save_matrix(random_mask, rel="mats/sparsegpt/layer1-mlp.down_proj.pt")
    u = save_matrix(random_mask[::-1], rel="mats/wanda/layer1-mlp.up_proj.pt")
    res = tmp_path / "results"
    common = {"n_executions": 2, "n_features": 12, "n_clusters": 3, "null_samples": 2}
    multi_exec_analysis(w, output_json=res / "wanda_down.json", **common)
    multi_exec_analysis(s, output_json=res / "sparsegpt_down.json", **common)
    multi_exec_analysis(u, output_json=res / "wanda_up.json", **common)
    multi_seed_analysis(
        "wanda",
        1,
        "mlp.down_proj",
        tmp_path / "mats",
        seeds=1,
        n_similar=8,
        k_values=[2],
        output_dir_path=res / "ms",
        null_samples=0,
    )
    (res / "broken.json").write_text("{not json")
    out = tmp_path / "report"
    rep = comparative_report(res, out)
    rows = list(csv.DictReader((out / "comparative_report.csv").open()))
    assert len(rows) == 3 + 1  # three multi-exec results + one multi-seed result (one k)
    assert {r["method"] for r in rows} == {"wanda", "sparsegpt"}
    assert {r["component"] for r in rows} == {"mlp.down_proj", "mlp.up_proj"}
    assert [r["kind"] for r in rows].count("multi_seed") == 1
    # the overlap of kept positions between wanda and sparsegpt for layer 1 mlp.down_proj, by hand
    a, b = planted_mask.T, random_mask.T
    expected = (a & b).sum() / (a | b).sum()
    assert len(rep.overlaps) == 1
    assert rep.overlaps[0].jaccard == pytest.approx(expected)
    pa, pb = a.mean(), b.mean()
    assert rep.overlaps[0].expected_independent == pytest.approx(pa * pb / (pa + pb - pa * pb))
    md = (out / "comparative_report.md").read_text()
    assert "### By projection type (component)" in md and "### By method" in md
    assert "**mlp.up_proj**" in md and "**sparsegpt**" in md
    assert "Jaccard" in md and "broken.json" in md
    assert not (res / "comparative_report.md").exists()
    by_source = {r["source"]: r for r in rows}
    wd = json.loads((res / "wanda_down.json").read_text())
    assert float(by_source["wanda_down.json"]["separation_ratio"]) == pytest.approx(
        np.mean([e["separation_ratio"] for e in wd["executions"]])
    )


def test_report_errors(tmp_path) -> None:
    with pytest.raises(InterplabError, match="results folder not found"):
        comparative_report(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "other.json").write_text('{"a": 1}')
    with pytest.raises(InterplabError, match="no hamming, multi-exec or multi-seed result"):
        comparative_report(tmp_path / "empty")
    assert not (tmp_path / "empty" / "comparative_report.md").exists()
