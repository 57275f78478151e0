"""``interplab masks …`` — parse arguments and call the masks functions."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Prune models (Wanda, SparseGPT) and analyse the structure of sparsity masks.", no_args_is_help=True
)
