"""The run object every source returns, with its history loaded lazily and kept on the object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

#: run states W&B uses; offline runs get finished / failed / crashed / running (see docs)
STATES = ("running", "finished", "crashed", "failed", "killed")


@dataclass
class Run:
    """One W&B run, from the cloud or from an offline folder.

    ``config`` is nested with plain values (no ``{"value": …}`` wrappers, no ``_wandb``);
    ``summary`` is the final summary (nested dicts for media such as tables).
    """

    id: str
    name: str
    tags: list[str]
    state: str
    config: dict[str, Any]
    summary: dict[str, Any]
    source: str
    path: Path | None = None
    project: str = ""
    entity: str = ""
    group: str = ""
    job_type: str = ""
    #: the run's notes (description), as last set
    notes: str = ""
    created_at: datetime | None = None
    #: offline: the ``run-<id>.wandb`` file; cloud: None
    log_file: Path | None = None
    #: offline: the folder holding ``files/`` (tables); cloud: None
    files_dir: Path | None = None
    #: ``logged`` or, for logs without any summary record, ``derived from history …``
    summary_source: str = "logged"
    #: offline: every ``run-<id>.wandb`` of this id in start-time order (several when resumed)
    segments: list[Path] = field(default_factory=list)
    #: cloud: a ``CloudHandle`` (API + ``wandb.apis.public.Run``; its ``.table(run, key, step)``
    #: fetches a logged table); offline: None
    handle: Any = field(default=None, repr=False, compare=False)
    _history: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    _loader: Callable[[Run], pd.DataFrame] | None = field(default=None, repr=False, compare=False)

    def history(self) -> pd.DataFrame:
        """Every logged row (all keys, nested keys joined with ``.``); loaded once."""
        if self._history is None:
            if self._loader is None:
                raise RuntimeError(f"run {self.id} has no history loader")
            self._history = self._loader(self)
        return self._history

    @property
    def label(self) -> str:
        """``name (id)`` for messages."""
        return f"{self.name} ({self.id})" if self.name and self.name != self.id else self.id
