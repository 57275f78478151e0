"""Markdown reports get an HTML rendering beside them that index pages link; checked in Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interplab.common.markdown_html import html_path, write_markdown_report
from interplab.demo import StepResult
from interplab.demo_page import render_index

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"]

REPORT = """# Pruning report: wanda

Sparsity **0.5** on `minilm`; see [the figure](fig.png).

| layer | component | relative error |
|---|---|---|
| 0 | output.dense | 0.0123 |
| 1 | intermediate.dense | 0.4567 |

- a list item <script>alert(1)</script>
"""


def test_report_html_is_written_beside_and_escapes(tmp_path: Path) -> None:
    md = write_markdown_report(tmp_path / "r" / "pruning_report.md", REPORT)
    page = html_path(md).read_text()
    assert md.read_text() == REPORT
    assert "<title>Pruning report: wanda</title>" in page
    assert "<script>alert(1)</script>" not in page  # raw HTML in Markdown is shown, not run
    assert "<td>0.4567</td>" in page and "<strong>0.5</strong>" in page


@pytest.mark.browser
def test_index_links_the_html_rendering_in_chromium(tmp_path: Path) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found (scripts/ensure-chromium.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    write_markdown_report(tmp_path / "masks" / "pruning_report.md", REPORT)
    (tmp_path / "masks" / "notes.md").write_text("# only markdown\n")
    step = StepResult(
        name="masks-prune",
        seconds=1.0,
        numbers={"x": 1.0},
        links={"pruning report": "masks/pruning_report.md", "notes": "masks/notes.md"},
    )
    index = render_index(tmp_path, [step])
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(index.as_uri())
        hrefs = page.eval_on_selector_all("a", "els => els.map(e => e.getAttribute('href'))")
        assert "masks/pruning_report.html" in hrefs and "masks/pruning_report.md" not in hrefs
        assert "masks/notes.md" in hrefs  # no rendering there: the Markdown stays linked
        page.click("text=pruning report")
        page.wait_for_load_state()
        assert page.url.endswith("/masks/pruning_report.html")
        assert page.inner_text("h1") == "Pruning report: wanda"
        cells = page.eval_on_selector_all("table tr", "rows => rows.map(r => r.innerText.split('\\t'))")
        assert cells == [
            ["layer", "component", "relative error"],
            ["0", "output.dense", "0.0123"],
            ["1", "intermediate.dense", "0.4567"],
        ]
        assert "|" not in page.inner_text("body")  # no raw Markdown table syntax
        assert dialogs == []
        browser.close()
