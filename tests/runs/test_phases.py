"""Automatic phases: the argmin over KL metrics, checked against hand-built sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interplab.common.errors import InterplabError
from interplab.runs.phases import (
    Phase,
    argmin_sequence,
    auto_phases,
    phase_boundaries,
    phases_from_argmin,
    phases_from_steps,
)

M = ["a", "b", "c"]


def _frame(steps, rows, run="r0"):
    df = pd.DataFrame(rows, columns=M)
    df["_step"] = steps
    df["_run_id"] = run
    return df


def test_auto_phases_hand_built():
    # a is smallest at steps 0-20, b at 30-50, c at 60-70.
    steps = [0, 10, 20, 30, 40, 50, 60, 70]
    rows = [
        [0.1, 0.5, 0.9],
        [0.1, 0.5, 0.9],
        [0.2, 0.4, 0.9],
        [0.5, 0.3, 0.9],
        [0.5, 0.2, 0.9],
        [0.5, 0.2, 0.3],
        [0.5, 0.2, 0.1],
        [0.5, 0.3, 0.05],
    ]
    phases = auto_phases(_frame(steps, rows), M, min_points=1)
    assert phases == [Phase(0, 30, "a"), Phase(30, 60, "b"), Phase(60, 70, "c")]
    assert phase_boundaries(phases) == [30, 60]


def test_flicker_shorter_than_min_points_is_absorbed():
    steps = np.arange(8) * 5.0
    winner = np.array([0, 0, 1, 0, 0, 1, 1, 1])  # the single 1 at step 10 is noise
    assert phases_from_argmin(steps, winner, M, min_points=2) == [Phase(0, 25, "a"), Phase(25, 35, "b")]
    assert len(phases_from_argmin(steps, winner, M, min_points=1)) == 4
    # a one-point start (the untrained model at step 0) joins the first lasting phase
    start_flicker = np.array([2, 0, 0, 0, 1, 1, 1, 1])
    assert phases_from_argmin(steps, start_flicker, M, min_points=2) == [
        Phase(0, 20, "a"),
        Phase(20, 35, "b"),
    ]


def test_runs_are_averaged_per_step_and_missing_steps_skipped():
    # Run 1 says a < b, run 2 says b < a by more: the mean picks b. Step 5 lacks metric b.
    r1 = _frame([0, 5, 10], [[0.1, 0.2, 1.0], [0.1, np.nan, 1.0], [0.1, 0.2, 1.0]], "r1")
    r2 = _frame([0, 5, 10], [[0.9, 0.1, 1.0], [0.9, np.nan, 1.0], [0.1, 0.2, 1.0]], "r2")
    steps, winner = argmin_sequence(pd.concat([r1, r2]), M)
    assert steps.tolist() == [0.0, 10.0]
    assert winner.tolist() == [1, 0]


def test_phases_from_given_steps_are_clipped():
    assert phases_from_steps([300, 100, 5000], 0, 1000) == [Phase(0, 100), Phase(100, 300), Phase(300, 1000)]


def test_unknown_metric_lists_existing_keys():
    with pytest.raises(InterplabError, match=r"unknown metric 'zzz'.*a, b, c"):
        auto_phases(_frame([0], [[1, 2, 3]]), ["a", "zzz"])
