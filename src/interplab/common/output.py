"""The output-folder convention: every analysis writes into one folder with a ``manifest.json``.

The manifest records the command, its arguments, package versions, timings and every file written,
so a result folder explains how it was made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
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


@dataclasses.dataclass
class OutputDir:
    """An analysis output folder that tracks what it wrote and writes ``manifest.json`` at the end."""

    path: Path
    command: str
    arguments: dict[str, Any]
    files: list[str] = dataclasses.field(default_factory=list)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.time)
    manifest_name: str = "manifest.json"  # e.g. ``<result>.manifest.json`` beside a single result file

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
        """Record a file written by other code (absolute or relative to the folder)."""
        p = Path(path)
        rel = str(p.relative_to(self.path) if p.is_absolute() else p)
        if rel not in self.files:
            self.files.append(rel)

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Time a step; the seconds go into the manifest's ``timings``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 4)

    def write_manifest(self, extra: dict[str, Any] | None = None) -> Path:
        """Write ``manifest.json`` (atomically), listing the files that exist now."""
        existing = [f for f in self.files if (self.path / f).exists()]
        manifest = {
            "command": self.command,
            "argv": sys.argv,
            "arguments": self.arguments,
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "seconds": round(time.time() - self.started, 3),
            "timings": self.timings,
            "versions": package_versions(),
            "files": sorted(existing),
        }
        if extra:
            manifest.update(extra)
        return write_json(self.path / self.manifest_name, manifest)


@contextlib.contextmanager
def output_dir(path: str | os.PathLike[str], command: str, arguments: dict[str, Any]) -> Iterator[OutputDir]:
    """Open an :class:`OutputDir`; the manifest is written when the block finishes without error."""
    out = OutputDir(Path(path), command, arguments)
    yield out
    out.write_manifest()
