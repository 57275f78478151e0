"""The quick check: one pass over a corpus → sparsity, dead features, reconstruction and ablation."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch

from interplab.common.atomic import write_json
from interplab.common.errors import InterplabError, one_of
from interplab.common.models import LoadedModel, load_model
from interplab.common.progress import track
from interplab.sae.corpus import (
    TokenWindows,
    check_context_size,
    iter_batches,
    load_windows,
    n_batches,
    validate_run_args,
)
from interplab.sae.formats import load_sae
from interplab.sae.hooks import HookPoint, capture_activations, resolve_sae_hook
from interplab.sae.metrics import (
    DEFAULT_EVAL_CONVENTION,
    EVAL_CONVENTIONS,
    AblationStats,
    ReconstructionStats,
    SparsityStats,
    batch_ablation,
)
from interplab.sae.model import SAE

log = logging.getLogger(__name__)

SECTIONS = ("sparsity", "dead_features", "reconstruction", "ablation")


@dataclasses.dataclass
class QuickCheckResult:
    """The quick-check sections (``sparsity``, ``dead_features``, ``reconstruction``, ``ablation``,
    ``run``) and where the JSON went."""

    sections: dict[str, dict[str, Any]]
    output_json: Path | None = None
    seconds: float = 0.0

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self.sections[key]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.sections)


def run_pass(
    loaded: LoadedModel,
    hp: HookPoint,
    sae: SAE,
    windows: TokenWindows,
    batch_size: int = 8,
    ablation: bool = True,
    eval_convention: str = DEFAULT_EVAL_CONVENTION,
) -> dict[str, dict[str, Any]]:
    """One pass over ``windows``: the four quick-check sections (CE / KL positions of
    ``eval_convention``, see :func:`interplab.sae.metrics.loss_positions`)."""
    sparsity = SparsityStats(sae.d_sae)
    recon = ReconstructionStats(sae.d_in)
    abl = AblationStats.for_model(loaded, eval_convention)
    for batch in track(
        iter_batches(windows, batch_size), "SAE quick check", total=n_batches(windows, batch_size)
    ):
        if ablation:
            losses, act = batch_ablation(
                loaded, hp, sae, batch, return_activations=True, convention=eval_convention
            )
            abl.update(**losses)
        else:
            act = capture_activations(loaded, hp, batch.input_ids, batch.attention_mask, stop=True)
        x = act[batch.token_mask.to(act.device)]
        with torch.no_grad():
            f, x_hat = sae.encode_decode(x.to(device=sae.device))
        sparsity.update(f)
        recon.update(x, x_hat)
    sections = sparsity.result()
    sections["reconstruction"] = recon.result()
    if ablation:
        sections["ablation"] = abl.result()
    return sections


def quick_check(
    model: str = "minilm",
    sae_path: str | Path = "",
    layer: int | None = None,
    hook: str | None = None,
    data: str = "docs",
    batch_size: int = 8,
    max_tokens: int | None = None,
    context_size: int = 128,
    output_json: str | Path | None = None,
    ablation: bool = True,
    dtype: str = "float32",
    eval_convention: str = DEFAULT_EVAL_CONVENTION,
) -> QuickCheckResult:
    """Load ``model`` and the SAE at ``sae_path``, run ``data`` through once and return (and with
    ``output_json`` write) the sections ``sparsity``, ``dead_features``, ``reconstruction``,
    ``ablation`` and ``run``."""
    t0 = time.perf_counter()
    validate_run_args(batch_size, context_size, max_tokens)
    one_of(eval_convention, EVAL_CONVENTIONS, "--eval-convention")
    if not str(sae_path):
        raise InterplabError("--sae is required: a folder holding an SAE")
    if output_json is not None and Path(output_json).is_dir():
        raise InterplabError(f"{output_json}: --output-json is a folder; expected a file path")
    sae = load_sae(sae_path, dtype=dtype)
    loaded = load_model(model)
    hp = resolve_sae_hook(loaded, sae, hook, layer)
    check_context_size(loaded, context_size)
    windows = load_windows(loaded.tokenizer, data, context_size=context_size, max_tokens=max_tokens)
    log.info(
        "quick check: %s at %s, %d tokens in %d windows (%d empty texts skipped)",
        loaded.name,
        hp.name,
        windows.n_tokens,
        windows.n_windows,
        windows.n_empty_texts,
    )
    hp_out = None
    if sae.cfg.hook_name_out:  # a transcoder: features from hp, prediction spliced at hp_out
        from interplab.sae.transcoder import output_hook, run_transcoder_pass

        hp_out = output_hook(loaded, sae, hp)
        sections = run_transcoder_pass(
            loaded, hp, hp_out, sae, windows, batch_size, ablation=ablation, eval_convention=eval_convention
        )
    else:
        sections = run_pass(
            loaded,
            hp,
            sae,
            windows,
            batch_size=batch_size,
            ablation=ablation,
            eval_convention=eval_convention,
        )
    sections["run"] = {
        "model": str(model),
        "sae": str(sae_path),
        "sae_format": sae.cfg.source_format,
        "architecture": sae.cfg.architecture,
        "k": sae.cfg.k,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "hook": hp.name,
        "layer": hp.layer,
        "hook_source": "--hook" if hook is not None else sae.cfg.extra.get("hook_source", "SAE config"),
        "hook_out": None if hp_out is None else hp_out.name,
        "data": str(data),
        "batch_size": int(batch_size),
        "has_lm_head": loaded.is_causal,
        "eval_convention": eval_convention,
        **windows.summary(),
    }
    seconds = time.perf_counter() - t0
    sections["run"]["seconds"] = round(seconds, 3)
    out = None
    if output_json is not None:
        out = write_json(output_json, sections)
    return QuickCheckResult(sections=sections, output_json=out, seconds=seconds)


def render_tables(result: QuickCheckResult | dict[str, dict[str, Any]], console: Any = None) -> None:
    """Print the sections as rich tables (lists such as per-feature frequencies are summarised)."""
    from rich.table import Table

    from interplab.common.console import no_truncation, output_console

    sections = result.sections if isinstance(result, QuickCheckResult) else result
    console = console or output_console()
    for name in ("run", *SECTIONS):
        if name not in sections:
            continue
        table = Table(title=name, show_header=True, header_style="bold")
        table.add_column("key")
        table.add_column("value", justify="right")
        for key, value in sections[name].items():
            if isinstance(value, list):
                shown = f"[{len(value)} values]" if len(value) > 10 else str(value)
            elif isinstance(value, float):
                shown = f"{value:.6g}"
            else:
                shown = str(value)
            table.add_row(key, shown)
        console.print(no_truncation(table))
