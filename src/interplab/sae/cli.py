"""``interplab sae …`` — parse arguments and call the sae functions."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Sparse autoencoders: quick checks, full corpus analysis, training, browsing.", no_args_is_help=True
)


# ---- sae quick / sae train (owner: sae-core) ------------------------------------------------------
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


@app.command("train")
def train_command(
    out: str = typer.Option(..., "--out", help="Output folder (SAELens format + history.json)."),
    model: str = typer.Option("minilm", "--model", help="'minilm', a model folder or a hub id."),
    layer: int | None = typer.Option(3, "--layer", help="Block index."),
    hook: str = typer.Option("hook_resid_post", "--hook", help="Hook kind or full name blocks.L.<hook>."),
    data: str = typer.Option("docs", "--data", help="'docs' or a .json/.txt/.jsonl/.parquet file."),
    d_sae: int = typer.Option(512, "--d-sae", help="Number of SAE latents."),
    k: int = typer.Option(32, "--k", help="Active latents per token (TopK)."),
    steps: int = typer.Option(800, "--steps", help="Optimiser steps."),
    batch_size: int = typer.Option(512, "--batch-size", help="Tokens per optimiser step."),
    lr: float | None = typer.Option(
        None, "--lr", help="Adam learning rate (default 2e-4/sqrt(d_sae/16384))."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="Activations collected (default 32768 tokens)."
    ),
    context_size: int = typer.Option(128, "--context-size", help="Tokens per window."),
    model_batch_size: int = typer.Option(16, "--model-batch-size", help="Windows per forward pass."),
    wandb: str = typer.Option("off", "--wandb", help="off | offline | online: log metrics with W&B."),
) -> None:
    """Train a small TopK SAE and write it as a SAELens folder with history.json."""
    from interplab.sae.train import train_sae

    result = train_sae(
        model=model,
        layer=layer,
        hook=hook,
        data=data,
        d_sae=d_sae,
        k=k,
        steps=steps,
        out=out,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        wandb_mode=wandb,
        max_tokens=max_tokens,
        context_size=context_size,
        model_batch_size=model_batch_size,
    )
    f = result.final
    typer.echo(
        f"{result.folder}: explained variance {f['explained_variance']:.4f}, L0 {f['l0']:.1f}, "
        f"dead {100 * f['dead_fraction']:.1f}% ({result.seconds:.1f}s)"
    )


# ---- sae browse (feature browser; owner: sae-browser) -------------------------------------------
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


# ---- sae analyze / sae demo (owner: sae-analyze) ---------------------------------------------------
@app.command("analyze")
def analyze_command(
    sae: str = typer.Option(..., "--sae", help="SAE folder (SAELens, sparsify or weights.pt + config.json)."),
    out: str = typer.Option(..., "--out", help="Analysis folder to write (resumes an interrupted run)."),
    model: str = typer.Option("minilm", "--model", help="'minilm', a model folder or a hub id."),
    layer: int | None = typer.Option(None, "--layer", help="Block index (default: from the SAE config)."),
    hook: str | None = typer.Option(
        None, "--hook", help="hook_resid_pre|hook_resid_post|hook_mlp_out|hook_attn_out or blocks.L.<hook>."
    ),
    data: str = typer.Option("docs", "--data", help="'docs' or a .json/.txt/.jsonl/.parquet file."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass."),
    context_size: int = typer.Option(128, "--context-size", help="Tokens per window."),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", help="Stop after this many tokens (docs: 32768)."
    ),
    top_k: int = typer.Option(20, "--top-k", help="Top activating examples kept per feature."),
    similarity: str = typer.Option("cosine", "--similarity", help="cosine | dot | euclidean (decoder rows)."),
    cooccurrence: str = typer.Option("phi", "--cooccurrence", help="Comma list of phi, jaccard, pmi."),
    n_neighbours: int = typer.Option(10, "--n-neighbours", help="Similar / co-active features per feature."),
    ablation_tokens: int = typer.Option(4096, "--ablation-tokens", help="Tokens given full forward passes."),
    ablation_features: int = typer.Option(8, "--ablation-features", help="Most frequent features ablated."),
    context_radius: int = typer.Option(
        10, "--context-radius", help="Context tokens each side of an example."
    ),
    shard_tokens: int = typer.Option(32768, "--shard-tokens", help="Tokens per database shard."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a database built with other settings."
    ),
    dtype: str = typer.Option("float32", "--dtype", help="SAE dtype (float32, bfloat16, float16)."),
    examples_per_quantile: int = typer.Option(
        5, "--examples-per-quantile", help="Examples sampled uniformly per activation quantile."
    ),
) -> None:
    """Full SAE analysis: Parquet activation database, matrices, summaries, plots and a report."""
    from interplab.sae.analyzer import run_comprehensive_analysis

    result = run_comprehensive_analysis(
        model_name=model,
        sae_path=sae,
        layer=layer,
        hook_name=hook,
        data_path=data,
        batch_size=batch_size,
        analysis_dir=out,
        context_size=context_size,
        max_tokens=max_tokens,
        top_k=top_k,
        similarity=similarity,
        cooccurrence=tuple(m.strip() for m in cooccurrence.split(",") if m.strip()),
        n_neighbours=n_neighbours,
        ablation_tokens=ablation_tokens,
        ablation_features=ablation_features,
        context_radius=context_radius,
        shard_tokens=shard_tokens,
        overwrite=overwrite,
        dtype=dtype,
        examples_per_quantile=examples_per_quantile,
    )
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


# ---- sae collect / sae merge (sharded collection) -------------------------------------------------
def _collect_default(name: str) -> object:
    import dataclasses

    from interplab.sae.launch import CollectConfig

    return {f.name: f for f in dataclasses.fields(CollectConfig)}[name]


def _co(name: str, *flags: str) -> object:
    """A typer option whose default and help come from :class:`CollectConfig`."""
    f = _collect_default(name)
    return typer.Option(f.default, *(flags or ("--" + name.replace("_", "-"),)), help=f.metadata["help"])


@app.command("collect")
def collect_command(
    sae: str = _co("sae"),
    out: str = _co("out"),
    model: str = _co("model"),
    layer: int | None = _co("layer"),
    hook: str | None = _co("hook"),
    data: str = _co("data"),
    batch_size: int = _co("batch_size"),
    context_size: int = _co("context_size"),
    max_tokens: int | None = _co("max_tokens"),
    top_k: int = _co("top_k"),
    shard_tokens: int = _co("shard_tokens"),
    examples_per_quantile: int = _co("examples_per_quantile"),
    cooccurrence_dense_limit: int = _co("cooccurrence_dense_limit"),
    device: str = _co("device"),
    model_dtype: str = _co("model_dtype"),
    sae_dtype: str = _co("sae_dtype"),
    shard: str | None = _co("shard"),
    backend: str = _co("backend"),
    ray_address: str | None = _co("ray_address"),
    num_gpus_per_worker: float = _co("num_gpus_per_worker"),
    workers: int = _co("workers"),
    merge: bool = _co("merge", "--merge/--no-merge"),
    overwrite: bool = _co("overwrite"),
) -> None:
    """Collection pass only, shard by shard: one process, `--shard i/N`, torchrun or Ray."""
    options = dict(locals())
    from interplab.sae.launch import CollectConfig, run_collect

    r = run_collect(CollectConfig(**options))
    if r.rank == 0 or r.world_size == 1:
        typer.echo(
            f"{r.out}: collected {len(r.collected)} shards, {len(r.skipped)} already complete, "
            f"{len(r.missing)} of {r.n_shards} missing ({r.seconds:.1f}s)"
            + (f" — merged, see {r.analysis.files['readme']}" if r.analysis is not None else "")
        )


def _merge_help(name: str) -> str:
    import dataclasses

    from interplab.sae.merge import MergeConfig

    return {f.name: f for f in dataclasses.fields(MergeConfig)}[name].metadata["help"]


@app.command("merge")
def merge_command(
    analysis_dir: str = typer.Argument(..., help=_merge_help("analysis_dir")),
    allow_partial: bool = typer.Option(False, "--allow-partial", help=_merge_help("allow_partial")),
) -> None:
    """Reduce the shards' partial statistics and write the analysis folder as `sae analyze` does."""
    from interplab.sae.merge import run_merge

    result = run_merge(analysis_dir, allow_partial=allow_partial)
    s = result.summary
    typer.echo(
        f"{result.out}: {s['n_tokens']} tokens, L0 {s['l0_mean']:.1f}, dead {s['n_dead']}/{s['d_sae']} — "
        f"see {result.files['readme']}"
    )
