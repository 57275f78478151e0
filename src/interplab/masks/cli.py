"""``interplab masks …`` — parse arguments and call the masks functions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from interplab.common.options import command
from interplab.masks.configs import AXIS_HELP, HIST_HELP, NULL_HELP, HammingConfig, MultiExecConfig

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


def parse_k_values(values: list[str], extra: list[str]) -> list[int]:
    """``--k-values 4 8 16`` (extra tokens after the option), ``--k-values 4,8`` or repeated flags."""
    from interplab.common.errors import InterplabError

    tokens = [t for v in [*values, *extra] for t in v.replace(",", " ").split()]
    try:
        return [int(t) for t in tokens]
    except ValueError as exc:
        raise InterplabError(f"--k-values expects integers, got {' '.join(tokens)!r}") from exc


@app.command("multi-seed", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def multi_seed_command(
    ctx: typer.Context,
    method: str = typer.Option(..., "--method", help="Method folder inside --matrix-dir (e.g. wanda)."),
    component: str = typer.Option(
        ...,
        "--component",
        help="e.g. mlp.down_proj (or another family's name of that role, e.g. output.dense), self_attn.q_proj.",
    ),
    layer: int = typer.Option(1, "--layer", help="Layer number."),
    matrix_dir: Path = typer.Option(
        Path("clustering_characterization"), "--matrix-dir", help="Holds <method>/layer<L>-<component>.pt."
    ),
    seeds: int = typer.Option(10, "--seeds", help="Random seeds (0 … seeds-1)."),
    n_similar: int = typer.Option(128, "--n-similar", help="Top-N similar features per seed."),
    k_values: list[str] = typer.Option(
        ["4", "8", "16"], "--k-values", help="k values, e.g. --k-values 4 8 16."
    ),
    output_dir: Path | None = typer.Option(
        None, "--output-dir", help="Default results/metrics/multi_seed_clustering/<method>/<component>/."
    ),
    axis: str = typer.Option("columns", "--axis", help=AXIS_HELP),
    null_samples: int = typer.Option(20, "--null-samples", help=NULL_HELP),
    hist_max_features: int = typer.Option(2048, "--hist-max-features", help=HIST_HELP),
) -> None:
    """Clustering of one matrix over several seeds and k values, with per-run and summary figures."""
    from interplab.masks.multi_seed import multi_seed_analysis
    from interplab.masks.report import fmt

    summary = multi_seed_analysis(
        method,
        layer,
        component,
        matrix_dir,
        seeds,
        n_similar,
        parse_k_values(k_values, ctx.args),
        output_dir,
        axis,
        null_samples,
        hist_max_features,
    )
    for k, agg in summary["summary"].items():
        sep = agg.get("separation_ratio", {})
        typer.echo(f"k={k}: separation {fmt(sep.get('mean'))} ± {fmt(sep.get('std'))}")


@app.command("report")
def report_command(
    results_dir: Path = typer.Option(Path("analysis_results"), "--results-dir", help="Searched recursively."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for the report files (default: results dir)."
    ),
) -> None:
    """Comparative table over all hamming / multi-exec / multi-seed results (rich, Markdown, CSV)."""
    from interplab.common.console import no_truncation, output_console
    from interplab.masks.report import comparative_report, report_table

    report = comparative_report(results_dir, out)
    console = output_console()
    console.print(no_truncation(report_table(report)))
    for note in report.notes:
        console.print(f"note: {note}")
    for path in report.files:
        console.print(f"wrote {path}")


# --- masks prune ----------------------------------------------------------------------------------


@app.command("prune")
def prune_command(
    out: str = typer.Option(..., "--out", help="Output folder; results go to OUT/<method>/."),
    model: str = typer.Option("minilm", "--model", help="'minilm', a model folder or a Hugging Face hub id."),
    method: str = typer.Option("wanda", "--method", help="magnitude, wanda or sparsegpt."),
    sparsity: float = typer.Option(0.5, "--sparsity", help="Fraction pruned per row, in (0, 1)."),
    structure: str = typer.Option(
        "unstructured", "--structure", help="'unstructured' or N:M such as 2:4 (sparsity then n/m)."
    ),
    data: str = typer.Option(
        "docs", "--data", help="Calibration text: 'docs' or a .json/.txt/.jsonl/.parquet file."
    ),
    nsamples: int = typer.Option(128, "--nsamples", help="Calibration windows."),
    seqlen: int = typer.Option(128, "--seqlen", help="Tokens per calibration window."),
    seed: int = typer.Option(0, "--seed", help="Seed for drawing the calibration windows."),
    save_model: bool = typer.Option(
        False, "--save-model", help="Also save the pruned model to OUT/<method>/model/."
    ),
    eval_samples: int = typer.Option(16, "--eval-samples", help="Held-out windows for the quality check."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass."),
    sparsity_profile: str = typer.Option(
        "uniform", "--sparsity-profile", help="'uniform' or 'owl' (per-layer sparsity from outlier ratios)."
    ),
    owl_lambda: float = typer.Option(0.08, "--owl-lambda", help="OWL: spread of the layer sparsities."),
    owl_m: float = typer.Option(5.0, "--owl-m", help="OWL: outlier = Wanda score above M x the layer mean."),
    magnitude_scope: str = typer.Option(
        "row", "--magnitude-scope", help="Magnitude: 'row' (per output row) or 'matrix' (published baseline)."
    ),
    sparsegpt_reference_count: bool = typer.Option(
        False, "--sparsegpt-reference-count", help="SparseGPT: prune as the reference (<= k-th saliency)."
    ),
) -> None:
    """Prune a model layer by layer (magnitude, Wanda or SparseGPT) and write the pruned matrices."""
    from interplab.masks.prune import prune_model

    result = prune_model(
        model,
        out=out,
        method=method,
        sparsity=sparsity,
        structure=structure,
        data=data,
        nsamples=nsamples,
        seqlen=seqlen,
        seed=seed,
        save_model=save_model,
        eval_samples=eval_samples,
        batch_size=batch_size,
        sparsity_profile=sparsity_profile,
        owl_lambda=owl_lambda,
        owl_m=owl_m,
        magnitude_scope=magnitude_scope,
        sparsegpt_reference_count=sparsegpt_reference_count,
    )
    typer.echo(
        f"{result.method}: {len(result.matrices)} matrices, sparsity {result.sparsity:.3f}, "
        f"mean relative output error {result.mean_relative_output_error:.4f} -> {result.out_dir}"
    )


# --- masks extract / diff / speedup -----------------------------------------------------------------

from interplab.masks.mask_configs import DiffConfig, ExtractConfig, SpeedupConfig  # noqa: E402
from interplab.masks.options import field_help, option  # noqa: E402


@app.command("extract")
def extract_command(
    model_dir: Path = typer.Argument(..., help=field_help(ExtractConfig, "model_dir")),
    out: Path = option(ExtractConfig, "out"),
    label: str | None = option(ExtractConfig, "label"),
) -> None:
    """Masks of a sparse checkpoint (dense zeros or compressed-tensors bitmask formats), in the
    folder layout of ``masks prune``."""
    from interplab.masks.extract import extract_masks

    result = extract_masks(ExtractConfig(model_dir=model_dir, out=out, label=label))
    typer.echo(
        f"{result.label}: {len(result.matrices)} matrices ({result.format}, {result.structure}), "
        f"overall sparsity {result.overall_sparsity:.4f} -> {result.out_dir}"
    )


@app.command("diff")
def diff_command(
    a: Path = typer.Argument(..., help=field_help(DiffConfig, "a")),
    b: Path = typer.Argument(..., help=field_help(DiffConfig, "b")),
    out: Path | None = option(DiffConfig, "out"),
    top: int = option(DiffConfig, "top"),
) -> None:
    """Compare two mask sets of one model: Jaccard, row Hamming, N:M compliance; most different first."""
    from interplab.masks.diff import diff_command as run_diff

    result = run_diff(DiffConfig(a=a, b=b, out=out, top=top))
    worst = result.ranked[0]
    typer.echo(
        f"{len(result.matrices)} matrices, Jaccard {result.overall_jaccard:.4f}; most different: "
        f"layer{worst.layer}-{worst.component} ({worst.jaccard:.4f}) -> {result.out_dir}"
    )


@app.command("speedup")
def speedup_command(
    masks_dir: Path = typer.Argument(..., help=field_help(SpeedupConfig, "masks_dir")),
    out: Path | None = option(SpeedupConfig, "out"),
    machines: str = option(SpeedupConfig, "machines"),
    batch_sizes: str = option(SpeedupConfig, "batch_sizes"),
    permute: bool = option(SpeedupConfig, "permute", "--permute/--no-permute"),
    rounds: int = option(SpeedupConfig, "rounds"),
    seed: int = option(SpeedupConfig, "seed"),
) -> None:
    """N:M compliance, tile occupancy, permutation search and roofline speedup of every mask."""
    from interplab.masks.speedup import speedup_command as run_speedup

    config = SpeedupConfig(
        masks_dir=masks_dir, out=out, machines=machines, batch_sizes=batch_sizes, permute=permute,
        rounds=rounds, seed=seed,
    )  # fmt: skip
    result = run_speedup(config)
    typer.echo(f"{len(result.matrices)} matrices -> {result.out_dir}")
