"""markdown_table: header, alignment rule and rows, compared with hand-written Markdown."""

from __future__ import annotations

from interplab.common.markdown_html import markdown_table


def test_markdown_table_lines() -> None:
    lines = markdown_table(("a", "b", "c"), [(1, "x", 2.5), ("`y`", 3, "")], align="rl")
    assert lines == [
        "| a | b | c |",
        "|---:|---|---|",
        "| 1 | x | 2.5 |",
        "| `y` | 3 |  |",
    ]
    assert markdown_table(("h",), []) == ["| h |", "|---|"]
