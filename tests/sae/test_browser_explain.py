"""The browser shows what ``sae explain`` and ``sae compare`` add: the explanation on each feature
page, search over explanations, a filter on the explanation score, the stability badge with the
partner link — in a real headless Chromium, on a copy of the shared browser analysis."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, running_server, shared_analysis

pytestmark = pytest.mark.browser

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (`make browser`)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture(scope="module")
def annotated(tiny_models, tmp_path_factory) -> tuple[Path, list[dict]]:
    from interplab.sae.compare import CompareConfig, compare
    from interplab.sae.explain import ExplainConfig, explain

    src = shared_analysis(tmp_path_factory, tiny_models)
    root = tmp_path_factory.mktemp("annotated") / "analysis"
    shutil.copytree(src, root, ignore=shutil.ignore_patterns("browser_cache"))
    res = explain(ExplainConfig(analysis_dir=str(root), embedding=False, n_negatives=256))
    compare(CompareConfig(a=str(root), b=str(root), out=str(root.parent / "self-compare")))
    return root, res.rows


@pytest.fixture(scope="module")
def base_url(annotated):
    with running_server(annotated[0]) as url:
        yield url


@pytest.fixture(scope="module")
def page(base_url):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = b.new_page()
        pg.dialogs = []
        pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
        pg.set_default_timeout(15_000)
        yield pg
        b.close()


def test_feature_page_shows_explanation_and_stability(page, base_url, annotated):
    _, rows = annotated
    row = max(rows, key=lambda r: (r["scores"]["detection_balanced_accuracy"] or 0, -r["feature"]))
    f = row["feature"]
    page.goto(base_url + f"/feature/{f}")
    assert page.inner_text("#explanations .explanation") == row["explanation"]
    det = row["scores"]["detection_balanced_accuracy"]
    assert f"detection {det:.4g}"[:14] in page.inner_text("#explanations .explainer")
    badge = page.inner_text("#stability-badge")
    assert badge.startswith("stable across analysis: stability 1")
    page.click("#partner-link")
    page.wait_for_url(re.compile(rf"/feature/{f}$"))  # compared with itself: its partner is itself
    assert page.locator("script").count() == 1 and not page.dialogs


def test_search_and_score_filter_over_explanations(page, base_url, annotated):
    _, rows = annotated
    page.goto(base_url + "/features")
    phrase = rows[0]["explanation"].lower()
    expected = {r["feature"] for r in rows if phrase in r["explanation"].lower()}
    assert expected
    page.fill("#feature-search input[name=q]", phrase)
    page.wait_for_function(
        "n => document.querySelectorAll('#feature-table tbody tr').length === n", arg=min(len(expected), 50)
    )
    shown = {
        int(x.strip("#")) for x in page.locator("#feature-table tbody tr td:first-child").all_inner_texts()
    }
    assert shown <= expected
    # filter on the score: the count equals the features whose best detection score passes
    page.fill("#feature-search input[name=q]", "")
    page.fill("#min-score", "0.9")
    best: dict[int, float] = {}
    for r in rows:
        s = r["scores"]["detection_balanced_accuracy"]
        if s is not None:
            best[r["feature"]] = max(best.get(r["feature"], 0.0), s)
    n = sum(v >= 0.9 for v in best.values())
    page.wait_for_function(
        "n => document.querySelector('#result-count').textContent.startsWith(n.toLocaleString('en-US') + ' features')",
        arg=n,
    )
    api = json.loads(
        page.evaluate("() => fetch('/api/features?min_score=0.9&per_page=500').then(r => r.text())")
    )
    assert {f["feature"] for f in api["features"]} == {f for f, v in best.items() if v >= 0.9}
    assert all(f["explanation"] for f in api["features"])
    assert not page.dialogs
