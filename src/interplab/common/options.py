"""A command's options declared once, as a dataclass: each field carries its flag, help and default
(:func:`option`); :func:`command` turns the dataclass into a typer command whose parameters are the
fields, so the typer command, the Python function (which takes the dataclass) and the ``--config``
file (keys = flag names) all read the same declaration.

Kept free of heavy imports: the dataclasses live in light modules so ``interplab --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Any

import typer

_MISSING = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    flag: str | None = None,
    help: str = "",
    parse: Callable[[Any], Any] | None = None,
    cli_type: Any = None,
    argument: bool = False,
    cli_default: Any = _MISSING,
) -> Any:
    """A config field: ``default`` (omit for a required flag), ``flag`` (default ``--<field-name>``),
    ``help``; ``parse`` converts the command-line value (of type ``cli_type``, default
    ``cli_default``; ``...`` makes the flag required) into the field's value; ``argument`` makes it
    a positional argument."""
    meta = {
        "flag": flag,
        "help": help,
        "parse": parse,
        "cli_type": cli_type,
        "argument": argument,
        "cli_default": cli_default,
    }
    if isinstance(default, list | dict | set):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(field: dataclasses.Field) -> str:
    """The command-line flag of a config field."""
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def param_name(field: dataclasses.Field) -> str:
    """The click parameter name (also the ``--config`` key) of a field: its flag without dashes."""
    return flag_of(field).lstrip("-").replace("-", "_")


def defaults(config_cls: type) -> dict[str, Any]:
    """Field name → default of a config dataclass (required fields left out)."""
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.default is not _MISSING:
            out[f.name] = f.default
        elif f.default_factory is not _MISSING:
            out[f.name] = f.default_factory()
    return out


def command(
    app: typer.Typer, name: str, config_cls: type, help: str | None = None, exclude: tuple[str, ...] = ()
) -> Callable[[Callable[[Any], None]], Callable[..., None]]:
    """Register ``run(config)`` as the typer command ``name`` whose options are ``config_cls``'s fields
    (``exclude``: fields not offered on the command line)."""
    hints = typing.get_type_hints(config_cls)

    def decorate(run: Callable[[Any], None]) -> Callable[..., None]:
        params, annotations, to_field = [], {}, {}
        fields = [
            f
            for f in dataclasses.fields(config_cls)
            if f.init and "flag" in f.metadata and f.name not in exclude  # declared with option()
        ]
        # click wants required (argument) parameters first only for arguments; options may be in any order
        for f in fields:
            pname = param_name(f)
            to_field[pname] = f
            required = f.default is _MISSING and f.default_factory is _MISSING
            default = ... if required else (f.default if f.default is not _MISSING else f.default_factory())
            if f.metadata.get("cli_default", _MISSING) is not _MISSING:
                default = f.metadata["cli_default"]
            typ = f.metadata.get("cli_type") or hints[f.name]
            if f.metadata.get("argument"):
                info = typer.Argument(default, help=f.metadata.get("help", ""))
            else:
                info = typer.Option(default, flag_of(f), help=f.metadata.get("help", ""))
            params.append(
                inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=typ)
            )
            annotations[pname] = typ

        def cli(**kwargs: Any) -> None:
            values = {}
            for pname, value in kwargs.items():
                f = to_field[pname]
                parse = f.metadata.get("parse")
                values[f.name] = parse(value) if parse is not None and value is not None else value
            run(config_cls(**values))

        cli.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        cli.__annotations__ = annotations
        cli.__name__ = run.__name__
        cli.__doc__ = run.__doc__
        app.command(name, help=help)(cli)
        return cli

    return decorate


def comma_list(text: str) -> tuple[str, ...]:
    """``"a, b,c"`` → ``("a", "b", "c")`` (empty items dropped)."""
    return tuple(m.strip() for m in str(text).split(",") if m.strip())
