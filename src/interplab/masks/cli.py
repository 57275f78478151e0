"""``interplab masks …`` — parse arguments and call the masks functions."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Prune models (Wanda, SparseGPT) and analyse the structure of sparsity masks.", no_args_is_help=True
)


# --- masks prune (owner: masks-prune) ---------------------------------------------------------------


@app.command("prune")
def prune_command(
    out: str = typer.Option(..., "--out", help="Output folder; results go to OUT/<method>/."),
    model: str = typer.Option("minilm", "--model", help="'minilm', a model folder or a Hugging Face hub id."),
    method: str = typer.Option("wanda", "--method", help="magnitude, wanda or sparsegpt."),
    sparsity: float = typer.Option(0.5, "--sparsity", help="Fraction pruned per row, in (0, 1)."),
    structure: str = typer.Option(
        "unstructured", "--structure", help="'unstructured' or N:M such as 2:4 (sparsity then n/m)."
    ),
    data: str = typer.Option("docs", "--data", help="Calibration text: 'docs' or a .json/.txt/.jsonl/.parquet file."),
    nsamples: int = typer.Option(128, "--nsamples", help="Calibration windows."),
    seqlen: int = typer.Option(128, "--seqlen", help="Tokens per calibration window."),
    seed: int = typer.Option(0, "--seed", help="Seed for drawing the calibration windows."),
    save_model: bool = typer.Option(False, "--save-model", help="Also save the pruned model to OUT/<method>/model/."),
    eval_samples: int = typer.Option(16, "--eval-samples", help="Held-out windows for the quality check."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass."),
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
    )
    typer.echo(
        f"{result.method}: {len(result.matrices)} matrices, sparsity {result.sparsity:.3f}, "
        f"mean relative output error {result.mean_relative_output_error:.4f} -> {result.out_dir}"
    )
