"""``interplab sae …`` — parse arguments and call the sae functions."""

from __future__ import annotations

import typer

from interplab.common.options import command
from interplab.sae.configs import AnalysisConfig, TrainConfig

app = typer.Typer(
    help="Sparse autoencoders: quick checks, full corpus analysis, training, browsing.", no_args_is_help=True
)


# ---- sae quick / sae train ------------------------------------------------------------------
@app.command("quick")
def quick_command(
    sae: str = typer.Option(..., "--sae", help="SAE folder (SAELens, sparsify or weights.pt + config.json)."),
    model: str = typer.Option("minilm", "--model", help="'minilm', a model folder or a hub id."),
    layer: int | None = typer.Option(None, "--layer", help="Block index (default: from the SAE config)."),
    hook: str | None = typer.Option(
        None, "--hook", help="hook_resid_pre|hook_resid_post|hook_mlp_out|hook_attn_out or blocks.L.<hook>."
    ),
    data: str = typer.Option("docs", "--data", help="'docs' or a .json/.txt/.jsonl/.parquet file."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass."),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="Stop after this many tokens (docs default: 32768)."
    ),
    context_size: int = typer.Option(128, "--context-size", help="Tokens per window."),
    output_json: str | None = typer.Option(None, "--output-json", help="Also write the sections as JSON."),
    no_ablation: bool = typer.Option(False, "--no-ablation", help="Skip the three-pass ablation section."),
    dtype: str = typer.Option("float32", "--dtype", help="SAE weights dtype: float32, bfloat16, float16."),
) -> None:
    """Quick check of an SAE: sparsity, dead features, reconstruction and ablation in one pass."""
    from interplab.sae.quick import quick_check, render_tables

    result = quick_check(
        model=model,
        sae_path=sae,
        layer=layer,
        hook=hook,
        data=data,
        batch_size=batch_size,
        max_tokens=max_tokens,
        context_size=context_size,
        output_json=output_json,
        ablation=not no_ablation,
        dtype=dtype,
    )
    render_tables(result)
    if result.output_json is not None:
        typer.echo(f"wrote {result.output_json}")


@command(app, "train", TrainConfig)
def train_command(cfg: TrainConfig) -> None:
    """Train a small TopK SAE and write it as a SAELens folder with history.json."""
    from interplab.sae.train import train_sae

    result = train_sae(cfg)
    f = result.final
    typer.echo(
        f"{result.folder}: explained variance {f['explained_variance']:.4f}, L0 {f['l0']:.1f}, "
        f"dead {100 * f['dead_fraction']:.1f}% ({result.seconds:.1f}s)"
    )


# ---- sae browse (feature browser) -------------------------------------------------------------
@app.command("browse")
def browse_command(
    analysis_dir: str = typer.Argument(..., help="Output folder of `interplab sae analyze`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on (0 = any free port)."),
    export: str | None = typer.Option(None, "--export", help="Write a static HTML copy here; no server."),
    features: str | None = typer.Option(None, "--features", help="With --export: feature ids, e.g. 1,2,3."),
    n_random: int = typer.Option(50, "--n-random", help="With --export: random extra features."),
    seed: int = typer.Option(0, "--seed", help="With --export: seed of the random sample."),
) -> None:
    """Browse an analysis folder's features in a local web app, or export a static copy."""
    from interplab.common.errors import InterplabError
    from interplab.sae.browser import export_browser, serve_browser

    ids = None
    if features is not None:
        try:
            ids = [int(x) for x in features.replace(" ", "").split(",") if x]
        except ValueError:
            raise InterplabError(f"--features: expected comma-separated integers, got {features!r}") from None
    if export is not None:
        result = export_browser(analysis_dir, export, features=ids, n_random=n_random, seed=seed)
        typer.echo(f"{result.path / 'index.html'} ({len(result.features)} features)")
        return
    if ids is not None:
        raise InterplabError("--features: only used with --export")
    serve_browser(analysis_dir, host=host, port=port)


# ---- sae analyze / sae demo ------------------------------------------------------------------
@command(app, "analyze", AnalysisConfig)
def analyze_command(cfg: AnalysisConfig) -> None:
    """Full SAE analysis: Parquet activation database, matrices, summaries, plots and a report."""
    from interplab.sae.analyzer import run_analysis

    result = run_analysis(cfg)
    s = result.summary
    typer.echo(
        f"{result.out}: {s['n_tokens']} tokens, L0 {s['l0_mean']:.1f}, dead {s['n_dead']}/{s['d_sae']}, "
        f"explained variance {s['explained_variance']:.4f} — see {result.files['readme']}"
    )


@app.command("demo")
def demo_command(
    out: str = typer.Option("sae-demo", "--out", help="Folder for the trained SAE (sae/) and its analysis."),
    max_tokens: int = typer.Option(32768, "--max-tokens", help="Tokens of the built-in corpus used."),
    d_sae: int = typer.Option(1024, "--d-sae", help="SAE latents."),
    k: int = typer.Option(32, "--k", help="Active latents per token."),
    steps: int = typer.Option(400, "--steps", help="Training steps."),
) -> None:
    """Train a small TopK SAE on minilm (layer 3, hook_resid_post, built-in corpus) and analyse it."""
    from interplab.sae.analyzer import run_sae_demo

    result = run_sae_demo(out, max_tokens=max_tokens, d_sae=d_sae, k=k, steps=steps)
    typer.echo(f"SAE: {result.sae_folder}\nanalysis: {result.analysis.out / result.analysis.files['readme']}")
