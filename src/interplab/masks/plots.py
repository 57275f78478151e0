"""Figures of the mask analyses (each saved as PNG + PDF through ``common.figures.save_figure``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interplab.common.figures import new_figure, save_figure
from interplab.masks.cluster import ClusterResult
from interplab.masks.distribution import HammingDistribution


def plot_hamming_distribution(dist: HammingDistribution, path: Path, title: str) -> list[Path]:
    """Histogram and CDF of all pairwise Hamming distances."""
    d = dist.n_positions
    x = np.arange(d + 1) / d
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(10, 3.8))
    nz = np.flatnonzero(dist.histogram)
    lo, hi = nz[0], nz[-1] + 1
    step = max(1, -(-(hi - lo) // 80))  # whole Hamming counts per bin, so bins do not alias
    edges = (np.arange(lo, hi + step, step) - 0.5) / d
    ax1.hist(x[lo:hi], bins=edges, weights=dist.histogram[lo:hi], color="tab:blue")
    ax1.set_xlabel("Hamming distance (fraction of positions)")
    ax1.set_ylabel("feature pairs")
    ax2.plot(x, np.cumsum(dist.histogram) / dist.n_pairs, color="tab:orange")
    ax2.set_xlim(x[lo], x[hi - 1] if hi - 1 > lo else x[lo] + 1.0 / d)
    ax2.set_xlabel("Hamming distance")
    ax2.set_ylabel("CDF: fraction of pairs ≤ x")
    note = (
        f"{len(dist.features_used)} of {dist.n_features_total} features (random subsample)"
        if dist.subsampled
        else f"all {dist.n_features_total} features"
    )
    fig.suptitle(f"{title}\n{note}, {dist.n_pairs} pairs", y=1.04)
    return save_figure(fig, path)


def plot_spy(
    vectors: np.ndarray, indices: np.ndarray, labels: np.ndarray, path: Path, title: str
) -> list[Path]:
    """The [D, n] mask with features grouped by cluster; lines mark cluster boundaries."""
    order = np.lexsort((indices, labels))
    m = np.asarray(vectors, dtype=bool)[order].T
    fig, ax = new_figure(figsize=(8, 6))
    ax.imshow(m, aspect="auto", cmap="Greys", interpolation="nearest", vmin=0, vmax=1)
    bounds = np.flatnonzero(np.diff(labels[order])) + 0.5
    for b in bounds:
        ax.axvline(b, color="tab:red", linewidth=0.8)
    ax.grid(False)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(facecolor="black", edgecolor="grey", label="kept (mask = 1)"),
            Patch(facecolor="white", edgecolor="grey", label="pruned (mask = 0)"),
            Line2D([0], [0], color="tab:red", linewidth=0.8, label="cluster boundary"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    ax.set_xlabel("feature (grouped by cluster)")
    ax.set_ylabel("position")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_statistics(vectors: np.ndarray, clusters: ClusterResult, path: Path, title: str) -> list[Path]:
    """Cluster sizes and cohesion (mean distance of members to their centre)."""
    x = np.asarray(vectors, dtype=np.float64)
    k = clusters.k
    dist = np.linalg.norm(x - clusters.centers[clusters.labels], axis=1)
    sizes = np.bincount(clusters.labels, minlength=k)
    cohesion = np.bincount(clusters.labels, weights=dist, minlength=k) / np.maximum(sizes, 1)
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(10, 3.8))
    ax1.bar(np.arange(k), sizes, color="tab:blue")
    ax1.set_xlabel("cluster")
    ax1.set_ylabel("features")
    ax1.set_title(f"sizes (balance σ = {clusters.cluster_balance:.2f})")
    ax2.bar(np.arange(k), cohesion, color="tab:green")
    ax2.axhline(clusters.mean_within, color="k", linestyle="--", linewidth=1, label="mean within")
    ax2.set_xlabel("cluster")
    ax2.set_ylabel("mean distance to centre")
    ax2.set_title(f"cohesion (separation {clusters.separation_ratio:.2f}, {clusters.separation_label})")
    ax2.legend()
    fig.suptitle(title, y=1.03)
    return save_figure(fig, path)


def plot_tsne(embedding: np.ndarray, labels: np.ndarray, path: Path, title: str) -> list[Path]:
    """2-D t-SNE embedding coloured by cluster; the reference feature (row 0) is starred."""
    fig, ax = new_figure(figsize=(6, 5))
    sc = ax.scatter(embedding[:, 0], embedding[:, 1], c=labels, cmap="tab20", s=18)
    ax.scatter(embedding[0, 0], embedding[0, 1], marker="*", s=180, c="k", label="reference")
    ax.legend(loc="best")
    fig.colorbar(sc, ax=ax, label="cluster")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_distance_heatmap(matrix: np.ndarray, path: Path, title: str) -> list[Path]:
    """Per-cluster mean Hamming distances (within on the diagonal)."""
    k = matrix.shape[0]
    fig, ax = new_figure(figsize=(6, 5))
    im = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis")
    ax.grid(False)
    if k <= 16:
        for i in range(k):
            for j in range(k):
                if np.isfinite(matrix[i, j]):
                    ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xlabel("cluster")
    ax.set_ylabel("cluster")
    fig.colorbar(im, ax=ax, label="mean Hamming distance")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_summary_per_k(
    k_values: list[int],
    series: list[tuple[dict[int, list[float]], str, str | None]],
    path: Path,
    title: str,
    ylabel: str,
    guides: tuple[tuple[float, str], ...] = (),
) -> list[Path]:
    """Each series ``(values per k, label, colour or None for the next default)`` as its mean ± std
    over seeds per k, non-finite values left out (a series with none left is not drawn), beside
    dotted horizontal ``guides`` ``(y, name)``."""
    fig, ax = new_figure(figsize=(6, 4))
    ks = np.array(k_values)
    for data, label, color in series:
        vals = [np.asarray([v for v in data.get(k, []) if np.isfinite(v)]) for k in k_values]
        if not any(v.size for v in vals):
            continue
        mean = np.array([v.mean() if v.size else np.nan for v in vals])
        std = np.array([v.std() if v.size else np.nan for v in vals])
        ax.errorbar(ks, mean, yerr=std, marker="o", capsize=4, label=label, color=color)
    for y, name in guides:
        ax.axhline(y, color="k", linestyle=":", linewidth=0.8)
        ax.text(ks.max(), y, f" {name}", va="bottom", ha="right", fontsize=8)
    ax.set_xticks(ks)
    ax.set_xlabel("k (clusters)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)
