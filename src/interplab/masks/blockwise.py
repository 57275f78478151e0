"""Layer-by-layer pruning as in the Wanda / SparseGPT reference implementations.

Block 0's calibration inputs are captured once; for every block i, one forward pass with hooks
collects the input statistics of each linear layer, every linear layer is pruned from those
statistics, and the pruned block is run again to produce the inputs of block i+1.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from interplab.common.progress import track
from interplab.masks.calibration import BlockInput, capture_block_inputs
from interplab.masks.layers import GramStats, LinearLayer, NormStats, collect_input_stats, find_linear_layers
from interplab.masks.output_error import collect_output_errors
from interplab.masks.quality import relative_output_error
from interplab.masks.selection import Structure
from interplab.masks.sparsegpt import sparsegpt_prune
from interplab.masks.wanda import magnitude_prune, wanda_prune

log = logging.getLogger(__name__)


@dataclasses.dataclass
class MatrixResult:
    """One pruned matrix: where it lives, its shape, achieved sparsity, error and pruning time."""

    layer: int
    component: str
    shape: list[int]
    sparsity: float
    relative_output_error: float
    seconds: float
    file: str | None = None


GRAM_METHODS = ("sparsegpt",)  # the others need only the per-input squared norms


def prune_matrix(
    method: str,
    weight: torch.Tensor,
    stats: GramStats | NormStats,
    sparsity: float,
    structure: Structure,
    *,
    magnitude_scope: str = "row",
    reference_count: bool = False,
) -> torch.Tensor:
    """Prune one [out, in] matrix with ``method`` from its input statistics."""
    if method == "magnitude":
        return magnitude_prune(weight, sparsity, structure, magnitude_scope)
    if method == "wanda":
        return wanda_prune(weight, stats.sq_norms, sparsity, structure)
    assert isinstance(stats, GramStats)
    return sparsegpt_prune(weight, stats.hessian(), sparsity, structure, reference_count=reference_count)


def _run_block(block: nn.Module, inputs: list[BlockInput]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [item.call(block) for item in inputs]


def prune_blocks(
    model: nn.Module,
    blocks: nn.ModuleList,
    calibration: torch.Tensor,
    *,
    method: str,
    sparsity: float,
    structure: Structure,
    batch_size: int = 8,
    on_matrix: Callable[[int, str, torch.Tensor], str | None] | None = None,
    block_sparsity: Sequence[float] | None = None,
    magnitude_scope: str = "row",
    reference_count: bool = False,
) -> list[MatrixResult]:
    """Prune every linear layer of every block in place; ``on_matrix(layer, component, Ŵ)`` may save
    each pruned [out, in] matrix and return its file name. ``block_sparsity`` overrides ``sparsity``
    per block (OWL).

    SparseGPT accumulates each layer's in×in Gram matrix (its Hessian, also used for the exact
    output error); magnitude and Wanda accumulate only the per-input squared norms (O(in)) and
    measure the output error in one more forward pass of the unpruned block.
    """
    results: list[MatrixResult] = []
    gram = method in GRAM_METHODS
    inputs = capture_block_inputs(model, blocks[0], calibration, batch_size)
    for index in track(range(len(blocks)), f"pruning ({method})", total=len(blocks)):
        block = blocks[index]
        target = sparsity if block_sparsity is None else float(block_sparsity[index])
        layers: list[LinearLayer] = find_linear_layers(block)
        with collect_input_stats(layers, gram=gram) as stats:
            _run_block(block, inputs)
        pruned: dict[str, torch.Tensor] = {}
        seconds: dict[str, float] = {}
        errors: dict[str, float] = {}
        for layer in layers:
            weight = layer.weight()
            t0 = time.perf_counter()
            pruned[layer.component] = prune_matrix(
                method,
                weight,
                stats[layer.component],
                target,
                structure,
                magnitude_scope=magnitude_scope,
                reference_count=reference_count,
            )
            seconds[layer.component] = time.perf_counter() - t0
            entry = stats[layer.component]
            if isinstance(entry, GramStats):
                errors[layer.component] = relative_output_error(weight, pruned[layer.component], entry.gram)
                layer.set_weight(pruned[layer.component])
        del stats
        if not gram:
            with collect_output_errors(layers, pruned) as error_stats:
                _run_block(block, inputs)
            errors = {name: e.relative_error for name, e in error_stats.items()}
            for layer in layers:
                layer.set_weight(pruned[layer.component])
        for layer in layers:
            matrix = pruned.pop(layer.component)
            file = on_matrix(index, layer.component, matrix) if on_matrix else None
            results.append(
                MatrixResult(
                    layer=index,
                    component=layer.component,
                    shape=list(matrix.shape),
                    sparsity=float((matrix == 0).float().mean()),
                    relative_output_error=errors[layer.component],
                    seconds=round(seconds[layer.component], 6),
                    file=file,
                )
            )
        outputs = _run_block(block, inputs)
        inputs = [dataclasses.replace(item, hidden=h) for item, h in zip(inputs, outputs, strict=True)]
    return results
