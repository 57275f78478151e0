"""Loss-based metrics on a bounded subset of the corpus: the ``ablation`` section (clean, SAE-spliced
and zero-ablated forward passes) and per-feature effects of removing one feature from the SAE
reconstruction. Full forward passes, so only the first ``n_tokens`` tokens (whole windows) are used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from interplab.common.atomic import write_json
from interplab.common.models import LoadedModel
from interplab.common.progress import track
from interplab.sae.collect import slice_windows
from interplab.sae.corpus import Batch, TokenWindows, iter_batches
from interplab.sae.layout import ABLATION_UNIT
from interplab.sae.metrics import (
    DEFAULT_EVAL_CONVENTION,
    AblationStats,
    ablation_losses,
    clean_forward,
    sae_splice,
    zero_ablation,
)
from interplab.sae.model import SAE

ABLATION_GROUP = 8  # feature variants per forward pass


def most_frequent_features(count: np.ndarray, n_features: int) -> list[int]:
    """The ``n_features`` most frequent features that fired (count descending, lower index first)."""
    order = np.lexsort((np.arange(count.size), -count))
    return [int(f) for f in order[:n_features] if count[f] > 0]


def save_ablation_unit(db: Path, key: dict[str, Any], result: dict[str, Any]) -> Path:
    """Store the ablation sections computed for ``key`` (what they depend on) under ``db``."""
    return write_json(Path(db) / ABLATION_UNIT, {"key": key, **result})


def load_ablation_unit(db: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The stored ablation sections when they were computed for ``key``; None when absent or stale."""
    path = Path(db) / ABLATION_UNIT
    if not path.exists():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored.get("key") != json.loads(json.dumps(key)):
        return None
    return {"ablation": stored.get("ablation"), "feature_ablation": stored.get("feature_ablation")}


def ablation_windows(windows: TokenWindows, n_tokens: int) -> TokenWindows | None:
    """The first whole windows of ``windows`` holding ``n_tokens`` tokens (None when ``n_tokens`` ≤ 0)."""
    if n_tokens <= 0:
        return None
    per_window = (
        (windows.positions >= 0).sum(dim=1)
        if windows.positions is not None
        else windows.attention_mask.sum(dim=1)
    )
    cum = torch.cumsum(per_window, 0)
    stop = int(torch.searchsorted(cum, torch.tensor(n_tokens)).item()) + 1
    return slice_windows(windows, 0, min(stop, windows.n_windows))


def _repeat_batch(batch: Batch, g: int) -> Batch:
    return Batch(
        input_ids=batch.input_ids.repeat(g, 1),
        attention_mask=batch.attention_mask.repeat(g, 1),
        text_idx=batch.text_idx.repeat(g, 1),
        positions=batch.positions.repeat(g, 1),
    )


def _feature_removed_fn(sae: SAE, feats: list[int], b: int):
    """Replacement for ``g·b`` stacked copies of a batch: copy ``g`` gets the SAE reconstruction
    with feature ``feats[g]``'s contribution ``f_i · W_dec[i]`` removed. The copies are identical, so
    the SAE encodes and decodes one of them; each copy subtracts its rank-one term."""
    idx = torch.tensor(feats, dtype=torch.long)

    def fn(act: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            one = act[:b].to(device=sae.device, dtype=sae.dtype)
            _, state = sae.normalise_input(one)
            f = sae.encode(one)  # [b, T, d_sae]
            x_hat = sae.decode(f)  # in the normalised space
            contribution = f[..., idx].movedim(-1, 0)[..., None] * sae.W_dec[idx][:, None, None, :]
            removed = sae.restore_scale(x_hat.unsqueeze(0) - contribution, state)  # [g, b, T, d_in]
            return removed.reshape(act.shape).to(device=act.device, dtype=act.dtype)

    return fn


def ablation_on_subset(
    loaded: LoadedModel,
    hp: Any,
    sae: SAE,
    windows: TokenWindows,
    batch_size: int,
    n_tokens: int,
    features: list[int],
    group: int = ABLATION_GROUP,
    convention: str = DEFAULT_EVAL_CONVENTION,
) -> dict[str, Any]:
    """The ``ablation`` section and per-feature ablation effects on the first ``n_tokens`` tokens
    (CE and KL positions of ``convention``, see :func:`interplab.sae.metrics.loss_positions`)."""
    sub = ablation_windows(windows, n_tokens)
    stats = AblationStats.for_model(loaded, convention)
    if sub is None:
        return {"ablation": None, "feature_ablation": None}
    sums = {f: np.zeros(2) for f in features}  # Σ loss, Σ kl of the feature-removed runs
    sae_sums = np.zeros(2)
    fires = dict.fromkeys(features, 0)
    n_seen = n_seen_kl = 0
    batches = list(iter_batches(sub, batch_size))
    for batch in track(batches, "ablation subset"):
        act, clean = clean_forward(loaded, hp, batch)
        losses = ablation_losses(
            loaded,
            hp,
            batch,
            {"zero": zero_ablation(convention), "sae": sae_splice(sae)},
            clean=clean,
            convention=convention,
        )
        stats.update(**losses)
        sae_sums += [float(losses["sae_loss"].double().sum()), float(losses["kl_sae"].double().sum())]
        n_seen += int(losses["sae_loss"].numel())
        n_seen_kl += int(losses["kl_sae"].numel())
        with torch.no_grad():
            f_tok = sae.encode(act[batch.token_mask.to(act.device)].to(sae.device, sae.dtype))
        if features:
            fired = (f_tok[:, features] != 0).sum(dim=0)
            for f, c in zip(features, fired.tolist(), strict=True):
                fires[f] += int(c)
        b = int(batch.input_ids.shape[0])
        reps = [1] * (clean.dim() - 1)
        for s in range(0, len(features), group):
            feats = features[s : s + group]
            g = len(feats)
            out = ablation_losses(
                loaded,
                hp,
                _repeat_batch(batch, g),
                {"abl": _feature_removed_fn(sae, feats, b)},
                clean=clean.repeat(g, *reps),
                convention=convention,
            )
            loss = out["abl_loss"].double().view(g, -1).sum(dim=1)
            kl = out["kl_abl"].double().view(g, -1).sum(dim=1)
            for j, f in enumerate(feats):
                sums[f] += [float(loss[j]), float(kl[j])]
    section = stats.result()
    section["n_windows"] = sub.n_windows
    section["note"] = (
        f"computed with full forward passes on the first {stats.n_tokens} tokens "
        f"({sub.n_windows} windows) of the corpus, not on all tokens"
    )
    n, n_kl = max(n_seen, 1), max(n_seen_kl, 1)
    sae_loss, sae_kl = sae_sums[0] / n, sae_sums[1] / n_kl
    effects = [
        {
            "feature": f,
            "loss_with_feature_removed": float(sums[f][0] / n),
            "loss_delta": float(sums[f][0] / n - sae_loss),
            "kl_with_feature_removed": float(sums[f][1] / n_kl),
            "kl_delta": float(sums[f][1] / n_kl - sae_kl),
            "n_tokens_firing": int(fires[f]),
        }
        for f in features
    ]
    feature_ablation = {
        "method": "per feature i: the activation at the hook is replaced by the SAE reconstruction "
        "minus f_i·W_dec[i]; loss_delta = mean loss with feature i removed − mean loss with the full "
        "reconstruction (same tokens); kl_delta likewise for the divergence from the clean run",
        "loss": section.get("loss"),
        "n_tokens": n_seen,
        "sae_reconstruction_loss": float(sae_loss),
        "features": effects,
    }
    return {"ablation": section, "feature_ablation": feature_ablation}
