"""``SUMMARY_<ts>.json`` (key numbers + every output path) and ``README_<ts>.md`` (findings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from interplab.common.atomic import write_text
from interplab.common.numbers import format_number
from interplab.sae.stats import FeatureStats
from interplab.sae.summaries import SummaryInputs, gather_tokens


def _get(d: dict[str, Any] | None, key: str) -> Any:
    return None if d is None else d.get(key)


def build_summary(results: dict[str, Any], stats: FeatureStats, ts: str) -> dict[str, Any]:
    """The key numbers of an analysis from its ``analysis_results`` content and feature statistics
    (``files`` is added by the caller)."""
    sp_, dead, rec, abl = (
        results.get(k) or {} for k in ("sparsity", "dead_features", "reconstruction", "ablation")
    )
    cfg, sae = results["config"], results["sae"]
    return {
        "timestamp": ts,
        "model": cfg["model_name"],
        "sae": cfg["sae_path"],
        "hook": cfg["hook"],
        "layer": cfg["layer"],
        "data": cfg["data_path"],
        "d_in": sae["d_in"],
        "d_sae": sae["d_sae"],
        "architecture": sae["architecture"],
        "n_tokens": results["collection"]["n_tokens"],
        "n_texts": _get(results.get("data"), "n_texts"),
        "n_empty_texts": _get(results.get("data"), "n_empty_texts"),
        "l0_mean": sp_.get("l0_mean"),
        "l1_mean": sp_.get("l1_mean"),
        "n_dead": dead.get("n_dead"),
        "pct_dead": dead.get("pct_dead"),
        "n_dense": dead.get("n_dense"),
        "n_alive": int((stats.count > 0).sum()),
        "mse_per_element": rec.get("mse_per_element"),
        "mse_per_token": rec.get("mse_per_token"),
        "explained_variance": rec.get("explained_variance"),
        "explained_variance_legacy": rec.get("explained_variance_legacy"),
        "cosine_similarity": rec.get("cosine_similarity"),
        "l2_ratio": rec.get("l2_ratio"),
        "baseline_loss": abl.get("baseline_loss"),
        "sae_reconstruction_loss": abl.get("sae_reconstruction_loss"),
        "zero_ablation_loss": abl.get("zero_ablation_loss"),
        "loss_recovered": abl.get("loss_recovered"),
        "kl_score": abl.get("kl_score"),
        "ablation_tokens": abl.get("n_tokens"),
        "ablation_substitute": abl.get("substitute"),
        "similarity_metric": cfg["similarity"],
        "cooccurrence_metrics": list(cfg["cooccurrence"]),
        "collection_seconds": _get(results.get("collection"), "seconds"),
        "resumed_shards": _get(results.get("collection"), "resumed_shards"),
    }


def _fmt(x: Any) -> str:
    return format_number(x, missing="—")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def write_readme(path: Path, summary: dict[str, Any], results: dict[str, Any], inputs: SummaryInputs) -> Path:
    """The human-readable findings: metrics table, dead/dense counts, top features, file pointers
    (the top tokens of the most frequent features are read from the database of ``inputs``)."""
    st = inputs.stats
    lines = [
        f"# SAE analysis — {summary['model']} at {summary['hook']}",
        "",
        f"SAE `{summary['sae']}` ({summary['architecture']}, d_in={summary['d_in']}, d_sae={summary['d_sae']}) "
        f"on `{summary['data']}`: {summary['n_tokens']} tokens "
        f"({_fmt(summary['n_texts'])} texts, {_fmt(summary['n_empty_texts'])} empty texts skipped).",
        "",
        "## Key metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key in (
        "l0_mean",
        "l1_mean",
        "n_alive",
        "n_dead",
        "pct_dead",
        "n_dense",
        "mse_per_element",
        "mse_per_token",
        "explained_variance",
        "explained_variance_legacy",
        "cosine_similarity",
        "l2_ratio",
        "baseline_loss",
        "sae_reconstruction_loss",
        "zero_ablation_loss",
        "loss_recovered",
        "kl_score",
    ):
        lines.append(f"| {key} | {_fmt(summary.get(key))} |")
    abl = results.get("ablation") or {}
    lines += ["", f"Loss-based metrics: {abl.get('note', 'not computed')}."]
    if abl.get("substitute"):
        lines.append(f"Note: {abl['substitute']}.")
    dead = results.get("dead_features") or {}
    lines += [
        "",
        "## Dead and dense features",
        "",
        f"- {dead.get('n_dead', 0)} dead features (never fired on the {summary['n_tokens']} tokens), "
        f"{dead.get('n_frequency_below_1e-5', 0)} with frequency < 1e-5, "
        f"{dead.get('n_frequency_below_1e-6', 0)} with frequency < 1e-6.",
        f"- {dead.get('n_dense', 0)} dense features (firing on > 10 % of tokens).",
        "",
        "## Most frequent features",
        "",
        "| feature | density | mean act. | max act. | top tokens |",
        "|---|---|---|---|---|",
    ]
    order = np.lexsort((np.arange(st.d_sae), -st.count))[:15]
    tok = inputs.tokenizer
    order = order[st.count[order] > 0]
    got = gather_tokens(inputs.db_path, inputs.shards, st.top_tokens[order][:, :5])  # one pass
    for row, f in enumerate(order):
        ids = got["token_id"][row][st.top_tokens[f][:5] >= 0]
        toks = list(dict.fromkeys(repr(t) for t in tok.batch_decode([[int(i)] for i in ids])))
        lines.append(
            f"| {int(f)} | {st.density[f]:.4f} | {st.mean_active[f]:.3f} | {st.max[f]:.3f} | "
            f"{_md_cell(', '.join(toks))} |"
        )
    fa = results.get("feature_ablation") or {}
    if fa.get("features"):
        lines += [
            "",
            "## Feature ablation (largest loss increase)",
            "",
            "| feature | loss delta | kl delta |",
            "|---|---|---|",
        ]
        for e in sorted(fa["features"], key=lambda e: -e["loss_delta"])[:10]:
            lines.append(f"| {e['feature']} | {e['loss_delta']:.4g} | {e['kl_delta']:.4g} |")
    lines += ["", "## Files", ""]
    for key, rel in summary.get("files", {}).items():
        lines.append(f"- {key}: `{rel}`")
    lines += ["", "Layout and formulas: docs/sae-analysis.md.", ""]
    return write_text(path, "\n".join(lines))
