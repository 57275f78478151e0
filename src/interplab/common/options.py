"""A command's options declared once, as a dataclass: each field carries its flag, help and default
(:func:`option`); :func:`command` turns the dataclass into a typer command whose parameters are the
fields, so the typer command, the Python function (which takes the dataclass) and the ``--config``
file (keys = flag names) all read the same declaration.

Kept free of heavy imports: the dataclasses live in light modules so ``interplab --help`` stays fast.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
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
    aliases: tuple[str, ...] = (),
) -> Any:
    """A config field: ``default`` (omit for a required flag), ``flag`` (default ``--<field-name>``;
    ``--x/--no-x`` for an on/off pair), ``aliases`` (more spellings, e.g. ``("-t",)``), ``help``;
    ``parse`` converts the command-line value (of type ``cli_type``, default ``cli_default``; ``...``
    makes the flag required) into the field's value; ``argument`` makes it a positional argument.
    A list-typed field is a repeatable option."""
    meta = {
        "flag": flag,
        "help": help,
        "parse": parse,
        "cli_type": cli_type,
        "argument": argument,
        "cli_default": cli_default,
        "aliases": tuple(aliases),
    }
    if isinstance(default, list | dict | set):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def cli_meta(**cli: Any) -> dict[str, Any]:
    """The command-line metadata of one field: what :func:`option` stores for the same keywords
    (``flag``, ``help``, …); the form of ``command(..., cli=…)`` entries for dataclasses declared
    without :func:`option`."""
    return dict(option(**cli).metadata)


def negated(flag: str, help: str = "") -> dict[str, Any]:
    """CLI metadata of an on-by-default field offered as an off switch (``--no-write-back``)."""
    return cli_meta(flag=flag, help=help, parse=lambda v: not v, cli_type=bool, cli_default=False)


def flag_of(field: dataclasses.Field, meta: dict[str, Any] | None = None) -> str:
    """The command-line flag of a config field (``meta``: its CLI metadata, default its own)."""
    meta = field.metadata if meta is None else meta
    return meta.get("flag") or "--" + field.name.replace("_", "-")


def param_name(field: dataclasses.Field, meta: dict[str, Any] | None = None) -> str:
    """The click parameter name (also the ``--config`` key) of a field: its flag without dashes."""
    return flag_of(field, meta).split("/")[0].lstrip("-").replace("-", "_")


@functools.cache
def field_docs(config_cls: type) -> dict[str, str]:
    """Field name → the docstring written under the field (``x: int = 1`` then ``\"\"\"…\"\"\"``),
    for dataclasses that document their fields that way; first paragraph, joined on one line."""
    docs: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.strip().split("\n\n")[0].split())
    return docs


def help_of(config_cls: type, field: dataclasses.Field) -> str:
    """The help text of a field: its ``option()``/``metadata["help"]`` text, else its docstring."""
    return field.metadata.get("help") or field_docs(config_cls).get(field.name, "")


def cli_fields(
    config_cls: type, exclude: tuple[str, ...] = (), cli: dict[str, dict[str, Any]] | None = None
) -> list[tuple[dataclasses.Field, dict[str, Any]]]:
    """The fields of ``config_cls`` offered on the command line, each with its CLI metadata: fields
    declared with :func:`option`, plus those named in ``cli`` (metadata from :func:`cli_meta` merged
    over the field's own, for dataclasses declared elsewhere without :func:`option`)."""
    cli = cli or {}
    out = []
    for f in dataclasses.fields(config_cls):
        if not f.init or f.name in exclude or ("flag" not in f.metadata and f.name not in cli):
            continue
        meta = {**cli_meta(), **f.metadata, **cli.get(f.name, {})}
        meta["help"] = meta.get("help") or help_of(config_cls, f)
        out.append((f, meta))
    unknown = set(cli) - {f.name for f in dataclasses.fields(config_cls)}
    if unknown:
        raise TypeError(f"{config_cls.__name__} has no fields {sorted(unknown)}")
    return out


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
    app: typer.Typer,
    name: str,
    config_cls: type,
    help: str | None = None,
    exclude: tuple[str, ...] = (),
    cli: dict[str, dict[str, Any]] | None = None,
    context_settings: dict[str, Any] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``run(config)`` as the typer command ``name`` whose options are ``config_cls``'s fields
    (``exclude``: fields not offered on the command line; ``cli``: field name → :func:`cli_meta` for
    fields of a dataclass declared without :func:`option`). A ``run(config, ctx)`` also gets the
    click context (e.g. for extra arguments under ``context_settings``)."""
    hints = typing.get_type_hints(config_cls)

    def decorate(run: Callable[..., None]) -> Callable[..., None]:
        params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
        annotations: dict[str, Any] = {"ctx": typer.Context}
        to_field: dict[str, tuple[dataclasses.Field, dict[str, Any]]] = {}
        for f, meta in cli_fields(config_cls, exclude, cli):
            flag, pname = flag_of(f, meta), param_name(f, meta)
            to_field[pname] = (f, meta)
            required = f.default is _MISSING and f.default_factory is _MISSING
            default = ... if required else (f.default if f.default is not _MISSING else f.default_factory())
            if meta.get("cli_default", _MISSING) is not _MISSING:
                default = meta["cli_default"]
            typ = meta.get("cli_type") or hints[f.name]
            if isinstance(default, tuple) and typing.get_origin(typ) is list:
                default = list(default)  # click wants a list default for a repeatable option
            if meta.get("argument"):
                info = typer.Argument(default, help=meta["help"])
            else:
                info = typer.Option(default, flag, *meta.get("aliases", ()), help=meta["help"])
            params.append(
                inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=typ)
            )
            annotations[pname] = typ
        pass_ctx = len(inspect.signature(run).parameters) > 1

        def cli_command(ctx: typer.Context, **kwargs: Any) -> None:
            values = {}
            for pname, value in kwargs.items():
                f, meta = to_field[pname]
                parse = meta.get("parse")
                values[f.name] = parse(value) if parse is not None and value is not None else value
            config = config_cls(**values)
            run(config, ctx) if pass_ctx else run(config)

        cli_command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        cli_command.__annotations__ = annotations
        cli_command.__name__ = run.__name__
        cli_command.__doc__ = run.__doc__
        cli_command.__config__ = (config_cls, exclude, cli)  # type: ignore[attr-defined]  # for tests/docs
        app.command(name, help=help, context_settings=context_settings)(cli_command)
        return cli_command

    return decorate


def comma_list(text: str) -> tuple[str, ...]:
    """``"a, b,c"`` → ``("a", "b", "c")`` (empty items dropped)."""
    return tuple(m.strip() for m in str(text).split(",") if m.strip())
