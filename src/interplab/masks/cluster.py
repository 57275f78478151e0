"""k-means on binary feature vectors and the cluster-quality metrics of the mask analyses.

* mean within = mean Euclidean distance of each feature to its cluster centre;
* mean between = mean pairwise Euclidean distance between the (non-empty) cluster centres;
* separation ratio = between / within, labelled excellent > 2, good > 1, moderate > 0.5, else poor;
* inertia = sklearn's sum of squared distances to the nearest centre;
* cluster balance = standard deviation (ddof=0) of the cluster sizes;
* cluster Hamming matrix = mean Hamming distance between members of clusters a and b (diagonal:
  mean over distinct pairs inside a cluster; NaN for a single-member cluster).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from scipy.spatial.distance import pdist

from interplab.masks.hamming import pairwise_hamming


def separation_label(ratio: float) -> str:
    """excellent > 2, good > 1, moderate > 0.5, else poor."""
    if ratio > 2.0:
        return "excellent"
    if ratio > 1.0:
        return "good"
    if ratio > 0.5:
        return "moderate"
    return "poor"


@dataclasses.dataclass
class ClusterResult:
    """Labels, centres and quality metrics of one k-means clustering."""

    k: int
    labels: np.ndarray
    centers: np.ndarray
    mean_within: float
    mean_between: float
    separation_ratio: float
    separation_label: str
    inertia: float
    cluster_sizes: list[int]
    cluster_balance: float
    cluster_hamming: np.ndarray  # [k, k]
    n_iter: int


def kmeans(vectors: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    """scikit-learn KMeans (n_init=10, random_state=seed) on the binary vectors."""
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fewer distinct points than k is legitimate here
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(np.asarray(vectors, dtype=np.float64))
    return km.labels_.astype(np.int64), km.cluster_centers_, float(km.inertia_), int(km.n_iter_)


def cluster_hamming_matrix(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Mean Hamming distance between clusters (within-cluster mean of distinct pairs on the diagonal)."""
    dist = pairwise_hamming(vectors)
    onehot = np.zeros((len(labels), k))
    onehot[np.arange(len(labels)), labels] = 1.0
    sums = onehot.T @ dist @ onehot
    sizes = onehot.sum(axis=0)
    pairs = np.outer(sizes, sizes) - np.diag(sizes)  # self pairs excluded on the diagonal
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, sums / np.where(pairs > 0, pairs, 1), np.nan)


def cluster_metrics(
    vectors: np.ndarray, labels: np.ndarray, centers: np.ndarray, inertia: float, n_iter: int = 0
) -> ClusterResult:
    """The metrics of a clustering given its labels and centres."""
    x = np.asarray(vectors, dtype=np.float64)
    k = int(centers.shape[0])
    sizes = np.bincount(labels, minlength=k)
    within = float(np.linalg.norm(x - centers[labels], axis=1).mean())
    used = centers[sizes > 0]
    between = float(pdist(used).mean()) if len(used) > 1 else 0.0
    ratio = between / within if within > 0 else float("inf") if between > 0 else 0.0
    return ClusterResult(
        k=k,
        labels=labels,
        centers=centers,
        mean_within=within,
        mean_between=between,
        separation_ratio=ratio,
        separation_label=separation_label(ratio),
        inertia=float(inertia),
        cluster_sizes=[int(s) for s in sizes],
        cluster_balance=float(np.std(sizes)),
        cluster_hamming=cluster_hamming_matrix(vectors, labels, k),
        n_iter=n_iter,
    )


def cluster_features(vectors: np.ndarray, k: int, seed: int) -> ClusterResult:
    """k-means on ``vectors`` and its metrics."""
    labels, centers, inertia, n_iter = kmeans(vectors, k, seed)
    return cluster_metrics(vectors, labels, centers, inertia, n_iter)
