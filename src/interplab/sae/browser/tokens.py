"""Tokens shown as the text reads, each keeping its own highlight, and duplicate examples dropped.

Stored token strings are single-token decodes: WordPiece continuations keep their ``##`` and carry
no space (``play ##ing``), raw BPE / SentencePiece pieces may carry ``Ġ`` / ``▁`` for a leading
space and ``Ċ`` for a newline. :func:`display_tokens` gives each token the text to show and the
separator before it, so ``playing`` reads as one word while each piece keeps its own shading.

Pages get shared, so :func:`shareable_paths` rewrites absolute local paths in what they show
(model, SAE and data paths of the analysis) relative to the analysis folder's parent.

Overlapping windows of the same text see the same token more than once; the analysis may then list
the same occurrence (or the same context around it) several times among a feature's top examples.
:func:`drop_duplicate_examples` keeps the first of each and says how many went.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: tokens that attach to the word before them when WordPiece text is detokenised
NO_SPACE_BEFORE = frozenset(".,;:!?)]}%'\"")
#: tokens after which the next word attaches
NO_SPACE_AFTER = frozenset("([{$")
SPACE_MARKERS = ("Ġ", "▁")
NEWLINE_MARKER = "Ċ"


def is_wordpiece(tokens: list[str]) -> bool:
    """Whether the strings look like WordPiece (continuations start with ``##``)."""
    return any(t.startswith("##") and len(t) > 2 for t in tokens)


def display_tokens(tokens: list[str]) -> list[tuple[str, str]]:
    """``(separator, text)`` per token: concatenated they read as the source text."""
    out: list[tuple[str, str]] = []
    wordpiece = is_wordpiece(tokens)
    for i, tok in enumerate(tokens):
        if wordpiece:
            if tok.startswith("##") and len(tok) > 2:
                out.append(("", tok[2:]))
            elif i == 0 or tok in NO_SPACE_BEFORE or tokens[i - 1] in NO_SPACE_AFTER:
                out.append(("", tok))
            else:
                out.append((" ", tok))
            continue
        text = tok.replace(NEWLINE_MARKER, "\n")
        if text.startswith(SPACE_MARKERS):
            text = " " + text[1:]
        out.append(("", text))
    return out


def attach_display(token_rows: list[dict[str, Any]]) -> None:
    """Set ``sep`` and ``text`` on each ``{token, …}`` row (in place)."""
    shown = display_tokens([str(r.get("token", "")) for r in token_rows])
    for row, (sep, text) in zip(token_rows, shown, strict=True):
        row["sep"] = sep
        row["text"] = text


def _context_key(example: dict[str, Any]) -> tuple | None:
    tokens = example.get("tokens")
    if tokens:
        return (
            example.get("text_idx"),
            tuple((t.get("token"), t.get("is_target")) for t in tokens),
        )
    if example.get("context"):
        return (example.get("text_idx"), example.get("context"), example.get("token"))
    return None


def drop_duplicate_examples(examples: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The examples without repeats of an occurrence (same text and position, or the same context
    around the same target in the same text); returns ``(kept, n_dropped)``."""
    kept: list[dict[str, Any]] = []
    seen: set = set()
    for e in examples:
        keys = []
        if e.get("text_idx") is not None and e.get("position") is not None:
            keys.append(("pos", e["text_idx"], e["position"]))
        ctx = _context_key(e)
        if ctx is not None:
            keys.append(("ctx", *ctx))
        if any(k in seen for k in keys):
            continue
        seen.update(keys)
        kept.append(e)
    return kept, len(examples) - len(kept)


_ABS_PATH = re.compile(r"(?<![\w.:/])/[^\s`'\"<>|]+")


def _share(path: str, base: Path) -> str:
    p = Path(path)
    try:
        rel = p.relative_to(base)
    except ValueError:
        return "…/" + "/".join(p.parts[-2:]) if len(p.parts) > 2 else path
    return rel.as_posix() or "."


def shareable_paths(value: Any, analysis_root: Path) -> Any:
    """``value`` (text, or JSON-like data) with absolute paths made relative to the folder holding
    ``analysis_root`` (other absolute paths keep only their last two parts)."""
    base = Path(analysis_root).parent
    if isinstance(value, str):
        return _ABS_PATH.sub(lambda m: _share(m.group(0), base), value)
    if isinstance(value, dict):
        return {k: shareable_paths(v, analysis_root) for k, v in value.items()}
    if isinstance(value, list):
        return [shareable_paths(v, analysis_root) for v in value]
    return value
