"""``interplab sae …`` — parse arguments and call the sae functions."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Sparse autoencoders: quick checks, full corpus analysis, training, browsing.", no_args_is_help=True
)
