"""Ctrl-C: one line saying whether re-running the same command picks up where it stopped.

A function whose work resumes (an analysis that keeps complete activation shards, the demo that
keeps finished steps) is wrapped with :func:`resumable`; an interrupt inside it becomes a
:class:`ResumableInterrupt`. The command line prints :data:`RESUME_MESSAGE` for that one and a
plain ``interrupted`` otherwise, and exits 130.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

RESUME_MESSAGE = "interrupted — rerun the same command to resume"
PLAIN_MESSAGE = "interrupted"
EXIT_CODE = 130


class ResumableInterrupt(KeyboardInterrupt):
    """Ctrl-C inside work that a re-run of the same command resumes."""


class Interrupted(Exception):
    """Ctrl-C as the command line reports it (not a ``KeyboardInterrupt``, so frameworks pass it on)."""

    def __init__(self, resumable: bool) -> None:
        super().__init__(RESUME_MESSAGE if resumable else PLAIN_MESSAGE)
        self.resumable = resumable


def resumable(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark ``fn`` as work a re-run resumes: Ctrl-C inside it raises :class:`ResumableInterrupt`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ResumableInterrupt:
            raise
        except KeyboardInterrupt as exc:
            raise ResumableInterrupt() from exc

    return wrapper
