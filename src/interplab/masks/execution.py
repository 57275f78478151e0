"""One analysis execution: a reference feature, its top-n neighbours, k-means, null model and tiles."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from interplab.masks.cluster import ClusterResult, cluster_features
from interplab.masks.hamming import HammingIndex
from interplab.masks.neighbors import Neighborhood, nearest_features
from interplab.masks.null import NullComparison, NullNeighborhood, compare_to_null, draw_null_neighborhood
from interplab.masks.tiles import TILE_SHAPE, TileCounts, tile_counts, union_efficiency

# Scalar per-execution metrics that are aggregated (mean, std, min, max) over executions / seeds.
AGGREGATE_METRICS = (
    "min_hamming",
    "max_hamming",
    "hamming_range",
    "mean_hamming",
    "nn_hamming",
    "mean_within",
    "mean_between",
    "separation_ratio",
    "inertia",
    "cluster_balance",
    "null_separation_mean",
    "separation_z",
    "separation_percentile",
    "null_nn_hamming_mean",
    "nn_z",
    "nn_percentile",
    "tiles_original",
    "tiles_clustered",
    "tile_reduction",
    "tiles_null_original",
    "tiles_null_clustered",
    "mean_union_efficiency",
)


def null_draws(
    mask: np.ndarray, index: HammingIndex, feature_idx: int, n: int, samples: int, seed: int
) -> list[NullNeighborhood]:
    """``samples`` null neighbourhoods of ``feature_idx`` (seeded by ``(seed, feature_idx)``)."""
    rng = np.random.default_rng([seed, feature_idx])
    return [
        draw_null_neighborhood(index.ones, mask[feature_idx], feature_idx, n, rng) for _ in range(samples)
    ]


@dataclasses.dataclass
class Execution:
    """Everything computed for one reference feature and one k."""

    neighborhood: Neighborhood
    vectors: np.ndarray  # bool [n, D] in neighbourhood order
    clusters: ClusterResult
    tiles: TileCounts
    union_efficiency: np.ndarray
    null_separation: NullComparison | None
    null_nn: NullComparison | None
    null_tiles_original: list[int]
    null_tiles_clustered: list[int]

    def record(self) -> dict[str, Any]:
        """The JSON record of this execution (keys documented in docs/masks.md)."""
        nb, cl, t = self.neighborhood, self.clusters, self.tiles
        d = nb.n_positions
        others = nb.counts[1:] if len(nb.counts) > 1 else nb.counts
        nan = float("nan")

        def null_block(c: NullComparison | None) -> dict[str, Any] | None:
            return None if c is None else dataclasses.asdict(c)

        rec: dict[str, Any] = {
            "feature_idx": nb.feature_idx,
            "neighbor_indices": nb.indices.tolist(),
            "hamming_distances": nb.distances.tolist(),
            "hamming_counts": nb.counts.tolist(),
            "n_positions": d,
            "min_hamming": float(others.min() / d),
            "max_hamming": float(others.max() / d),
            "hamming_range": float((others.max() - others.min()) / d),
            "min_hamming_count": int(others.min()),
            "max_hamming_count": int(others.max()),
            "mean_hamming": float(others.mean() / d),
            "nn_index": nb.nn_index,
            "nn_hamming": nb.nn_count / d,
            "nn_hamming_count": nb.nn_count,
            "n_clusters": cl.k,
            "mean_within": cl.mean_within,
            "mean_between": cl.mean_between,
            "separation_ratio": cl.separation_ratio,
            "separation_label": cl.separation_label,
            "inertia": cl.inertia,
            "cluster_sizes": cl.cluster_sizes,
            "cluster_balance": cl.cluster_balance,
            "cluster_labels": cl.labels.tolist(),
            "cluster_hamming": cl.cluster_hamming.tolist(),
            "kmeans_n_iter": cl.n_iter,
            "null_samples": len(self.null_tiles_original),
            "null_separation_mean": self.null_separation.null_mean if self.null_separation else nan,
            "null_separation_std": self.null_separation.null_std if self.null_separation else nan,
            "separation_z": self.null_separation.z_score if self.null_separation else nan,
            "separation_percentile": self.null_separation.percentile if self.null_separation else nan,
            "null_nn_hamming_mean": self.null_nn.null_mean if self.null_nn else nan,
            "null_nn_hamming_std": self.null_nn.null_std if self.null_nn else nan,
            "nn_z": self.null_nn.z_score if self.null_nn else nan,
            "nn_percentile": self.null_nn.percentile if self.null_nn else nan,
            "tile_shape": list(t.tile_shape),
            "tiles_total": t.total,
            "tiles_original": t.original,
            "tiles_clustered": t.clustered,
            "tile_reduction": t.reduction,
            "tiles_null_original": float(np.mean(self.null_tiles_original))
            if self.null_tiles_original
            else nan,
            "tiles_null_clustered": float(np.mean(self.null_tiles_clustered))
            if self.null_tiles_clustered
            else nan,
            "union_efficiency": self.union_efficiency.tolist(),
            "mean_union_efficiency": float(np.nanmean(self.union_efficiency))
            if np.isfinite(self.union_efficiency).any()
            else nan,
            "null": {
                "separation_ratio": null_block(self.null_separation),
                "nn_hamming": null_block(self.null_nn),
                "tiles_original": self.null_tiles_original,
                "tiles_clustered": self.null_tiles_clustered,
            },
        }
        return rec


def analyse_neighborhood(
    mask: np.ndarray,
    neighborhood: Neighborhood,
    k: int,
    seed: int,
    draws: list[NullNeighborhood],
    tile: tuple[int, int] = TILE_SHAPE,
) -> Execution:
    """Cluster a neighbourhood with k-means, compare with the null draws and count tiles."""
    vectors = mask[neighborhood.indices]
    clusters = cluster_features(vectors, k, seed)
    tiles = tile_counts(vectors, neighborhood.indices, clusters.labels, tile)
    eff = union_efficiency(vectors, clusters.labels, k)
    null_sep: list[float] = []
    null_orig: list[int] = []
    null_clu: list[int] = []
    for draw in draws:
        null_cl = cluster_features(draw.vectors, k, seed)
        null_sep.append(null_cl.separation_ratio)
        nt = tile_counts(draw.vectors, draw.indices, null_cl.labels, tile)
        null_orig.append(nt.original)
        null_clu.append(nt.clustered)
    d = neighborhood.n_positions
    return Execution(
        neighborhood=neighborhood,
        vectors=vectors,
        clusters=clusters,
        tiles=tiles,
        union_efficiency=eff,
        null_separation=compare_to_null(clusters.separation_ratio, null_sep) if draws else None,
        null_nn=compare_to_null(neighborhood.nn_count / d, [dr.nn_count / d for dr in draws])
        if draws
        else None,
        null_tiles_original=null_orig,
        null_tiles_clustered=null_clu,
    )


def run_execution(
    mask: np.ndarray,
    index: HammingIndex,
    feature_idx: int,
    n_features: int,
    k: int,
    seed: int,
    null_samples: int,
    tile: tuple[int, int] = TILE_SHAPE,
) -> Execution:
    """Neighbourhood of ``feature_idx``, then :func:`analyse_neighborhood`."""
    nb = nearest_features(index, feature_idx, n_features)
    draws = null_draws(mask, index, feature_idx, n_features, null_samples, seed)
    return analyse_neighborhood(mask, nb, k, seed, draws, tile)


def aggregate(records: list[dict[str, Any]], keys: tuple[str, ...] = AGGREGATE_METRICS) -> dict[str, Any]:
    """{metric: {mean, std (ddof=0), min, max, n}} over the finite values of each metric."""
    out: dict[str, Any] = {}
    for key in keys:
        vals = np.array(
            [r[key] for r in records if r.get(key) is not None and math.isfinite(float(r[key]))], dtype=float
        )
        if vals.size == 0:
            continue
        out[key] = {
            "mean": float(vals.mean()),
            "std": float(vals.std()),
            "min": float(vals.min()),
            "max": float(vals.max()),
            "n": int(vals.size),
        }
    return out
