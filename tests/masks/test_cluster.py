"""k-means cluster metrics against hand computations from scikit-learn's labels and centres."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.cluster import KMeans

from interplab.masks.cluster import cluster_features, cluster_hamming_matrix, separation_label


@pytest.mark.parametrize(
    ("ratio", "label"),
    [
        (2.0001, "excellent"),
        (2.0, "good"),
        (1.0001, "good"),
        (1.0, "moderate"),
        (0.5001, "moderate"),
        (0.5, "poor"),
        (0.0, "poor"),
    ],
)
def test_separation_label_boundaries(ratio: float, label: str) -> None:
    assert separation_label(ratio) == label


def test_metrics_match_hand_computation(random_mask: np.ndarray) -> None:
    x = random_mask[:30].astype(float)
    res = cluster_features(random_mask[:30], 4, seed=7)
    km = KMeans(n_clusters=4, n_init=10, random_state=7).fit(x)
    assert np.array_equal(res.labels, km.labels_)
    centers = km.cluster_centers_
    within = np.mean([np.sqrt(((x[i] - centers[km.labels_[i]]) ** 2).sum()) for i in range(30)])
    pairs = [np.sqrt(((centers[a] - centers[b]) ** 2).sum()) for a, b in itertools.combinations(range(4), 2)]
    sizes = [int((km.labels_ == c).sum()) for c in range(4)]
    assert res.mean_within == pytest.approx(within)
    assert res.mean_between == pytest.approx(np.mean(pairs))
    assert res.separation_ratio == pytest.approx(np.mean(pairs) / within)
    assert res.separation_label == separation_label(np.mean(pairs) / within)
    assert res.inertia == pytest.approx(km.inertia_)
    assert res.cluster_sizes == sizes
    assert res.cluster_balance == pytest.approx(np.sqrt(np.mean((np.array(sizes) - np.mean(sizes)) ** 2)))


def test_cluster_hamming_matrix_matches_loops() -> None:
    rng = np.random.default_rng(5)
    v = rng.random((9, 11)) < 0.5
    labels = np.array([0, 1, 2, 0, 1, 1, 0, 2, 0])
    labels_single = np.array([0, 1, 1, 0, 1, 1, 0, 1, 2])  # cluster 2 has one member
    for lab in (labels, labels_single):
        got = cluster_hamming_matrix(v, lab, 3)
        for a in range(3):
            for b in range(3):
                pairs = [(i, j) for i in np.flatnonzero(lab == a) for j in np.flatnonzero(lab == b) if i != j]
                if not pairs:
                    assert np.isnan(got[a, b])
                else:
                    assert got[a, b] == pytest.approx(np.mean([(v[i] != v[j]).mean() for i, j in pairs]))


def test_planted_clusters_are_excellent(planted_mask: np.ndarray, random_mask: np.ndarray) -> None:
    planted = cluster_features(planted_mask, 4, seed=0)
    assert planted.separation_label == "excellent"
    assert sorted(planted.cluster_sizes) == [12, 12, 12, 12]
    assert cluster_features(random_mask, 4, seed=0).separation_ratio < 1.0
