"""The options of the ``sae`` commands, each declared once as a dataclass (flag, help, default):
the typer command, the Python function and the ``--config`` file read the same declaration.

Free of torch imports so the CLI stays fast (run-argument validation imports the corpus module
when it runs)."""

from __future__ import annotations

import dataclasses

from interplab.common.errors import one_of, require
from interplab.common.options import comma_list, option
from interplab.sae.cooccurrence import COOCCURRENCE_METRICS
from interplab.sae.cooccurrence import DENSE_LIMIT as COOCCURRENCE_DENSE_LIMIT
from interplab.sae.metric import SIMILARITY, SIMILARITY_DENSE_LIMIT, metric_names
from interplab.sae.stats import EXAMPLES_PER_QUANTILE

HOOK_HELP = "hook_resid_pre|hook_resid_post|hook_mlp_out|hook_attn_out or blocks.L.<hook>."
DATA_HELP = "'docs' or a .json/.txt/.jsonl/.parquet file."
MODEL_HELP = "'minilm', a model folder or a hub id."
SAE_HELP = "SAE folder (SAELens, sparsify or weights.pt + config.json)."
ABLATION_TOKENS = 4096
ABLATION_FEATURES = 8
EVAL_CONVENTIONS = ("saelens", "interplab")  # CE / KL positions, see interplab.sae.metrics.loss_positions
DEFAULT_EVAL_CONVENTION = "saelens"


@dataclasses.dataclass
class AnalysisConfig:
    """Every knob of the analysis (flags of ``interplab sae analyze``)."""

    model_name: str = option("minilm", "--model", MODEL_HELP)
    sae_path: str = option("", "--sae", SAE_HELP, cli_default=...)
    layer: int | None = option(None, "--layer", "Block index (default: from the SAE config).")
    hook_name: str | None = option("hook_resid_post", "--hook", HOOK_HELP, cli_default=None)
    data_path: str = option("docs", "--data", DATA_HELP)
    batch_size: int = option(8, help="Windows per forward pass.")
    analysis_dir: str = option(
        "sae-analysis", "--out", "Analysis folder to write (resumes an interrupted run).", cli_default=...
    )
    context_size: int = option(128, help="Tokens per window.")
    max_tokens: int | None = option(None, help="Stop after this many tokens (docs: 32768).")
    top_k: int = option(20, help="Top activating examples kept per feature.")
    similarity: str = option(
        "cosine", help=f"{metric_names(SIMILARITY)} (decoder rows; euclidean is a distance)."
    )
    cooccurrence: tuple[str, ...] = option(
        ("phi",),
        help=f"Comma list of {', '.join(COOCCURRENCE_METRICS)} (phi is always added).",
        parse=comma_list,
        cli_type=str,
        cli_default="phi",
    )
    n_neighbours: int = option(10, help="Similar / co-active features per feature.")
    similarity_dense_limit: int = SIMILARITY_DENSE_LIMIT
    cooccurrence_dense_limit: int = COOCCURRENCE_DENSE_LIMIT
    ablation_tokens: int = option(ABLATION_TOKENS, help="Tokens given full forward passes.")
    no_ablation: bool = option(False, help="Skip the ablation passes (same as --ablation-tokens 0).")
    ablation_features: int = option(ABLATION_FEATURES, help="Most frequent features ablated.")
    context_radius: int = option(10, help="Context tokens each side of an example.")
    shard_tokens: int = option(32_768, help="Tokens per database shard.")
    overwrite: bool = option(
        False, help="Replace what an earlier run wrote in --out (files its manifest lists; others stay)."
    )
    dtype: str = option("float32", help="SAE dtype (float32, bfloat16, float16).")
    eval_convention: str = option(
        DEFAULT_EVAL_CONVENTION, help="CE/KL positions: saelens (as SAELens evals) or interplab."
    )
    examples_per_quantile: int = option(
        EXAMPLES_PER_QUANTILE, help="Examples sampled uniformly per activation quantile."
    )

    def __post_init__(self) -> None:
        if self.no_ablation:
            self.ablation_tokens = 0

    def validate(self) -> None:
        from interplab.sae.corpus import validate_run_args

        validate_run_args(self.batch_size, self.context_size, self.max_tokens)
        one_of(self.eval_convention, EVAL_CONVENTIONS, "--eval-convention")
        require(bool(str(self.sae_path)), "--sae is required: a folder holding an SAE")
        one_of(self.similarity, tuple(SIMILARITY), "similarity metric")
        require(
            len(self.cooccurrence) > 0,
            f"--cooccurrence needs at least one of: {', '.join(COOCCURRENCE_METRICS)}",
        )
        for m in self.cooccurrence:
            one_of(m, COOCCURRENCE_METRICS, "co-occurrence metric")
        for name in ("top_k", "n_neighbours", "shard_tokens", "examples_per_quantile"):
            require(
                int(getattr(self, name)) >= 1,
                f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}",
            )
        for name in ("ablation_tokens", "ablation_features", "context_radius"):
            require(
                int(getattr(self, name)) >= 0,
                f"--{name.replace('_', '-')} must be ≥ 0, got {getattr(self, name)}",
            )


@dataclasses.dataclass
class TrainConfig:
    """Every knob of ``interplab sae train`` / :func:`interplab.sae.train.train_sae`."""

    model: str = option("minilm", help=MODEL_HELP)
    layer: int | None = option(3, help="Block index.")
    hook: str = option("hook_resid_post", help="Hook kind or full name blocks.L.<hook>.")
    data: str = option("docs", help=DATA_HELP)
    d_sae: int = option(512, help="Number of SAE latents.")
    k: int = option(32, help="Active latents per token (TopK).")
    steps: int = option(800, help="Optimiser steps.")
    out: str = option("sae-out", help="Output folder (SAELens format + history.json).", cli_default=...)
    batch_size: int = option(512, help="Tokens per optimiser step.")
    lr: float | None = option(None, help="Adam learning rate (default 2e-4/sqrt(d_sae/16384)).")
    seed: int = option(0, help="Random seed.")
    wandb_mode: str = option("off", "--wandb", "off | offline | online: log metrics with W&B.")
    max_tokens: int | None = option(None, help="Activations collected (default 32768 tokens).")
    context_size: int = option(128, help="Tokens per window.")
    model_batch_size: int = option(16, help="Windows per forward pass.")
    aux_k_coef: float = 1 / 32  # weight of the AuxK loss on dead latents
    dead_after_steps: int = 100  # a latent not firing for this many steps counts as dead (AuxK)
    log_every: int | None = None  # history / W&B interval (default: steps // 100)


@dataclasses.dataclass
class QuickConfig:
    """Every knob of ``interplab sae quick`` (the keyword arguments of
    :func:`interplab.sae.quick.quick_check`)."""

    sae_path: str = option("", "--sae", SAE_HELP, cli_default=...)
    model: str = option("minilm", help=MODEL_HELP)
    layer: int | None = option(None, help="Block index (default: from the SAE config).")
    hook: str | None = option(None, help=HOOK_HELP)
    data: str = option("docs", help=DATA_HELP)
    batch_size: int = option(8, help="Windows per forward pass.")
    max_tokens: int | None = option(None, help="Stop after this many tokens (docs default: 32768).")
    context_size: int = option(128, help="Tokens per window.")
    output_json: str | None = option(None, help="Also write the sections as JSON.")
    ablation: bool = option(
        True,
        "--no-ablation",
        "Skip the three-pass ablation section.",
        parse=lambda v: not v,
        cli_type=bool,
        cli_default=False,
    )
    dtype: str = option("float32", help="SAE weights dtype: float32, bfloat16, float16.")
    eval_convention: str = option(
        DEFAULT_EVAL_CONVENTION, help="CE/KL positions: saelens (as SAELens evals) or interplab."
    )


@dataclasses.dataclass
class SaeDemoConfig:
    """Every knob of ``interplab sae demo`` (:func:`interplab.sae.analyzer.run_sae_demo`)."""

    out: str = option("sae-demo", help="Folder for the trained SAE (sae/) and its analysis.")
    max_tokens: int = option(32_768, help="Tokens of the built-in corpus used.")
    d_sae: int = option(1024, help="SAE latents.")
    k: int = option(32, help="Active latents per token.")
    steps: int = option(400, help="Training steps.")


def feature_ids(text: str) -> list[int]:
    """``"1, 2,3"`` → ``[1, 2, 3]`` (the ``--features`` list of ``sae browse --export``)."""
    from interplab.common.errors import InterplabError

    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise InterplabError(f"--features: expected comma-separated integers, got {text!r}") from None


@dataclasses.dataclass
class BrowseConfig:
    """Every knob of ``interplab sae browse``."""

    analysis_dir: str = option(argument=True, help="Output folder of `interplab sae analyze`.")
    host: str = option("127.0.0.1", help="Address to bind (loopback by default).")
    port: int = option(8765, help="Port to listen on (0 = any free port).")
    export: str | None = option(None, help="Write a static HTML copy here; no server.")
    features: list[int] | None = option(
        None, help="With --export: feature ids, e.g. 1,2,3.", parse=feature_ids, cli_type=str | None
    )
    n_random: int = option(50, help="With --export: random extra features.")
    seed: int = option(0, help="With --export: seed of the random sample.")
