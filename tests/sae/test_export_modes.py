"""A static browser export copied to a shared drive opens for colleagues: modes follow the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from browser_support import shared_analysis

from interplab.sae.browser import export_browser


def test_export_files_and_folders_follow_umask_022(tiny_models, tmp_path_factory, tmp_path: Path) -> None:
    analysis = shared_analysis(tmp_path_factory, tiny_models)
    old = os.umask(0o022)
    try:
        export_browser(analysis, tmp_path / "exp", features=[1, 2])
    finally:
        os.umask(old)
    out = tmp_path / "exp"
    modes = {p.relative_to(out).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
    modes["."] = stat.S_IMODE(out.stat().st_mode)
    expected = {k: 0o755 if (out / k).is_dir() else 0o644 for k in modes}
    assert {"index.html", "export.json"} <= set(modes)
    assert modes == expected
