"""The built-in experiment: a tiny attention-only transformer learns Markov chains in context, and
every run is logged with the wandb SDK in offline mode — real runs for the default report and tests.

Each training sequence comes from its own random transition matrix (rows ~ Dirichlet(α)), so the
model has to infer the chain from the sequence. Such models pass through a *unigram* phase (predict
the state frequencies seen so far; uniform attention does this) and then a *bigram* phase (an
induction-style circuit looks up what followed the current state). The logged KL divergences to the
in-context estimators show the switch: ``kl_div_prefix_1_teacher_val`` is lowest first, then
``kl_div_prefix_2_teacher_val``.

Logged per evaluation step (``wandb.log(..., step=step)``):

* ``train_loss`` (mean over the steps since the last evaluation), ``val_loss`` (next-state
  cross-entropy in nats on a fixed validation set),
* ``kl_div_prefix_{k}_teacher_val`` for k = 1, 2, 3: mean over validation positions of
  KL(p_k ‖ p_model) = Σ_s p_k(s) (log p_k(s) − log p_model(s)), p_k the add-one smoothed in-context
  estimator that conditions on the last k−1 tokens (see :mod:`interplab.runs.markov`),
* ``val_attention_weights``: a ``wandb.Table`` (columns layer, head, query_idx, key_idx, weight) of
  the attention of every head on the first ``attn_positions`` tokens of validation sequence 0
  (lower triangle only; ``head`` numbers heads across layers: ``layer * n_heads + h``).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from interplab.common.errors import InterplabError
from interplab.runs.markov import kl_to_model, ngram_estimator, sample_markov
from interplab.runs.tiny_transformer import AttnOnlyTransformer, TinyConfig

log = logging.getLogger(__name__)

PROJECT = "interplab-markov-icl"
KL_METRICS = tuple(f"kl_div_prefix_{k}_teacher_val" for k in (1, 2, 3))
TABLE_KEY = "val_attention_weights"
DEFAULT_SWEEP: dict[str, list[Any]] = {"init_scale": [0.01, 1.0]}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one run depends on; logged as the run's W&B config. The model's settings are
    :class:`TinyConfig`'s fields, with its defaults."""

    seed: int = 0
    init_scale: float = TinyConfig.init_scale
    n_states: int = TinyConfig.n_states
    seq_len: int = TinyConfig.seq_len
    alpha: float = 1.0
    dataset_size: int = 0  # number of training sequences; 0 = a fresh batch every step
    d_model: int = TinyConfig.d_model
    n_layers: int = TinyConfig.n_layers
    n_heads: int = TinyConfig.n_heads
    lr: float = 3e-3
    batch_size: int = 32
    steps: int = 1000
    eval_every: int = 50
    n_val: int = 256
    attn_positions: int = 32

    def model_config(self) -> TinyConfig:
        """The model's settings: the fields :class:`TinyConfig` shares with this one."""
        return TinyConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TinyConfig)})


@dataclasses.dataclass
class RunRecord:
    """One finished run: where W&B wrote it and its final metrics."""

    name: str
    id: str
    path: Path
    config: dict[str, Any]
    final: dict[str, float]
    seconds: float


@dataclasses.dataclass
class ExperimentResult:
    """All runs of one experiment folder."""

    out: Path
    runs: list[RunRecord]
    seconds: float


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def parse_sweep(items: list[str] | None) -> dict[str, list[Any]]:
    """Parse ``key=v1,v2`` strings into ``{key: [values]}`` with the TrainConfig field types."""
    sweep: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not values.strip():
            raise InterplabError(f"malformed --sweep {item!r}; expected KEY=V1,V2 (e.g. init_scale=0.01,1.0)")
        if key not in FIELD_TYPES or key == "seed":
            allowed = ", ".join(k for k in FIELD_TYPES if k != "seed")
            raise InterplabError(f"unknown sweep key {key!r}; expected one of: {allowed}")
        cast = float if FIELD_TYPES[key] in ("float", float) else int
        try:
            sweep[key] = [cast(v) for v in values.split(",") if v.strip()]
        except ValueError as exc:
            raise InterplabError(
                f"--sweep {key}: {values!r} is not a list of {cast.__name__} values"
            ) from exc
    return sweep


def sweep_configs(
    seeds: int, sweep: dict[str, list[Any]], base: TrainConfig | None = None
) -> list[TrainConfig]:
    """The grid: every combination of the sweep values, each for seeds 0 … seeds−1."""
    base = base or TrainConfig()
    keys = list(sweep)
    configs = []
    for combo in itertools.product(*(sweep[k] for k in keys)):
        for seed in range(seeds):
            configs.append(dataclasses.replace(base, seed=seed, **dict(zip(keys, combo, strict=True))))
    return configs


def run_name(cfg: TrainConfig, sweep_keys: list[str]) -> str:
    """A readable run name: the swept values and the seed."""
    parts = [f"{k}={getattr(cfg, k)}" for k in sweep_keys]
    return "-".join([*parts, f"seed={cfg.seed}"])


def attention_table_frame(patterns: list[torch.Tensor], positions: int) -> pd.DataFrame:
    """Attention of sequence 0 as a long table: layer, head, query_idx, key_idx, weight (lower triangle)."""
    att = torch.stack([p[0, :, :positions, :positions] for p in patterns])  # [L, H, Q, K]
    L, H, Q, K = att.shape
    layer, head, q, k = np.meshgrid(np.arange(L), np.arange(H), np.arange(Q), np.arange(K), indexing="ij")
    keep = (k <= q).ravel()
    return pd.DataFrame(
        {
            "layer": layer.ravel()[keep],
            "head": (layer * H + head).ravel()[keep],
            "query_idx": q.ravel()[keep],
            "key_idx": k.ravel()[keep],
            "weight": att.detach().numpy().astype(np.float64).ravel()[keep],
        }
    )


@dataclasses.dataclass
class Evaluator:
    """Fixed validation sequences and their in-context estimators (computed once per run)."""

    x: torch.Tensor
    estimators: list[torch.Tensor]

    @classmethod
    def build(cls, cfg: TrainConfig) -> Evaluator:
        x = sample_markov(cfg.n_val, cfg.seq_len, cfg.n_states, cfg.alpha, np.random.default_rng(10_000))
        return cls(x, [ngram_estimator(x, k, cfg.n_states) for k in (1, 2, 3)])

    @torch.no_grad()
    def __call__(self, model: AttnOnlyTransformer, positions: int) -> tuple[dict[str, float], pd.DataFrame]:
        logits, patterns = model(self.x)
        logp = logits.log_softmax(-1)
        n = logits.shape[-1]
        metrics = {
            "val_loss": float(
                torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, n), self.x[:, 1:].reshape(-1))
            )
        }
        for name, est in zip(KL_METRICS, self.estimators, strict=True):
            metrics[name] = float(kl_to_model(est, logp))
        return metrics, attention_table_frame(patterns, positions)


def train_run(cfg: TrainConfig, out: Path, name: str, tags: list[str]) -> RunRecord:
    """Train one model and log it offline into ``out/wandb/``."""
    import wandb

    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = AttnOnlyTransformer(cfg.model_config())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    evaluate = Evaluator.build(cfg)
    data = (
        sample_markov(cfg.dataset_size, cfg.seq_len, cfg.n_states, cfg.alpha, rng)
        if cfg.dataset_size
        else None
    )
    settings = wandb.Settings(
        mode="offline",
        silent=True,
        console="off",
        x_disable_stats=True,
        x_disable_machine_info=True,
        disable_git=True,
        save_code=False,
        disable_job_creation=True,
    )
    run = wandb.init(
        mode="offline",
        dir=str(out),
        project=PROJECT,
        name=name,
        config=dataclasses.asdict(cfg),
        tags=tags,
        settings=settings,
        reinit="finish_previous",
    )
    final: dict[str, float] = {}
    try:
        losses: list[float] = []
        for step in range(cfg.steps + 1):
            if step % cfg.eval_every == 0 or step == cfg.steps:
                model.eval()
                metrics, table = evaluate(model, cfg.attn_positions)
                model.train()
                if losses:
                    metrics["train_loss"] = float(np.mean(losses))
                    losses = []
                metrics[TABLE_KEY] = wandb.Table(dataframe=table)
                run.log(metrics, step=step)
                final = {k: v for k, v in metrics.items() if isinstance(v, float)}
            if step == cfg.steps:
                break
            if data is None:
                x = sample_markov(cfg.batch_size, cfg.seq_len, cfg.n_states, cfg.alpha, rng)
            else:
                x = data[torch.from_numpy(rng.integers(0, cfg.dataset_size, cfg.batch_size))]
            logits, _ = model(x)
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, cfg.n_states), x[:, 1:].reshape(-1)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        run_dir = Path(run.dir).parent  # …/wandb/offline-run-<time>-<id>/files → the run folder
        run_id = run.id
    finally:
        run.finish()
    return RunRecord(name, run_id, run_dir, dataclasses.asdict(cfg), final, time.perf_counter() - t0)


def run_experiment(
    out: str | os.PathLike[str],
    seeds: int = 3,
    sweep: dict[str, list[Any]] | None = None,
    steps: int | None = None,
    tags: list[str] | None = None,
    *,
    keep_staging: bool = False,
    **overrides: Any,
) -> ExperimentResult:
    """Train the sweep grid × ``seeds`` and log every run offline into ``out/wandb/``.

    The SDK also copies each logged table into an artifact staging folder; unless the user set
    ``WANDB_DATA_DIR`` that folder is ``out/wandb/.data`` and is removed afterwards (the tables stay
    in each run's ``files/media``); ``keep_staging`` keeps it for a later ``wandb sync`` of the
    tables as artifacts.

    ``sweep`` maps TrainConfig fields to lists of values (default: ``init_scale`` 0.01 and 1.0);
    ``overrides`` set other TrainConfig fields for every run. Also writes ``out/experiment.json``
    (one entry per run: name, id, folder, config, final metrics) and ``out/manifest.json``.
    """
    from interplab.common.output import output_dir
    from interplab.common.progress import track

    if seeds < 1:
        raise InterplabError(f"--seeds must be ≥ 1, got {seeds}")
    sweep = DEFAULT_SWEEP if sweep is None else sweep
    unknown = [k for k in [*sweep, *overrides] if k not in FIELD_TYPES or k == "seed"]
    if unknown:
        raise InterplabError(
            f"unknown experiment setting {unknown[0]!r}; expected one of: {', '.join(FIELD_TYPES)}"
        )
    base = TrainConfig(**overrides)
    if steps is not None:
        if steps < 1:
            raise InterplabError(f"--steps must be ≥ 1, got {steps}")
        base = dataclasses.replace(
            base, steps=steps, eval_every=max(1, min(base.eval_every, steps // 10 or 1))
        )
    configs = sweep_configs(seeds, sweep, base)
    for cfg in configs:
        if cfg.n_states < 2 or cfg.seq_len < 4 or cfg.dataset_size < 0 or cfg.init_scale <= 0:
            raise InterplabError(
                f"invalid experiment config: n_states={cfg.n_states} (≥2), seq_len={cfg.seq_len} (≥4), "
                f"dataset_size={cfg.dataset_size} (≥0), init_scale={cfg.init_scale} (>0)"
            )
    base_tags = ["markov-icl", *(tags or [])]
    # wandb stages every logged table as an artifact file under WANDB_DATA_DIR (default
    # ~/.local/share/wandb); keep those inside the output folder unless the user chose a place.
    staging = (
        {} if os.environ.get("WANDB_DATA_DIR") else {"WANDB_DATA_DIR": str(Path(out) / "wandb" / ".data")}
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest and leaves a core for wandb's writer
    t0 = time.perf_counter()
    records: list[RunRecord] = []
    arguments = {"seeds": seeds, "sweep": sweep, "steps": base.steps, "overrides": overrides}
    saved_env = {k: os.environ.get(k) for k in staging}
    os.environ.update(staging)
    try:
        with output_dir(out, "runs experiment", arguments) as od:
            for cfg in track(configs, "training runs"):
                name = run_name(cfg, list(sweep))
                run_tags = [*base_tags, *(f"{k}={getattr(cfg, k)}" for k in sweep)]
                rec = train_run(cfg, od.path, name, run_tags)
                log.info(
                    "run %s (%s): %.1fs, val_loss %.4f", name, rec.id, rec.seconds, rec.final["val_loss"]
                )
                records.append(rec)
            from interplab.common.atomic import write_json

            write_json(
                od.file("experiment.json"),
                {
                    "project": PROJECT,
                    "seconds": round(time.perf_counter() - t0, 2),
                    "runs": [
                        {**dataclasses.asdict(r), "path": str(r.path.relative_to(od.path))} for r in records
                    ],
                },
            )
    finally:
        torch.set_num_threads(threads)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if staging and not keep_staging:  # only the folder we chose, never the user's WANDB_DATA_DIR
        import shutil

        shutil.rmtree(staging["WANDB_DATA_DIR"], ignore_errors=True)
    return ExperimentResult(Path(out), records, time.perf_counter() - t0)
