"""The built-in explainer: the simplest rule over tokens that separates a feature's activating tokens
from non-activating ones, and the sentence it reads as.

A :class:`TokenTable` holds the corpus tokens of an activation database (token id, text, position,
the previous token in the same text) and, per vocabulary entry, its normalised string (surrounding
whitespace and the word-piece markers ``##``/``Ġ``/``▁`` removed) and its token classes:

==============  ======================================================================
class           the normalised token …
==============  ======================================================================
digits          is all digits (``7``, ``2024``)
punctuation     is all ASCII punctuation (``.``, ``),``)
capitalised     is a word starting with an upper-case letter (``Paris``)
uppercase       is a word of ≥ 2 letters, all upper case (``NASA``)
lowercase       is a word, all lower case
continuation    continues a word: a ``##`` word piece, or — for tokenizers whose words start with a
                space — a word-character token without one
code            is a Python keyword, ``self``/``cls``, a bracket or an operator
whitespace      is empty after stripping (spaces, newlines)
==============  ======================================================================

Candidate rules (``Rule.kind``): ``token`` (the token is one of a set), ``previous_token`` (the
token before it is one of a set), ``class`` / ``previous_class`` (the token / the token before it is
of a class) and ``position`` (among the first ``p`` tokens of its text). :func:`learn_rule` scores
each candidate on the training examples by balanced accuracy ``(TPR + TNR) / 2`` and keeps the best
after a small penalty for its size (``0.002`` for a class or position, ``0.002·(1 + n)`` for a set of
``n`` tokens), so "digits" beats a list of digits that fits the training examples equally well.
"""

from __future__ import annotations

import dataclasses
import keyword
import string
from typing import Any

import numpy as np

CLASSES = (
    "digits",
    "punctuation",
    "capitalised",
    "uppercase",
    "lowercase",
    "continuation",
    "code",
    "whitespace",
)
CLASS_PHRASES = {
    "digits": "digits",
    "punctuation": "punctuation",
    "capitalised": "capitalised words",
    "uppercase": "all-caps words",
    "lowercase": "lower-case words",
    "continuation": "word pieces that continue a word",
    "code": "code syntax (keywords, brackets, operators)",
    "whitespace": "whitespace",
}
CODE_TOKENS = frozenset(
    [
        *keyword.kwlist,
        "self",
        "cls",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "()",
        "[]",
        "{}",
        "=",
        "==",
        "!=",
        "+=",
        "-=",
        "->",
        ":",
        "::",
        ";",
        "+",
        "-",
        "*",
        "**",
        "/",
        "//",
        "%",
        "<",
        ">",
        "<=",
        ">=",
        "&",
        "|",
        "^",
        "~",
        "@",
        "_",
        "__",
        "`",
        "```",
    ]
)
MAX_SET = 8
POSITIONS = (1, 2, 4, 8, 16)
PENALTY = 0.002
PUNCT = frozenset(string.punctuation)


def normalise(token: str) -> str:
    """A token's string without surrounding whitespace and word-piece markers."""
    s = token.strip()
    for marker in ("##", "Ġ", "▁", "Ċ"):
        s = s.removeprefix(marker)
    return s.strip()


def token_classes(tokens: list[str]) -> np.ndarray:
    """``[len(tokens), len(CLASSES)]`` bool: the classes of each (raw, decoded) token string."""
    space_words = sum(t.startswith((" ", "Ġ", "▁")) for t in tokens) > 0.2 * max(len(tokens), 1)
    out = np.zeros((len(tokens), len(CLASSES)), bool)
    for i, raw in enumerate(tokens):
        s = normalise(raw)
        word = s.isalpha()
        flags = {
            "digits": s.isdigit(),
            "punctuation": bool(s) and all(c in PUNCT for c in s),
            "capitalised": word and s[0].isupper() and not (len(s) >= 2 and s.isupper()),
            "uppercase": word and len(s) >= 2 and s.isupper(),
            "lowercase": word and s.islower(),
            "continuation": raw.startswith("##")
            or (
                space_words
                and bool(s)
                and (s[0].isalnum() or s[0] == "_")
                and not raw.startswith((" ", "Ġ", "▁"))
            ),
            "code": s in CODE_TOKENS,
            "whitespace": s == "",
        }
        out[i] = [flags[c] for c in CLASSES]
    return out


@dataclasses.dataclass
class TokenTable:
    """Corpus tokens (``token_idx`` order) and per-vocabulary-entry strings and classes."""

    token_id: np.ndarray  # [N] int64
    text_idx: np.ndarray  # [N] int64
    position: np.ndarray  # [N] int64
    vocab: np.ndarray  # [V] object: raw token string of each id (ids not in the corpus: "")
    norm: np.ndarray  # [V] object: normalised strings
    classes: np.ndarray  # [V, len(CLASSES)] bool
    norm_id: np.ndarray = dataclasses.field(init=False)  # [V] int: index of each id's normalised string
    norm_strings: np.ndarray = dataclasses.field(init=False)  # the distinct normalised strings, sorted
    norm_index: dict[str, int] = dataclasses.field(init=False)  # normalised string → its index

    def __post_init__(self) -> None:
        self.norm_strings, inverse = np.unique(self.norm.astype(str), return_inverse=True)
        self.norm_id = inverse.astype(np.int64)
        self.norm_index = {str(u): i for i, u in enumerate(self.norm_strings)}

    @classmethod
    def build(
        cls, token_id: np.ndarray, text_idx: np.ndarray, position: np.ndarray, token_str: np.ndarray
    ) -> TokenTable:
        token_id = np.asarray(token_id, np.int64)
        V = int(token_id.max()) + 1 if token_id.size else 1
        vocab = np.full(V, "", dtype=object)
        ids, first = np.unique(token_id, return_index=True)
        vocab[ids] = np.asarray(token_str, dtype=object)[first]
        strings = [str(v) for v in vocab]
        return cls(
            token_id=token_id,
            text_idx=np.asarray(text_idx, np.int64),
            position=np.asarray(position, np.int64),
            vocab=vocab,
            norm=np.array([normalise(s) for s in strings], dtype=object),
            classes=token_classes(strings),
        )

    @property
    def n_tokens(self) -> int:
        return int(self.token_id.size)

    def previous(self, idx: np.ndarray) -> np.ndarray:
        """Token id before each of ``idx`` in the same text (−1 at a text's start)."""
        idx = np.asarray(idx, np.int64)
        prev = np.maximum(idx - 1, 0)
        ok = (idx > 0) & (self.text_idx[prev] == self.text_idx[idx])
        return np.where(ok, self.token_id[prev], -1)

    def text(self, idx: np.ndarray) -> str:
        """The tokens ``idx`` (consecutive, one text) joined into readable text."""
        return join_tokens([str(self.vocab[self.token_id[i]]) for i in idx])


def join_tokens(tokens: list[str]) -> str:
    """Decoded single-token strings joined: ``##`` pieces attach, others are space-separated unless
    the tokenizer marks word starts with a leading space."""
    out = ""
    spaced = any(t.startswith(" ") for t in tokens)
    for t in tokens:
        if t.startswith("##"):
            out += t[2:]
        elif spaced or not out:
            out += t
        else:
            out += " " + t
    return out.strip()


@dataclasses.dataclass(frozen=True)
class Rule:
    """A predicate over a token and the token before it, with the sentence it reads as."""

    kind: str  # token | previous_token | class | previous_class | position
    values: tuple[str, ...]

    @property
    def complexity(self) -> int:
        return 1 + len(self.values) if self.kind in ("token", "previous_token") else 1

    def sentence(self) -> str:
        v = self.values
        quoted = _quoted(v)
        if self.kind == "token":
            return f"fires on the token{'s' if len(v) > 1 else ''} {quoted}"
        if self.kind == "previous_token":
            return f"fires on the token right after {quoted}"
        if self.kind == "class":
            return f"fires on {CLASS_PHRASES[v[0]]}"
        if self.kind == "previous_class":
            return f"fires on the token right after {CLASS_PHRASES[v[0]]}"
        p = int(v[0])
        return "fires on the first token of a text" if p == 1 else f"fires on the first {p} tokens of a text"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rule:
        return cls(kind=str(d["kind"]), values=tuple(str(x) for x in d["values"]))

    def mask(self, table: TokenTable, idx: np.ndarray) -> np.ndarray:
        """Where the rule holds for the tokens ``idx``."""
        idx = np.asarray(idx, np.int64)
        if self.kind == "position":
            return table.position[idx] < int(self.values[0])
        ids = table.token_id[idx] if self.kind in ("token", "class") else table.previous(idx)
        valid = ids >= 0
        ids = np.where(valid, ids, 0)
        if self.kind in ("token", "previous_token"):
            targets = [table.norm_index.get(v, -1) for v in self.values]
            return valid & np.isin(table.norm_id[ids], targets)
        return valid & table.classes[ids, CLASSES.index(self.values[0])]


def _quoted(values: tuple[str, ...]) -> str:
    q = [f'"{v}"' for v in values]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " or " + q[-1]


def balanced_accuracy(pred_pos: np.ndarray, pred_neg: np.ndarray) -> float:
    """``(TPR + TNR) / 2`` of binary predictions on positives and negatives (NaN if either is empty)."""
    if len(pred_pos) == 0 or len(pred_neg) == 0:
        return float("nan")
    return float((np.mean(pred_pos) + 1.0 - np.mean(pred_neg)) / 2.0)


def _ranked_strings(ids: np.ndarray, table: TokenTable) -> list[str]:
    ids = ids[ids >= 0]
    if ids.size == 0:
        return []
    uniq, counts = np.unique(table.norm_id[ids], return_counts=True)
    order = np.lexsort((uniq, -counts))  # norm ids are in string order: ties go alphabetically
    return [str(table.norm_strings[u]) for u in uniq[order][:MAX_SET]]


def candidates(table: TokenTable, pos: np.ndarray) -> list[Rule]:
    """Every candidate rule for the positives ``pos`` (token sets grow by frequency among them)."""
    out: list[Rule] = []
    for kind, ids in (("token", table.token_id[pos]), ("previous_token", table.previous(pos))):
        ranked = _ranked_strings(ids, table)
        out += [Rule(kind, tuple(ranked[: k + 1])) for k in range(len(ranked))]
    out += [Rule("class", (c,)) for c in CLASSES]
    out += [Rule("previous_class", (c,)) for c in CLASSES]
    out += [Rule("position", (str(p),)) for p in POSITIONS]
    return out


def learn_rule(table: TokenTable, pos: np.ndarray, neg: np.ndarray) -> tuple[Rule | None, float]:
    """The best rule on the training positives/negatives and its training balanced accuracy."""
    pos, neg = np.asarray(pos, np.int64), np.asarray(neg, np.int64)
    if pos.size == 0 or neg.size == 0:
        return None, float("nan")
    best: tuple[float, int, Rule | None, float] = (-np.inf, 0, None, float("nan"))
    for i, rule in enumerate(candidates(table, pos)):
        ba = balanced_accuracy(rule.mask(table, pos), rule.mask(table, neg))
        key = ba - PENALTY * rule.complexity
        if key > best[0]:
            best = (key, i, rule, ba)
    return best[2], best[3]
