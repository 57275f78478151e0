"""Ctrl-C (a real SIGINT) prints one line; where the work resumes, it says to rerun the command."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from interplab.common.interrupt import PLAIN_MESSAGE, RESUME_MESSAGE, resumable
from interplab.demo import run_demo
from interplab.sae.analyzer import run_comprehensive_analysis

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    from interplab.cli import app, main
    from interplab.common.interrupt import resumable

    def work() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the terminal sends
        time.sleep(5)

    @app.command("resumes")
    def resumes() -> None:
        resumable(work)()

    @app.command("plain")
    def plain() -> None:
        work()

    sys.argv = ["interplab", sys.argv[1]]
    main()
    """
)


@pytest.mark.parametrize(("command", "message"), [("resumes", RESUME_MESSAGE), ("plain", PLAIN_MESSAGE)])
def test_sigint_message_and_exit_130(command: str, message: str) -> None:
    # a child inherits an ignored SIGINT (e.g. from a library in this test process, or nohup);
    # start it with the default disposition, as a command typed in a terminal has
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, command],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert res.returncode == 130
    assert res.stderr.strip().splitlines() == [message]


def test_resuming_commands_are_marked() -> None:
    for fn in (run_comprehensive_analysis, run_demo):
        assert getattr(fn, "__wrapped__", None) is not None

    def stop() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        resumable(stop)()
    assert type(info.value).__name__ == "ResumableInterrupt"
