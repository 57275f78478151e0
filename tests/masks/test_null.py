"""The shuffled-mask null model: density preservation, exact sampling and z-scores."""

from __future__ import annotations

import numpy as np
import pytest

from interplab.masks.execution import run_execution
from interplab.masks.hamming import HammingIndex, pairwise_counts
from interplab.masks.null import compare_to_null, draw_null_neighborhood, shuffle_within_features


def test_shuffle_preserves_each_feature_density(random_mask: np.ndarray) -> None:
    m = random_mask.copy()
    m[0] = False
    m[1, :5] = True
    m[1, 5:] = False
    s = shuffle_within_features(m, np.random.default_rng(0))
    assert np.array_equal(s.sum(axis=1), m.sum(axis=1))
    assert not np.array_equal(s, m)
    assert np.array_equal(s, shuffle_within_features(m, np.random.default_rng(0)))  # seeded


def test_null_draw_keeps_densities_and_consistent_selection(random_mask: np.ndarray) -> None:
    m = random_mask
    ones = m.sum(axis=1)
    draw = draw_null_neighborhood(ones, m[3], 3, 10, np.random.default_rng(1))
    assert draw.indices[0] == 3 and len(set(draw.indices.tolist())) == 10
    assert np.array_equal(draw.vectors.sum(axis=1), ones[draw.indices])
    counts = pairwise_counts(draw.vectors[:1], draw.vectors)[0]
    assert counts[0] == 0
    assert np.all(np.diff(counts[1:]) >= 0)  # neighbours ordered by their null distance
    assert draw.nn_count == counts[1]


def test_null_sampler_matches_brute_force_shuffle_in_distribution() -> None:
    rng = np.random.default_rng(2)
    m = rng.random((20, 30)) < rng.uniform(0.2, 0.8, size=(20, 1))
    ones = m.sum(axis=1)
    draws = 400
    fast = [draw_null_neighborhood(ones, m[0], 0, 3, rng).nn_count for _ in range(draws)]
    brute = []
    for _ in range(draws):
        s = shuffle_within_features(m, rng)
        brute.append(int((s[1:] != s[0]).sum(axis=1).min()))
    se = np.sqrt(np.var(fast) / draws + np.var(brute) / draws)
    assert abs(np.mean(fast) - np.mean(brute)) < 4 * se


def test_compare_to_null_by_hand() -> None:
    c = compare_to_null(3.0, [1.0, 2.0, 3.0, 4.0])
    assert c.null_mean == 2.5
    assert c.null_std == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert c.z_score == pytest.approx(0.5 / np.std([1, 2, 3, 4], ddof=1))
    assert c.percentile == pytest.approx(100 * (2 + 0.5) / 4)


def test_planted_structure_is_significant_random_is_not(
    planted_mask: np.ndarray, random_mask: np.ndarray
) -> None:
    def run(mask: np.ndarray):
        return run_execution(mask, HammingIndex.build(mask), 0, len(mask), 4, 0, null_samples=8).record()

    planted = run(planted_mask)
    assert planted["separation_label"] == "excellent"
    assert planted["separation_z"] > 5 and planted["separation_percentile"] == 100
    assert planted["nn_z"] < -5
    rand = run(random_mask)
    assert rand["separation_label"] != "excellent"
    assert abs(rand["separation_z"]) < 3
    assert abs(rand["nn_z"]) < 3
