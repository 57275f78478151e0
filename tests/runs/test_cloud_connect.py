"""A cloud source without a key, or with a server that is closed or silent: one line, exit 2, bounded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interplab.common.errors import InterplabError
from interplab.runs.cloud_connect import NO_KEY, probe, resolve_timeout

FAKE_KEY = "x" * 40


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "NETRC"))}
    return {**env, "HOME": str(home), "WANDB_SILENT": "true", "WANDB_CONFIG_DIR": str(home / "cfg"), **extra}


def _interplab(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "interplab", *args], capture_output=True, text=True, env=env, timeout=120
    )
    return res, time.monotonic() - start


def _one_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    return lines[0]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections on 127.0.0.1 and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_no_api_key_is_one_line(tmp_path: Path) -> None:
    res, _ = _interplab(_env(tmp_path), "runs", "list", "wandb:someone/project")
    assert _one_line(res) == f"error: {NO_KEY}"


def test_closed_port_is_one_line_and_fast(tmp_path: Path, closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    env = _env(tmp_path, WANDB_API_KEY=FAKE_KEY, WANDB_BASE_URL=url)
    res, _ = _interplab(env, "runs", "--timeout", "3", "list", "wandb:someone/project")
    line = _one_line(res)
    assert line.startswith(f"error: cannot reach W&B at {url}: ")
    with pytest.raises(InterplabError, match="cannot reach W&B"):
        probe(url, 1.0)


def test_silent_server_is_bounded_by_timeout(tmp_path: Path, silent_server: int) -> None:
    url = f"http://127.0.0.1:{silent_server}"
    env = _env(tmp_path, WANDB_API_KEY=FAKE_KEY, WANDB_BASE_URL=url)
    res, seconds = _interplab(env, "runs", "--timeout", "2", "list", "wandb:someone/project")
    line = _one_line(res)
    assert url in line
    assert seconds < 60  # the SDK alone retries for about a minute


def test_timeout_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERPLAB_WANDB_TIMEOUT", raising=False)
    assert resolve_timeout(None) == 20.0
    assert resolve_timeout(3) == 3.0
    monkeypatch.setenv("INTERPLAB_WANDB_TIMEOUT", "7.5")
    assert resolve_timeout(None) == 7.5
    with pytest.raises(InterplabError, match="positive"):
        resolve_timeout(0)
    monkeypatch.setenv("INTERPLAB_WANDB_TIMEOUT", "soon")
    with pytest.raises(InterplabError, match="INTERPLAB_WANDB_TIMEOUT"):
        resolve_timeout(None)
