"""The ``interplab`` command: ``interplab <area> <command>``. Parsing only; work is done in the areas."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import typer

from interplab import __version__
from interplab.common.console import widen_help_when_piped
from interplab.common.errors import InterplabError
from interplab.common.interrupt import EXIT_CODE, PLAIN_MESSAGE, Interrupted
from interplab.common.log import setup_logging
from interplab.common.options import command, option
from interplab.common.usage import OneLineUsageGroup
from interplab.masks.cli import app as masks_app
from interplab.runs.cli import app as runs_app
from interplab.sae.cli import app as sae_app

app = typer.Typer(
    help="interplab — look inside neural networks: W&B runs, pruning masks, sparse autoencoders.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=OneLineUsageGroup,
)
app.add_typer(masks_app, name="masks")
app.add_typer(sae_app, name="sae")
app.add_typer(runs_app, name="runs")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"interplab {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and debug logs."),
    config: Path | None = typer.Option(
        None, "--config", help="TOML/JSON file of flag defaults, one table per area.command."
    ),
) -> None:
    """Set up logging and load an optional config file of flag defaults."""
    setup_logging(debug)
    if config is not None:
        from interplab.common.config import load_config

        ctx.default_map = load_config(config, ctx.command)


@dataclasses.dataclass
class DemoConfig:
    """``interplab demo``."""

    out: Path = option(Path("demo-output"), help="Output folder of the demo.")


def _register_demo() -> None:
    try:
        from interplab.demo import run_demo
    except ImportError:  # an install without the demo module still has every other command
        return

    @command(
        app, "demo", DemoConfig, help="Run all three areas on built-in defaults and write an index page."
    )
    def demo_command(cfg: DemoConfig) -> None:
        """Run all three areas on built-in data (offline) and write OUT/index.html."""
        typer.echo(f"demo written: {run_demo(cfg.out)}")


_register_demo()


def main() -> None:
    """Entry point: run the app; turn :class:`InterplabError` into one line on stderr and exit 2."""
    debug = "--debug" in sys.argv
    widen_help_when_piped()
    try:
        app()
    except InterplabError as exc:
        if debug:
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        typer.secho(str(exc), err=True)
        sys.exit(EXIT_CODE)
    except KeyboardInterrupt:
        typer.secho(PLAIN_MESSAGE, err=True)
        sys.exit(EXIT_CODE)
