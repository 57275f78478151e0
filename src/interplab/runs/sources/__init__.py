"""Run sources beside W&B: TensorBoard event folders and MLflow tracking stores.

A SOURCE names its kind by prefix — ``tb:PATH`` (or ``tensorboard:PATH``), ``mlflow:URI`` (a
``mlruns/`` folder, ``file:…``, ``sqlite:///…`` or a ``.db`` file) — or, for a plain local path,
by what it holds: a ``.db``/``.sqlite`` file or a folder with MLflow's ``<experiment>/meta.yaml``
layout is MLflow; a folder with TensorBoard event files and no W&B ``.wandb`` log is TensorBoard;
everything else stays a W&B offline source. Every reader returns :class:`interplab.runs.run.Run`
objects, so filters, tables and statistics work the same on all of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from interplab.runs.cache import HistoryCache
from interplab.runs.run import Run

Reader = Callable[[str, HistoryCache | None], list[Run]]


def has_file_within(root: Path, matches: Callable[[str], bool], max_depth: int = 4) -> bool:
    """Whether a file whose name ``matches`` lies within ``max_depth`` folders below ``root``."""
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        if any(matches(f) for f in filenames):
            return True
        if len(Path(dirpath).parts) - base >= max_depth:
            dirnames[:] = []
    return False


def source_kind(source: str | Path) -> str:
    """``wandb`` (cloud), ``offline`` (W&B offline), ``tensorboard`` or ``mlflow``."""
    from interplab.runs.sources import mlflow as mlf
    from interplab.runs.sources import tensorboard as tb

    text = str(source)
    if text.startswith("wandb:"):
        return "wandb"
    if text.startswith("offline:"):
        return "offline"
    if text.startswith(tb.PREFIXES):
        return "tensorboard"
    if text.startswith(mlf.PREFIXES) or text.startswith(mlf.URI_SCHEMES):
        return "mlflow"
    path = Path(text).expanduser()
    if mlf.looks_like_store(path):
        return "mlflow"
    if (
        path.exists()
        and tb.has_event_files(path)
        and not (path.is_dir() and has_file_within(path, lambda f: f.endswith(".wandb")))
    ):
        return "tensorboard"
    return "offline"


def read_other_source(source: str | Path, cache: HistoryCache | None = None) -> list[Run] | None:
    """The runs of a TensorBoard or MLflow source, or None for a W&B source."""
    kind = source_kind(source)
    if kind == "tensorboard":
        from interplab.runs.sources.tensorboard import tensorboard_runs

        return tensorboard_runs(source, cache=cache)
    if kind == "mlflow":
        from interplab.runs.sources.mlflow import mlflow_runs

        return mlflow_runs(str(source), cache=cache)
    return None
