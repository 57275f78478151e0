"""``masks hamming`` (one selection) and ``masks multi-exec`` (repeated random selections).

Both return the same JSON structure: ``kind``, ``matrix``, ``config``, ``executions``, ``aggregate``
and ``whole_matrix``; with an output JSON path they also write the Hamming histogram/CDF figure,
a short Markdown summary and a manifest beside it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from interplab.common.atomic import write_json
from interplab.common.errors import InterplabError
from interplab.common.markdown_html import write_markdown_report
from interplab.common.output import OutputDir
from interplab.common.progress import track
from interplab.masks.configs import SelectionConfig
from interplab.masks.distribution import HammingDistribution, hamming_distribution
from interplab.masks.execution import aggregate, run_execution
from interplab.masks.hamming import HammingIndex
from interplab.masks.matrix import FeatureMatrix, load_matrix
from interplab.masks.neighbors import check_feature_idx, random_features, validate_selection
from interplab.masks.tiles import TILE_SHAPE

log = logging.getLogger(__name__)


def check_null_samples(null_samples: int) -> None:
    """0 disables the null model; a z-score needs at least 2 samples."""
    if null_samples < 0 or null_samples == 1:
        raise InterplabError(f"--null-samples must be 0 (off) or at least 2, got {null_samples}")


def check_output_json(path: Path | None) -> None:
    """The output JSON must be a file path (checked before any work)."""
    if path is None:
        return
    if path.is_dir():
        raise InterplabError(f"{path}: --output-json is a folder; expected a .json file path")
    if path.suffix.lower() != ".json":
        raise InterplabError(f"{path}: --output-json must end in .json")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InterplabError(f"{parent}: is a file, cannot create {path}")
            break


def sibling(path: Path, suffix: str) -> Path:
    """``results/x.json`` → ``results/x<suffix>``."""
    return path.with_name(path.stem + suffix)


def _selection(matrix_path: str | Path, selection: dict[str, Any]) -> SelectionConfig:
    """The options of one analysis, by name (defaults: :class:`SelectionConfig`'s)."""
    cfg = SelectionConfig(matrix_path=Path(matrix_path), **selection)
    if cfg.output_json is not None:
        cfg.output_json = Path(cfg.output_json)
    return cfg


def _load(cfg: SelectionConfig) -> FeatureMatrix:
    """Check the options (before any work), load the matrix and check the selection fits it."""
    if cfg.n_clusters < 2:
        raise InterplabError(f"--n-clusters must be at least 2, got {cfg.n_clusters}")
    check_null_samples(cfg.null_samples)
    if cfg.hist_max_features < 2:
        raise InterplabError(f"--hist-max-features must be at least 2, got {cfg.hist_max_features}")
    check_output_json(cfg.output_json)
    matrix = load_matrix(cfg.matrix_path, cfg.axis)
    validate_selection(matrix.n_features, cfg.n_features, cfg.n_clusters)
    return matrix


def _common_config(cfg: SelectionConfig) -> dict[str, Any]:
    return {
        "n_features": cfg.n_features,
        "n_clusters": cfg.n_clusters,
        "seed": cfg.seed,
        "axis": cfg.axis,
        "null_samples": cfg.null_samples,
        "tile_shape": list(TILE_SHAPE),
        "hist_max_features": cfg.hist_max_features,
    }


def _analyse(
    matrix: FeatureMatrix,
    feature_indices: list[int],
    config: dict[str, Any],
    kind: str,
    out: Path | None,
    command: str,
) -> dict[str, Any]:
    """One execution per reference feature, the whole-matrix distribution and (with ``out``) the
    files of ``command``."""
    index = HammingIndex.build(matrix.mask)
    records = []
    for fi in track(feature_indices, "executions"):
        ex = run_execution(
            matrix.mask,
            index,
            fi,
            config["n_features"],
            config["n_clusters"],
            config["seed"],
            config["null_samples"],
            TILE_SHAPE,
        )
        records.append(ex.record())
    dist = hamming_distribution(matrix.mask, config["hist_max_features"], config["seed"])
    result = {
        "kind": kind,
        "matrix": matrix.describe(),
        "config": config,
        "executions": records,
        "aggregate": aggregate(records),
        "whole_matrix": {**dist.summary(), "histogram_counts": dist.histogram.tolist()},
    }
    if out is not None:
        write_outputs(result, dist, out, command)
    return result


def hamming_analysis(
    matrix_path: str | Path, feature_idx: int | None = None, **selection: Any
) -> dict[str, Any]:
    """One selection: ``feature_idx`` (random with ``seed`` if None) and its top ``n_features``;
    ``selection``: the other options of :class:`~interplab.masks.configs.SelectionConfig`."""
    cfg = _selection(matrix_path, selection)
    matrix = _load(cfg)
    fi = (
        check_feature_idx(feature_idx, matrix.n_features)
        if feature_idx is not None
        else random_features(matrix.n_features, 1, cfg.seed)[0]
    )
    config = {"feature_idx": feature_idx, **_common_config(cfg), "n_executions": 1}
    return _analyse(matrix, [fi], config, "interplab.masks.hamming", cfg.output_json, "masks hamming")


def multi_exec_analysis(matrix_path: str | Path, n_executions: int = 10, **selection: Any) -> dict[str, Any]:
    """``n_executions`` random reference features (distinct, drawn with ``seed``), mean ± std;
    ``selection``: the other options of :class:`~interplab.masks.configs.SelectionConfig`."""
    cfg = _selection(matrix_path, selection)
    if n_executions < 1:
        raise InterplabError(f"--n-executions must be at least 1, got {n_executions}")
    matrix = _load(cfg)
    if n_executions > matrix.n_features:
        raise InterplabError(
            f"--n-executions {n_executions} is more than the {matrix.n_features} features to draw from"
        )
    features = random_features(matrix.n_features, n_executions, cfg.seed)
    config = {**_common_config(cfg), "n_executions": n_executions}
    return _analyse(
        matrix, features, config, "interplab.masks.multi_exec", cfg.output_json, "masks multi-exec"
    )


def summary_markdown(result: dict[str, Any]) -> str:
    """A short human-readable summary of a hamming / multi-exec result."""
    from interplab.masks.report import fmt

    m, cfg, agg = result["matrix"], result["config"], result["aggregate"]
    n_exec = len(result["executions"])
    lines = [
        f"# Mask structure: {m['name']}",
        "",
        f"Matrix `{m['path']}` shape {m['shape']} (features = {cfg['axis']}, {m['n_features']} features of "
        f"{m['n_positions']} positions, density {m['density']:.3f}). {n_exec} execution(s), top "
        f"{cfg['n_features']} similar features, k = {cfg['n_clusters']}, seed {cfg['seed']}, "
        f"{cfg['null_samples']} null samples.",
        "",
        "| metric | mean | std | min | max |",
        "|---|---|---|---|---|",
    ]
    for key, s in agg.items():
        lines.append(f"| {key} | {fmt(s['mean'])} | {fmt(s['std'])} | {fmt(s['min'])} | {fmt(s['max'])} |")
    sep = agg.get("separation_ratio", {}).get("mean")
    z = agg.get("separation_z", {}).get("mean")
    lines += ["", "## Findings", ""]
    if sep is not None:
        from interplab.masks.cluster import separation_label

        lines.append(f"- Mean separation ratio {fmt(sep)} ({separation_label(sep)}).")
    if z is not None:
        verdict = "above" if z > 2 else ("below" if z < -2 else "indistinguishable from")
        lines.append(
            f"- Against the shuffled-mask null the separation is {verdict} chance (mean z = {fmt(z)})."
        )
    nz = agg.get("nn_z", {}).get("mean")
    if nz is not None:
        lines.append(
            f"- Nearest-neighbour distance z = {fmt(nz)} (negative: neighbours closer than in a shuffled mask)."
        )
    red = agg.get("tile_reduction", {}).get("mean")
    if red is not None:
        lines.append(f"- Reordering by cluster changes the non-empty 16×8 tiles by {fmt(-100 * red)} %.")
    wm = result["whole_matrix"]
    lines.append(
        f"- All pairwise distances ({'subsample of ' if wm['subsampled'] else ''}{wm['n_features_used']} "
        f"features): mean {fmt(wm['mean'])}, median {fmt(wm['quantiles']['p50'])}, min {fmt(wm['min'])}."
    )
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], dist: HammingDistribution, out: Path, command: str) -> list[Path]:
    """Write the JSON, the histogram/CDF figure, a Markdown summary and a manifest beside ``out``."""
    from interplab.masks.plots import plot_hamming_distribution

    files = plot_hamming_distribution(
        dist, sibling(out, "_hamming_distribution"), f"pairwise Hamming distances: {result['matrix']['name']}"
    )
    files.append(write_markdown_report(sibling(out, ".md"), summary_markdown(result)))
    files.append(sibling(out, ".html"))
    files.append(write_json(out, result))
    od = OutputDir(out.parent, command, result["config"], manifest_name=sibling(out, ".manifest.json").name)
    for p in files:
        od.record(p)
    manifest = od.write_manifest()
    log.info("wrote %s", out)
    return [*files, manifest]
