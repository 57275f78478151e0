"""SparseGPT against independent closed-form OBS solutions and against magnitude pruning."""

from __future__ import annotations

import math

import pytest
import torch

from interplab.masks.quality import relative_output_error
from interplab.masks.selection import parse_structure
from interplab.masks.sparsegpt import sparsegpt_prune
from interplab.masks.wanda import magnitude_prune, wanda_prune

UNSTRUCTURED = parse_structure("unstructured")


def _correlated_inputs(features: int, tokens: int, seed: int) -> torch.Tensor:
    """Inputs [tokens, features] with strongly correlated features and uneven scales."""
    gen = torch.Generator().manual_seed(seed)
    latent = torch.randn(tokens, features // 4, generator=gen)
    mix = torch.randn(features // 4, features, generator=gen)
    noise = 0.1 * torch.randn(tokens, features, generator=gen)
    scale = torch.exp(torch.randn(features, generator=gen))
    return (latent @ mix + noise) * scale


def _hessian(x: torch.Tensor) -> torch.Tensor:
    return 2.0 * x.T @ x / x.shape[0]


def _damped(h: torch.Tensor) -> torch.Tensor:
    return h + 0.01 * h.diagonal().mean() * torch.eye(h.shape[0], dtype=h.dtype)


def test_nothing_to_prune_leaves_weights_unchanged() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(8, 64, generator=gen)
    zero = torch.rand(8, 64, generator=gen).flatten().argsort()[: 8 * 64 // 2]
    w.view(-1)[zero] = 0.0  # exactly half already zero: the mask picks them, no error to propagate
    h = _hessian(_correlated_inputs(64, 500, seed=1))
    assert torch.equal(sparsegpt_prune(w, h, 0.5, UNSTRUCTURED), w)


@pytest.mark.parametrize("pruned_col", [0, 4])
def test_single_pruned_weight_matches_closed_form_obs(pruned_col: int) -> None:
    gen = torch.Generator().manual_seed(3)
    cols = 10
    w = torch.randn(1, cols, generator=gen).abs() + 0.5
    w[0, pruned_col] = 0.05  # clearly the least salient, so exactly this one is pruned (⌊10·0.1⌋ = 1)
    x = _correlated_inputs(12, 400, seed=4)[:, :cols]
    h = _hessian(x)
    got = sparsegpt_prune(w, h, 0.1, UNSTRUCTURED).double()
    # Closed form: columns left of the pruned one are final; the ones right of it absorb the error
    # optimally under the damped Hessian: δ_R = H_RR⁻¹ H_Rj w_j.
    hd = _damped(h.double())
    j, right = pruned_col, list(range(pruned_col + 1, cols))
    expected = w.double().clone()
    expected[0, j] = 0.0
    delta = torch.linalg.solve(hd[right][:, right], hd[right, j] * w[0, j].double())
    expected[0, right] += delta
    assert float((expected - w.double()).abs()[0, right].max()) > 1e-3  # the update is not trivial
    assert float(got[0, j]) == 0.0
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)


def test_unstructured_sparsity_achieved_per_block() -> None:
    gen = torch.Generator().manual_seed(5)
    rows, cols, s = 12, 300, 0.6  # blocks of 128, 128, 44 columns
    w = torch.randn(rows, cols, generator=gen)
    h = _hessian(_correlated_inputs(300, 800, seed=6))
    pruned = sparsegpt_prune(w, h, s, UNSTRUCTURED)
    for start, width in ((0, 128), (128, 128), (256, 44)):
        zeros = int((pruned[:, start : start + width] == 0).sum())
        assert zeros == math.floor(rows * width * s + 1e-9)
    assert abs(float((pruned == 0).float().mean()) - s) < 0.01
    assert torch.isfinite(pruned).all()


@pytest.mark.parametrize("text", ["2:4", "4:8"])
def test_n_of_m_groups_valid(text: str) -> None:
    structure = parse_structure(text)
    gen = torch.Generator().manual_seed(7)
    w = torch.randn(16, 64, generator=gen)
    h = _hessian(_correlated_inputs(64, 400, seed=8))
    pruned = sparsegpt_prune(w, h, 0.5, structure)
    groups = (pruned == 0).reshape(16, 64 // structure.m, structure.m).sum(dim=2)
    assert bool((groups >= structure.n).all())


def test_dead_inputs_give_zero_columns_and_finite_weights() -> None:
    x = _correlated_inputs(32, 300, seed=9)
    x[:, [2, 17]] = 0.0
    w = torch.randn(8, 32, generator=torch.Generator().manual_seed(10))
    pruned = sparsegpt_prune(w, _hessian(x), 0.5, UNSTRUCTURED)
    assert torch.isfinite(pruned).all()
    assert bool((pruned[:, [2, 17]] == 0).all())


@pytest.mark.parametrize("structure", ["unstructured", "2:4"])
def test_sparsegpt_and_wanda_beat_magnitude_on_correlated_inputs(structure: str) -> None:
    struct = parse_structure(structure)
    x = _correlated_inputs(128, 2000, seed=11)
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(12))
    gram = x.T @ x
    errors = {
        "magnitude": relative_output_error(w, magnitude_prune(w, 0.5, struct), gram),
        "wanda": relative_output_error(w, wanda_prune(w, gram.diagonal(), 0.5, struct), gram),
        "sparsegpt": relative_output_error(w, sparsegpt_prune(w, _hessian(x), 0.5, struct), gram),
    }
    assert errors["sparsegpt"] < errors["wanda"] < errors["magnitude"]
