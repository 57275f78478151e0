"""Options declared once as a dataclass: the generated typer command has the flags, defaults,
required flags and parsing of the declaration, and ``--config`` file keys (flag names) set them."""

from __future__ import annotations

import dataclasses
import json

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
