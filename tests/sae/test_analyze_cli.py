"""``interplab sae analyze`` and ``interplab sae demo`` end to end, as users run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from analyze_support import LAYER, write_sae


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "INTERPLAB_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "interplab", "sae", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_analyze_cli_end_to_end(tiny_models, tiny_texts, tmp_path) -> None:
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in tiny_texts[:12]))
    sae = write_sae(tmp_path / "sae")
    out = tmp_path / "analysis"
    args = [
        "analyze",
        "--model",
        str(tiny_models["gpt2"]),
        "--sae",
        str(sae),
        "--layer",
        str(LAYER),
        "--hook",
        "hook_resid_post",
        "--data",
        str(data),
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--context-size",
        "16",
        "--top-k",
        "4",
        "--similarity",
        "dot",
        "--cooccurrence",
        "phi,jaccard",
        "--ablation-tokens",
        "32",
        "--ablation-features",
        "2",
        "--max-tokens",
        "300",
    ]
    proc = _run(*args)
    assert proc.returncode == 0, proc.stderr
    assert "explained variance" in proc.stdout
    summary = json.loads(next(out.glob("SUMMARY_*.json")).read_text())
    assert summary["n_tokens"] == 300 and summary["similarity_metric"] == "dot"
    assert set(summary["cooccurrence_metrics"]) == {"phi", "jaccard"}
    for rel in summary["files"].values():
        assert (out / rel).exists()
    lines = next((out / "results").glob("feature_summaries_*.jsonl")).read_text().splitlines()
    assert len(lines) == summary["d_sae"]


def test_analyze_cli_bad_input_one_line(tiny_models, tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "w1 w2"}\n{"text": \n')
    sae = write_sae(tmp_path / "sae")
    out = tmp_path / "analysis"
    proc = _run(
        "analyze",
        "--model",
        str(tiny_models["gpt2"]),
        "--sae",
        str(sae),
        "--layer",
        "0",
        "--hook",
        "hook_resid_post",
        "--data",
        str(bad),
        "--out",
        str(out),
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("error: ")
        and "bad.jsonl" in lines[0]
        and "line 2" in lines[0]
    )
    assert not out.exists()


@pytest.mark.slow
def test_demo_cli_small(tmp_path) -> None:
    """The demo command on minilm with a tiny budget (the full-size demo is timed in docs)."""
    out = tmp_path / "demo"
    proc = _run(
        "demo", "--out", str(out), "--max-tokens", "600", "--d-sae", "64", "--k", "8", "--steps", "20"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(next((out / "analysis").glob("SUMMARY_*.json")).read_text())
    assert summary["model"] == "minilm" and summary["hook"] == "blocks.3.hook_resid_post"
    assert summary["ablation_substitute"]  # minilm has no LM head
    first = json.loads(
        next((out / "analysis" / "results").glob("feature_summaries_*.jsonl")).open().readline()
    )
    assert first["logit_effects"] is None
    assert (out / "analysis" / "plots" / "training_history.png").exists()
    # a re-run reuses the trained SAE and the finished database
    proc = _run(
        "demo", "--out", str(out), "--max-tokens", "600", "--d-sae", "64", "--k", "8", "--steps", "20"
    )
    assert proc.returncode == 0, proc.stderr
    summaries = sorted((out / "analysis").glob("SUMMARY_*.json"))
    assert json.loads(summaries[-1].read_text())["resumed_shards"] >= 1
