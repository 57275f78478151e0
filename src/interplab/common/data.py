"""Text corpora: the built-in ``docs`` corpus and user files (JSON list, .txt, .jsonl, Parquet).

``docs`` is extracted at run time from docstrings of the installed standard library (then of
installed packages), read with :mod:`ast` without importing anything, in sorted file order, so it
is deterministic for a given Python installation and offers well over a million tokens.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interplab.common.errors import InterplabError

log = logging.getLogger(__name__)

BUILTIN_CORPORA = ("docs",)
MIN_DOCSTRING_CHARS = 40
SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "__pycache__", "turtledemo", "ensurepip"}


def _python_files(root: Path) -> Iterator[Path]:
    """Sorted ``.py`` files under ``root``, skipping test and vendored folders."""
    for path in sorted(root.rglob("*.py")):
        rel_parts = path.relative_to(root).parts
        if any(part in SKIP_DIRS or part.startswith(".") for part in rel_parts[:-1]):
            continue
        yield path


def _docstrings(path: Path) -> Iterator[str]:
    """Module, class and function docstrings of one source file, in source order."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return
    nodes = [
        tree,
        *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)),
    ]
    nodes.sort(key=lambda n: getattr(n, "lineno", 0))
    for node in nodes:
        doc = ast.get_docstring(node, clean=False)
        if doc:
            text = inspect.cleandoc(doc).strip()
            if len(text) >= MIN_DOCSTRING_CHARS:
                yield text


def iter_docs_corpus() -> Iterator[str]:
    """Yield the ``docs`` corpus: standard-library docstrings, then those of installed packages."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    purelib = Path(sysconfig.get_paths()["purelib"])
    for root in (stdlib, purelib):
        if not root.is_dir():
            continue
        for path in _python_files(root):
            yield from _docstrings(path)


def docs_corpus(max_texts: int | None = None, max_chars: int | None = None) -> list[str]:
    """The first texts of the ``docs`` corpus, bounded by count and/or total characters."""
    texts: list[str] = []
    total = 0
    for text in iter_docs_corpus():
        if max_texts is not None and len(texts) >= max_texts:
            break
        if max_chars is not None and total >= max_chars:
            break
        texts.append(text)
        total += len(text)
    return texts


def read_json(path: Path) -> Any:
    """Parse a JSON file; malformed JSON or non-UTF-8 bytes become a one-line error with the position."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InterplabError(
            f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise InterplabError(f"{path}: not UTF-8 text (byte {exc.start})") from exc


def _load_json_list(path: Path) -> list[str]:
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("text"), list):
        data = data["text"]
    if not isinstance(data, list):
        raise InterplabError(f"{path}: expected a JSON list of strings, got {type(data).__name__}")
    for i, item in enumerate(data):
        if not isinstance(item, str):
            raise InterplabError(f"{path}: item {i} is {type(item).__name__}, expected a string")
    return data


def nonblank_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of each non-blank line of the UTF-8 text file ``path``, read lazily."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                yield lineno, line


def _load_jsonl(path: Path) -> list[str]:
    texts: list[str] = []
    for lineno, line in nonblank_lines(path):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InterplabError(
                f"{path}: malformed JSON on line {lineno}, column {exc.colno}: {exc.msg}"
            ) from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise InterplabError(f"{path}: line {lineno} has no string field 'text'")
        texts.append(row["text"])
    return texts


def _load_parquet(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise InterplabError(f"{path}: not a readable Parquet file ({exc})") from exc
    if "text" not in schema.names:
        raise InterplabError(
            f"{path}: Parquet file has no 'text' column (columns: {', '.join(schema.names)})"
        )
    column = pq.read_table(path, columns=["text"]).column("text").to_pylist()
    return ["" if t is None else str(t) for t in column]


def load_texts(source: str | Path = "docs", max_texts: int | None = None) -> list[str]:
    """Load texts from ``docs`` or a file: ``.json`` list[str], ``.txt`` (one text per non-empty
    line), ``.jsonl`` with a ``text`` field, or ``.parquet`` with a ``text`` column.

    Empty strings are kept (callers skip and count them).
    """
    if str(source) in BUILTIN_CORPORA:
        return docs_corpus(max_texts=max_texts)
    path = Path(source)
    if not path.exists():
        raise InterplabError(
            f"{path}: data file not found (expected 'docs' or a .json/.txt/.jsonl/.parquet file)"
        )
    if path.is_dir():
        raise InterplabError(f"{path}: is a folder; expected a .json/.txt/.jsonl/.parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            texts = _load_json_list(path)
        elif suffix == ".jsonl":
            texts = _load_jsonl(path)
        elif suffix == ".txt":
            texts = [
                line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        elif suffix in {".parquet", ".pq"}:
            texts = _load_parquet(path)
        else:
            raise InterplabError(
                f"{path}: unsupported data format {suffix!r}; expected .json, .txt, .jsonl or .parquet"
            )
    except UnicodeDecodeError as exc:
        raise InterplabError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    return texts[:max_texts] if max_texts is not None else texts
