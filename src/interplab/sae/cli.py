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
    eval_convention: str = typer.Option(
        "saelens", "--eval-convention", help="CE/KL positions: saelens (as SAELens evals) or interplab."
    ),
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
        eval_convention=eval_convention,
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


# ---- sae compare / sae explain --------------------------------------------------------------------
def _compare_defaults():
    from interplab.sae.compare import CompareConfig

    return CompareConfig()


def _explain_defaults():
    from interplab.sae.explain.run import ExplainConfig

    return ExplainConfig()


@app.command("compare")
def compare_command(
    a: str = typer.Argument(..., help="Analysis folder A (or an SAE folder, analysed first)."),
    b: str | None = typer.Argument(None, help="Analysis folder B (or an SAE folder); omit with --model-b."),
    out: str = typer.Option(..., "--out", help="Output folder."),
    model_b: str | None = typer.Option(
        None, "--model-b", help="Pruning bridge: run A's SAE through this model on A's corpus."
    ),
    model: str = typer.Option(
        _compare_defaults().model, "--model", help="Model for SAE folders given as A/B."
    ),
    data: str = typer.Option(_compare_defaults().data, "--data", help="Corpus for SAE folders given as A/B."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Token budget (default: A's)."),
    match_on: str = typer.Option(
        _compare_defaults().match_on, "--match-on", help="auto | decoder | activation | both."
    ),
    assignment_limit: int = typer.Option(
        _compare_defaults().assignment_limit, "--assignment-limit", help="Widest SAE matched one-to-one."
    ),
    block_rows: int = typer.Option(
        _compare_defaults().block_rows, "--block-rows", help="Rows per block of the blocked search."
    ),
    split_threshold: float = typer.Option(
        _compare_defaults().split_threshold, "--split-threshold", help="Containment for a split child."
    ),
    stable_threshold: float = typer.Option(
        _compare_defaults().stable_threshold, "--stable-threshold", help="Stability shown as 'stable'."
    ),
    allow_mismatch: bool = typer.Option(False, "--allow-mismatch", help="Compare other models/hooks anyway."),
    no_write_back: bool = typer.Option(
        False, "--no-write-back", help="Do not write feature_stability_<ts>.parquet into A and B."
    ),
    label_a: str | None = typer.Option(None, "--label-a", help="Name of A in reports and badges."),
    label_b: str | None = typer.Option(None, "--label-b", help="Name of B in reports and badges."),
    batch_size: int = typer.Option(
        _compare_defaults().batch_size, "--batch-size", help="Windows per forward."
    ),
) -> None:
    """Match the features of two SAE analyses, or run one SAE through a pruned model (--model-b)."""
    from interplab.sae.compare import CompareConfig, compare

    result = compare(
        CompareConfig(
            a=a,
            b=b,
            out=out,
            model_b=model_b,
            model=model,
            data=data,
            max_tokens=max_tokens,
            match_on=match_on,
            assignment_limit=assignment_limit,
            block_rows=block_rows,
            split_threshold=split_threshold,
            stable_threshold=stable_threshold,
            allow_mismatch=allow_mismatch,
            write_back=not no_write_back,
            label_a=label_a,
            label_b=label_b,
            batch_size=batch_size,
        )
    )
    s = result.summary
    if model_b is not None:
        typer.echo(
            f"{result.out}: {s['n_died']} features die, {s['n_appeared']} appear; explained variance "
            f"{s['explained_variance_a']:.4f} → {s['explained_variance_b']:.4f} — see README.md"
        )
    else:
        typer.echo(
            f"{result.out}: {s['n_matched']} pairs ({s['method']}, {s['match_on']}), "
            f"{100 * s['fraction_of_a_matched_decoder_cos']['> 0.7']:.1f}% of A with decoder cos > 0.7 — see README.md"
        )
    for note in s.get("notes", []):
        typer.echo(f"note: {note}", err=True)


@app.command("explain")
def explain_command(
    analysis_dir: str = typer.Argument(..., help="Output folder of `interplab sae analyze`."),
    explainer: str = typer.Option(_explain_defaults().explainer, "--explainer", help="rules | llm | both."),
    explainer_url: str | None = typer.Option(
        None, "--explainer-url", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1."
    ),
    model_name: str | None = typer.Option(None, "--model-name", help="Model name sent to the endpoint."),
    api_key_env: str | None = typer.Option(
        None, "--api-key-env", help="Environment variable holding the API key (none: no key sent)."
    ),
    concurrency: int = typer.Option(
        _explain_defaults().concurrency, "--concurrency", help="Requests in flight."
    ),
    max_retries: int = typer.Option(
        _explain_defaults().max_retries, "--max-retries", help="Retries per request."
    ),
    timeout: float = typer.Option(_explain_defaults().timeout, "--timeout", help="Seconds per request."),
    cache_dir: str | None = typer.Option(
        None, "--cache-dir", help="Response cache (default DIR/explain_cache)."
    ),
    features: str | None = typer.Option(None, "--features", help="Features, e.g. 0-99,512 (default: all)."),
    top_k: int = typer.Option(
        _explain_defaults().top_k, "--top-k", help="Strongest activations for training."
    ),
    n_train: int = typer.Option(_explain_defaults().n_train, "--n-train", help="Random training positives."),
    n_heldout: int = typer.Option(_explain_defaults().n_heldout, "--n-heldout", help="Held-out positives."),
    n_negatives: int = typer.Option(
        _explain_defaults().n_negatives, "--n-negatives", help="Negative pool size."
    ),
    window_radius: int = typer.Option(
        _explain_defaults().window_radius, "--window-radius", help="Context tokens each side."
    ),
    no_embedding: bool = typer.Option(False, "--no-embedding", help="Skip the MiniLM embedding score."),
    seed: int = typer.Option(_explain_defaults().seed, "--seed", help="Seed of every sample."),
) -> None:
    """Explain every feature (built-in rules, or an OpenAI-compatible model) and score the explanations."""
    from interplab.sae.explain.run import ExplainConfig, explain

    result = explain(
        ExplainConfig(
            analysis_dir=analysis_dir,
            explainer=explainer,
            explainer_url=explainer_url,
            model_name=model_name,
            api_key_env=api_key_env,
            concurrency=concurrency,
            max_retries=max_retries,
            timeout=timeout,
            cache_dir=cache_dir,
            features=features,
            top_k=top_k,
            n_train=n_train,
            n_heldout=n_heldout,
            n_negatives=n_negatives,
            window_radius=window_radius,
            embedding=not no_embedding,
            seed=seed,
        )
    )
    s = result.summary
    typer.echo(
        f"{result.out / result.files['explanations']}: {s['n_explanations']} explanations "
        f"({s['features_per_second']} features/s)"
    )
    for kind, n in s["failures_by_kind"].items():
        first = next(f for f in result.failures if f["kind"] == kind)
        typer.echo(f"failed: {kind} ×{n} (first: feature {first['feature']}, {first['message']})", err=True)


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
    ablation_tokens: int = _co("ablation_tokens"),
    ablation_features: int = _co("ablation_features"),
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
