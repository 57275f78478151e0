"""``interplab masks prune``: prune a Hugging Face model layer by layer with magnitude, Wanda or
SparseGPT and write the pruned matrices, a JSON + Markdown report and a manifest.

Everything is validated before anything is written; the results are assembled in a hidden staging
folder beside the target and renamed onto ``OUT/<method>`` only once complete, so a failure never
leaves partial files behind.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch

from interplab.common.atomic import save_tensor, staged_folder, umask_files, write_json
from interplab.common.errors import InterplabError, one_of
from interplab.common.markdown_html import write_markdown_report
from interplab.common.models import LoadedModel, find_blocks, load_model
from interplab.common.output import output_dir
from interplab.masks.blockwise import MatrixResult, prune_blocks
from interplab.masks.calibration import CalibrationSet, build_calibration
from interplab.masks.layers import find_linear_layers
from interplab.masks.mask_set import REPORT_JSON, REPORT_MD, report_summary
from interplab.masks.owl import DEFAULT_LAMBDA, DEFAULT_M, PROFILES, check_owl_lambda, owl_profile
from interplab.masks.prune_report import report_markdown
from interplab.masks.quality import QualityResult, compare, snapshot
from interplab.masks.selection import (
    MAGNITUDE_SCOPES,
    Structure,
    check_method,
    check_sparsity,
    parse_structure,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PruneResult:
    """What ``prune_model`` did and where it wrote it."""

    out_dir: Path
    method: str
    model: str
    sparsity: float
    structure: str
    matrices: list[MatrixResult]
    quality: QualityResult
    seconds: float
    report: dict[str, Any]

    @property
    def mean_relative_output_error(self) -> float:
        return float(sum(m.relative_output_error for m in self.matrices) / max(len(self.matrices), 1))


def _check_positive(value: int, flag: str, minimum: int = 1) -> int:
    if not isinstance(value, int) or value < minimum:
        raise InterplabError(f"{flag} {value!r}: expected an integer ≥ {minimum}")
    return value


def _max_positions(config: Any) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _check_model(loaded: LoadedModel, structure: Structure, seqlen: int) -> tuple[str, torch.nn.ModuleList]:
    """Blocks of the model; every block has linear layers compatible with the N:M structure."""
    path, blocks = find_blocks(loaded.model)
    for index, block in enumerate(blocks):
        layers = find_linear_layers(block)
        if not layers:
            raise InterplabError(
                f"{loaded.name}: block {index} ({path}.{index}) holds no linear layers to prune"
            )
        if structure.is_nm:
            for layer in layers:
                if layer.in_features % structure.m:
                    raise InterplabError(
                        f"--structure {structure.label}: layer{index}-{layer.component} has "
                        f"{layer.in_features} inputs, not a multiple of {structure.m}"
                    )
    limit = _max_positions(loaded.config)
    if limit is not None and seqlen > limit:
        raise InterplabError(f"--seqlen {seqlen}: {loaded.name} accepts at most {limit} positions")
    return path, blocks


def prune_model(
    model: str | Path = "minilm",
    *,
    out: str | Path,
    method: str = "wanda",
    sparsity: float = 0.5,
    structure: str = "unstructured",
    data: str | Path = "docs",
    nsamples: int = 128,
    seqlen: int = 128,
    seed: int = 0,
    save_model: bool = False,
    eval_samples: int = 16,
    batch_size: int = 8,
    sparsity_profile: str = "uniform",
    owl_lambda: float = DEFAULT_LAMBDA,
    owl_m: float = DEFAULT_M,
    magnitude_scope: str = "row",
    sparsegpt_reference_count: bool = False,
) -> PruneResult:
    """Prune every linear layer of ``model``'s transformer blocks and write ``out/<method>/``.

    For an N:M ``structure`` the sparsity is n/m and ``sparsity`` is ignored beyond validation.
    ``sparsity_profile="owl"`` gives each block its OWL sparsity (mean = ``sparsity``);
    ``magnitude_scope="matrix"`` is the published per-matrix magnitude baseline;
    ``sparsegpt_reference_count`` prunes SparseGPT blocks with the reference's ``<=`` threshold.
    """
    t_start = time.perf_counter()
    method = check_method(method)
    sparsity = check_sparsity(sparsity)
    struct = parse_structure(structure)
    _check_positive(nsamples, "--nsamples")
    _check_positive(seqlen, "--seqlen", 2)
    _check_positive(eval_samples, "--eval-samples")
    _check_positive(batch_size, "--batch-size")
    one_of(sparsity_profile, PROFILES, "--sparsity-profile")
    one_of(magnitude_scope, MAGNITUDE_SCOPES, "--magnitude-scope")
    if sparsity_profile == "owl":
        if struct.is_nm:
            raise InterplabError(
                f"--sparsity-profile owl: needs unstructured sparsity, not --structure {struct.label}"
            )
        check_owl_lambda(owl_lambda, sparsity)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InterplabError(f"--out {out}: exists and is not a folder")
    target = struct.sparsity if struct.is_nm else sparsity
    if struct.is_nm and abs(target - sparsity) > 1e-9:
        log.info(
            "--structure %s implies sparsity %.3f; --sparsity %.3f is ignored", struct.label, target, sparsity
        )

    torch.manual_seed(seed)
    loaded = load_model(model)
    block_path, blocks = _check_model(loaded, struct, seqlen)
    calib = build_calibration(
        loaded.tokenizer,
        data,
        nsamples=nsamples,
        seqlen=seqlen,
        seed=seed,
        n_eval=eval_samples,
        encoder=not loaded.is_causal,
    )
    arguments = {
        "model": str(model),
        "method": method,
        "sparsity": sparsity,
        "structure": struct.label,
        "data": str(data),
        "nsamples": nsamples,
        "seqlen": seqlen,
        "seed": seed,
        "save_model": save_model,
        "eval_samples": eval_samples,
        "batch_size": batch_size,
        "sparsity_profile": sparsity_profile,
        "owl_lambda": owl_lambda,
        "owl_m": owl_m,
        "magnitude_scope": magnitude_scope,
        "sparsegpt_reference_count": sparsegpt_reference_count,
        "out": str(out),
    }
    with staged_folder(out, method) as staging, output_dir(staging, "masks prune", arguments) as od:
        with od.timed("quality_before"):
            before = snapshot(loaded.model, calib.held_out, loaded.is_causal, batch_size)

        def save(layer: int, component: str, pruned: torch.Tensor) -> str:
            name = f"layer{layer}-{component}.pt"
            save_tensor(od.file(name), pruned.contiguous())
            return name

        profile = None
        if sparsity_profile == "owl":
            with od.timed("owl"):
                profile = owl_profile(
                    loaded.model,
                    blocks,
                    calib.calibration,
                    target=target,
                    lam=owl_lambda,
                    m=owl_m,
                    batch_size=batch_size,
                )
        with od.timed("prune"):
            matrices = prune_blocks(
                loaded.model,
                blocks,
                calib.calibration,
                method=method,
                sparsity=target,
                structure=struct,
                batch_size=batch_size,
                on_matrix=save,
                block_sparsity=profile.sparsities if profile else None,
                magnitude_scope=magnitude_scope,
                reference_count=sparsegpt_reference_count,
            )
        with od.timed("quality_after"):
            after = snapshot(loaded.model, calib.held_out, loaded.is_causal, batch_size)
        quality = compare(before, after, loaded.is_causal)
        if save_model:
            with od.timed("save_model"):
                model_dir = od.path / "model"
                loaded.model.save_pretrained(model_dir)
                loaded.tokenizer.save_pretrained(model_dir)
                for path in umask_files(model_dir):
                    od.record(path)
        report = build_report(
            loaded,
            block_path,
            len(blocks),
            method,
            target,
            struct,
            calib,
            arguments,
            matrices,
            quality,
            time.perf_counter() - t_start,
        )
        report["sparsity_profile"] = profile.record() if profile else {"profile": "uniform"}
        report["conventions"] = {
            "magnitude_scope": magnitude_scope,
            "sparsegpt_count": "reference (<= k-th saliency per block)"
            if sparsegpt_reference_count
            else "exact (floor(rows*128*s) per block)",
        }
        report["quality"]["context_length"] = seqlen
        write_json(od.file(REPORT_JSON), report)
        write_markdown_report(od.file(REPORT_MD), report_markdown(report))
    final = out / method
    log.info("wrote %s", final)
    return PruneResult(
        out_dir=final,
        method=method,
        model=str(model),
        sparsity=target,
        structure=struct.label,
        matrices=matrices,
        quality=quality,
        seconds=time.perf_counter() - t_start,
        report=report,
    )


def build_report(
    loaded: LoadedModel,
    block_path: str,
    n_blocks: int,
    method: str,
    sparsity: float,
    structure: Structure,
    calib: CalibrationSet,
    arguments: dict[str, Any],
    matrices: list[MatrixResult],
    quality: QualityResult,
    seconds: float,
) -> dict[str, Any]:
    """The content of ``pruning_report.json``."""
    return {
        "command": "masks prune",
        "model": {
            "name": loaded.name,
            "source": loaded.source,
            "architecture": type(loaded.model).__name__,
            "is_causal": loaded.is_causal,
            "block_path": block_path,
            "n_blocks": n_blocks,
        },
        "method": method,
        "structure": structure.label,
        "sparsity": sparsity,
        "calibration": {
            "data": arguments["data"],
            "nsamples": arguments["nsamples"],
            "seqlen": arguments["seqlen"],
            "seed": arguments["seed"],
            "tokens_available": calib.tokens_available,
            "texts_used": calib.texts_used,
        },
        "matrices": [dataclasses.asdict(m) for m in matrices],
        "summary": report_summary(matrices, measured=True, total_seconds=seconds),
        "quality": dataclasses.asdict(quality),
    }
