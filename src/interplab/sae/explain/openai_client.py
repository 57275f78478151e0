"""A small client for any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, llama.cpp,
Ollama, hosted APIs), with retries, bounded concurrency and an on-disk response cache.

* Requests: ``POST {url}/chat/completions`` with ``{"model", "messages", "temperature": 0,
  "max_tokens"}`` and ``Authorization: Bearer <key>`` when a key is given (``url`` may already end
  in ``/chat/completions``).
* Retries: on 429 and 5xx answers, timeouts and refused connections, up to ``max_retries`` more
  times with exponential back-off (``backoff · 2^attempt`` seconds, or the server's
  ``Retry-After``); other 4xx answers fail at once.
* An endpoint still unreachable after the retries is not tried again in the same run: every later
  request fails at once with the same ``unreachable`` failure.
* Failures are :class:`ExplainerFailure` with a ``kind`` (``unreachable``, ``timeout``,
  ``http <status>``, ``garbage``) so a run can list them per kind and go on.
* Cache: one JSON file per request under ``cache_dir``, named by the SHA-256 of the key the caller
  gives (feature, examples, prompt, model), written atomically; a cached answer sends no request.

The prompts follow the common autointerp pipelines (OpenAI's "language models can explain neurons",
EleutherAI's delphi): activating examples with the firing tokens marked ``<<like this>>``, the
explanation on a final ``[EXPLANATION]:`` line; the detection and fuzzing scorers ask for one 0/1
per example as a JSON list.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from interplab.common.atomic import write_json

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ExplainerFailure(Exception):
    """One request that failed for good; ``kind`` groups failures in the run's report."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclasses.dataclass
class ResponseCache:
    """Responses on disk, one file per key hash (atomic writes; safe across threads)."""

    folder: Path

    @staticmethod
    def key(**parts: Any) -> str:
        blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return Path(self.folder) / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        p = self._path(key)
        if not p.is_file():
            return None
        try:
            return str(json.loads(p.read_text(encoding="utf-8"))["response"])
        except (json.JSONDecodeError, KeyError, OSError):
            return None

    def put(self, key: str, response: str) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_json(p, {"response": response})


@dataclasses.dataclass
class ChatClient:
    """Chat completions against one endpoint and model."""

    url: str
    model: str
    api_key: str | None = None
    timeout: float = 60.0
    max_retries: int = 4
    backoff: float = 1.0
    max_tokens: int = 300
    cache: ResponseCache | None = None
    n_requests: int = dataclasses.field(default=0, init=False)
    down: str | None = dataclasses.field(default=None, init=False)  # set once the endpoint is unreachable
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def endpoint(self) -> str:
        u = self.url.rstrip("/")
        return u if u.endswith("/chat/completions") else u + "/chat/completions"

    def complete(self, messages: list[dict[str, str]], cache_key: str | None = None) -> str:
        """The assistant's answer text (from the cache when ``cache_key`` is there)."""
        if self.cache is not None and cache_key is not None:
            hit = self.cache.get(cache_key)
            if hit is not None:
                return hit
        if self.down is not None:
            raise ExplainerFailure("unreachable", f"{self.down} (not tried again)")
        try:
            text = self._request(messages)
        except ExplainerFailure as exc:
            if exc.kind == "unreachable":
                self.down = exc.message
            raise
        if self.cache is not None and cache_key is not None:
            self.cache.put(cache_key, text)
        return text

    def _request(self, messages: list[dict[str, str]]) -> str:
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": self.max_tokens}
        last: ExplainerFailure | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt, last))
            with self._lock:
                self.n_requests += 1
            try:
                r = httpx.post(self.endpoint, json=body, headers=headers, timeout=self.timeout)
            except httpx.TimeoutException as exc:
                last = ExplainerFailure(
                    "timeout", f"{self.endpoint}: no answer within {self.timeout}s ({exc})"
                )
                continue
            except httpx.HTTPError as exc:  # refused, DNS, reset
                last = ExplainerFailure("unreachable", f"{self.endpoint}: {type(exc).__name__}: {exc}")
                continue
            if r.status_code in RETRY_STATUS:
                last = ExplainerFailure(f"http {r.status_code}", f"{self.endpoint}: HTTP {r.status_code}")
                last.retry_after = r.headers.get("retry-after")  # type: ignore[attr-defined]
                continue
            if r.status_code >= 400:
                raise ExplainerFailure(
                    f"http {r.status_code}", f"{self.endpoint}: HTTP {r.status_code}: {r.text[:200]!r}"
                )
            return parse_completion(r.text, self.endpoint)
        assert last is not None
        raise last

    def _delay(self, attempt: int, last: ExplainerFailure | None) -> float:
        retry_after = getattr(last, "retry_after", None)
        if retry_after:
            try:
                return min(float(retry_after), 60.0)
            except ValueError:
                pass
        return self.backoff * 2 ** (attempt - 1)


def parse_completion(text: str, where: str) -> str:
    """The message content of a chat-completions answer, or a ``garbage`` failure."""
    try:
        data = json.loads(text)
        content = data["choices"][0]["message"]["content"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
        raise ExplainerFailure("garbage", f"{where}: not a chat-completions answer: {text[:120]!r}") from None
    if not isinstance(content, str) or not content.strip():
        raise ExplainerFailure("garbage", f"{where}: empty message content")
    return content


def run_concurrently(
    jobs: Iterable[Any], fn: Callable[[Any], Any], concurrency: int
) -> list[tuple[Any, Any, ExplainerFailure | None]]:
    """``[(job, result, failure)]`` in job order, at most ``concurrency`` jobs in flight."""
    jobs = list(jobs)

    def one(job: Any) -> tuple[Any, Any, ExplainerFailure | None]:
        try:
            return job, fn(job), None
        except ExplainerFailure as exc:
            return job, None, exc

    with ThreadPoolExecutor(max_workers=max(1, int(concurrency))) as pool:
        return list(pool.map(one, jobs))


# -- prompts ---------------------------------------------------------------------------------------
EXPLAIN_SYSTEM = (
    "You are a meticulous AI researcher studying one feature of a neural network. You are shown text "
    "examples in which the feature fires; the tokens it fires on are marked <<like this>>. Look for "
    "what the marked tokens, and the words just before them, have in common. Give a short "
    "explanation (a phrase, not a sentence about 'the feature') on the final line, formatted as\n"
    "[EXPLANATION]: <your explanation>"
)
DETECTION_SYSTEM = (
    "You are an AI researcher checking an explanation of a neural-network feature. Given the "
    "explanation and numbered text examples, decide for each example whether the feature fires "
    "anywhere in it. Answer with only a JSON list of 0/1, one per example, e.g. [1, 0, 1]."
)
FUZZING_SYSTEM = (
    "You are an AI researcher checking an explanation of a neural-network feature. In each numbered "
    "example some tokens are marked <<like this>>. Decide for each example whether the marked tokens "
    "are exactly the ones the explanation describes. Answer with only a JSON list of 0/1, one per "
    "example, e.g. [1, 0, 1]."
)


def mark(tokens: list[str], active: list[bool]) -> str:
    """Tokens joined into text (as :func:`~interplab.sae.explain.rules.join_tokens`) with each
    active token wrapped in ``<<…>>``."""
    spaced = any(t.startswith(" ") for t in tokens)
    out = ""
    for tok, on in zip(tokens, active, strict=True):
        if tok.startswith("##"):
            sep, body = "", tok[2:]
        elif spaced:
            body = tok.lstrip()
            sep = tok[: len(tok) - len(body)]
        else:
            sep, body = ("" if not out else " "), tok
        out += sep + (f"<<{body}>>" if on else body)
    return out.strip()


def explain_messages(examples: list[str]) -> list[dict[str, str]]:
    body = "\n".join(f"Example {i + 1}: {ex}" for i, ex in enumerate(examples))
    return [{"role": "system", "content": EXPLAIN_SYSTEM}, {"role": "user", "content": body}]


def scorer_messages(system: str, explanation: str, examples: list[str]) -> list[dict[str, str]]:
    body = f"Explanation: {explanation}\n\n" + "\n".join(
        f"Example {i + 1}: {ex}" for i, ex in enumerate(examples)
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": body}]


def parse_explanation(text: str, where: str) -> str:
    """The text after the last ``[EXPLANATION]:`` marker, else the last non-empty line."""
    m = re.findall(r"\[EXPLANATION\]\s*:\s*(.+)", text)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    out = (m[-1] if m else (lines[-1] if lines else "")).strip()
    if not out or len(out) > 500:
        raise ExplainerFailure("garbage", f"{where}: no explanation in the answer {text[:120]!r}")
    return out


def parse_binary_list(text: str, n: int, where: str) -> list[int]:
    """A JSON list of ``n`` zeros and ones from an answer, or a ``garbage`` failure."""
    m = re.search(r"\[[\s0-9,.]*\]", text)
    try:
        values = json.loads(m.group(0)) if m else None
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, list) or len(values) != n or any(v not in (0, 1) for v in values):
        raise ExplainerFailure("garbage", f"{where}: expected a list of {n} zeros/ones, got {text[:120]!r}")
    return [int(v) for v in values]
