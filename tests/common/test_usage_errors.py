"""Framework usage errors are one ``error:`` line with exit 2; ``--help`` stays the rich page."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

EXE = [sys.executable, "-m", "interplab"]
ENV = {**os.environ, "COLUMNS": "100"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=ENV, timeout=120)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["masks", "prune"], "masks prune: missing option '--out'"),
        (["masks", "prune", "--out", "x", "--sparsty", "0.5"], "no such option: --sparsty"),
        (["masks", "hamming", "m.pt", "--n-features", "abc"], "invalid value for '--n-features'"),
        (["runs", "lst"], "runs: no such command 'lst'"),
        (["--bogus"], "no such option: --bogus"),
    ],
)
def test_usage_error_is_one_line_exit_2(args: list[str], expected: str) -> None:
    res = _run(*args)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert expected in lines[0] and lines[0].endswith("--help)")
    assert not res.stdout


def test_help_and_bare_group_keep_the_rich_page() -> None:
    res = _run("masks", "prune", "--help")
    assert res.returncode == 0 and "Usage:" in res.stdout and "--out" in res.stdout
    assert "╭" in res.stdout  # the boxed option table
    bare = _run("masks")
    assert "Usage:" in bare.stdout + bare.stderr and "prune" in bare.stdout + bare.stderr
    assert "error:" not in bare.stderr
