"""``interplab sae collect``: the collection pass of the shard plan on one process, on a slice of the
plan (``--shard i/N``, no communication), under ``torchrun`` (rank r takes shards r, r+N, …; rank 0
merges after a barrier) or on a Ray cluster (:mod:`interplab.sae.ray_backend`).

Every launcher writes the same files (:mod:`interplab.sae.shards`), skips shards that are already
complete, and can be mixed with any other: a rerun with any launcher fills only the missing shards.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from interplab.common.errors import InterplabError, one_of, require
from interplab.sae.configs import ABLATION_FEATURES, ABLATION_TOKENS
from interplab.sae.cooccurrence import DENSE_LIMIT as CO_DENSE_LIMIT
from interplab.sae.shards import assigned, check_compatible, parse_shard_arg
from interplab.sae.stats import EXAMPLES_PER_QUANTILE

log = logging.getLogger(__name__)

BACKENDS = ("auto", "local", "torch", "ray")
DTYPES = ("float32", "bfloat16", "float16")
BARRIER_TIMEOUT = datetime.timedelta(hours=48)  # ranks wait for the slowest one before the merge


def _opt(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class CollectConfig:
    """Options of ``interplab sae collect`` (the collection options of ``sae analyze`` plus launch)."""

    sae: str = _opt("", "SAE folder (SAELens, sparsify or weights.pt + config.json).")
    out: str = _opt("", "Analysis folder; the database goes to <out>/activation_database.")
    model: str = _opt("minilm", "'minilm', a model folder or a hub id.")
    layer: int | None = _opt(None, "Block index (default: from the SAE config).")
    hook: str | None = _opt(
        None, "hook_resid_pre|hook_resid_post|hook_mlp_out|hook_attn_out or blocks.L.<hook>."
    )
    data: str = _opt("docs", "'docs' or a .json/.txt/.jsonl/.parquet file.")
    batch_size: int = _opt(8, "Windows per forward pass (part of the shard plan).")
    context_size: int = _opt(128, "Tokens per window.")
    max_tokens: int | None = _opt(None, "Stop after this many tokens (docs: 32768).")
    top_k: int = _opt(20, "Top activating examples kept per feature.")
    shard_tokens: int = _opt(32_768, "Tokens per shard (part of the shard plan).")
    examples_per_quantile: int = _opt(EXAMPLES_PER_QUANTILE, "Examples sampled per activation quantile.")
    cooccurrence_dense_limit: int = _opt(CO_DENSE_LIMIT, "Above this d_sae co-occurrence counts are sparse.")
    ablation_tokens: int = _opt(
        ABLATION_TOKENS,
        "Tokens given full forward passes (the ablation unit, computed once all shards are in).",
    )
    ablation_features: int = _opt(ABLATION_FEATURES, "Most frequent features ablated (the ablation unit).")
    device: str = _opt("cpu", "cpu, cuda or cuda:N (under torchrun cuda means cuda:LOCAL_RANK).")
    model_dtype: str = _opt("float32", "Model weights dtype: float32, bfloat16, float16.")
    sae_dtype: str = _opt("float32", "SAE weights / encode dtype: float32, bfloat16, float16.")
    shard: str | None = _opt(None, "Collect only worker i of N's shards (i, i+N, …), e.g. 0/4; no merge.")
    backend: str = _opt("auto", "auto (torchrun if launched by it, else local), local, torch or ray.")
    ray_address: str | None = _opt(None, "Ray cluster address (e.g. auto); default: a local Ray instance.")
    num_gpus_per_worker: float = _opt(0.0, "GPUs per Ray actor.")
    workers: int = _opt(2, "Ray actors.")
    merge: bool = _opt(True, "Merge into the analysis folder once every shard is complete.")
    overwrite: bool = _opt(False, "Delete a database built with other settings first.")

    def validate(self) -> tuple[int, int] | None:
        require(bool(self.sae), "--sae is required: a folder holding an SAE")
        require(bool(self.out), "--out is required: the analysis folder")
        one_of(self.backend, BACKENDS, "--backend")
        one_of(self.model_dtype, DTYPES, "--model-dtype")
        one_of(self.sae_dtype, DTYPES, "--sae-dtype")
        require(int(self.workers) >= 1, f"--workers must be ≥ 1, got {self.workers}")
        require(
            self.device == "cpu" or self.device.startswith("cuda"),
            f"--device: expected cpu, cuda or cuda:N, got {self.device!r}",
        )
        shard = parse_shard_arg(self.shard) if self.shard is not None else None
        if shard is not None and self.overwrite:
            raise InterplabError(
                "--overwrite with --shard would delete other workers' shards; delete the folder instead"
            )
        if shard is not None and self.backend == "ray":
            raise InterplabError(
                "--shard and --backend ray exclude each other (Ray assigns the shards itself)"
            )
        return shard


#: collection options ``sae collect`` hands to the analyzer under the same names (``AnalysisConfig``)
SHARED_WITH_ANALYZE = (
    "context_size", "max_tokens", "top_k", "shard_tokens", "examples_per_quantile",
    "cooccurrence_dense_limit", "ablation_tokens", "ablation_features",
)  # fmt: skip


@dataclasses.dataclass
class CollectResult:
    """What ``sae collect`` did in this process."""

    out: Path
    n_shards: int
    collected: list[int]
    skipped: list[int]
    missing: list[int]
    seconds: float
    rank: int = 0
    world_size: int = 1
    analysis: Any = None  # the AnalysisResult when this process merged


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def build_analyzer(cfg: CollectConfig, device: str = "cpu") -> Any:
    """Model, SAE and corpus of a collect run, as an :class:`~interplab.sae.analyzer.SAEAnalyzer`."""
    from interplab.common.models import load_model
    from interplab.sae.analyzer import SAEAnalyzer
    from interplab.sae.formats import load_sae

    loaded = load_model(cfg.model, dtype=_torch_dtype(cfg.model_dtype), device=device)
    sae = load_sae(cfg.sae, dtype=cfg.sae_dtype, device=device)
    an = SAEAnalyzer(
        cfg.model,
        cfg.sae,
        cfg.layer,
        cfg.hook,
        cfg.out,
        cfg.batch_size,
        loaded=loaded,
        sae=sae,
        data_path=cfg.data,
        dtype=cfg.sae_dtype,
        **{name: getattr(cfg, name) for name in SHARED_WITH_ANALYZE},
    )
    an.load_data()
    return an


def prepare(an: Any, cfg: CollectConfig, clear: bool) -> Any:
    """The sharded setup of ``an`` with the launch settings in its identity; clears (``--overwrite``)
    or checks the database already there, and writes the manifest."""
    from interplab.sae.merge import sharded_setup

    setup = sharded_setup(an)
    setup.config["model_dtype"] = cfg.model_dtype
    if cfg.model_dtype != "float32":  # activations depend on it; float32 keeps `sae analyze`'s identity
        setup.fingerprint["model_dtype"] = cfg.model_dtype
    if clear and cfg.overwrite and setup.db.exists():
        shutil.rmtree(setup.db)
    check_compatible(setup.db, setup.fingerprint, setup.plan)
    setup.write_manifest()
    return setup


def run_collect(cfg: CollectConfig) -> CollectResult:
    """``interplab sae collect`` (see module docstring)."""
    shard = cfg.validate()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_torch = cfg.backend == "torch" or (
        cfg.backend == "auto" and shard is None and "LOCAL_RANK" in os.environ and world > 1
    )
    if cfg.backend == "ray":
        from interplab.sae.ray_backend import run_collect_ray

        return run_collect_ray(cfg)
    if use_torch:
        return _run_torch(cfg)
    return _run_local(cfg, shard)


def _run_local(cfg: CollectConfig, shard: tuple[int, int] | None) -> CollectResult:
    import time

    from interplab.sae.merge import ensure_units, merge_into, worker_context
    from interplab.sae.shard_worker import collect_shards

    t0 = time.perf_counter()
    an = build_analyzer(cfg, cfg.device)
    setup = prepare(an, cfg, clear=shard is None)
    i, n = shard if shard is not None else (0, 1)
    res = collect_shards(worker_context(an, setup, cfg.device), assigned(setup.specs, i, n))
    setup.write_manifest()
    ensure_units(an, setup)  # by whichever worker finds every shard complete
    missing = setup.missing()
    analysis = None
    if shard is None and cfg.merge and not missing:
        merge_into(an, setup)
        analysis = an.run()
    return _result(cfg, setup, res, missing, t0, i, n, analysis)


def _result(
    cfg: CollectConfig,
    setup: Any,
    res: Any,
    missing: list[int],
    t0: float,
    rank: int,
    world: int,
    analysis: Any,
) -> CollectResult:
    import time

    return CollectResult(
        out=Path(cfg.out),
        n_shards=len(setup.specs),
        collected=res.collected,
        skipped=res.skipped,
        missing=missing,
        seconds=time.perf_counter() - t0,
        rank=rank,
        world_size=world,
        analysis=analysis,
    )


def _run_torch(cfg: CollectConfig) -> CollectResult:
    """Under torchrun: gloo on CPU, nccl on CUDA; rank r takes shards r, r+N, …; rank 0 merges."""
    import time

    import torch
    import torch.distributed as dist

    from interplab.sae.merge import ensure_units, merge_into, worker_context
    from interplab.sae.shard_worker import collect_shards

    t0 = time.perf_counter()
    cuda = cfg.device.startswith("cuda")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=BARRIER_TIMEOUT)
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        an = build_analyzer(cfg, device)
        if rank == 0:
            setup = prepare(an, cfg, clear=True)
        dist.barrier()  # the database is cleared / checked once, before any rank writes a shard
        if rank != 0:
            setup = prepare(an, cfg, clear=False)
        res = collect_shards(
            worker_context(an, setup, device), assigned(setup.specs, rank, world), f"rank {rank}"
        )
        dist.barrier()  # every rank's shards are complete
        missing = setup.missing()
        analysis = None
        if rank == 0:
            setup.write_manifest()
            ensure_units(an, setup)
            if cfg.merge and not missing:
                merge_into(an, setup)
                analysis = an.run()
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return _result(cfg, setup, res, missing, t0, rank, world, analysis)
