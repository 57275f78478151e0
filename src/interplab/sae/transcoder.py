"""The quick check of a transcoder (an SAE whose ``hook_name_out`` differs from its input hook).

Per batch: the input ``x`` is read at the input hook and the true output ``y`` at the output hook
(e.g. an MLP's input and output); features are ``f = encode(x)`` and the prediction is
``ŷ = decode(f) [+ x W_skipᵀ]``. ``sparsity`` / ``dead_features`` describe ``f``;
``reconstruction`` compares ``ŷ`` with ``y`` (the same formulas as for an SAE, with ``y`` in place of
``x``); ``ablation`` splices ``ŷ`` in at the *output* hook — at text tokens, as for SAEs — so loss
recovered is measured against the true output (zero ablation = the output hook set to zero).
Nothing changes before the output hook, so the input captured in the clean pass is the input the
spliced pass sees.
"""

from __future__ import annotations

from typing import Any

import torch

from interplab.common.errors import InterplabError
from interplab.common.models import LoadedModel
from interplab.common.progress import track
from interplab.sae.corpus import TokenWindows, iter_batches, n_batches
from interplab.sae.hooks import HookPoint, capture_activations, hook_width, resolve_hook
from interplab.sae.metrics import (
    DEFAULT_EVAL_CONVENTION,
    AblationStats,
    ReconstructionStats,
    SparsityStats,
    ablation_losses,
    clean_forward,
    zero_ablation,
)
from interplab.sae.model import SAE


def is_transcoder(sae: SAE) -> bool:
    return bool(sae.cfg.hook_name_out)


def output_hook(loaded: LoadedModel, sae: SAE, hp_in: HookPoint) -> HookPoint:
    """The output hook from the config (in the input hook's layer when the config gives only a kind),
    checked against ``d_out``."""
    name = str(sae.cfg.hook_name_out)
    hp = resolve_hook(loaded, name, None if name.startswith("blocks.") else hp_in.layer)
    width = hook_width(loaded, hp)
    if width != sae.cfg.out_width:
        raise InterplabError(
            f"transcoder d_out={sae.cfg.out_width} does not match the width {width} of the model's "
            f"activation at {hp.name}"
        )
    return hp


def run_transcoder_pass(
    loaded: LoadedModel,
    hp_in: HookPoint,
    hp_out: HookPoint,
    sae: SAE,
    windows: TokenWindows,
    batch_size: int = 8,
    ablation: bool = True,
    eval_convention: str = DEFAULT_EVAL_CONVENTION,
) -> dict[str, dict[str, Any]]:
    """One pass over ``windows``: the quick-check sections of a transcoder (see module docstring)."""
    sparsity = SparsityStats(sae.d_sae)
    recon = ReconstructionStats(sae.cfg.out_width)
    abl = AblationStats.for_model(loaded, eval_convention)
    for batch in track(
        iter_batches(windows, batch_size), "transcoder check", total=n_batches(windows, batch_size)
    ):
        x = capture_activations(loaded, hp_in, batch.input_ids, batch.attention_mask, stop=True)
        if ablation:
            y, clean = clean_forward(loaded, hp_out, batch)
        else:
            y = capture_activations(loaded, hp_out, batch.input_ids, batch.attention_mask, stop=True)
        with torch.no_grad():
            f, y_hat = sae.encode_decode(x.to(device=sae.device))
        mask = batch.token_mask.to(x.device)
        sparsity.update(f[mask])
        recon.update(y[mask], y_hat[mask])
        if ablation:

            def predicted(act: torch.Tensor, y_hat: torch.Tensor = y_hat) -> torch.Tensor:
                return y_hat.to(device=act.device, dtype=act.dtype)

            replacements = {"zero": zero_ablation(eval_convention), "sae": predicted}
            abl.update(
                **ablation_losses(
                    loaded, hp_out, batch, replacements, clean=clean, convention=eval_convention
                )
            )
    sections = sparsity.result()
    sections["reconstruction"] = {
        **recon.result(),
        "compared": f"transcoder prediction vs the true activation at {hp_out.name} (input read at {hp_in.name})",
    }
    if ablation:
        sections["ablation"] = {**abl.result(), "spliced_at": hp_out.name}
    return sections


def analysis_sections(
    loaded: LoadedModel,
    hp_in: HookPoint,
    sae: SAE,
    windows: TokenWindows,
    ablation_windows: TokenWindows | None,
    batch_size: int,
    eval_convention: str = DEFAULT_EVAL_CONVENTION,
) -> dict[str, Any]:
    """For ``sae analyze``: the transcoder's ``reconstruction`` (prediction vs true output, all tokens)
    and ``ablation`` (prediction spliced at the output hook, on the ablation subset) sections."""
    hp_out = output_hook(loaded, sae, hp_in)
    rec = run_transcoder_pass(loaded, hp_in, hp_out, sae, windows, batch_size, ablation=False)[
        "reconstruction"
    ]
    abl = None
    if ablation_windows is not None:
        sub = run_transcoder_pass(
            loaded,
            hp_in,
            hp_out,
            sae,
            ablation_windows,
            batch_size,
            ablation=True,
            eval_convention=eval_convention,
        )
        abl = {**sub["ablation"], "n_windows": ablation_windows.n_windows}
    return {"reconstruction": rec, "ablation": abl, "feature_ablation": None}
