"""The output-folder convention: every analysis writes into one folder with a ``manifest.json``.

The manifest records the command, its arguments, package versions, timings and every file written,
so a result folder explains how it was made. One writer (:func:`manifest_payload`) serves the
folder manifests and the ``<name>.manifest.json`` beside single-file outputs; paths in ``files`` are
always relative to the manifest's folder.

``files`` lists what the code recorded, plus every other file written in the folder while the
command ran (a figure's PDF twin, a database shard, a sub-step's outputs), plus what an earlier
run's manifest listed that is still there (a resumed run keeps it; ``--overwrite`` removes it
first). Hidden paths (temp files, ``.steps`` markers) are not outputs and are never listed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from interplab.common.atomic import write_json

TRACKED_PACKAGES = (
    "interplab",
    "torch",
    "transformers",
    "numpy",
    "scikit-learn",
    "pandas",
    "pyarrow",
    "duckdb",
    "wandb",
    "matplotlib",
)


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the packages whose behaviour shapes our numbers."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def timestamp() -> str:
    """A sortable local timestamp used in file names (``YYYYmmdd_HHMMSS``)."""
    return _dt.datetime.now().strftime("%Y%m%d_%H%M%S")


MANIFEST_NAME = "manifest.json"


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def relative_to_folder(folder: Path, path: str | os.PathLike[str]) -> str:
    """``path`` (absolute, relative to ``folder``, or relative to the working directory) as a POSIX
    path relative to ``folder``; a path outside the folder is kept as given."""
    p = Path(path)
    root = folder.resolve()
    candidates = [p] if p.is_absolute() else [folder / p, Path.cwd() / p]
    for cand in candidates:
        try:
            rel = cand.resolve().relative_to(root)
        except ValueError:
            continue
        if p.is_absolute() or cand.exists() or cand == candidates[-1]:
            return rel.as_posix()
    return p.as_posix()


def files_written_since(folder: str | os.PathLike[str], since: float) -> list[str]:
    """Non-hidden files under ``folder`` modified at or after ``since`` (relative POSIX paths)."""
    root = Path(folder)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            path = here / name
            try:
                if path.stat().st_mtime >= since:
                    out.append(path.relative_to(root).as_posix())
            except OSError:
                continue
    return out


def previous_files(manifest: Path) -> list[str]:
    """The ``files`` of an existing manifest (empty when there is none or it is unreadable)."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    files = data.get("files") if isinstance(data, dict) else None
    return [str(f) for f in files] if isinstance(files, list) else []


def manifest_payload(
    command: str,
    arguments: dict[str, Any],
    files: list[str],
    *,
    started: float | None = None,
    timings: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one manifest schema (see docs/conventions.md)."""
    manifest = {
        "command": command,
        "argv": sys.argv,
        "arguments": arguments,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 3) if started is not None else None,
        "timings": timings or {},
        "versions": package_versions(),
        "files": sorted(set(files)),
    }
    if extra:
        manifest.update(extra)
    return manifest


def write_sibling_manifest(
    manifest: str | os.PathLike[str],
    command: str,
    arguments: dict[str, Any],
    files: list[str | os.PathLike[str]],
    *,
    started: float | None = None,
    timings: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``<name>.manifest.json`` for outputs written beside each other in a shared folder;
    ``files`` are stored relative to the manifest's folder. A thin wrapper over :class:`OutputDir`
    with ``manifest_name`` set, so there is one manifest writer."""
    path = Path(manifest)
    od = OutputDir(path.parent, command, arguments, manifest_name=path.name)
    if started is not None:
        od.started = started
    od.timings.update(timings or {})
    for f in files:
        od.record(f)
    return od.write_manifest(extra)


def manifest_mismatches(folder: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """``(unlisted, missing)``: non-hidden files in ``folder`` its manifest does not list, and listed
    files that do not exist. Both empty when the manifest tells the truth."""
    root = Path(folder)
    listed = set(previous_files(root / MANIFEST_NAME))
    present = set(files_written_since(root, 0.0)) - {MANIFEST_NAME}
    return sorted(present - listed), sorted(f for f in listed if not (root / f).is_file())


@dataclasses.dataclass
class OutputDir:
    """An analysis output folder that tracks what it wrote and writes ``manifest.json`` at the end."""

    path: Path
    command: str
    arguments: dict[str, Any]
    files: list[str] = dataclasses.field(default_factory=list)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.time)
    manifest_name: str = MANIFEST_NAME  # e.g. ``<result>.manifest.json`` beside a single result file

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, relative: str | os.PathLike[str]) -> Path:
        """Path of an output file inside the folder (its parent is created); recorded in the manifest."""
        p = self.path / relative
        p.parent.mkdir(parents=True, exist_ok=True)
        rel = str(Path(relative).as_posix())
        if rel not in self.files:
            self.files.append(rel)
        return p

    def record(self, path: str | os.PathLike[str]) -> None:
        """Record a file written by other code (absolute, relative to the folder or to the working
        directory); it is stored relative to the folder."""
        rel = relative_to_folder(self.path, path)
        if rel not in self.files:
            self.files.append(rel)

    def save_figure(self, fig: Any, relative: str | os.PathLike[str]) -> list[Path]:
        """Save ``fig`` as PNG + PDF at ``relative`` (suffix replaced, see
        :func:`interplab.common.figures.save_figure`) and record both; returns their paths."""
        from interplab.common.figures import save_figure

        written = save_figure(fig, self.path / relative)
        for p in written:
            self.record(p)
        return written

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Time a step; the seconds go into the manifest's ``timings``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 4)

    def write_manifest(self, extra: dict[str, Any] | None = None) -> Path:
        """Write the manifest (atomically): recorded files, files written since the start and the
        earlier manifest's files, as far as they exist now (see the module docstring).

        A per-result manifest (``manifest_name`` other than ``manifest.json``) shares its folder
        with other results, so it lists only the recorded files (and its earlier ones), not every
        file written in the folder meanwhile."""
        manifest_path = self.path / self.manifest_name
        scanned = (
            files_written_since(self.path, self.started - 0.01) if self.manifest_name == MANIFEST_NAME else []
        )
        candidates = {*self.files, *scanned, *previous_files(manifest_path)}
        existing = [
            f
            for f in candidates
            if f != self.manifest_name and not _is_hidden(Path(f)) and (self.path / f).is_file()
        ]
        manifest = manifest_payload(
            self.command,
            self.arguments,
            existing,
            started=self.started,
            timings=self.timings,
            extra=extra,
        )
        return write_json(manifest_path, manifest)


@contextlib.contextmanager
def output_dir(path: str | os.PathLike[str], command: str, arguments: dict[str, Any]) -> Iterator[OutputDir]:
    """Open an :class:`OutputDir`; the manifest is written when the block finishes without error."""
    out = OutputDir(Path(path), command, arguments)
    yield out
    out.write_manifest()
