"""A small TopK SAE trainer (Gao et al. 2024 recipe) for users without an SAE and for the demo.

1. Collect activations at the hook (forward passes stop after the hooked layer) for up to
   ``max_tokens`` text tokens, in batches of windows; the buffer is ``max_tokens × d_in`` floats.
2. Initialise ``W_dec`` rows as random unit vectors, ``W_enc = W_decᵀ``, ``b_enc = 0`` and ``b_dec``
   as a geometric-median estimate of the activations (Weiszfeld iterations on a sample).
3. Adam on shuffled token batches. Loss = FVU = mean‖x − x̂‖² / mean‖x − x̄‖² (denominator over
   the whole buffer) plus
   ``aux_k_coef`` × the AuxK loss: the ``d_in/2`` most active *dead* latents (not fired for
   ``dead_after_steps`` steps) reconstruct the residual ``x − x̂``. Decoder rows are kept unit norm
   (the gradient component parallel to each row is removed before each step, rows renormalised after).
4. Write a SAELens v6 folder (``cfg.json``, ``sae_weights.safetensors``) with ``history.json``,
   ``train_summary.json`` and ``manifest.json``; with ``wandb_mode`` the same metrics are logged with the
   W&B SDK into ``out/wandb/`` (``offline-run-*`` folders in offline mode).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from interplab.common.atomic import write_json
from interplab.common.errors import InterplabError
from interplab.common.models import LoadedModel, load_model
from interplab.common.output import output_dir
from interplab.common.progress import make_progress, track
from interplab.sae.configs import TrainConfig
from interplab.sae.corpus import TokenWindows, check_context_size, iter_batches, load_windows, n_batches
from interplab.sae.formats import save_sae
from interplab.sae.hooks import HookPoint, capture_activations, resolve_hook
from interplab.sae.model import SAE, SAEConfig

log = logging.getLogger(__name__)

WANDB_MODES = ("off", "offline", "online")
TRAIN_DEFAULT_MAX_TOKENS = 32_768


@dataclasses.dataclass
class TrainResult:
    """Where the SAE went, its per-step history and final metrics on all collected tokens."""

    folder: Path
    history: list[dict[str, Any]]
    final: dict[str, Any]
    sae: SAE
    seconds: float = 0.0
    wandb_dir: Path | None = None


def _validate(
    d_sae: int,
    k: int,
    steps: int,
    batch_size: int,
    lr: float | None,
    wandb_mode: str | None,
    model_batch_size: int,
) -> None:
    if int(d_sae) < 1:
        raise InterplabError(f"--d-sae must be ≥ 1, got {d_sae}")
    if not 1 <= int(k) <= int(d_sae):
        raise InterplabError(f"--k must be between 1 and d_sae={d_sae}, got {k}")
    if int(steps) < 1:
        raise InterplabError(f"--steps must be ≥ 1, got {steps}")
    if int(batch_size) < 1:
        raise InterplabError(f"--batch-size must be ≥ 1, got {batch_size}")
    if int(model_batch_size) < 1:
        raise InterplabError(f"--model-batch-size must be ≥ 1, got {model_batch_size}")
    if lr is not None and not (float(lr) > 0 and math.isfinite(float(lr))):
        raise InterplabError(f"--lr must be a positive number, got {lr}")
    if wandb_mode is not None and wandb_mode not in WANDB_MODES:
        raise InterplabError(
            f"unknown --wandb mode {wandb_mode!r}; expected one of: {', '.join(WANDB_MODES)}"
        )


@torch.no_grad()
def collect_activations(
    loaded: LoadedModel, hp: HookPoint, windows: TokenWindows, model_batch_size: int = 16
) -> Tensor:
    """Activations ``[n_tokens, d]`` (float32) of every text token, stopping each forward at the hook."""
    chunks: list[Tensor] = []
    for batch in track(
        iter_batches(windows, model_batch_size),
        "collecting activations",
        total=n_batches(windows, model_batch_size),
    ):
        act = capture_activations(loaded, hp, batch.input_ids, batch.attention_mask, stop=True)
        chunks.append(act[batch.token_mask.to(act.device)].to("cpu", torch.float32))
    return torch.cat(chunks)


def geometric_median(x: Tensor, iters: int = 30, eps: float = 1e-6) -> Tensor:
    """Weiszfeld estimate of the geometric median of the rows of ``x``."""
    x = x.to(torch.float64)
    y = x.mean(dim=0)
    for _ in range(iters):
        w = 1.0 / (x - y).norm(dim=1).clamp_min(eps)
        y_new = (w[:, None] * x).sum(dim=0) / w.sum()
        if (y_new - y).norm() < eps * (1 + y.norm()):
            y = y_new
            break
        y = y_new
    return y.to(torch.float32)


def default_lr(d_sae: int) -> float:
    """Gao et al.'s scaling: 2e-4 / sqrt(d_sae / 16384)."""
    return 2e-4 / math.sqrt(d_sae / 16384)


def init_sae(cfg: SAEConfig, acts: Tensor, generator: torch.Generator) -> SAE:
    """Unit-norm random decoder rows, tied encoder, zero b_enc, geometric-median b_dec."""
    W_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=generator)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    sample = acts[torch.randperm(acts.shape[0], generator=generator)[:4096]]
    sae = SAE.from_weights(
        cfg, W_enc=W_dec.T.clone(), W_dec=W_dec, b_enc=torch.zeros(cfg.d_sae), b_dec=geometric_median(sample)
    )
    sae.threshold.requires_grad_(False)
    return sae


def _topk_forward(sae: SAE, x: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(pre-activations, top-k values after ReLU, their indices, reconstruction) for a TopK SAE.

    The decoder is applied sparsely (``embedding_bag`` over the k active rows of ``W_dec``)."""
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
    values, indices = torch.topk(pre, k, dim=-1)
    values = torch.relu(values)
    x_hat = F.embedding_bag(indices, sae.W_dec, per_sample_weights=values, mode="sum") + sae.b_dec
    return pre, values, indices, x_hat


def _auxk_loss(sae: SAE, pre: Tensor, residual: Tensor, dead: Tensor) -> Tensor:
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre.new_zeros(())
    k_aux_full = max(sae.d_in // 2, 1)
    k_aux = min(k_aux_full, n_dead)
    scale = min(n_dead / k_aux_full, 1.0)
    masked = torch.where(dead[None, :], pre, torch.full_like(pre, -torch.inf))
    values, indices = torch.topk(masked, k_aux, dim=-1)
    e_hat = F.embedding_bag(indices, sae.W_dec, per_sample_weights=torch.relu(values), mode="sum")
    return scale * ((e_hat - residual) ** 2).sum(dim=-1).mean()


@torch.no_grad()
def evaluate(sae: SAE, acts: Tensor, chunk: int = 8192) -> dict[str, Any]:
    """Explained variance, MSE, L0 and never-fired fraction over all of ``acts``."""
    from interplab.sae.metrics import ReconstructionStats, SparsityStats

    recon = ReconstructionStats(sae.d_in)
    sparsity = SparsityStats(sae.d_sae)
    for start in range(0, acts.shape[0], chunk):
        x = acts[start : start + chunk]
        f, x_hat = sae.encode_decode(x)
        recon.update(x, x_hat)
        sparsity.update(f)
    r = recon.result()
    s = sparsity.result()
    return {
        "explained_variance": r["explained_variance"],
        "mse_per_element": r["mse_per_element"],
        "mse_per_token": r["mse_per_token"],
        "cosine_similarity": r["cosine_similarity"],
        "l0": s["sparsity"]["l0_mean"],
        "dead_fraction": s["dead_features"]["n_dead"] / sae.d_sae,
        "n_tokens": r["n_tokens"],
    }


def _start_wandb(mode: str, out: Path, config: dict[str, Any]) -> Any:
    try:
        import wandb
    except ImportError as exc:  # pragma: no cover - wandb is a dependency
        raise InterplabError("--wandb needs the wandb package; pip install wandb") from exc
    return wandb.init(
        project="interplab-sae",
        dir=str(out),
        mode=mode,
        config=config,
        name=f"sae-{config['model']}-{config['hook']}-{config['d_sae']}",
        reinit="finish_previous",
    )


def train_sae(config: TrainConfig | None = None, /, **options: Any) -> TrainResult:
    """Train a TopK SAE on ``model``'s activations at ``hook`` (see the module docstring). Options
    are the fields of :class:`~interplab.sae.configs.TrainConfig`, as one object or as keywords."""
    cfg = config if config is not None else TrainConfig(**options)
    model, layer, hook, data, out = cfg.model, cfg.layer, cfg.hook, cfg.data, cfg.out
    d_sae, k, steps, batch_size, lr, seed = cfg.d_sae, cfg.k, cfg.steps, cfg.batch_size, cfg.lr, cfg.seed
    wandb_mode, max_tokens, context_size = cfg.wandb_mode, cfg.max_tokens, cfg.context_size
    model_batch_size, aux_k_coef = cfg.model_batch_size, cfg.aux_k_coef
    dead_after_steps, log_every = cfg.dead_after_steps, cfg.log_every
    t0 = time.perf_counter()
    wall_start = time.time()
    _validate(d_sae, k, steps, batch_size, lr, wandb_mode, model_batch_size)
    if int(context_size) < 1:
        raise InterplabError(f"--context-size must be ≥ 1, got {context_size}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InterplabError(f"{out}: exists and is not a folder")
    d_sae, k, steps, batch_size = int(d_sae), int(k), int(steps), int(batch_size)
    lr = float(lr) if lr is not None else default_lr(d_sae)
    log_every = int(log_every) if log_every else max(1, steps // 100)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(int(seed))

    loaded = load_model(model)
    hp = resolve_hook(loaded, hook, layer)
    check_context_size(loaded, context_size)
    budget = TRAIN_DEFAULT_MAX_TOKENS if max_tokens is None else int(max_tokens)
    windows = load_windows(loaded.tokenizer, data, context_size=context_size, max_tokens=budget)
    t_collect = time.perf_counter()
    acts = collect_activations(loaded, hp, windows, model_batch_size)
    collect_s = time.perf_counter() - t_collect
    n_tok, d_in = acts.shape
    log.info("collected %d activations of width %d at %s in %.1fs", n_tok, d_in, hp.name, collect_s)

    cfg = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        architecture="topk",
        k=k,
        apply_b_dec_to_input=True,
        hook_name=hp.name,
        hook_layer=hp.layer,
        model_name=str(model),
        source_format="new",
        extra={"context_size": int(context_size), "dataset_path": str(data), "prepend_bos": None},
    )
    sae = init_sae(cfg, acts, gen)
    params = [sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec]
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=6.25e-10)
    steps_since_fired = torch.zeros(d_sae, dtype=torch.int64)
    arguments = {
        "model": str(model),
        "layer": hp.layer,
        "hook": hp.name,
        "data": str(data),
        "d_sae": d_sae,
        "k": k,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": int(seed),
        "max_tokens": budget,
        "context_size": int(context_size),
        "aux_k_coef": aux_k_coef,
        "dead_after_steps": dead_after_steps,
        "wandb": wandb_mode or "off",
    }
    run = None
    if wandb_mode in ("offline", "online"):
        out.mkdir(parents=True, exist_ok=True)
        run = _start_wandb(wandb_mode, out, arguments)
    # FVU denominator: mean squared distance of the activations to their mean (whole buffer)
    total_var = ((acts - acts.mean(dim=0)) ** 2).sum(dim=-1).mean().clamp_min(1e-12)
    history: list[dict[str, Any]] = []
    perm = torch.randperm(n_tok, generator=gen)
    cursor = 0
    tokens_seen = 0
    t_train = time.perf_counter()
    try:
        with make_progress() as progress:
            task = progress.add_task("training SAE", total=steps)
            for step in range(1, steps + 1):
                if cursor + batch_size > n_tok:
                    perm = torch.randperm(n_tok, generator=gen)
                    cursor = 0
                x = acts[perm[cursor : cursor + batch_size]]
                cursor += batch_size
                tokens_seen += x.shape[0]
                pre, values, indices, x_hat = _topk_forward(sae, x, k)
                l2 = ((x_hat - x) ** 2).sum(dim=-1).mean()
                fired = torch.zeros(d_sae, dtype=torch.bool)
                fired[indices[values > 0]] = True
                steps_since_fired = torch.where(fired, 0, steps_since_fired + 1)
                dead = steps_since_fired > dead_after_steps
                aux = _auxk_loss(sae, pre, (x - x_hat).detach(), dead) if aux_k_coef > 0 else l2.new_zeros(())
                loss = l2 / total_var + aux_k_coef * aux / total_var
                opt.zero_grad(set_to_none=True)
                loss.backward()
                with torch.no_grad():
                    g = sae.W_dec.grad
                    if g is not None:
                        g -= (g * sae.W_dec).sum(dim=1, keepdim=True) * sae.W_dec
                opt.step()
                with torch.no_grad():
                    sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
                if step % log_every == 0 or step == steps or step == 1:
                    l2, aux, loss = l2.detach(), aux.detach(), loss.detach()
                    fvu = float(l2 / total_var)
                    row = {
                        "step": step,
                        "tokens": tokens_seen,
                        "loss": float(loss),
                        "mse": float(l2) / d_in,
                        "fvu": fvu,
                        "explained_variance": 1.0 - fvu,
                        "aux_loss": float(aux / total_var),
                        "l0": float((values > 0).sum(dim=-1).float().mean()),
                        "dead_fraction": float(dead.float().mean()),
                        "lr": lr,
                    }
                    history.append(row)
                    if run is not None:
                        run.log({key: v for key, v in row.items() if key != "step"}, step=step)
                progress.advance(task)
        train_s = time.perf_counter() - t_train
        sae.eval()
        final = evaluate(sae, acts)
        final.update(
            {
                "collect_seconds": round(collect_s, 3),
                "train_seconds": round(train_s, 3),
                "n_train_tokens": n_tok,
            }
        )
        final.update(windows.summary())
        if run is not None:
            run.summary.update({f"final/{key}": v for key, v in final.items() if isinstance(v, int | float)})
    finally:
        if run is not None:
            run.finish()
    with output_dir(out, "sae train", arguments) as od:
        od.started = wall_start
        od.timings.update({"collect_activations": round(collect_s, 3), "train": round(train_s, 3)})
        save_sae(sae, out, history)
        for name in ("cfg.json", "sae_weights.safetensors", "history.json"):
            od.record(name)
        write_json(od.file("train_summary.json"), final)
    log.info(
        "trained SAE: explained variance %.3f, L0 %.1f, dead %.1f%% → %s",
        final["explained_variance"],
        final["l0"],
        100 * final["dead_fraction"],
        out,
    )
    wandb_dir = out / "wandb" if run is not None else None
    return TrainResult(
        folder=out,
        history=history,
        final=final,
        sae=sae,
        seconds=time.perf_counter() - t0,
        wandb_dir=wandb_dir,
    )
