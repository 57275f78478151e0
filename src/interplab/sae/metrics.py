"""Streaming SAE metrics: sparsity, dead features, reconstruction and ablation.

Every accumulator takes batches of rows for real tokens only (``[n_tokens, …]``; padding and special
tokens already dropped) and keeps float64 sums, or merges per-batch means and centred sums of
squares (Chan et al.'s parallel Welford update), so the results are exact up to float64 rounding and
memory does not grow with the number of tokens.

A feature *fires* on a token when its activation is non-zero (``f != 0``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from interplab.common.models import LoadedModel
from interplab.sae.configs import DEFAULT_EVAL_CONVENTION
from interplab.sae.configs import EVAL_CONVENTIONS as EVAL_CONVENTIONS  # re-exported
from interplab.sae.corpus import Batch
from interplab.sae.hooks import (
    HookPoint,
    first_tensor,
    hook_module,
    replace_activations,
    run_forward,
    unflatten_tokens,
    unwrap_model,
)
from interplab.sae.layout import DENSE_THRESHOLD
from interplab.sae.model import SAE

RARE_THRESHOLDS = (1e-5, 1e-6)
NO_LM_HEAD_SUBSTITUTE = (
    "model has no LM head: 'loss' is the mean squared error of the final hidden states against the "
    "clean run (per element, so baseline_loss = 0) and 'KL' is 1 − cosine similarity of the final "
    "hidden states against the clean run"
)


def firing_mask(f: Tensor) -> Tensor:
    """Which features fire: ``f != 0``."""
    return f != 0


@dataclasses.dataclass
class Moments:
    """Running count, mean and centred sum of squares (float64), merged batch by batch."""

    n: int = 0
    mean: Tensor | None = None
    m2: Tensor | None = None

    def update(self, x: Tensor) -> None:
        """Add rows ``x`` ``[n, …]``."""
        x = x.detach().to(torch.float64)
        nb = int(x.shape[0])
        if nb == 0:
            return
        mb = x.mean(dim=0)
        m2b = ((x - mb) ** 2).sum(dim=0)
        if self.n == 0 or self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n = n

    @property
    def var(self) -> Tensor:
        """Population variance (divide by n)."""
        assert self.m2 is not None
        return self.m2 / max(self.n, 1)

    def mean_float(self) -> float:
        return float(self.mean) if self.mean is not None else float("nan")

    def std_float(self) -> float:
        return float(self.var.sqrt()) if self.m2 is not None else float("nan")


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Chan et al.'s parallel update of two :class:`Moments` (``a`` first)."""
    if b.n == 0 or b.mean is None or b.m2 is None:
        return a
    if a.n == 0 or a.mean is None or a.m2 is None:
        return Moments(b.n, b.mean.clone(), b.m2.clone())
    n = a.n + b.n
    delta = b.mean - a.mean
    return Moments(n, a.mean + delta * (b.n / n), a.m2 + b.m2 + delta**2 * (a.n * b.n / n))


class SparsityStats:
    """L0/L1 per token and per-feature firing counts → ``sparsity`` and ``dead_features`` sections."""

    def __init__(self, d_sae: int) -> None:
        self.d_sae = int(d_sae)
        self.counts = torch.zeros(self.d_sae, dtype=torch.int64)
        self.act_sum = torch.zeros(self.d_sae, dtype=torch.float64)
        self.act_max = torch.full((self.d_sae,), float("-inf"), dtype=torch.float64)
        self.l0 = Moments()
        self.l1 = Moments()
        self.n_tokens = 0

    def merge(self, other: SparsityStats) -> None:
        """Add the statistics of later tokens (e.g. the next shard)."""
        self.counts += other.counts
        self.act_sum += other.act_sum
        self.act_max = self.act_max.maximum(other.act_max)
        self.l0, self.l1 = merge_moments(self.l0, other.l0), merge_moments(self.l1, other.l1)
        self.n_tokens += other.n_tokens

    def update(self, f: Tensor) -> None:
        """Add feature activations ``[n_tokens, d_sae]``."""
        f = f.detach().reshape(-1, self.d_sae)
        if f.shape[0] == 0:
            return
        fires = firing_mask(f)
        self.counts += fires.sum(dim=0).to(torch.int64)
        f64 = f.to(torch.float64)
        self.act_sum += f64.sum(dim=0)
        self.act_max = torch.maximum(self.act_max, f64.max(dim=0).values)
        self.l0.update(fires.sum(dim=1).to(torch.float64))
        self.l1.update(f64.abs().sum(dim=1))
        self.n_tokens += int(f.shape[0])

    def frequency(self) -> np.ndarray:
        """Firing frequency of each feature (fraction of tokens with ``f != 0``)."""
        return (self.counts.to(torch.float64) / max(self.n_tokens, 1)).numpy()

    def dead_indices(self) -> np.ndarray:
        """Features that never fired on the tokens seen."""
        return np.flatnonzero(self.counts.numpy() == 0)

    def result(self) -> dict[str, dict[str, Any]]:
        freq = self.frequency()
        dead = self.dead_indices()
        dense = np.flatnonzero(freq > DENSE_THRESHOLD)
        sparsity = {
            "l0_mean": self.l0.mean_float(),
            "l0_std": self.l0.std_float(),
            "l1_mean": self.l1.mean_float(),
            "l1_std": self.l1.std_float(),
            "n_features": self.d_sae,
            "n_tokens": self.n_tokens,
            "feature_frequency": freq.tolist(),
            "feature_mean_activation": (self.act_sum / max(self.n_tokens, 1)).numpy().tolist(),
        }
        dead_features = {
            "n_dead": len(dead),
            "pct_dead": 100.0 * len(dead) / max(self.d_sae, 1),
            "dead_indices": dead.tolist(),
            "n_frequency_below_1e-5": int((freq < 1e-5).sum()),
            "n_frequency_below_1e-6": int((freq < 1e-6).sum()),
            "n_dense": len(dense),
            "dense_threshold": DENSE_THRESHOLD,
            "dense_indices": dense.tolist(),
            "n_tokens": self.n_tokens,
        }
        return {"sparsity": sparsity, "dead_features": dead_features}


class ReconstructionStats:
    """Reconstruction quality → ``reconstruction`` section.

    * ``mse_per_element`` = Σ‖x − x̂‖² / (n·d)   (mean over tokens and dimensions)
    * ``mse_per_token`` = Σ‖x − x̂‖² / n   (squared error summed over the d dimensions, mean over tokens:
      what SAELens's evals and training report as ``mse``)
    * ``explained_variance`` = 1 − (Σ‖x − x̂‖² / n) / Σ_d Var(x_d)   (population variance over tokens)
    * ``explained_variance_legacy`` = mean over tokens of 1 − ‖x − x̂‖² / ‖x − x̄_batch‖² (as SAEBench /
      SAELens evals, with x̄ the mean of the tokens in the same batch)
    * ``cosine_similarity`` = mean over tokens of cos(x, x̂); ``l2_ratio`` = mean of ‖x̂‖ / ‖x‖
    """

    def __init__(self, d_in: int) -> None:
        self.d_in = int(d_in)
        self.sse = 0.0
        self.x_moments = Moments()
        self.ev_legacy_sum = 0.0
        self.ev_legacy_n = 0
        self.cos_sum = 0.0
        self.ratio_sum = 0.0
        self.ratio_n = 0
        self.n_tokens = 0

    def merge(self, other: ReconstructionStats) -> None:
        """Add the statistics of later tokens (e.g. the next shard)."""
        self.x_moments = merge_moments(self.x_moments, other.x_moments)
        for name in ("sse", "ev_legacy_sum", "ev_legacy_n", "cos_sum", "ratio_sum", "ratio_n", "n_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def update(self, x: Tensor, x_hat: Tensor) -> None:
        """Add activations ``x`` and reconstructions ``x_hat`` ``[n_tokens, d_in]``."""
        x = x.detach().reshape(-1, self.d_in).to(torch.float64)
        x_hat = x_hat.detach().reshape(-1, self.d_in).to(torch.float64)
        if x.shape[0] == 0:
            return
        resid = ((x - x_hat) ** 2).sum(dim=1)
        self.sse += float(resid.sum())
        self.x_moments.update(x)
        total = ((x - x.mean(dim=0)) ** 2).sum(dim=1)
        ok = total > 0
        self.ev_legacy_sum += float((1.0 - resid[ok] / total[ok]).sum())
        self.ev_legacy_n += int(ok.sum())
        self.cos_sum += float(F.cosine_similarity(x, x_hat, dim=1, eps=1e-12).sum())
        norm_x = x.norm(dim=1)
        nz = norm_x > 0
        self.ratio_sum += float((x_hat.norm(dim=1)[nz] / norm_x[nz]).sum())
        self.ratio_n += int(nz.sum())
        self.n_tokens += int(x.shape[0])

    def result(self) -> dict[str, Any]:
        n = max(self.n_tokens, 1)
        total_var = float(self.x_moments.var.sum()) if self.x_moments.m2 is not None else float("nan")
        mse_tok = self.sse / n
        return {
            "mse_per_element": self.sse / (n * self.d_in),
            "mse_per_token": mse_tok,
            "explained_variance": 1.0 - mse_tok / total_var if total_var > 0 else float("nan"),
            "explained_variance_legacy": self.ev_legacy_sum / self.ev_legacy_n
            if self.ev_legacy_n
            else float("nan"),
            "cosine_similarity": self.cos_sum / n,
            "l2_ratio": self.ratio_sum / self.ratio_n if self.ratio_n else float("nan"),
            "total_variance": total_var,
            "n_tokens": self.n_tokens,
        }


def loss_positions(batch: Batch, convention: str = DEFAULT_EVAL_CONVENTION) -> Tensor:
    """``[B, T−1]`` bool: the positions ``t`` whose next-token prediction enters the CE means.

    * ``saelens`` — the prediction is made *from* a text token and its target is a real token:
      ``token_mask[t] ∧ attention_mask[t+1]`` (the prediction from BOS is dropped, as SAELens's evals
      drop positions whose input is a special token);
    * ``interplab`` — the *target* is a text token: ``attention_mask[t] ∧ token_mask[t+1]``.
    """
    if convention == "saelens":
        return batch.token_mask[:, :-1] & batch.attention_mask[:, 1:].bool()
    return batch.attention_mask[:, :-1].bool() & batch.token_mask[:, 1:]


def kl_positions(batch: Batch, convention: str = DEFAULT_EVAL_CONVENTION) -> Tensor:
    """``[B, T]`` bool: the positions whose output distributions enter the KL means.

    * ``saelens`` — every text token, the last position of a window included (``token_mask``);
    * ``interplab`` — the same positions as the CE (:func:`loss_positions`; the last position of a
      window has no target and is left out).
    """
    if convention == "saelens":
        return batch.token_mask
    mask = torch.zeros_like(batch.token_mask)
    mask[:, :-1] = loss_positions(batch, convention)
    return mask


@dataclasses.dataclass(frozen=True)
class AtAllPositions:
    """A replacement applied at every position, special tokens and padding included (SAELens's
    zero ablation); a plain callable is applied at text tokens only."""

    fn: Callable[[Tensor], Tensor]


def zero_ablation(convention: str = DEFAULT_EVAL_CONVENTION) -> Callable[[Tensor], Tensor] | AtAllPositions:
    """The zero-ablation replacement: at every position (``saelens``) or at text tokens (``interplab``)."""
    return AtAllPositions(torch.zeros_like) if convention == "saelens" else torch.zeros_like


class AblationStats:
    """Position-weighted losses and KLs → ``ablation`` section.

    ``loss_recovered = (zero − sae) / (zero − clean)``; ``kl_score = (KL_zero − KL_sae) / KL_zero``
    with ``KL(p_clean ‖ p)``. The losses are means over the CE positions and the KLs over the KL
    positions of ``convention`` (:func:`loss_positions`, :func:`kl_positions`). ``substitute`` names
    what replaces them for models without an LM head.
    """

    KEYS = ("clean_loss", "zero_loss", "sae_loss", "kl_zero", "kl_sae")

    def __init__(self, substitute: str | None = None, convention: str = DEFAULT_EVAL_CONVENTION) -> None:
        self.substitute = substitute
        self.convention = convention
        self.sums = dict.fromkeys(self.KEYS, 0.0)
        self.n_tokens = 0  # CE positions
        self.n_kl = 0  # KL positions

    @classmethod
    def for_model(cls, loaded: LoadedModel, convention: str = DEFAULT_EVAL_CONVENTION) -> AblationStats:
        return cls(substitute=None if loaded.is_causal else NO_LM_HEAD_SUBSTITUTE, convention=convention)

    def update(
        self, clean_loss: Tensor, zero_loss: Tensor, sae_loss: Tensor, kl_zero: Tensor, kl_sae: Tensor
    ) -> None:
        """Add per-position values (1-d tensors: the losses over CE positions, the KLs over KL positions)."""
        values = dict(zip(self.KEYS, (clean_loss, zero_loss, sae_loss, kl_zero, kl_sae), strict=True))
        for key, v in values.items():
            self.sums[key] += float(v.detach().to(torch.float64).sum())
        self.n_tokens += int(clean_loss.numel())
        self.n_kl += int(kl_sae.numel())

    def result(self) -> dict[str, Any]:
        n, n_kl = max(self.n_tokens, 1), max(self.n_kl, 1)
        clean, zero, sae = (self.sums[k] / n for k in ("clean_loss", "zero_loss", "sae_loss"))
        kl_zero, kl_sae = self.sums["kl_zero"] / n_kl, self.sums["kl_sae"] / n_kl
        denom = zero - clean
        return {
            "baseline_loss": clean,
            "zero_ablation_loss": zero,
            "sae_reconstruction_loss": sae,
            "loss_recovered": (zero - sae) / denom if denom != 0 else float("nan"),
            "kl_zero_ablation": kl_zero,
            "kl_sae_reconstruction": kl_sae,
            "kl_score": (kl_zero - kl_sae) / kl_zero if kl_zero != 0 else float("nan"),
            "kl_direction": (
                "KL(p_clean || p_ablated)"
                if self.substitute is None
                else "1 - cos(h_clean, h_ablated) of the final hidden states (no LM head: not a KL)"
            ),
            "loss": "next-token cross-entropy" if self.substitute is None else "final hidden state MSE",
            "substitute": self.substitute,
            "eval_convention": self.convention if self.substitute is None else "text tokens",
            "n_positions_loss": self.n_tokens,
            "n_positions_kl": self.n_kl,
            "n_tokens": self.n_tokens,
        }


def _model_output(loaded: LoadedModel, out: Any) -> Tensor:
    if loaded.is_causal:
        return out.logits
    return first_tensor(out)


@torch.no_grad()
def clean_forward(loaded: LoadedModel, hp: HookPoint, batch: Batch) -> tuple[Tensor, Tensor]:
    """One full forward pass: (activation at ``hp`` ``[B,T,d]``, logits or final hidden states)."""
    module = unwrap_model(loaded)
    target, pre = hook_module(module, hp)
    captured: dict[str, Tensor] = {}

    def pre_hook(_m: Any, args: tuple, kwargs: dict) -> None:
        captured["act"] = (args[0] if args else kwargs["hidden_states"]).detach()

    def hook(_m: Any, _a: tuple, out: Any) -> None:
        captured["act"] = first_tensor(out).detach()

    if pre:
        handle = target.register_forward_pre_hook(pre_hook, with_kwargs=True)
    else:
        handle = target.register_forward_hook(hook)
    try:
        out = run_forward(module, batch.input_ids, batch.attention_mask)
    finally:
        handle.remove()
    return unflatten_tokens(captured["act"], batch.input_ids.shape), _model_output(loaded, out)


def only_at(mask: Tensor, fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """``fn`` applied where ``mask`` ``[B, T]`` is true; the original activation kept elsewhere."""

    def masked(act: Tensor) -> Tensor:
        m = mask.to(act.device)
        if m.shape != act.shape[:2]:  # a stacked batch (repeated copies) is not what the mask describes
            raise ValueError(f"token mask {list(m.shape)} does not match the activation {list(act.shape)}")
        return torch.where(m[..., None], fn(act).to(act.dtype), act)

    return masked


@torch.no_grad()
def _spliced_output(
    loaded: LoadedModel,
    hp: HookPoint,
    batch: Batch,
    fn: Callable[[Tensor], Tensor] | AtAllPositions,
) -> Tensor:
    module = unwrap_model(loaded)
    replace = fn.fn if isinstance(fn, AtAllPositions) else only_at(batch.token_mask, fn)
    with replace_activations(module, hp, replace):
        out = run_forward(module, batch.input_ids, batch.attention_mask)
    return _model_output(loaded, out)


def _loss_and_kl(
    loaded: LoadedModel, batch: Batch, clean: Tensor, other: Tensor, convention: str = DEFAULT_EVAL_CONVENTION
) -> tuple[Tensor, Tensor]:
    """Per-position loss of ``other`` and its divergence from ``clean`` (see :class:`AblationStats`)."""
    if loaded.is_causal:
        dev = other.device
        mask = loss_positions(batch, convention).to(dev)
        targets = batch.input_ids[:, 1:].to(dev)[mask]
        loss = F.nll_loss(torch.log_softmax(other[:, :-1][mask].float(), dim=-1), targets, reduction="none")
        kl_mask = kl_positions(batch, convention).to(dev)
        logp = torch.log_softmax(other[kl_mask].float(), dim=-1)
        logq = torch.log_softmax(clean[kl_mask].float(), dim=-1)
        kl = (logq.exp() * (logq - logp)).sum(dim=-1)
        return loss, kl
    mask = batch.token_mask.to(other.device)
    a, b = other[mask].float(), clean[mask].float()
    loss = ((a - b) ** 2).mean(dim=-1)
    div = (1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-12)).clamp_min(0.0)
    return loss, div


def ablation_losses(
    loaded: LoadedModel,
    hp: HookPoint,
    batch: Batch,
    replacements: dict[str, Callable[[Tensor], Tensor] | AtAllPositions],
    clean: Tensor | None = None,
    convention: str = DEFAULT_EVAL_CONVENTION,
) -> dict[str, Tensor]:
    """Per-position ``clean_loss`` and, for each named replacement of the activation at ``hp``,
    ``{name}_loss`` and ``kl_{name}`` (KL(p_clean ‖ p_name), or the substitute without LM head).

    A replacement replaces the activation at text tokens only — special tokens (BOS, [CLS], [SEP])
    and padding keep the original activation — unless it is wrapped in :class:`AtAllPositions`."""
    if clean is None:
        _, clean = clean_forward(loaded, hp, batch)
    out: dict[str, Tensor] = {}
    clean_loss, _ = _loss_and_kl(loaded, batch, clean, clean, convention)
    out["clean_loss"] = clean_loss
    for name, fn in replacements.items():
        other = _spliced_output(loaded, hp, batch, fn)
        loss, kl = _loss_and_kl(loaded, batch, clean, other, convention)
        out[f"{name}_loss"] = loss
        out[f"kl_{name}"] = kl
    return out


def sae_splice(sae: SAE) -> Callable[[Tensor], Tensor]:
    """The replacement ``act ↦ SAE(act)`` (in the SAE's dtype and device, returned as the input's)."""

    def fn(act: Tensor) -> Tensor:
        with torch.no_grad():
            return sae(act.to(device=sae.device, dtype=sae.dtype)).to(device=act.device, dtype=act.dtype)

    return fn


def batch_ablation(
    loaded: LoadedModel,
    hp: HookPoint,
    sae: SAE,
    batch: Batch,
    return_activations: bool = False,
    convention: str = DEFAULT_EVAL_CONVENTION,
) -> dict[str, Tensor] | tuple[dict[str, Tensor], Tensor]:
    """Per-position clean / zero-ablation / SAE-reconstruction losses and KLs for one batch, ready for
    ``AblationStats.update(**d)``. With ``return_activations`` also the clean activation ``[B,T,d]``
    (captured during the clean pass, so no extra forward is needed)."""
    act, clean = clean_forward(loaded, hp, batch)
    replacements = {"zero": zero_ablation(convention), "sae": sae_splice(sae)}
    d = ablation_losses(loaded, hp, batch, replacements, clean=clean, convention=convention)
    return (d, act) if return_activations else d
