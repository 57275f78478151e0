"""Options declared once as a dataclass: the generated typer command has the flags, defaults,
required flags and parsing of the declaration, and ``--config`` file keys (flag names) set them."""

from __future__ import annotations

import dataclasses
import json
import typing

import typer
from typer.testing import CliRunner

from interplab.common.config import load_config
from interplab.common.options import comma_list, command, defaults, option


@dataclasses.dataclass
class Demo:
    """Fields: a renamed flag, a required flag, a parsed list and a field not on the command line."""

    model_name: str = option("minilm", "--model", "The model.")
    out: str = option("x", help="Folder.", cli_default=...)
    batch_size: int = option(8, help="Batch.")
    metrics: tuple[str, ...] = option(
        ("phi",), help="List.", parse=comma_list, cli_type=str, cli_default="phi"
    )
    verbose: bool = option(False, help="Talk.")
    internal: int = 3


def _app(seen: list[Demo]) -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context, config: str | None = typer.Option(None, "--config")) -> None:
        if config:
            ctx.default_map = load_config(config)

    area = typer.Typer()
    app.add_typer(area, name="area")

    @command(area, "run", Demo)
    def run(cfg: Demo) -> None:
        """Run it."""
        seen.append(cfg)

    return app


def test_generated_command_parses_into_the_dataclass() -> None:
    seen: list[Demo] = []
    app = _app(seen)
    r = CliRunner().invoke(
        app, ["area", "run", "--out", "o", "--model", "m", "--metrics", "a, b", "--verbose"]
    )
    assert r.exit_code == 0, r.output
    assert seen == [Demo(model_name="m", out="o", batch_size=8, metrics=("a", "b"), verbose=True)]
    r = CliRunner().invoke(app, ["area", "run"])
    assert r.exit_code == 2 and "--out" in r.output  # required on the command line
    r = CliRunner().invoke(app, ["area", "run", "--out", "o", "--internal", "4"])
    assert r.exit_code == 2  # not a flag
    assert defaults(Demo) == {
        "model_name": "minilm",
        "out": "x",
        "batch_size": 8,
        "metrics": ("phi",),
        "verbose": False,
        "internal": 3,
    }


def test_config_file_keys_are_the_flag_names(tmp_path) -> None:
    seen: list[Demo] = []
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"area": {"run": {"batch-size": 32, "model": "tiny", "metrics": "x,y"}}}))
    app = _app(seen)
    r = CliRunner().invoke(app, ["--config", str(cfg), "area", "run", "--out", "o"])
    assert r.exit_code == 0, r.output
    assert seen[-1] == Demo(model_name="tiny", out="o", batch_size=32, metrics=("x", "y"))


# ---- every command of the CLI is generated from its dataclass ------------------------------------


def _leaf_commands():  # type: ignore[no-untyped-def]

    from interplab.cli import app as root_app

    def walk(cmd, path):  # type: ignore[no-untyped-def]
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), cmd

    return list(walk(typer.main.get_command(root_app), []))


def _expected_default(f: dataclasses.Field, meta: dict) -> object:
    if meta["cli_default"] is not dataclasses.MISSING:
        return None if meta["cli_default"] is ... else meta["cli_default"]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def test_every_command_reads_flags_defaults_and_help_from_its_dataclass() -> None:

    from interplab.common.options import field_docs

    commands = _leaf_commands()
    assert len(commands) >= 27  # sae ×9, masks ×8, runs ×9, demo
    for path, cmd in commands:
        assert hasattr(cmd.callback, "__config__"), f"{path}: not built from a config dataclass"
        config_cls, exclude, cli = cmd.callback.__config__
        cli = cli or {}
        fields = [
            f
            for f in dataclasses.fields(config_cls)
            if f.init and f.name not in exclude and ("flag" in f.metadata or f.name in cli)
        ]
        params = [p for p in cmd.params if p.name != "help"]
        assert len(params) == len(fields), path
        for p, f in zip(params, fields, strict=True):  # same order as the dataclass
            meta = {"flag": None, "aliases": (), "cli_default": dataclasses.MISSING, **f.metadata}
            meta.update(cli.get(f.name, {}))
            flag = meta["flag"] or "--" + f.name.replace("_", "-")
            help_text = (
                f.metadata.get("help") or cli.get(f.name, {}).get("help") or field_docs(config_cls)[f.name]
            )
            where = f"{path} {f.name}"
            assert help_text, where
            assert p.help == help_text, where
            required = meta["cli_default"] is ... or (
                meta["cli_default"] is dataclasses.MISSING
                and f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING
            )
            assert p.required == required, where
            default = _expected_default(f, meta)
            got = p.default
            if isinstance(default, tuple) and isinstance(got, list):
                default = list(default)
            if not required:
                assert got == default, (where, got, default)
            if p.param_type_name == "argument":
                assert meta.get("argument"), where
                continue
            assert not meta.get("argument"), where
            long_flag, _, off_flag = flag.partition("/")
            assert p.opts[0] == long_flag and p.opts[1:] == list(meta["aliases"]), where
            assert p.secondary_opts == ([off_flag] if off_flag else []), where
            assert p.name == long_flag.lstrip("-").replace("-", "_"), where  # the --config key
            typ = meta.get("cli_type") or typing.get_type_hints(config_cls)[f.name]
            assert p.multiple == ("list[" in str(typ)), where  # a list field is a repeatable option


def test_library_defaults_are_the_command_defaults() -> None:
    """Where a library function or options class has its own defaults, they equal the command's."""
    import inspect

    from interplab.masks.configs import MultiSeedConfig, PruneConfig
    from interplab.masks.multi_seed import multi_seed_analysis
    from interplab.masks.prune import prune_model
    from interplab.runs import configs as runs_configs
    from interplab.runs.experiment import TABLE_KEY
    from interplab.runs.stats_report import StatsOptions
    from interplab.runs.sweep import SweepOptions
    from interplab.sae.configs import QuickConfig
    from interplab.sae.quick import quick_check

    for fn, config_cls in (
        (prune_model, PruneConfig),
        (quick_check, QuickConfig),
        (multi_seed_analysis, MultiSeedConfig),
    ):
        sig = inspect.signature(fn).parameters
        for name, value in defaults(config_cls).items():
            if sig[name].default is not inspect.Parameter.empty:
                expected = sig[name].default
                assert value == expected or str(value) == str(expected) or list(value) == list(expected), (
                    fn,
                    name,
                )
    for options_cls, config_cls in (
        (StatsOptions, runs_configs.StatsConfig),
        (SweepOptions, runs_configs.SweepConfig),
    ):
        lib = defaults(options_cls)
        for name, value in defaults(config_cls).items():
            if name in lib and name != "seed_keys":
                assert lib[name] == value, (options_cls, name)
    assert runs_configs.ATTENTION_KEY == TABLE_KEY


def test_several_spellings_repeatable_lists_and_off_switches() -> None:
    from interplab.common.options import negated

    @dataclasses.dataclass(kw_only=True)
    class Multi:
        tag: list[str] | None = option(None, aliases=("-t",), help="Tags.")
        metrics: list[str] = option(aliases=("--metric", "-m"), help="Metrics.")
        write_back: bool = True
        pair: bool = option(True, "--pair/--no-pair", help="Pair.")

    seen: list[Multi] = []
    app = typer.Typer()
    area = typer.Typer()
    app.add_typer(area, name="area")

    @command(area, "go", Multi, cli={"write_back": negated("--no-write-back", "Skip it.")})
    def go(cfg: Multi) -> None:
        seen.append(cfg)

    @app.callback()
    def root() -> None:
        pass

    r = CliRunner().invoke(
        app, ["area", "go", "-t", "a", "--tag", "b", "-m", "x", "--metric", "y", "--metrics", "z"]
    )
    assert r.exit_code == 0, r.output
    assert seen[-1] == Multi(tag=["a", "b"], metrics=["x", "y", "z"], write_back=True, pair=True)
    r = CliRunner().invoke(app, ["area", "go", "-m", "x", "--no-write-back", "--no-pair"])
    assert r.exit_code == 0, r.output
    assert seen[-1] == Multi(tag=None, metrics=["x"], write_back=False, pair=False)
    assert CliRunner().invoke(app, ["area", "go"]).exit_code == 2  # --metrics is required


def test_field_docstrings_are_the_help() -> None:
    from interplab.common.options import field_docs

    @dataclasses.dataclass
    class Documented:
        a: int = 1
        """First line
        continued.

        Second paragraph (not shown)."""
        b: str = "x"

    assert field_docs(Documented) == {"a": "First line continued."}
