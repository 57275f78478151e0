"""Logging set-up for the CLI: rich handler on stderr, ``--debug`` for DEBUG level."""

from __future__ import annotations

import logging


def setup_logging(debug: bool = False) -> None:
    """Configure the ``interplab`` logger once (idempotent)."""
    from rich.console import Console
    from rich.logging import RichHandler

    logger = logging.getLogger("interplab")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(console=Console(stderr=True), show_path=debug, show_time=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.propagate = False
