"""One manifest schema: every file listed, paths relative to the manifest's folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from interplab.common.atomic import write_json, write_text
from interplab.common.figures import new_figure, save_figure
from interplab.common.output import manifest_mismatches, output_dir, write_sibling_manifest

SCHEMA = {"command", "argv", "arguments", "created", "seconds", "timings", "versions", "files"}


def test_unrecorded_files_and_pdf_twins_are_listed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_dir(out, "test", {"k": 1}) as od:
        write_json(od.file("a.json"), {})
        fig, ax = new_figure()
        ax.plot([0, 1])
        save_figure(fig, od.file("plots/f.png"))  # the PDF twin is never recorded by hand
        write_text(out / "deep" / "unrecorded.md", "x")
        write_text(out / ".steps" / "marker.json", "{}")  # hidden: not an output
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) >= SCHEMA
    assert manifest["files"] == ["a.json", "deep/unrecorded.md", "plots/f.pdf", "plots/f.png"]
    assert manifest_mismatches(out) == ([], [])


def test_record_paths_relative_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with output_dir(Path("rel") / "out", "test", {}) as od:
        write_text(Path("rel/out/x.txt"), "x")
        od.record("rel/out/x.txt")  # as given by code that only knows the cwd-relative path
        od.record(Path.cwd() / "rel" / "out" / "x.txt")
    assert json.loads(Path("rel/out/manifest.json").read_text())["files"] == ["x.txt"]


def test_rerun_keeps_earlier_files_that_still_exist(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_dir(out, "test", {}) as od:
        write_text(od.file("first.txt"), "1")
        write_text(od.file("gone.txt"), "1")
    (out / "gone.txt").unlink()
    old = out / "first.txt"
    os.utime(old, (old.stat().st_atime - 100, old.stat().st_mtime - 100))
    with output_dir(out, "test", {}):
        pass  # a no-op re-run (everything reused) must not blank the list
    assert json.loads((out / "manifest.json").read_text())["files"] == ["first.txt"]


def test_mismatches_name_unlisted_and_missing(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "manifest.json").write_text(json.dumps({"files": ["b.txt"]}))
    assert manifest_mismatches(tmp_path) == (["a.txt"], ["b.txt"])


def test_sibling_manifest_paths_relative_to_its_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = Path("res")
    files = [write_text(res / "x.json", "{}"), write_text(res / "sub" / "y.md", "y")]
    path = write_sibling_manifest(res / "x.manifest.json", "masks hamming", {"n": 1}, files)
    manifest = json.loads(path.read_text())
    assert set(manifest) >= SCHEMA
    assert manifest["files"] == ["sub/y.md", "x.json"]
