"""The browser reads like the text: joined sub-words, no duplicate examples, distinct sort lists,
no local path, and a reason when logit effects are missing (Chromium for the pages)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, shared_analysis

from interplab.sae.browser import export_browser
from interplab.sae.browser.render import make_env
from interplab.sae.browser.tokens import display_tokens, drop_duplicate_examples

TEXT = "the player is playing again with unplayable cards."


def _wordpiece_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]", "[PAD]", "the", "play", "##er", "##ing", "##able", "un", "is", "with", "cards", "again"]
    vocab = {w: i for i, w in enumerate([*words, "(", ")", ".", "##s"])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def _bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok)


@pytest.mark.parametrize("make", [_wordpiece_tokenizer, _bpe_tokenizer])
def test_tokens_read_as_the_tokenizer_decodes(make) -> None:
    tokenizer = make()
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    stored = tokenizer.batch_decode([[i] for i in ids])  # what the activation database holds
    shown = display_tokens(stored)
    assert len(shown) == len(stored)
    assert "".join(sep + text for sep, text in shown) == tokenizer.decode(ids)
    assert not any("##" in text for _, text in shown)


def test_wordpiece_brackets_read_as_written() -> None:
    shown = display_tokens(["play", "##ing", "(", "again", ")", "now", "."])
    assert "".join(sep + text for sep, text in shown) == "playing (again) now."


def test_duplicates_from_overlapping_windows_are_dropped() -> None:
    tok = [{"token": "w1", "is_target": False}, {"token": "w2", "is_target": True}]
    examples = [
        {"activation": 3.0, "text_idx": 4, "position": 10, "tokens": tok},
        {"activation": 3.0, "text_idx": 4, "position": 10, "tokens": tok},  # second window
        {"activation": 2.9, "text_idx": 4, "position": 12, "tokens": tok},  # same context again
        {"activation": 2.5, "text_idx": 5, "position": 10, "tokens": tok},  # another text
    ]
    kept, dropped = drop_duplicate_examples(examples)
    assert dropped == 2 and [(e["text_idx"], e["position"]) for e in kept] == [(4, 10), (5, 10)]


def _feature_record() -> dict:
    pieces = ["the", "play", "##ing", "cards", "."]
    acts = [0.0, 2.0, 4.0, 0.0, 0.0]
    rows = [
        {"token": t, "activation": a, "position": i, "token_idx": i, "is_target": i == 2}
        for i, (t, a) in enumerate(zip(pieces, acts, strict=True))
    ]
    from interplab.sae.browser.tokens import attach_display

    attach_display(rows)
    example = {
        "activation": 4.0,
        "token": "##ing",
        "context": "",
        "text_idx": 0,
        "position": 2,
        "tokens": rows,
    }
    return {
        "feature": 7, "density": 0.1, "mean_activation": 1.0, "max_activation": 4.0, "extra": {},
        "top_tokens": [], "top_examples": [example], "quantile_examples": [], "logit_effects": None,
        "logit_effects_note": "null: the model has no unembedding (output embeddings) of the SAE's width",
        "similar_features": [], "coactivating_features": [], "ablation": None,
        "histogram": {"counts": [0, 3, 9, 4, 0], "edges": [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]},
        "duplicates_dropped": 3, "explanations": [], "stability": None,
    }  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found (scripts/ensure-chromium.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.mark.browser
def test_feature_page_reads_as_text_in_chromium(browser, tmp_path: Path) -> None:
    html = make_env().get_template("feature.html").render(
        f=_feature_record(), scale=4.0, nav={"overview": "#", "features": "#", "search": None},
        root="", footer="", prev_id=None, next_id=None, feature_url=lambda f: None,
    )  # fmt: skip
    path = tmp_path / "f.html"
    path.write_text(html, encoding="utf-8")
    page = browser.new_page()
    page.goto(path.as_uri())
    ctx = page.locator("#top-examples .ctx").first
    assert ctx.inner_text() == "the playing cards."
    spans = ctx.locator(".tok")
    assert spans.count() == 5
    colours = [spans.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in range(5)]
    assert colours[1] != colours[2] and colours[0] == colours[3]  # each piece keeps its own shade
    assert spans.nth(2).get_attribute("title").startswith("##ing")  # the raw token stays available
    assert "3 near-duplicate examples" in page.inner_text("#duplicates-dropped")
    note = page.inner_text("#logit-effects-missing")
    assert "no unembedding" in note and "null" not in note
    svg = page.locator("#histogram")
    labels = svg.locator("text").all_text_contents()
    assert "tokens" in labels and "activation (log-spaced bins)" in labels and "9" in labels
    assert svg.locator("line.axis").count() == 2 and svg.locator("rect").count() == 3
    page.close()


@pytest.mark.browser
def test_export_sort_links_and_no_local_path(browser, tiny_models, tmp_path_factory, tmp_path: Path) -> None:
    analysis = shared_analysis(tmp_path_factory, tiny_models)
    out = tmp_path / "exp"
    export_browser(analysis, out, n_densest=12, n_random=0)
    page = browser.new_page()
    page.goto((out / "index.html").as_uri())
    assert str(analysis.parent) not in page.content()  # no absolute local path on the page
    orders = {}
    for label, key in (("highest max activation", "max"), ("highest mean activation", "mean")):
        page.goto((out / "index.html").as_uri())
        page.click(f"text={label}")
        page.wait_for_load_state()
        ids = page.eval_on_selector_all(
            "#feature-table tbody tr td:first-child", "els => els.map(e => e.innerText)"
        )
        col = 3 if key == "max" else 2
        values = page.eval_on_selector_all(
            f"#feature-table tbody tr td:nth-child({col + 1})", "els => els.map(e => e.innerText)"
        )
        nums = [float(v.replace(",", "")) for v in values if v.strip()]
        assert nums == sorted(nums, reverse=True), (label, nums)
        orders[key] = ids
    assert orders["max"] != orders["mean"]
    page.close()
