"""``interplab runs …`` — parse arguments and call the runs functions."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="W&B runs (cloud or offline folders): list, diff, export, plot, attention heads.",
    no_args_is_help=True,
)
