"""The one error type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class InterplabError(Exception):
    """A user-facing error: bad input, missing file, unknown key. Its message is one clear line."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message.strip().replace("\n", " "))


def require(condition: bool, message: str) -> None:
    """Raise :class:`InterplabError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise InterplabError(message)


def one_of(value: str, allowed: list[str] | tuple[str, ...], what: str) -> str:
    """Return ``value`` if it is in ``allowed``; else raise an error listing what exists."""
    if value not in allowed:
        raise InterplabError(f"unknown {what} {value!r}; expected one of: {', '.join(map(str, allowed))}")
    return value
