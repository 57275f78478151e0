"""``interplab sae …`` — parse arguments and call the sae functions. Each command's flags, defaults
and help come from its config dataclass (:func:`interplab.common.options.command`)."""

from __future__ import annotations

import dataclasses

import typer

from interplab.common.options import command
from interplab.sae.configs import (
    AnalysisConfig,
    BrowseConfig,
    CompareConfig,
    ExplainConfig,
    MergeConfig,
    QuickConfig,
    SaeDemoConfig,
    TrainConfig,
)
from interplab.sae.launch import CollectConfig

app = typer.Typer(
    help="Sparse autoencoders: quick checks, full corpus analysis, training, browsing.", no_args_is_help=True
)


# ---- sae quick / sae train ------------------------------------------------------------------
@command(app, "quick", QuickConfig)
def quick_command(cfg: QuickConfig) -> None:
    """Quick check of an SAE: sparsity, dead features, reconstruction and ablation in one pass."""
    from interplab.sae.quick import quick_check, render_tables

    result = quick_check(**dataclasses.asdict(cfg))
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
@command(app, "browse", BrowseConfig)
def browse_command(cfg: BrowseConfig) -> None:
    """Browse an analysis folder's features in a local web app, or export a static copy."""
    from interplab.common.errors import InterplabError
    from interplab.sae.browser import export_browser, serve_browser

    if cfg.export is not None:
        result = export_browser(
            cfg.analysis_dir, cfg.export, features=cfg.features, n_random=cfg.n_random, seed=cfg.seed
        )
        typer.echo(f"{result.path / 'index.html'} ({len(result.features)} features)")
        return
    if cfg.features is not None:
        raise InterplabError("--features: only used with --export")
    serve_browser(cfg.analysis_dir, host=cfg.host, port=cfg.port)


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


@command(app, "demo", SaeDemoConfig)
def demo_command(cfg: SaeDemoConfig) -> None:
    """Train a small TopK SAE on minilm (layer 3, hook_resid_post, built-in corpus) and analyse it."""
    from interplab.sae.analyzer import run_sae_demo

    result = run_sae_demo(**dataclasses.asdict(cfg))
    typer.echo(f"SAE: {result.sae_folder}\nanalysis: {result.analysis.out / result.analysis.files['readme']}")


# ---- sae compare / sae explain --------------------------------------------------------------------
@command(app, "compare", CompareConfig)
def compare_command(cfg: CompareConfig) -> None:
    """Match the features of two SAE analyses, or run one SAE through a pruned model (--model-b)."""
    from interplab.sae.compare import compare

    result = compare(cfg)
    s = result.summary
    if cfg.model_b is not None:
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


@command(app, "explain", ExplainConfig)
def explain_command(cfg: ExplainConfig) -> None:
    """Explain every feature (built-in rules, or an OpenAI-compatible model) and score the explanations."""
    from interplab.sae.explain.run import explain

    result = explain(cfg)
    s = result.summary
    typer.echo(
        f"{result.out / result.files['explanations']}: {s['n_explanations']} explanations "
        f"({s['features_per_second']} features/s)"
    )
    for kind, n in s["failures_by_kind"].items():
        first = next(f for f in result.failures if f["kind"] == kind)
        typer.echo(f"failed: {kind} ×{n} (first: feature {first['feature']}, {first['message']})", err=True)


# ---- sae collect / sae merge (sharded collection) -------------------------------------------------
# CollectConfig carries its help in metadata["help"]: every field is a flag.
COLLECT_CLI = {f.name: {} for f in dataclasses.fields(CollectConfig)} | {
    "merge": {"flag": "--merge/--no-merge"}
}


@command(app, "collect", CollectConfig, cli=COLLECT_CLI)
def collect_command(cfg: CollectConfig) -> None:
    """Collection pass only, shard by shard: one process, `--shard i/N`, torchrun or Ray."""
    from interplab.sae.launch import run_collect

    r = run_collect(cfg)
    if r.rank == 0 or r.world_size == 1:
        typer.echo(
            f"{r.out}: collected {len(r.collected)} shards, {len(r.skipped)} already complete, "
            f"{len(r.missing)} of {r.n_shards} missing ({r.seconds:.1f}s)"
            + (f" — merged, see {r.analysis.files['readme']}" if r.analysis is not None else "")
        )


@command(app, "merge", MergeConfig)
def merge_command(cfg: MergeConfig) -> None:
    """Reduce the shards' partial statistics and write the analysis folder as `sae analyze` does."""
    from interplab.sae.merge import run_merge

    result = run_merge(cfg.analysis_dir, allow_partial=cfg.allow_partial)
    s = result.summary
    typer.echo(
        f"{result.out}: {s['n_tokens']} tokens, L0 {s['l0_mean']:.1f}, dead {s['n_dead']}/{s['d_sae']} — "
        f"see {result.files['readme']}"
    )
