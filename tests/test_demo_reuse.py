"""Demo step reuse trusts a step's outputs, not only its marker; a no-op re-run keeps the manifest."""

from __future__ import annotations

import json
from pathlib import Path

from interplab.common.atomic import write_text
from interplab.common.output import output_dir
from interplab.demo import _run_step


def test_step_is_redone_when_its_outputs_are_gone(tmp_path: Path) -> None:
    calls: list[int] = []

    def step() -> tuple[dict, dict]:
        calls.append(1)
        write_text(tmp_path / "sae" / "browser" / "index.html", "<html></html>")
        return {"n": len(calls)}, {"browser": "sae/browser/index.html"}

    first = _run_step(tmp_path, "sae", step)
    again = _run_step(tmp_path, "sae", step)
    assert len(calls) == 1 and again.numbers == first.numbers  # reused
    (tmp_path / "sae" / "browser" / "index.html").unlink()  # the user moved the browser away
    redone = _run_step(tmp_path, "sae", step)
    assert len(calls) == 2 and redone.numbers == {"n": 2}
    assert (tmp_path / "sae" / "browser" / "index.html").exists()


def test_noop_rerun_keeps_the_manifest_files(tmp_path: Path) -> None:
    def step() -> tuple[dict, dict]:
        write_text(tmp_path / "masks" / "report.md", "# r")
        return {}, {"report": "masks/report.md"}

    for _ in range(2):
        with output_dir(tmp_path, "demo", {}) as od:
            _run_step(tmp_path, "masks", step)
            od.record(write_text(tmp_path / "index.html", "<html></html>"))
    files = json.loads((tmp_path / "manifest.json").read_text())["files"]
    assert files == ["index.html", "masks/report.md"]
