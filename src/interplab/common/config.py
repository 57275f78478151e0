"""Optional config file (TOML or JSON) that supplies defaults for any command's flags.

Layout: ``[area.command]`` tables whose keys are the flag names (``n-features`` or ``n_features``)::

    [masks.hamming]
    n-features = 64
    n-clusters = 4

The flat form ``{"masks.hamming": {"n-features": 64}}`` (a JSON object, or a quoted TOML key) means
the same. Given the command tree, every table and key is checked: a typo is an error naming it and
the closest valid names, never a silent run with defaults.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from pathlib import Path
from typing import Any

from interplab.common.errors import InterplabError


def _normalise(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k).replace("-", "_"): _normalise(v) for k, v in node.items()}
    return node


def _unflatten(data: dict[str, Any], source: Path) -> dict[str, Any]:
    """Turn dotted top-level keys (``"masks.hamming"``) into nested tables; refuse a clash."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        parts = str(key).split(".")
        if any(not part for part in parts):
            raise InterplabError(f"{source}: config key {key!r} has an empty part; write it as area.command")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise InterplabError(
                    f"{source}: config key {key!r} clashes with the value given for {where!r}"
                )
            node = child
        last = parts[-1]
        if last in node:
            if not (isinstance(node[last], dict) and isinstance(value, dict)):
                raise InterplabError(f"{source}: config table {key!r} is given twice")
            for k in value:
                if k in node[last]:
                    raise InterplabError(f"{source}: config key {k!r} of [{key}] is given twice")
            node[last].update(value)
        else:
            node[last] = value
    return out


def _closest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    if close:
        return f"closest: {', '.join(close)}"
    return f"valid: {', '.join(sorted(valid)) or 'none'}"


def _option_keys(command: Any) -> dict[str, str]:
    """Config key (underscored) → parameter name: each parameter's name and its long flag names."""
    keys: dict[str, str] = {}
    for param in command.params:
        if param.name is None or param.name == "help":
            continue
        keys[param.name] = param.name
        for flag in param.opts:  # not ``--no-x``: its value would mean the opposite
            if flag.startswith("--"):
                keys.setdefault(flag[2:].replace("-", "_"), param.name)
    return keys


def _check(node: dict[str, Any], command: Any, where: list[str], source: Path) -> dict[str, Any]:
    """Validate ``node`` against ``command`` and return click's ``default_map`` for it."""
    subcommands: dict[str, Any] = dict(getattr(command, "commands", None) or {})
    options = _option_keys(command)
    table = f"[{'.'.join(where)}]" if where else "the top level"
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = str(key)
        sub = subcommands.get(name) or subcommands.get(name.replace("_", "-"))
        if sub is not None:
            if not isinstance(value, dict):
                raise InterplabError(
                    f"{source}: {'.'.join([*where, name])!r} must be a table of flags, got {value!r}"
                )
            out[sub.name or name] = _check(value, sub, [*where, sub.name or name], source)
            continue
        flag = name.replace("-", "_")
        if flag in options and where:
            out[options[flag]] = value
            continue
        valid = [*subcommands] + ([k.replace("_", "-") for k in options] if where else [])
        kind = "table" if isinstance(value, dict) or not where else "key"
        raise InterplabError(f"{source}: unknown {kind} {name!r} in {table}; {_closest(name, valid)}")
    return out


def load_config(path: str | Path, command: Any | None = None) -> dict[str, Any]:
    """Read a TOML/JSON config file into click's ``default_map`` shape.

    With ``command`` (the root click group) every table must name a command and every key one of
    its flags; without it the file is only parsed (dashes in flag names become underscores).
    """
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
    data = _unflatten(data, p)
    if command is not None:
        return _check(data, command, [], p)
    # click matches default_map keys to command names, which keep their dashes
    out: dict[str, Any] = {}
    for area, commands in data.items():
        if not isinstance(commands, dict):
            raise InterplabError(f"{p}: key {area!r} must be a table of commands")
        out[area] = {cmd: _normalise(opts) for cmd, opts in commands.items()}
    return out
