"""One garbage ``.wandb`` file among good runs: the good runs are listed, the bad file is named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from interplab.runs.offline import offline_runs

from .conftest import WrittenRuns


def _with_garbage(sdk_runs: WrittenRuns, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Two of the SDK's runs and one folder whose ``.wandb`` file is random bytes."""
    root = tmp_path / "runs"
    good = sorted(sdk_runs.runs.values(), key=lambda w: w.id)[:2]
    for written in good:
        assert written.folder is not None
        shutil.copytree(written.folder, root / "wandb" / written.folder.name)
    bad_folder = root / "wandb" / "offline-run-20250101_000000-garbage"
    bad_folder.mkdir(parents=True)
    bad = bad_folder / "run-garbage.wandb"
    bad.write_bytes(os.urandom(4096))
    return root, bad, [w.id for w in good]


def _interplab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "interplab", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_garbage_log_is_skipped_and_named(sdk_runs: WrittenRuns, tmp_path: Path, caplog) -> None:
    root, bad, good = _with_garbage(sdk_runs, tmp_path)
    runs = offline_runs(root)  # fills the cache the command below reads
    assert sorted(r.id for r in runs) == good
    assert any(str(bad.resolve()) in rec.getMessage() for rec in caplog.records)
    res = _interplab("runs", "list", str(root))
    assert res.returncode == 0, res.stderr
    assert all(ident in res.stdout for ident in good) and "2 runs" in res.stdout
    assert str(bad.resolve()) in res.stderr and "skipped 1 of 3" in res.stderr


def test_only_garbage_is_one_line_error(sdk_runs: WrittenRuns, tmp_path: Path) -> None:
    _, bad, _ = _with_garbage(sdk_runs, tmp_path)
    res = _interplab("runs", "list", str(bad.parent))
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert str(bad) in lines[0] or str(bad.resolve()) in lines[0]
