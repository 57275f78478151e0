"""``runs report`` on runs with several seeds per setting: interval bands, P(improvement), sweep page."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from interplab.runs.report import runs_report
from tests.runs.test_source_tensorboard import write_tb_runs


@pytest.mark.slow  # eight figures: ~10 s on an idle 2-core machine
def test_report_has_statistics_and_sweep(tmp_path: Path) -> None:
    write_tb_runs(tmp_path / "tb", seeds=2, extras=False)
    out = tmp_path / "report"
    res = runs_report(f"tb:{tmp_path / 'tb'}", out)
    sections = {f.section for f in res.figures}
    assert "Statistics across seeds" in sections
    for stem in ("stats/figures/curves", "stats/figures/final"):
        assert (out / f"{stem}.png").is_file() and (out / f"{stem}.pdf").is_file()
    (comp,) = json.loads((out / "stats" / "comparisons.json").read_text())
    assert {comp["a"], comp["b"]} == {"lr=0.1", "lr=0.5"}
    page = (out / "index.html").read_text()
    assert "P(A better)" in page and "stats/report.md" in page and "sweep/index.html" in page
    assert (out / "sweep" / "index.html").is_file() and (
        out / "sweep" / "parallel_coordinates.html"
    ).is_file()
    sweep = pd.read_csv(out / "sweep" / "sweep.csv")
    assert len(sweep) == 4 and "lr" in sweep.columns and "seed" not in sweep.columns
    manifest = json.loads((out / "manifest.json").read_text())
    assert "stats/report.md" in manifest["files"] and "stats/figures/curves.png" in manifest["files"]
    assert "stats/report.md" in manifest["files"] and "sweep/index.html" in manifest["files"]
