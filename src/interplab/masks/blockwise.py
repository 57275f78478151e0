"""Layer-by-layer pruning as in the Wanda / SparseGPT reference implementations.

Block 0's calibration inputs are captured once; for every block i, one forward pass with hooks
collects the input statistics of each linear layer, every linear layer is pruned from those
statistics, and the pruned block is run again to produce the inputs of block i+1.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import torch
from torch import nn

from interplab.common.progress import track
from interplab.masks.calibration import BlockInput, capture_block_inputs
from interplab.masks.layers import GramStats, LinearLayer, collect_input_stats, find_linear_layers
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


def prune_matrix(
    method: str, weight: torch.Tensor, stats: GramStats, sparsity: float, structure: Structure
) -> torch.Tensor:
    """Prune one [out, in] matrix with ``method`` from its input statistics."""
    if method == "magnitude":
        return magnitude_prune(weight, sparsity, structure)
    if method == "wanda":
        return wanda_prune(weight, stats.sq_norms, sparsity, structure)
    return sparsegpt_prune(weight, stats.hessian(), sparsity, structure)


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
) -> list[MatrixResult]:
    """Prune every linear layer of every block in place; ``on_matrix(layer, component, Ŵ)`` may save
    each pruned [out, in] matrix and return its file name."""
    results: list[MatrixResult] = []
    inputs = capture_block_inputs(model, blocks[0], calibration, batch_size)
    for index in track(range(len(blocks)), f"pruning ({method})", total=len(blocks)):
        block = blocks[index]
        layers: list[LinearLayer] = find_linear_layers(block)
        with collect_input_stats(layers) as stats:
            _run_block(block, inputs)
        for layer in layers:
            weight = layer.weight()
            t0 = time.perf_counter()
            pruned = prune_matrix(method, weight, stats[layer.component], sparsity, structure)
            seconds = time.perf_counter() - t0
            layer.set_weight(pruned)
            error = relative_output_error(weight, pruned, stats[layer.component].gram)
            file = on_matrix(index, layer.component, pruned) if on_matrix else None
            results.append(
                MatrixResult(
                    layer=index,
                    component=layer.component,
                    shape=list(pruned.shape),
                    sparsity=float((pruned == 0).float().mean()),
                    relative_output_error=error,
                    seconds=round(seconds, 6),
                    file=file,
                )
            )
        del stats
        outputs = _run_block(block, inputs)
        inputs = [dataclasses.replace(item, hidden=h) for item, h in zip(inputs, outputs, strict=True)]
    return results
