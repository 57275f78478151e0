"""An HTML rendering beside each Markdown report, so a report linked from a page opens formatted.

Rendering uses markdown-it-py (CommonMark plus GitHub-style tables), which ``rich`` already depends
on. The page is standalone (inline style, no scripts) and holds the same content as the Markdown;
relative links and images keep working because the page sits in the same folder.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from interplab.common.atomic import write_text

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1b1f24; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
code, pre { font-family: ui-monospace, monospace; font-size: 90%; background: #f6f8fa; }
pre { padding: .6rem; overflow-x: auto; }
img { max-width: 100%; }
"""


def markdown_to_html(text: str, title: str | None = None) -> str:
    """A standalone HTML page with ``text`` (Markdown) rendered; ``title`` defaults to the first heading."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").render(text)
    if title is None:
        match = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
        title = match.group(1) if match else "report"
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}</body></html>\n"
    )


def html_path(markdown_path: str | os.PathLike[str]) -> Path:
    """Where the HTML rendering of ``markdown_path`` goes: same folder and name, ``.html``."""
    return Path(markdown_path).with_suffix(".html")


def html_beside(markdown_path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Render the Markdown file at ``markdown_path`` to ``<name>.html`` beside it (atomically)."""
    text = Path(markdown_path).read_text(encoding="utf-8")
    return write_text(html_path(markdown_path), markdown_to_html(text, title))


def write_markdown_report(path: str | os.PathLike[str], text: str, title: str | None = None) -> Path:
    """Write a Markdown report and its HTML rendering beside it; returns the Markdown path."""
    md = write_text(path, text)
    write_text(html_path(md), markdown_to_html(text, title))
    return md


def prefer_html(out: str | os.PathLike[str], href: str) -> str:
    """``href`` (relative to ``out``) with ``.md`` replaced by ``.html`` when that rendering exists."""
    if href.endswith(".md") and html_path(Path(out) / href).exists():
        return href[: -len(".md")] + ".html"
    return href


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> list[str]:
    """The lines of a Markdown table: ``header``, the rule (``align``: one ``l`` or ``r`` per
    column, left by default) and one line per row of already formatted cells."""
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align.ljust(len(header), "l"))
    return [
        "| " + " | ".join(header) + " |",
        rule,
        *("| " + " | ".join(str(c) for c in row) + " |" for row in rows),
    ]
