"""Figure saving in one report style: every figure is written as PNG and as vector PDF."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from interplab.common.atomic import atomic_path

REPORT_STYLE: dict[str, Any] = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # TrueType in PDFs so journals accept the text
    "ps.fonttype": 42,
    "image.cmap": "viridis",
}


@contextlib.contextmanager
def report_style() -> Iterator[None]:
    """Apply the report style inside the block."""
    with plt.rc_context(REPORT_STYLE):
        yield


def new_figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots`` under the report style."""
    with report_style():
        return plt.subplots(*args, **kwargs)


def save_figure(
    fig: Any, path: str | os.PathLike[str], formats: tuple[str, ...] = ("png", "pdf")
) -> list[Path]:
    """Save ``fig`` atomically in each format (the suffix of ``path`` is replaced) and close it.

    Returns the written paths, PNG first. A ``path`` ending in ``.png`` or ``.pdf`` still yields both.
    """
    base = Path(path)
    if base.suffix.lower() in {".png", ".pdf", ".svg"}:
        base = base.with_suffix("")
    written: list[Path] = []
    with report_style():
        for fmt in formats:
            target = base.with_name(base.name + f".{fmt}")
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt)
            written.append(target)
    plt.close(fig)
    return written


def save_if_named(fig: Any, save_name: str | os.PathLike[str] | None) -> Any:
    """Save ``fig`` as PNG + PDF (:func:`save_figure`) when ``save_name`` is given; returns ``fig``."""
    if save_name is not None:
        save_figure(fig, Path(save_name))
    return fig


def plain_log_ticks(ax: Any, axis: str = "y") -> None:
    """Log-axis tick labels as plain numbers (``1.3``, ``0.05``), not ``1.3×10⁰``; minor ticks are
    labelled too when the axis spans less than about one decade (else only the decades are)."""
    import math

    from matplotlib.ticker import FuncFormatter, NullFormatter

    def plain(value: float, _pos: int) -> str:
        return f"{value:.3g}"

    target = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    target.set_major_formatter(FuncFormatter(plain))
    narrow = lo > 0 and hi > 0 and math.log10(hi / lo) < 1.2
    target.set_minor_formatter(FuncFormatter(plain) if narrow else NullFormatter())
