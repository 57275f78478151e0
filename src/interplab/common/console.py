"""Consoles for tables that never cut a number: full width when piped, folded cells on a terminal.

Rich sizes a table to the console; printed to a pipe or a file it assumes 80 columns and ends
long cells with ``…``. :func:`output_console` gives a console that is as wide as the table needs
when stdout is not a terminal, and :func:`no_truncation` makes cells wrap (fold) instead of
being cut when a terminal is narrow.
"""

from __future__ import annotations

import os
from typing import IO, Any

#: the width used when stdout is not a terminal: tables take the width they need up to this
PIPE_WIDTH = 10_000
#: the width the command-line help is laid out in when stdout is not a terminal
HELP_PIPE_WIDTH = 160


def output_console(file: IO[str] | None = None, stderr: bool = False) -> Any:
    """A rich ``Console``: the terminal's width on a terminal, else wide enough for any table."""
    from rich.console import Console

    console = Console(file=file, stderr=stderr)
    if console.is_terminal:
        return console
    return Console(file=file, stderr=stderr, width=PIPE_WIDTH)


def no_truncation(table: Any) -> Any:
    """Make every column of a rich ``Table`` wrap its cells instead of cutting them with ``…``."""
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    return table


def widen_help_when_piped() -> None:
    """Lay the ``--help`` pages out in :data:`HELP_PIPE_WIDTH` columns when stdout is a pipe or a
    file (the help library reads ``TERMINAL_WIDTH`` when it is first used); a set width wins."""
    import sys

    if "TERMINAL_WIDTH" in os.environ or "COLUMNS" in os.environ:
        return
    try:
        piped = not sys.stdout.isatty()
    except (AttributeError, ValueError):
        piped = True
    if piped:
        os.environ["TERMINAL_WIDTH"] = str(HELP_PIPE_WIDTH)
