"""Reaching the W&B server: an API key, a reachable host and a bounded timeout, or one clear line.

Without these checks a missing key shows the SDK's traceback and an unreachable host keeps the SDK
retrying for a minute. Here the key is left to the SDK's own lookup (``WANDB_API_KEY``, ``wandb
login``'s netrc entry), the host is probed with one TCP connection first, and every request gets
the timeout (``--timeout`` on ``interplab runs``, the ``INTERPLAB_WANDB_TIMEOUT`` variable, or
:data:`DEFAULT_TIMEOUT` seconds).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from interplab.common.errors import InterplabError

DEFAULT_TIMEOUT = 20.0
TIMEOUT_ENV = "INTERPLAB_WANDB_TIMEOUT"
DEFAULT_BASE_URL = "https://api.wandb.ai"
NO_KEY = "no W&B API key: set WANDB_API_KEY or run wandb login"


def wandb_base_url() -> str:
    """The server the SDK talks to: ``WANDB_BASE_URL`` or the public cloud."""
    return (os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


def resolve_timeout(timeout: float | None = None) -> float:
    """``timeout`` if given, else ``INTERPLAB_WANDB_TIMEOUT``, else :data:`DEFAULT_TIMEOUT` (seconds)."""
    if timeout is None:
        text = os.environ.get(TIMEOUT_ENV)
        if not text:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(text)
        except ValueError as exc:
            raise InterplabError(f"{TIMEOUT_ENV}={text!r}: expected a number of seconds") from exc
    if not timeout > 0:
        raise InterplabError(f"--timeout {timeout}: expected a positive number of seconds")
    return float(timeout)


def probe(base_url: str, timeout: float) -> None:
    """Open (and close) one TCP connection to the server, or raise the one-line error."""
    parts = urlsplit(base_url)
    host = parts.hostname
    if not host:
        raise InterplabError(f"WANDB_BASE_URL={base_url!r}: expected a URL such as https://api.wandb.ai")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise InterplabError(f"cannot reach W&B at {base_url}: {reason} (timeout {timeout:g} s)") from exc


def has_api_key(base_url: str) -> bool:
    """Whether the SDK would find credentials for ``base_url`` without prompting."""
    try:
        from wandb.sdk.lib.wbauth import authenticate_session
    except ImportError:  # another SDK layout: the key's usual homes
        import netrc

        if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
            return True
        try:
            return netrc.netrc().authenticators(urlsplit(base_url).hostname or "") is not None
        except (OSError, netrc.NetrcParseError):
            return False
    try:
        auth = authenticate_session(
            host=base_url, source="interplab", verify=False, prompt=False, update_session=False
        )
    except Exception as exc:  # a malformed key: let the SDK's own message through below
        return bool(str(exc))
    return auth is not None


def _is_connection_error(exc: BaseException) -> bool:
    """Connection failures and timeouts of ``requests`` or the SDK, not HTTP answers."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout):
        return True
    text = str(exc).lower()
    return type(exc).__name__ in ("CommError", "AuthenticationError") and any(
        word in text for word in ("did not respond", "timed out", "connection", "unreachable")
    )


@contextlib.contextmanager
def reaching(base_url: str, timeout: float) -> Iterator[None]:
    """Turn a connection failure or timeout inside the block into the one-line error."""
    try:
        yield
    except InterplabError:
        raise
    except Exception as exc:
        if _is_connection_error(exc):
            raise InterplabError(
                f"cannot reach W&B at {base_url}: no answer (timeout {timeout:g} s per request)"
            ) from exc
        raise


def connect_api(timeout: float | None = None) -> Any:
    """A ``wandb.Api`` with a bounded timeout, after checking the host answers and a key exists."""
    import wandb

    seconds = resolve_timeout(timeout)
    base_url = wandb_base_url()
    if not has_api_key(base_url):
        raise InterplabError(NO_KEY)
    probe(base_url, seconds)
    with reaching(base_url, seconds):
        try:
            return wandb.Api(timeout=max(1, round(seconds)))
        except wandb.errors.UsageError as exc:
            if "api key" in str(exc).lower():
                raise InterplabError(NO_KEY) from exc
            raise InterplabError(f"W&B: {' '.join(str(exc).split())}") from exc
        except wandb.errors.AuthenticationError as exc:
            if _is_connection_error(exc):
                raise
            message = " ".join(str(exc).split())
            raise InterplabError(f"cannot verify the W&B API key with {base_url}: {message}") from exc
