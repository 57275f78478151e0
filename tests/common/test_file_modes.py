"""Files written through the atomic writer get the mode the umask gives, not a temp file's 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from interplab.common.atomic import (
    current_umask,
    save_npy,
    save_tensor,
    write_bytes,
    write_json,
    write_jsonl,
    write_parquet,
    write_text,
)
from interplab.common.figures import new_figure, save_figure


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask: int) -> None:
    assert current_umask() == umask
    assert current_umask() == umask


def test_every_writer_follows_the_umask(tmp_path: Path, umask: int) -> None:
    reference = tmp_path / "plain.txt"
    with reference.open("w") as fh:  # what any other program's output gets
        fh.write("x")
    written = [
        write_text(tmp_path / "a.txt", "x"),
        write_bytes(tmp_path / "b.bin", b"x"),
        write_json(tmp_path / "c.json", {"a": 1}),
        write_jsonl(tmp_path / "d.jsonl", [{"a": 1}]),
        save_npy(tmp_path / "e.npy", np.arange(3)),
        save_tensor(tmp_path / "f.pt", torch.arange(3)),
        write_parquet(tmp_path / "g.parquet", pd.DataFrame({"a": [1]})),
    ]
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    written += save_figure(fig, tmp_path / "h.png")
    assert _mode(reference) == 0o666 & ~umask
    assert {p.name: _mode(p) for p in written} == {p.name: _mode(reference) for p in written}


def test_replacing_a_file_takes_the_umask_mode(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "r.txt"
    target.write_text("old")
    target.chmod(0o600)
    write_text(target, "new")
    assert target.read_text() == "new"
    assert _mode(target) == 0o666 & ~umask
