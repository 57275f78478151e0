"""Tables never cut a number: full width when piped, wrapped cells on a narrow terminal."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

from rich.console import Console
from rich.table import Table

from interplab.common.console import PIPE_WIDTH, no_truncation, output_console

VALUES = [f"{0.6812345678901 * (i + 1):.12f}" for i in range(12)]


def _table() -> Table:
    t = Table(title="wide")
    for i in range(len(VALUES)):
        t.add_column(f"method_with_a_long_name_{i}")
    t.add_row(*VALUES)
    return t


def test_piped_table_is_printed_in_full() -> None:
    buf = io.StringIO()
    console = output_console(file=buf)
    assert console.width == PIPE_WIDTH
    console.print(no_truncation(_table()))
    text = buf.getvalue()
    assert "…" not in text
    for i, value in enumerate(VALUES):
        assert value in text and f"method_with_a_long_name_{i}" in text


def test_narrow_terminal_wraps_instead_of_cutting() -> None:
    buf = io.StringIO()
    Console(file=buf, width=60, force_terminal=True, color_system=None).print(no_truncation(_table()))
    text = buf.getvalue()
    assert "…" not in text
    digits = sum(len(re.sub(r"\D", "", v)) for v in VALUES) + sum(len(str(i)) for i in range(len(VALUES)))
    assert len(re.sub(r"\D", "", text)) == digits  # every digit of every value is still there


def test_help_is_not_cut_when_piped() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    res = subprocess.run(
        [sys.executable, "-m", "interplab", "sae", "quick", "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0
    assert "hook_mlp_out|hook_attn_out" in res.stdout and "…" not in res.stdout
