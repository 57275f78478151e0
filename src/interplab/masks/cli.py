"""``interplab masks …`` — parse arguments and call the masks functions."""

from __future__ import annotations

import dataclasses

import typer

from interplab.common.options import command
from interplab.masks.configs import (
    HammingConfig,
    MultiExecConfig,
    MultiSeedConfig,
    PruneConfig,
    ReportConfig,
    parse_k_values,
)
from interplab.masks.mask_configs import DiffConfig, ExtractConfig, SpeedupConfig

app = typer.Typer(
    help="Prune models (Wanda, SparseGPT) and analyse the structure of sparsity masks.", no_args_is_help=True
)


# --- masks hamming / multi-exec / multi-seed / report --------------------------------------------


@command(app, "hamming", HammingConfig)
def hamming_command(cfg: HammingConfig) -> None:
    """One reference feature: every Hamming distance to its top-N neighbours and the cluster metrics."""
    from interplab.masks.multi_exec import hamming_analysis
    from interplab.masks.tables import print_result

    print_result(hamming_analysis(**dataclasses.asdict(cfg)))


@command(app, "multi-exec", MultiExecConfig)
def multi_exec_command(cfg: MultiExecConfig) -> None:
    """Repeated random selections of one matrix; metrics as mean ± std over executions."""
    from interplab.masks.multi_exec import multi_exec_analysis
    from interplab.masks.tables import print_result

    print_result(multi_exec_analysis(**dataclasses.asdict(cfg)))


@command(
    app,
    "multi-seed",
    MultiSeedConfig,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
)
def multi_seed_command(cfg: MultiSeedConfig, ctx: typer.Context) -> None:
    """Clustering of one matrix over several seeds and k values, with per-run and summary figures."""
    from interplab.masks.multi_seed import multi_seed_analysis
    from interplab.masks.report import fmt

    cfg.k_values += parse_k_values(ctx.args)  # --k-values 4 8 16: 8 and 16 arrive as extra arguments
    summary = multi_seed_analysis(**dataclasses.asdict(cfg))
    for k, agg in summary["summary"].items():
        sep = agg.get("separation_ratio", {})
        typer.echo(f"k={k}: separation {fmt(sep.get('mean'))} ± {fmt(sep.get('std'))}")


@command(app, "report", ReportConfig)
def report_command(cfg: ReportConfig) -> None:
    """Comparative table over all hamming / multi-exec / multi-seed results (rich, Markdown, CSV)."""
    from interplab.common.console import no_truncation, output_console
    from interplab.masks.report import comparative_report, report_table

    report = comparative_report(cfg.results_dir, cfg.out)
    console = output_console()
    console.print(no_truncation(report_table(report)))
    for note in report.notes:
        console.print(f"note: {note}")
    for path in report.files:
        console.print(f"wrote {path}")


# --- masks prune ----------------------------------------------------------------------------------


@command(app, "prune", PruneConfig)
def prune_command(cfg: PruneConfig) -> None:
    """Prune a model layer by layer (magnitude, Wanda or SparseGPT) and write the pruned matrices."""
    from interplab.masks.prune import prune_model

    result = prune_model(**dataclasses.asdict(cfg))
    typer.echo(
        f"{result.method}: {len(result.matrices)} matrices, sparsity {result.sparsity:.3f}, "
        f"mean relative output error {result.mean_relative_output_error:.4f} -> {result.out_dir}"
    )


# --- masks extract / diff / speedup -----------------------------------------------------------------


@command(app, "extract", ExtractConfig)
def extract_command(cfg: ExtractConfig) -> None:
    """Masks of a sparse checkpoint (dense zeros or compressed-tensors bitmask formats), in the
    folder layout of ``masks prune``."""
    from interplab.masks.extract import extract_masks

    result = extract_masks(cfg)
    typer.echo(
        f"{result.label}: {len(result.matrices)} matrices ({result.format}, {result.structure}), "
        f"overall sparsity {result.overall_sparsity:.4f} -> {result.out_dir}"
    )


@command(app, "diff", DiffConfig)
def diff_command(cfg: DiffConfig) -> None:
    """Compare two mask sets of one model: Jaccard, row Hamming, N:M compliance; most different first."""
    from interplab.masks.diff import diff_command as run_diff

    result = run_diff(cfg)
    worst = result.ranked[0]
    typer.echo(
        f"{len(result.matrices)} matrices, Jaccard {result.overall_jaccard:.4f}; most different: "
        f"layer{worst.layer}-{worst.component} ({worst.jaccard:.4f}) -> {result.out_dir}"
    )


@command(app, "speedup", SpeedupConfig)
def speedup_command(cfg: SpeedupConfig) -> None:
    """N:M compliance, tile occupancy, permutation search and roofline speedup of every mask."""
    from interplab.masks.speedup import speedup_command as run_speedup

    result = run_speedup(cfg)
    typer.echo(f"{len(result.matrices)} matrices -> {result.out_dir}")
