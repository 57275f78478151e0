"""Tests of the demo orchestration: finished steps are reused, and the index page escapes text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interplab import demo
from interplab.demo_page import fmt, render_index


def test_run_step_reuses_finished_step(tmp_path: Path) -> None:
    calls: list[int] = []

    def step() -> tuple[dict, dict]:
        calls.append(1)
        (tmp_path / "a").mkdir(exist_ok=True)
        (tmp_path / "a" / "b.md").write_text("# b")  # a reused step's outputs must exist
        return {"x": 1.5}, {"report": "a/b.md"}

    first = demo._run_step(tmp_path, "masks-prune", step)
    second = demo._run_step(tmp_path, "masks-prune", step)
    assert calls == [1]
    assert first == second
    assert json.loads((tmp_path / ".steps" / "masks-prune.json").read_text())["numbers"] == {"x": 1.5}


def test_failed_step_leaves_no_marker(tmp_path: Path) -> None:
    def boom() -> tuple[dict, dict]:
        raise RuntimeError("fail")

    with pytest.raises(RuntimeError):
        demo._run_step(tmp_path, "sae", boom)
    assert not (tmp_path / ".steps" / "sae.json").exists()


def test_index_links_and_escapes(tmp_path: Path) -> None:
    steps = [
        demo.StepResult(
            "sae", 1.0, {"<b>L0</b>": 32.0, "n": 12345}, {"plot: x": "sae/x.png", "report": "r.md"}
        ),
        demo.StepResult("runs", 2.0, {}, {"runs report": "runs/report/index.html"}),
    ]
    html = render_index(tmp_path, steps).read_text()
    assert "&lt;b&gt;L0&lt;/b&gt;" in html and "<b>L0</b>" not in html
    assert '<img src="sae/x.png"' in html and 'href="runs/report/index.html"' in html
    assert "12,345" in html
    assert fmt(0.123456) == "0.1235" and fmt([4, 8]) == "4, 8"
