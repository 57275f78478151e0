"""``--overwrite``: remove what an output folder's earlier run wrote, as its manifest lists, and
nothing else.

A user's own files in the folder (notes, a copied figure) stay; so does anything the manifest does
not name. Folders that the removal leaves empty are removed too (never the output folder itself).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path, PurePosixPath

from interplab.common.errors import InterplabError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


def listed_outputs(folder: str | Path) -> list[Path]:
    """The files (and folders) the manifest of ``folder`` lists, resolved inside ``folder``.

    An entry that is absolute or climbs out of the folder (``..``) is an error, not a deletion.
    """
    root = Path(folder)
    manifest = root / MANIFEST
    if not manifest.is_file():
        return []
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InterplabError(f"{manifest}: unreadable manifest ({exc}); remove the folder by hand") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise InterplabError(f"{manifest}: no 'files' list; remove the folder's old outputs by hand")
    out = []
    for entry in files:
        rel = PurePosixPath(str(entry["path"] if isinstance(entry, dict) else entry))
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise InterplabError(f"{manifest}: file entry {str(rel)!r} is not inside the folder")
        out.append(root.joinpath(*rel.parts))
    return out


def remove_previous_outputs(folder: str | Path) -> list[Path]:
    """Delete what the last run in ``folder`` wrote (its manifest's files, then the manifest).

    Returns the paths removed. Emptied sub-folders go too; other files are never touched.
    """
    root = Path(folder)
    targets = listed_outputs(root)
    if not targets:
        return []
    removed: list[Path] = []
    parents: set[Path] = set()
    for path in [*targets, root / MANIFEST]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
        parents.update(p for p in path.parents if root in p.parents)
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    log.info("--overwrite: removed %d files of the earlier run in %s", len(removed), root)
    return removed
