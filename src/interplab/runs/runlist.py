"""The list of runs a source gives back, with the runs that could not be read and why.

A run that died before its first ``log`` (no history row, or a log shorter than its 7-byte
header, e.g. a 0-byte ``.wandb``) has nothing to analyse; it is skipped with one warning and
listed in :attr:`RunList.skipped`, so one dead run never fails a whole folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``DataFrame.attrs`` key under which frames built from a :class:`RunList` list the skipped runs
SKIPPED_ATTR = "skipped_runs"


@dataclass(frozen=True)
class SkippedRun:
    """A run that was left out: its log file, its id (from the file name), the reason and, for a
    file that did not decode, the error it raised."""

    log_file: Path
    run_id: str
    reason: str
    error: Exception | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        return f"{self.run_id} ({self.log_file}): {self.reason}"

    def as_dict(self) -> dict[str, str]:
        return {"run_id": self.run_id, "log_file": str(self.log_file), "reason": self.reason}


class RunList(list):  # type: ignore[type-arg]
    """A ``list[Run]`` that also carries :attr:`skipped` (the runs left out, with reasons)."""

    def __init__(self, runs: Any = (), skipped: list[SkippedRun] | None = None) -> None:
        super().__init__(runs)
        self.skipped: list[SkippedRun] = list(skipped or [])


def skipped_of(runs: Any) -> list[SkippedRun]:
    """The skipped runs of ``runs`` (empty for a plain list)."""
    return list(getattr(runs, "skipped", []) or [])


def skipped_lines(runs_or_frame: Any) -> list[str]:
    """One line per skipped run, from a :class:`RunList` or a frame built from one."""
    attrs = getattr(runs_or_frame, "attrs", None)
    if isinstance(attrs, dict) and SKIPPED_ATTR in attrs:
        return [f"{d['run_id']} ({d['log_file']}): {d['reason']}" for d in attrs[SKIPPED_ATTR]]
    return [s.describe() for s in skipped_of(runs_or_frame)]
