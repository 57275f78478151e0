"""Rich console tables for the mask analyses."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from interplab.common.console import no_truncation, output_console
from interplab.masks.report import fmt


def hamming_table(rec: dict[str, Any]) -> Table:
    """Every Hamming distance of one execution's neighbourhood."""
    t = Table(title=f"Hamming distances to feature {rec['feature_idx']} (top {len(rec['neighbor_indices'])})")
    for col in ("rank", "feature", "count", "distance", "cluster"):
        t.add_column(col, justify="right")
    for rank, (idx, cnt, dist, lab) in enumerate(
        zip(
            rec["neighbor_indices"],
            rec["hamming_counts"],
            rec["hamming_distances"],
            rec["cluster_labels"],
            strict=True,
        )
    ):
        t.add_row(str(rank), str(idx), str(cnt), f"{dist:.4f}", str(lab))
    return t


def metrics_table(rec: dict[str, Any]) -> Table:
    """Cluster, null-model and tile metrics of one execution."""
    t = Table(title=f"Cluster metrics (k = {rec['n_clusters']}, feature {rec['feature_idx']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    d = rec["n_positions"]
    rows = [
        ("min / max Hamming (excl. reference)", f"{fmt(rec['min_hamming'])} / {fmt(rec['max_hamming'])}"),
        ("min / max count", f"{rec['min_hamming_count']} / {rec['max_hamming_count']} of {d}"),
        ("Hamming range", fmt(rec["hamming_range"])),
        ("nearest neighbour (whole matrix)", f"{rec['nn_index']} at {fmt(rec['nn_hamming'])}"),
        ("mean within-cluster distance", fmt(rec["mean_within"])),
        ("mean between-cluster distance", fmt(rec["mean_between"])),
        ("separation ratio", f"{fmt(rec['separation_ratio'])} ({rec['separation_label']})"),
        ("inertia", fmt(rec["inertia"])),
        ("cluster sizes", ", ".join(map(str, rec["cluster_sizes"]))),
        ("cluster balance (std of sizes)", fmt(rec["cluster_balance"])),
        (
            "null separation mean ± std",
            f"{fmt(rec['null_separation_mean'])} ± {fmt(rec['null_separation_std'])}",
        ),
        ("separation z / percentile", f"{fmt(rec['separation_z'])} / {fmt(rec['separation_percentile'])}"),
        (
            "null NN distance mean ± std",
            f"{fmt(rec['null_nn_hamming_mean'])} ± {fmt(rec['null_nn_hamming_std'])}",
        ),
        ("NN distance z / percentile", f"{fmt(rec['nn_z'])} / {fmt(rec['nn_percentile'])}"),
        (
            "non-empty 16×8 tiles original / clustered / total",
            f"{rec['tiles_original']} / {rec['tiles_clustered']} / {rec['tiles_total']}",
        ),
        (
            "null tiles original / clustered",
            f"{fmt(rec['tiles_null_original'])} / {fmt(rec['tiles_null_clustered'])}",
        ),
        ("mean union-mask efficiency", fmt(rec["mean_union_efficiency"])),
    ]
    for name, value in rows:
        t.add_row(name, value)
    return t


def aggregate_table(result: dict[str, Any]) -> Table:
    """mean ± std, min, max of every aggregated metric."""
    n = len(result["executions"])
    t = Table(title=f"{result['matrix']['name']}: {n} executions")
    for col, just in (("metric", "left"), ("mean ± std", "right"), ("min", "right"), ("max", "right")):
        t.add_column(col, justify=just)
    for key, s in result["aggregate"].items():
        t.add_row(key, f"{fmt(s['mean'])} ± {fmt(s['std'])}", fmt(s["min"]), fmt(s["max"]))
    return t


def print_result(result: dict[str, Any], console: Console | None = None, every_distance: bool = True) -> None:
    """Print a hamming / multi-exec result."""
    console = console or output_console()
    execs = result["executions"]
    if len(execs) == 1:
        if every_distance:
            console.print(no_truncation(hamming_table(execs[0])))
        console.print(no_truncation(metrics_table(execs[0])))
    else:
        console.print(no_truncation(aggregate_table(result)))
    wm = result["whole_matrix"]
    console.print(
        f"whole matrix: {wm['n_pairs']} pairs over {wm['n_features_used']} of {wm['n_features_total']} features"
        f"{' (random subsample)' if wm['subsampled'] else ''}; mean {fmt(wm['mean'])}, "
        f"median {fmt(wm['quantiles']['p50'])}, min {fmt(wm['min'])}, max {fmt(wm['max'])}"
    )
