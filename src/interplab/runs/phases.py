"""Training phases: the steps where the best-matching estimator (the argmin over KL metrics) changes.

With the KL divergences from the model's prediction to the in-context 1-, 2- and 3-token-context
estimators, the argmin tells which estimator the model currently behaves like; a change of the
argmin is a phase transition (unigram → bigram …).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of training ``[start, end]`` in which ``metric`` is the smallest of the KL metrics."""

    start: float
    end: float
    metric: str | None = None


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str = "metric") -> None:
    """Raise :class:`InterplabError` naming the first missing column and listing those that exist."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        existing = [c for c in df.columns if not str(c).startswith(("_", "cfg."))]
        raise InterplabError(
            f"unknown {what} {missing[0]!r}; logged keys: {', '.join(map(str, existing)) or '(none)'}"
        )


def argmin_sequence(
    df: pd.DataFrame, metrics: Sequence[str], step_key: str = "_step"
) -> tuple[np.ndarray, np.ndarray]:
    """Steps (sorted) and the index into ``metrics`` of the smallest mean value at each step.

    Several runs are averaged per step first; steps where any metric is missing are skipped.
    """
    require_columns(df, [step_key, *metrics])
    means = df.groupby(step_key, sort=True)[list(metrics)].mean().dropna(how="any")
    return means.index.to_numpy(dtype=float), means.to_numpy().argmin(axis=1)


def phases_from_argmin(
    steps: np.ndarray, winner: np.ndarray, metrics: Sequence[str], min_points: int = 1
) -> list[Phase]:
    """Phases from an argmin sequence; runs shorter than ``min_points`` evaluations are absorbed.

    A short run (noise flicker) is merged into the phase before it (at the start: the one after), so boundaries only mark
    changes that persist for ``min_points`` consecutive evaluation steps. A boundary is placed at the
    first step of the new phase.
    """
    if len(steps) == 0:
        return []
    change = np.flatnonzero(np.diff(winner) != 0) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(steps)]])
    labels = winner[starts]
    lengths = ends - starts
    keep = lengths >= min_points
    if not keep.any():
        keep[int(lengths.argmax())] = True
    starts, labels = starts[keep], labels[keep]
    starts[0] = 0  # a flicker at the very start belongs to the first lasting phase
    # Merge neighbours with the same label after dropping flickers.
    same = np.concatenate([[False], labels[1:] == labels[:-1]])
    starts, labels = starts[~same], labels[~same]
    bounds = [*steps[starts].tolist(), float(steps[-1])]
    return [
        Phase(float(bounds[i]), float(bounds[i + 1]), metrics[int(labels[i])]) for i in range(len(starts))
    ]


def auto_phases(
    df: pd.DataFrame, metrics: Sequence[str], step_key: str = "_step", min_points: int = 2
) -> list[Phase]:
    """Phases of ``df`` from the argmin over ``metrics`` (means over runs per step)."""
    if len(metrics) < 2:
        raise InterplabError(f"automatic phases need at least two KL metrics, got {list(metrics)}")
    steps, winner = argmin_sequence(df, metrics, step_key)
    return phases_from_argmin(steps, winner, metrics, min_points)


def phase_boundaries(phases: Sequence[Phase]) -> list[float]:
    """The steps where one phase ends and the next begins."""
    return [p.start for p in phases[1:]]


def phases_from_steps(boundaries: Sequence[float], first: float, last: float) -> list[Phase]:
    """Phases between given boundary steps (``divergence_steps``), clipped to ``[first, last]``."""
    inner = sorted(float(b) for b in boundaries if first < b < last)
    edges = [float(first), *inner, float(last)]
    return [Phase(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
