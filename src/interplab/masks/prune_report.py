"""The short human-readable ``pruning_report.md`` written next to ``pruning_report.json``."""

from __future__ import annotations

from typing import Any

from interplab.common.markdown_html import markdown_table


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report_markdown(report: dict[str, Any]) -> str:
    """Render the pruning report: settings, model-level quality and one row per matrix."""
    model, calib, summary, quality = (
        report["model"],
        report["calibration"],
        report["summary"],
        report["quality"],
    )
    lines = [
        f"# Pruning report — {report['method']} on {model['name']}",
        "",
        f"- model: `{model['source']}` ({model['architecture']}, {model['n_blocks']} blocks at `{model['block_path']}`)",
        f"- method: **{report['method']}**, structure {report['structure']}, target sparsity {report['sparsity']:.3f}",
        f"- calibration: {calib['nsamples']} windows × {calib['seqlen']} tokens from `{calib['data']}` "
        f"(seed {calib['seed']}, {calib['tokens_available']} tokens available)",
        f"- matrices pruned: {summary['n_matrices']}, overall sparsity {summary['overall_sparsity']:.4f}",
        f"- relative output error ‖(W−Ŵ)X‖/‖WX‖: mean {summary['mean_relative_output_error']:.4f}, "
        f"max {summary['max_relative_output_error']:.4f}",
        f"- time: {summary['pruning_seconds']:.2f} s in the pruning steps, {summary['total_seconds']:.2f} s in all",
        "",
        f"## Model quality on {quality['n_windows']} held-out windows ({quality['tokens']} tokens)",
        "",
    ]
    if quality["kind"] == "perplexity":
        lines.append(
            f"- perplexity: {_fmt(quality['perplexity_before'], 3)} before → {_fmt(quality['perplexity_after'], 3)} after"
        )
    lines += [
        f"- cosine of final hidden states before/after: mean {quality['hidden_cosine_mean']:.4f}, "
        f"min {quality['hidden_cosine_min']:.4f}",
        "",
        "## Matrices",
        "",
        *markdown_table(
            ("layer", "component", "shape", "sparsity", "rel. output error", "seconds"),
            (
                (
                    m["layer"],
                    f"`{m['component']}`",
                    f"{m['shape'][0]}×{m['shape'][1]}",
                    f"{m['sparsity']:.4f}",
                    _fmt(m["relative_output_error"]),
                    f"{m['seconds']:.3f}",
                )
                for m in report["matrices"]
            ),
            align="rllrrr",
        ),
    ]
    return "\n".join(lines) + "\n"
