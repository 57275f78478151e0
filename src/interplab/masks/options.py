"""Typer options built from a command's config dataclass, so each option is declared once: the
default and the help text live on the dataclass field (``metadata={"help": …}``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer


def field_help(config: type, name: str) -> str:
    """The help text of one field of a config dataclass."""
    return str(config.__dataclass_fields__[name].metadata.get("help", ""))


def option(config: type, name: str, *flags: str) -> Any:
    """``typer.Option`` with the field's default and help (flags default to ``--field-name``)."""
    f = config.__dataclass_fields__[name]
    default = f.default if f.default is not dataclasses.MISSING else ...
    names = flags or ("--" + name.replace("_", "-"),)
    return typer.Option(default, *names, help=field_help(config, name))
