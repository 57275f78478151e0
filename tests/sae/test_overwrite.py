"""``sae analyze --overwrite`` removes what the folder's earlier run wrote (its manifest) and no more."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from analyze_support import run_analysis, write_sae, write_texts

from interplab.common.errors import InterplabError
from interplab.common.overwrite import listed_outputs, remove_previous_outputs


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow  # two tiny analyses, ~20 s on a loaded machine
def test_overwrite_leaves_only_the_new_run_and_user_files(tiny_models, tiny_texts, tmp_path) -> None:
    sae = write_sae(tmp_path / "sae")
    out = tmp_path / "analysis"
    first = write_texts(tmp_path / "a.json", tiny_texts[:10])
    second = write_texts(tmp_path / "b.json", tiny_texts[10:16])
    run_analysis(tiny_models["gpt2"], sae, first, out, ablation_tokens=0)
    old = set(json.loads((out / "manifest.json").read_text())["files"])
    assert any(f.startswith("SUMMARY_") for f in old)
    (out / "notes.txt").write_text("mine")
    (out / "plots" / "my_figure.png").write_bytes(b"x")
    time.sleep(1.1)  # result names carry a per-second timestamp
    run_analysis(tiny_models["gpt2"], sae, second, out, ablation_tokens=0, overwrite=True)
    new = set(json.loads((out / "manifest.json").read_text())["files"])
    assert old - new  # timestamped names differ between the two runs
    left = _tree(out)
    assert not (old - new) & left  # nothing of the earlier run survives
    assert {"notes.txt", "plots/my_figure.png"} <= left
    assert (out / "notes.txt").read_text() == "mine"
    stray = left - new - {"manifest.json", "notes.txt", "plots/my_figure.png"}
    assert not {f for f in stray if not f.startswith("activation_database/")}


def test_remove_previous_outputs_by_manifest(tmp_path: Path) -> None:
    out = tmp_path / "o"
    (out / "sub" / "deep").mkdir(parents=True)
    for rel in ("a.json", "sub/b.png", "sub/deep/c.npy", "keep.txt", "sub/keep.md"):
        (out / rel).write_text(rel)
    listing = {"files": ["a.json", "sub/b.png", "sub/deep/c.npy", "gone.txt"]}
    (out / "manifest.json").write_text(json.dumps(listing))
    removed = remove_previous_outputs(out)
    assert {p.relative_to(out).as_posix() for p in removed} == {
        "a.json",
        "sub/b.png",
        "sub/deep/c.npy",
        "manifest.json",
    }
    assert _tree(out) == {"keep.txt", "sub/keep.md"}
    assert not (out / "sub" / "deep").exists() and (out / "sub").is_dir()
    assert remove_previous_outputs(out) == []  # no manifest: nothing to remove


@pytest.mark.parametrize("entry", ["../outside.txt", "/etc/passwd"])
def test_manifest_entries_outside_the_folder_are_refused(tmp_path: Path, entry: str) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (tmp_path / "outside.txt").write_text("x")
    (out / "manifest.json").write_text(json.dumps({"files": [entry]}))
    with pytest.raises(InterplabError, match="not inside the folder"):
        listed_outputs(out)
    assert (tmp_path / "outside.txt").exists()
