"""A hidden staging folder renamed onto its target only when complete, so a failed command leaves
no partial results and an older complete folder stays intact until its successor is ready."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_folder(out: Path, name: str) -> Iterator[Path]:
    """Yield ``out/.<name>.partial-*``; on success it replaces ``out/name``, on failure it is removed
    (and ``out`` too if this call created it and it is empty)."""
    created_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=out))
    staging.chmod(0o755)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created_out and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    final = out / name
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=out))
        final.rename(old / name)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
