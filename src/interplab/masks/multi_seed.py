"""``masks multi-seed``: the clustering analysis of one matrix over several seeds and k values.

Reads ``<matrix_dir>/<method>/layer<L>-<component>.pt``. Per seed s: a random reference feature
(``numpy.random.default_rng(s)``), its top ``n_similar`` neighbours, a t-SNE embedding and the null
draws; per k: k-means (random_state = s) and four figures. Writes, under the output folder::

    seed_<s>/k_<k>/seed<s>_k<k>_feat<F>_{spy_plot,statistics,tsne,distance_heatmap}.{png,pdf}
    summary/{summary_separation_ratios,summary_distances,hamming_distribution}.{png,pdf}
    summary/metrics_summary.json, summary/README.md, manifest.json

where ``<F>`` is the reference feature's index.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from interplab.common.atomic import write_json
from interplab.common.errors import InterplabError
from interplab.common.markdown_html import write_markdown_report
from interplab.common.output import OutputDir, output_dir
from interplab.common.progress import track
from interplab.masks.components import component_aliases
from interplab.masks.configs import DEFAULT_MATRIX_DIR, DEFAULT_MAX_FEATURES, DEFAULT_NULL_SAMPLES
from interplab.masks.distribution import hamming_distribution
from interplab.masks.execution import Execution, aggregate, analyse_neighborhood, null_draws
from interplab.masks.hamming import HammingIndex
from interplab.masks.matrix import load_matrix
from interplab.masks.multi_exec import check_null_samples
from interplab.masks.neighbors import nearest_features, random_features, validate_selection
from interplab.masks.report import fmt

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_ROOT = Path("results/metrics/multi_seed_clustering")
#: the summary figures: file name, y label, lines ``(record key, label, colour)`` and guides ``(y, name)``
#: (for the separation ratio, the bands of :func:`interplab.masks.cluster.separation_label`)
SUMMARY_FIGURES = (
    (
        "summary_separation_ratios",
        "separation ratio (between / within)",
        (("separation_ratio", "real", "tab:blue"), ("null_separation_mean", "null (shuffled)", "tab:gray")),
        ((2.0, "excellent"), (1.0, "good"), (0.5, "moderate")),
    ),
    (
        "summary_distances",
        "Euclidean distance",
        (("mean_within", "mean within", None), ("mean_between", "mean between", None)),
        (),
    ),
)
MATRIX_FILE = re.compile(r"^layer(\d+)-(.+)\.pt$")


def available_matrices(method_dir: Path) -> list[tuple[int, str]]:
    """(layer, component) of every ``layer<L>-<component>.pt`` in a method folder."""
    found = []
    for p in sorted(method_dir.glob("layer*-*.pt")):
        m = MATRIX_FILE.match(p.name)
        if m:
            found.append((int(m.group(1)), m.group(2)))
    return sorted(found)


def resolve_matrix(matrix_dir: str | Path, method: str, layer: int, component: str) -> Path:
    """The matrix file of (method, layer, component); errors list what the folder holds."""
    root = Path(matrix_dir)
    if not root.is_dir():
        raise InterplabError(
            f"{root}: matrix folder not found (expected <matrix-dir>/<method>/layer<L>-<component>.pt)"
        )
    methods = sorted(p.name for p in root.iterdir() if p.is_dir())
    if method not in methods:
        raise InterplabError(
            f"unknown method {method!r} in {root}; methods present: {', '.join(methods) or 'none'}"
        )
    path = root / method / f"layer{layer}-{component}.pt"
    if path.is_file():
        return path
    have = available_matrices(root / method)
    layers = sorted({lay for lay, _ in have})
    if layer not in layers:
        raise InterplabError(
            f"unknown layer {layer} for method {method!r} in {root}; layers present: "
            f"{', '.join(map(str, layers)) or 'none'}"
        )
    comps = sorted(c for lay, c in have if lay == layer)
    same_role = [c for c in component_aliases(component) if c in comps]
    if same_role:  # e.g. mlp.down_proj → MiniLM's output.dense
        log.info("component %s: using %s, the same matrix role in this model", component, same_role[0])
        return root / method / f"layer{layer}-{same_role[0]}.pt"
    raise InterplabError(
        f"unknown component {component!r} for {method} layer {layer} in {root}; components present: {', '.join(comps)}"
    )


def _tsne(vectors: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE of the binary vectors (perplexity min(30, (n − 1) / 3), always < n)."""
    from sklearn.manifold import TSNE

    n = vectors.shape[0]
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, random_state=seed, init="pca").fit_transform(
        vectors.astype(np.float32)
    )


def _readme(summary: dict[str, Any]) -> str:
    cfg, m = summary["config"], summary["matrix"]
    lines = [
        f"# Multi-seed clustering: {cfg['method']} layer {cfg['layer']} {cfg['component']}",
        "",
        f"Matrix `{m['path']}` shape {m['shape']} ({m['n_features']} features = {cfg['axis']}, density "
        f"{fmt(m['density'])}). {cfg['seeds']} seeds, top {cfg['n_similar']} similar features, k in "
        f"{cfg['k_values']}, {cfg['null_samples']} null samples per seed.",
        "",
        "| k | separation (mean ± std) | label | null separation | z | mean within | mean between | tiles orig → clustered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    from interplab.masks.cluster import separation_label

    for k, agg in summary["summary"].items():

        def g(key: str, stat: str = "mean", agg: dict[str, Any] = agg) -> Any:
            return agg.get(key, {}).get(stat)

        sep = g("separation_ratio")
        lines.append(
            f"| {k} | {fmt(sep)} ± {fmt(g('separation_ratio', 'std'))} | {separation_label(sep)} | "
            f"{fmt(g('null_separation_mean'))} | {fmt(g('separation_z'))} | {fmt(g('mean_within'))} | "
            f"{fmt(g('mean_between'))} | {fmt(g('tiles_original'))} → {fmt(g('tiles_clustered'))} |"
        )
    wm = summary["whole_matrix"]
    lines += [
        "",
        f"All pairwise Hamming distances over {wm['n_features_used']} of {wm['n_features_total']} features"
        f"{' (random subsample)' if wm['subsampled'] else ''}: mean {fmt(wm['mean'])}, median "
        f"{fmt(wm['quantiles']['p50'])}, min {fmt(wm['min'])}.",
        "",
        "Files: `seed_<s>/k_<k>/seed<s>_k<k>_feat<F>_{spy_plot,statistics,tsne,distance_heatmap}.png|pdf` "
        "(F = reference feature index); `summary/metrics_summary.json` holds every run's metrics.",
    ]
    return "\n".join(lines) + "\n"


def _seed_figures(out: OutputDir, stem: str, title: str, ex: Execution, emb: np.ndarray) -> None:
    """The four per-(seed, k) figures, PNG + PDF each, recorded in the manifest."""
    from interplab.masks import plots

    labels = ex.clusters.labels
    written = [
        *plots.plot_spy(ex.vectors, ex.neighborhood.indices, labels, out.file(f"{stem}_spy_plot.png"), title),
        *plots.plot_statistics(ex.vectors, ex.clusters, out.file(f"{stem}_statistics.png"), title),
        *plots.plot_tsne(emb, labels, out.file(f"{stem}_tsne.png"), title),
        *plots.plot_distance_heatmap(
            ex.clusters.cluster_hamming, out.file(f"{stem}_distance_heatmap.png"), title
        ),
    ]
    for path in written:
        out.record(path)


def multi_seed_analysis(
    method: str,
    layer: int = 1,
    component: str = "mlp.down_proj",
    matrix_dir: str | Path = DEFAULT_MATRIX_DIR,
    seeds: int = 10,
    n_similar: int = 128,
    k_values: tuple[int, ...] | list[int] = (4, 8, 16),
    output_dir_path: str | Path | None = None,
    axis: str = "columns",
    null_samples: int = DEFAULT_NULL_SAMPLES,
    hist_max_features: int = DEFAULT_MAX_FEATURES,
) -> dict[str, Any]:
    """Run the multi-seed analysis and write its folder; returns the ``metrics_summary.json`` content."""
    k_values = [int(k) for k in k_values]
    if not k_values:
        raise InterplabError("--k-values needs at least one k")
    if seeds < 1:
        raise InterplabError(f"--seeds must be at least 1, got {seeds}")
    check_null_samples(null_samples)
    for k in k_values:
        if k < 2:
            raise InterplabError(f"--k-values: k must be at least 2, got {k}")
    path = resolve_matrix(matrix_dir, method, layer, component)
    matrix = load_matrix(path, axis)
    for k in k_values:
        validate_selection(matrix.n_features, n_similar, k, what="--n-similar")
    out_root = (
        Path(output_dir_path) if output_dir_path is not None else DEFAULT_OUTPUT_ROOT / method / component
    )
    if out_root.exists() and not out_root.is_dir():
        raise InterplabError(f"{out_root}: --output-dir is a file; expected a folder")

    config = {
        "method": method,
        "layer": layer,
        "component": component,
        "matrix_dir": str(matrix_dir),
        "seeds": seeds,
        "n_similar": n_similar,
        "k_values": k_values,
        "axis": axis,
        "null_samples": null_samples,
        "hist_max_features": hist_max_features,
    }
    from interplab.masks import plots

    index = HammingIndex.build(matrix.mask)
    runs: list[dict[str, Any]] = []
    with output_dir(out_root, "masks multi-seed", config) as out:
        for seed in track(range(seeds), "seeds"):
            fi = random_features(matrix.n_features, 1, seed)[0]
            nb = nearest_features(index, fi, n_similar)
            draws = null_draws(matrix.mask, index, fi, n_similar, null_samples, seed)
            with out.timed(f"tsne_seed{seed}"):
                emb = _tsne(matrix.mask[nb.indices], seed)
            for k in k_values:
                ex = analyse_neighborhood(matrix.mask, nb, k, seed, draws)
                runs.append({"seed": seed, "k": k, **ex.record()})
                stem = f"seed_{seed}/k_{k}/seed{seed}_k{k}_feat{fi}"
                title = f"{method} L{layer} {component} · seed {seed} · k={k} · feature {fi}"
                _seed_figures(out, stem, title, ex, emb)
        by_k = {k: [r for r in runs if r["k"] == k] for k in k_values}
        dist = hamming_distribution(matrix.mask, hist_max_features, 0)
        summary = {
            "kind": "interplab.masks.multi_seed",
            "matrix": matrix.describe(),
            "config": config,
            "summary": {str(k): aggregate(rs) for k, rs in by_k.items()},
            "runs": runs,
            "whole_matrix": {**dist.summary(), "histogram_counts": dist.histogram.tolist()},
        }
        title = f"{method} layer {layer} {component}: {seeds} seed{'' if seeds == 1 else 's'}"
        for name, ylabel, lines, guides in SUMMARY_FIGURES:
            series = [
                ({k: [r[key] for r in rs] for k, rs in by_k.items()}, label, color)
                for key, label, color in lines
            ]
            path = out.file(f"summary/{name}.png")
            for written in plots.plot_summary_per_k(k_values, series, path, title, ylabel, guides):
                out.record(written)
        for written in plots.plot_hamming_distribution(
            dist, out.file("summary/hamming_distribution.png"), f"pairwise Hamming distances: {matrix.name}"
        ):
            out.record(written)
        write_json(out.file("summary/metrics_summary.json"), summary)
        write_markdown_report(out.file("summary/README.md"), _readme(summary))
    log.info("wrote %s", out_root)
    return summary
