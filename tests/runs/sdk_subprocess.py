"""Write real offline W&B runs with the installed ``wandb`` in a child process.

Each helper runs a short Python snippet in a fresh interpreter (so a run can be killed with
SIGKILL, as a crashed training job would be) with every W&B folder under the test's ``root``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PRELUDE = """
import sys, time, wandb
ROOT = sys.argv[1]
SETTINGS = wandb.Settings(console="off", x_disable_stats=True, silent=True)
def init(**kw):
    return wandb.init(mode="offline", dir=ROOT, project="fidelity", settings=SETTINGS, **kw)
"""


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        env[key] = str(root / f".{key.lower()}")
    env["WANDB_SILENT"] = "true"
    env.pop("WANDB_BASE_URL", None)
    return env


def write_run(root: Path, body: str, timeout: float = 120.0) -> None:
    """Run ``body`` (uses ``init(**kw)`` → an offline run under ``root``) to completion."""
    root.mkdir(parents=True, exist_ok=True)
    script = PRELUDE + textwrap.dedent(body)
    subprocess.run([sys.executable, "-c", script, str(root)], env=_env(root), check=True, timeout=timeout)


def write_killed_run(root: Path, body: str, settle_s: float = 2.0, timeout: float = 120.0) -> None:
    """Run ``body`` until it prints ``KILL ME``, then SIGKILL it (no exit record is written)."""
    root.mkdir(parents=True, exist_ok=True)
    script = PRELUDE + textwrap.dedent(body) + "\ntime.sleep(600)\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(root)], env=_env(root), stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        for line in proc.stdout:
            if "KILL ME" in line or time.monotonic() > deadline:
                break
        time.sleep(settle_s)  # let the wandb service write what it was given
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    time.sleep(0.5)


def logs_of(root: Path) -> list[Path]:
    """Every ``run-*.wandb`` written under ``root`` (real folders only)."""
    return sorted(p for p in root.rglob("run-*.wandb") if "latest-run" not in p.parts)
