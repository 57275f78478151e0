"""Optional config file (TOML or JSON) that supplies defaults for any command's flags.

Layout: ``[area.command]`` tables whose keys are the flag names (``n-features`` or ``n_features``)::

    [masks.hamming]
    n-features = 64
    n-clusters = 4
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from interplab.common.errors import InterplabError


def _normalise(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k).replace("-", "_"): _normalise(v) for k, v in node.items()}
    return node


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML/JSON config file into click's ``default_map`` shape."""
    p = Path(path)
    if not p.is_file():
        raise InterplabError(f"{p}: config file not found")
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
        else:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InterplabError(f"{p}: malformed config file: {exc}") from exc
    if not isinstance(data, dict):
        raise InterplabError(f"{p}: config file must hold a table of areas, e.g. [masks.hamming]")
    # click matches default_map keys to command names, which keep their dashes
    out: dict[str, Any] = {}
    for area, commands in data.items():
        if not isinstance(commands, dict):
            raise InterplabError(f"{p}: key {area!r} must be a table of commands")
        out[area] = {cmd: _normalise(opts) for cmd, opts in commands.items()}
    return out
