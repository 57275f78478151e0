"""Config files: a typo in a table or key is an error naming it and the closest valid names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from interplab.cli import app
from interplab.common.config import load_config
from interplab.common.errors import InterplabError

EXE = [sys.executable, "-m", "interplab"]


def _root():
    return typer.main.get_command(app)


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*EXE, "--config", str(config), *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    ("text", "wrong", "closest"),
    [
        ("[masks.hamming]\nn-featurez = 16\n", "'n-featurez' in [masks.hamming]", "n-features"),
        ("[masks.hammin]\nn-features = 16\n", "'hammin' in [masks]", "hamming"),
        ("[mask.hamming]\nn-features = 16\n", "'mask'", "masks"),
        ("[sae.quick]\nbatch_sise = 4\n", "'batch_sise' in [sae.quick]", "batch-size"),
    ],
)
def test_typo_is_one_line_error_naming_the_key(tmp_path: Path, text: str, wrong: str, closest: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    res = _run(cfg, "masks", "hamming", "--help")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: {cfg}: unknown")
    assert wrong in lines[0]
    assert closest in lines[0].split("closest:")[1]


def test_valid_keys_with_dashes_or_underscores(tmp_path: Path) -> None:
    hamming = _root().commands["masks"].commands["hamming"]
    assert "n_features" in {p.name for p in hamming.params}
    for key in ("n-features", "n_features"):
        cfg = tmp_path / "c.json"
        cfg.write_text(json.dumps({"masks": {"hamming": {key: 7}}}))
        assert load_config(cfg, _root()) == {"masks": {"hamming": {"n_features": 7}}}


def test_flat_json_form_is_accepted_and_applied(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text('{"masks.hamming": {"n-features": 3}, "sae": {"quick": {"batch-size": 2}}}')
    assert load_config(cfg, _root()) == {
        "masks": {"hamming": {"n_features": 3}},
        "sae": {"quick": {"batch_size": 2}},
    }
    res = _run(cfg, "masks", "hamming", "--help")
    assert res.returncode == 0, res.stderr
    help_line = next(line for line in res.stdout.splitlines() if "--n-features" in line)
    assert "[default: 3]" in help_line  # the file's value became the flag's default
    bad = tmp_path / "bad.json"
    bad.write_text('{"masks.hamming": {"n-featurez": 3}}')
    res = _run(bad, "masks", "hamming", "--help")
    assert res.returncode == 2 and "'n-featurez' in [masks.hamming]" in res.stderr


def test_flat_and_nested_forms_clash_clearly(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text('{"masks.hamming": {"n-features": 3}, "masks": {"hamming": {"n-features": 4}}}')
    with pytest.raises(InterplabError, match="given twice"):
        load_config(cfg, _root())
    cfg.write_text('{"masks": {"hamming": 3}}')
    with pytest.raises(InterplabError, match="must be a table of flags"):
        load_config(cfg, _root())
