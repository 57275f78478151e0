"""The options of the ``sae`` commands, each declared once as a dataclass (flag, help, default):
the typer command, the Python function and the ``--config`` file read the same declaration.

Free of torch imports so the CLI stays fast (run-argument validation imports the corpus module
when it runs)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from interplab.common.errors import one_of, require
from interplab.common.options import comma_list, negated, option
from interplab.sae.cooccurrence import COOCCURRENCE_METRICS
from interplab.sae.cooccurrence import DENSE_LIMIT as COOCCURRENCE_DENSE_LIMIT
from interplab.sae.metric import SIMILARITY, SIMILARITY_DENSE_LIMIT, metric_names
from interplab.sae.stats import EXAMPLES_PER_QUANTILE

HOOK_HELP = "hook_resid_pre|hook_resid_post|hook_mlp_out|hook_attn_out or blocks.L.<hook>."
DATA_HELP = "'docs' or a .json/.txt/.jsonl/.parquet file."
MODEL_HELP = "'minilm', a model folder or a hub id."
SAE_HELP = "SAE folder (SAELens, sparsify or weights.pt + config.json)."
EVAL_CONVENTION_HELP = "CE/KL positions: saelens (as SAELens evals) or interplab."
ABLATION_TOKENS = 4096
ABLATION_FEATURES = 8
EVAL_CONVENTIONS = ("saelens", "interplab")  # CE / KL positions, see interplab.sae.metrics.loss_positions
DEFAULT_EVAL_CONVENTION = "saelens"


def at_least(cfg: Any, low: int, names: tuple[str, ...]) -> None:
    """Each named field of ``cfg`` is at least ``low`` (the error names its flag)."""
    for name in names:
        value = getattr(cfg, name)
        require(int(value) >= low, f"--{name.replace('_', '-')} must be ≥ {low}, got {value}")


def folder_argument(help: str) -> Any:
    """A positional folder argument, required on the command line (``""`` in Python until set)."""
    return option("", argument=True, help=help, cli_default=...)


def off_switch(flag: str, help: str) -> Any:
    """An on-by-default field offered on the command line as an off switch (``--no-x``)."""
    return dataclasses.field(default=True, metadata=negated(flag, help))


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
    eval_convention: str = option(DEFAULT_EVAL_CONVENTION, help=EVAL_CONVENTION_HELP)
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
        at_least(self, 1, ("top_k", "n_neighbours", "shard_tokens", "examples_per_quantile"))
        at_least(self, 0, ("ablation_tokens", "ablation_features", "context_radius"))


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
    ablation: bool = off_switch("--no-ablation", "Skip the three-pass ablation section.")
    dtype: str = option("float32", help="SAE weights dtype: float32, bfloat16, float16.")
    eval_convention: str = option(DEFAULT_EVAL_CONVENTION, help=EVAL_CONVENTION_HELP)


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


# ---- sae compare / explain / merge -------------------------------------------------------------------
MATCH_ON = ("auto", "decoder", "activation", "both")
ASSIGNMENT_LIMIT = 8192  # widest SAE matched one-to-one (linear_sum_assignment)
BLOCK_ROWS = 1024  # rows of A per block of the blocked best-partner search
EXPLAINERS = ("rules", "llm", "both")


@dataclasses.dataclass
class CompareConfig:
    """Options of ``interplab sae compare``."""

    a: str = folder_argument(
        "Analysis folder A (the output of ``sae analyze``), or an SAE folder analysed first."
    )
    b: str | None = option(
        None, argument=True, help="Analysis folder B, or an SAE folder analysed first; omit with --model-b."
    )
    out: str = option("sae-compare", help="Output folder.", cli_default=...)
    model_b: str | None = option(
        None, help="Pruning bridge: a second model (folder or 'minilm') to run A's SAE through on A's corpus."
    )
    model: str = option(
        "minilm", help="Model for SAE folders given as A or B (analysed before the comparison)."
    )
    data: str = option("docs", help="Corpus for SAE folders given as A or B.")
    max_tokens: int | None = option(
        None, help="Token budget for SAE folders analysed first, and for the pruning bridge (default: A's)."
    )
    match_on: str = option(
        "auto",
        help="decoder | activation | both (mean of the two; the cosine alone for a silent feature) | auto "
        "(both when the tokens are shared, else decoder).",
    )
    assignment_limit: int = option(
        ASSIGNMENT_LIMIT,
        help="Largest width matched one-to-one (linear_sum_assignment); wider SAEs get best partners.",
    )
    block_rows: int = option(
        BLOCK_ROWS, help="Rows of A per block of the blocked search (memory: block_rows · d_B · 8 bytes)."
    )
    split_threshold: float = option(
        0.8, help="Containment needed for a wide feature to count as a split child of a narrow one."
    )
    stable_threshold: float = option(
        0.7, help="Stability at or above which the browser shows the 'stable' badge."
    )
    allow_mismatch: bool = option(
        False, help="Compare analyses of different models or hooks anyway (d_in must still agree)."
    )
    write_back: bool = off_switch(
        "--no-write-back", "Do not write feature_stability_<ts>.parquet into A and B."
    )  # results/feature_stability_<ts>.parquet, read by the browser's stability badges
    label_a: str | None = option(None, help="Name of A in reports and badges (default: the folder name).")
    label_b: str | None = option(None, help="Name of B in reports and badges (default: the folder name).")
    batch_size: int = option(
        8, help="Windows per forward pass (pruning bridge and SAE folders analysed first)."
    )
    url_a: str | None = None
    """Where A is browsed (e.g. http://127.0.0.1:8765): B's stability badges link there."""
    url_b: str | None = None
    """Where B is browsed: A's stability badges link there."""

    def validate(self) -> None:
        require(bool(self.a), "compare needs folder A (an analysis folder)")
        require(
            (self.b is None) != (self.model_b is None),
            "give either B (a second analysis) or --model-b (a second model), not both and not neither",
        )
        one_of(self.match_on, MATCH_ON, "--match-on")
        require(self.assignment_limit >= 1, f"--assignment-limit must be ≥ 1, got {self.assignment_limit}")
        require(self.block_rows >= 1, f"--block-rows must be ≥ 1, got {self.block_rows}")
        require(
            0 < self.split_threshold <= 1, f"--split-threshold must be in (0, 1], got {self.split_threshold}"
        )
        require(self.batch_size >= 1, f"--batch-size must be ≥ 1, got {self.batch_size}")


@dataclasses.dataclass
class ExplainConfig:
    """Options of ``interplab sae explain``."""

    analysis_dir: str = folder_argument("Analysis folder (the output of ``sae analyze``).")
    explainer: str = option(
        "rules", help="rules (built-in, no model) | llm (OpenAI-compatible endpoint) | both."
    )
    explainer_url: str | None = option(
        None, help="Base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1."
    )
    model_name: str | None = option(None, help="Model name sent to the endpoint.")
    api_key_env: str | None = option(
        None, help="Environment variable holding the API key (none: no Authorization header)."
    )
    concurrency: int = option(4, help="Requests in flight at once.")
    max_retries: int = option(
        4, help="Retries of a request after 429/5xx, a timeout or a refused connection."
    )
    timeout: float = option(60.0, help="Seconds per request.")
    backoff: float = 1.0
    """First retry delay in seconds (doubles each retry; Retry-After wins)."""
    cache_dir: str | None = option(None, help="Response cache (default DIR/explain_cache).")
    features: str | None = option(None, help="Features to explain, e.g. 0-99,512 (default: all that fire).")
    top_k: int = option(10, help="Strongest activations used for training.")
    n_train: int = option(20, help="Random activating tokens used for training.")
    n_heldout: int = option(20, help="Random activating tokens held out for scoring.")
    n_negatives: int = option(
        2048, help="Random corpus tokens in the negative pool (half training, half held out)."
    )
    window_radius: int = option(6, help="Context tokens each side of an example.")
    n_llm_examples: int = 10
    """Marked windows shown to the LLM explainer (and per class to the LLM scorer)."""
    embedding: bool = off_switch("--no-embedding", "Skip the MiniLM embedding score.")
    embedding_windows: int = 10
    """Activating and non-activating windows per feature for the embedding score."""
    embedding_model: str = "minilm"
    """Sentence-embedding model for the embedding score."""
    chunk: int = 1024
    """Features per database query."""
    seed: int = option(0, help="Seed of every sample.")

    def validate(self) -> None:
        one_of(self.explainer, EXPLAINERS, "--explainer")
        at_least(self, 1, ("concurrency", "top_k", "n_heldout", "n_negatives", "chunk", "n_llm_examples"))
        at_least(self, 0, ("n_train", "window_radius", "max_retries", "embedding_windows"))
        require(self.timeout > 0, f"--timeout must be > 0, got {self.timeout}")
        if self.explainer != "rules":
            require(bool(self.explainer_url), f"--explainer {self.explainer} needs --explainer-url")
            require(bool(self.model_name), f"--explainer {self.explainer} needs --model-name")
            require(
                str(self.explainer_url).startswith(("http://", "https://")),
                f"--explainer-url: expected an http:// or https:// URL, got {self.explainer_url!r}",
            )

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        require(
            bool(key), f"--api-key-env: the environment variable {self.api_key_env} is not set (or empty)"
        )
        return key


@dataclasses.dataclass
class MergeConfig:
    """Options of ``interplab sae merge``."""

    analysis_dir: str = folder_argument("Folder written by `sae collect` (holding activation_database/).")
    allow_partial: bool = option(False, help="Merge the complete shards even if some are missing.")
