"""Feature browser in a real headless Chromium (Playwright): navigation, shading, escaping, export."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    IMG,
    SCRIPT,
    read_summaries,
    running_server,
    shared_analysis,
)

pytestmark = pytest.mark.browser

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (`make browser`)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture(scope="module")
def analysis(tiny_models, tmp_path_factory) -> Path:
    return shared_analysis(tmp_path_factory, tiny_models)


@pytest.fixture(scope="module")
def summaries(analysis) -> dict[int, dict]:
    return {int(r["feature"]): r for r in read_summaries(analysis)}


@pytest.fixture(scope="module")
def base_url(analysis):
    with running_server(analysis) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page that records dialogs (alert = script ran) and page errors."""
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.dialogs = []
    pg.errors = []

    def on_dialog(d):
        pg.dialogs.append(d.message)
        d.dismiss()

    pg.on("dialog", on_dialog)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.set_default_timeout(15_000)
    yield pg
    ctx.close()


def _density(r: dict) -> float:
    return float(r.get("density") or 0.0)


def _payload_feature(summaries: dict[int, dict]) -> int:
    for f, r in sorted(summaries.items(), key=lambda kv: -_density(kv[1])):
        if any(
            e.get("token") in (SCRIPT, IMG) or SCRIPT in (e.get("context") or "")
            for e in r.get("top_examples") or []
        ):
            return f
    raise AssertionError("no feature has a payload in its top examples")


def _token_colours(pg) -> list[tuple[float, str]]:
    return pg.eval_on_selector_all(
        "#top-examples .tok",
        "els => els.map(e => [parseFloat(e.dataset.act), getComputedStyle(e).backgroundColor])",
    )


def test_overview_search_feature_and_neighbour(page, base_url, summaries):
    page.goto(base_url + "/")
    assert page.inner_text("#n-features").replace(",", "") == str(len(summaries))
    assert page.locator(".plots img").count() >= 1
    page.click("header nav >> text=Features")
    page.wait_for_url(re.compile(r"/features"))

    # live search by token text: rows re-rendered by script from /api/features
    densest = max(summaries.values(), key=_density)
    tok = next(t["token"] if isinstance(t, dict) else t for t in densest["top_tokens"])
    page.fill("#feature-search input[name=q]", tok)
    page.wait_for_function(
        "t => document.querySelector('#result-count').textContent.length && "
        "[...document.querySelectorAll('#feature-table tbody tr')].every(r => r.textContent.includes(t))",
        arg=tok,
    )
    ids = [
        int(x.strip("#")) for x in page.locator("#feature-table tbody tr td:first-child").all_inner_texts()
    ]
    assert densest["feature"] in ids

    # open the densest feature from the list
    page.click(f"#feature-table a[href='/feature/{densest['feature']}']")
    page.wait_for_url(re.compile(rf"/feature/{densest['feature']}$"))
    assert page.inner_text("#feature-title") == f"Feature {densest['feature']}"

    # highlighted tokens: colour follows activation, the activating token is marked
    colours = _token_colours(page)
    assert colours
    zero = {c for a, c in colours if a == 0}
    positive = sorted({(a, c) for a, c in colours if a > 0})
    assert zero <= {"rgba(0, 0, 0, 0)"}
    assert len(positive) >= 2
    alphas = [float(re.findall(r"[\d.]+", c)[3]) if c.startswith("rgba") else 1.0 for _, c in positive]
    assert alphas == sorted(alphas) and alphas[0] < alphas[-1]  # monotone in activation
    assert page.locator("#top-examples .tok.target").count() == len(densest["top_examples"])
    outline = page.eval_on_selector("#top-examples .tok.target", "e => getComputedStyle(e).outlineStyle")
    assert outline == "solid"

    # follow a neighbour link (decoder similarity)
    link = page.locator("#similar a.flink").first
    target = int(link.inner_text().strip("#"))
    link.click()
    page.wait_for_url(re.compile(rf"/feature/{target}$"))
    assert page.inner_text("#feature-title") == f"Feature {target}"
    assert not page.dialogs and not page.errors


def test_xss_corpus_renders_as_text(page, base_url, summaries):
    fid = _payload_feature(summaries)
    page.goto(base_url + f"/feature/{fid}")
    body = page.inner_text("body")
    assert SCRIPT in body or IMG in body
    assert page.locator("script").count() == 1  # only browser.js
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("#top-examples script, #top-examples img").count() == 0

    # text put into the page by script (live search) stays text too
    page.goto(base_url + "/features")
    page.fill("#feature-search input[name=q]", "alert(1)")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#feature-table tbody tr')].length > 0 && "
        "[...document.querySelectorAll('#feature-table tbody tr')].every(r => r.textContent.includes('alert(1)'))"
    )
    chips = page.locator("#feature-table .chip").all_inner_texts()
    assert SCRIPT in chips or IMG in chips
    assert page.locator("#feature-table script, #feature-table img").count() == 0
    page.wait_for_timeout(300)
    assert not page.dialogs, page.dialogs
    assert not page.errors


def test_static_export_opens_from_disk(page, analysis, summaries, tmp_path):
    from interplab.sae.browser import export_browser

    fid = _payload_feature(summaries)
    res = export_browser(analysis, tmp_path / "static", n_random=0, features=None)
    assert fid in res.features
    page.goto((tmp_path / "static" / "index.html").as_uri())
    assert page.locator("#feature-table tbody tr").count() == len(res.features)
    page.fill("#export-q", str(fid))
    page.wait_for_function(
        "n => [...document.querySelectorAll('#feature-table tbody tr td:first-child')].some(td => td.textContent === '#' + n)",
        arg=fid,
    )
    page.click(f"#feature-table a[href='features/{fid}.html']")
    page.wait_for_url(re.compile(rf"features/{fid}\.html$"))
    assert page.inner_text("#feature-title") == f"Feature {fid}"
    assert any(a > 0 for a, _ in _token_colours(page))
    assert SCRIPT in page.inner_text("body") or IMG in page.inner_text("body")
    assert page.locator("img[src='x']").count() == 0
    # assets load from disk (stylesheet applied)
    assert page.eval_on_selector(".tok.target", "e => getComputedStyle(e).outlineStyle") == "solid"
    page.click("text=Overview")
    page.wait_for_url(re.compile(r"index\.html$"))
    assert not page.dialogs and not page.errors
