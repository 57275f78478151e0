"""Typer options built from a command's config dataclass, so each option is declared once: the
default and the help text live on the dataclass field (``metadata={"help": …}``).

The per-option form of :mod:`interplab.common.options` (same ``help``/``flag`` metadata keys, same
flag naming via :func:`~interplab.common.options.flag_of`) for commands whose signature is written
by hand (``masks extract``/``diff``/``speedup``); whole-dataclass commands use
:func:`interplab.common.options.command`."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from interplab.common.options import flag_of


def field_help(config: type, name: str) -> str:
    """The help text of one field of a config dataclass."""
    return str(config.__dataclass_fields__[name].metadata.get("help", ""))


def option(config: type, name: str, *flags: str) -> Any:
    """``typer.Option`` with the field's default and help (flags default to ``--field-name``)."""
    f = config.__dataclass_fields__[name]
    default = f.default if f.default is not dataclasses.MISSING else ...
    names = flags or (flag_of(f),)
    return typer.Option(default, *names, help=field_help(config, name))
