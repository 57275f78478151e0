"""Command-line usage errors (a missing option, an unknown flag, a bad value) as one ``error:`` line.

The framework prints usage errors as a multi-line box; the project's errors are one line that says
what was wrong and where to look. The root command group converts each usage error into an
:class:`~interplab.common.errors.InterplabError`, which the entry point prints as ``error: …`` and
exits 2. ``--help`` and a bare group (which shows its help) are left as they are.

The same group reports Ctrl-C as :class:`~interplab.common.interrupt.Interrupted` (the framework
would otherwise turn it into a silent exit 130), so the entry point can say whether a re-run resumes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from typer.core import TyperGroup

from interplab.common.errors import InterplabError
from interplab.common.interrupt import Interrupted, ResumableInterrupt

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer on the real click
    from click.exceptions import UsageError  # type: ignore[no-redef]


class UsageLineError(InterplabError):
    """A usage error of the command line, in one line."""


def usage_line(exc: Any) -> str:
    """One line for a usage error: the command, what was wrong, and where the help is."""
    message = " ".join(str(exc.format_message()).split()).rstrip(".")
    if message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see {ctx.command_path} --help)"


@contextlib.contextmanager
def one_line_usage() -> Iterator[None]:
    """Turn a usage error raised inside the block into a :class:`UsageLineError`."""
    try:
        yield
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group shows its help
            raise
        raise UsageLineError(usage_line(exc)) from exc


class OneLineUsageGroup(TyperGroup):
    """Root group: usage errors (its own and every subcommand's) as one line, Ctrl-C as :class:`Interrupted`."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        with one_line_usage():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        try:
            with one_line_usage():
                return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Interrupted(resumable=isinstance(exc, ResumableInterrupt)) from exc
