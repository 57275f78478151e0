"""Wanda and magnitude selection against brute-force per-row recomputation."""

from __future__ import annotations

import math

import pytest
import torch

from interplab.common.errors import InterplabError
from interplab.masks.selection import check_method, check_sparsity, parse_structure
from interplab.masks.wanda import magnitude_prune, wanda_prune


def _weights(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Weights with ties (rounded values) and no exact zeros."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.round(torch.randn(rows, cols, generator=gen) * 4) / 4
    return torch.where(w == 0, torch.full_like(w, 0.125), w)


def _brute_pruned_indices(scores: list[float], k: int) -> set[int]:
    """The k lowest scores of one row, ties by lower index (Python's sort is stable)."""
    return set(sorted(range(len(scores)), key=lambda j: scores[j])[:k])


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.77])
def test_wanda_rows_prune_exactly_floor_cs_lowest_scores(sparsity: float) -> None:
    w = _weights(9, 23, seed=1)
    norms_sq = torch.rand(23, generator=torch.Generator().manual_seed(2)) * 5
    norms_sq[3] = norms_sq[4]  # more ties
    pruned = wanda_prune(w, norms_sq, sparsity, parse_structure("unstructured"))
    k = math.floor(23 * sparsity)
    for i in range(9):
        scores = [abs(float(w[i, j])) * math.sqrt(float(norms_sq[j])) for j in range(23)]
        zeros = {j for j in range(23) if float(pruned[i, j]) == 0.0}
        assert len(zeros) == k
        assert zeros == _brute_pruned_indices(scores, k)
        kept = [j for j in range(23) if j not in zeros]
        assert torch.equal(pruned[i, kept], w[i, kept])


def test_wanda_uses_input_norms_not_only_magnitude() -> None:
    w = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    norms_sq = torch.tensor([100.0, 1.0, 1.0, 0.01])
    pruned = wanda_prune(w, norms_sq, 0.5, parse_structure("unstructured"))
    # scores: 10, 2, 3, 0.4 → prune inputs 3 and 1
    assert pruned.tolist() == [[1.0, 0.0, 3.0, 0.0]]
    assert magnitude_prune(w, 0.5, parse_structure("unstructured")).tolist() == [[0.0, 0.0, 3.0, 4.0]]


@pytest.mark.parametrize("text", ["2:4", "4:8", "1:4"])
def test_wanda_and_magnitude_n_of_m(text: str) -> None:
    structure = parse_structure(text)
    n, m = structure.n, structure.m
    w = _weights(6, 32, seed=3)
    norms_sq = torch.rand(32, generator=torch.Generator().manual_seed(4))
    for pruned, score in (
        (wanda_prune(w, norms_sq, 0.5, structure), w.abs() * norms_sq.sqrt()),
        (magnitude_prune(w, 0.5, structure), w.abs()),
    ):
        for i in range(6):
            for g in range(0, 32, m):
                group = list(range(g, g + m))
                zeros = {j for j in group if float(pruned[i, j]) == 0.0}
                assert len(zeros) == n
                expected = {g + j for j in _brute_pruned_indices([float(score[i, j]) for j in group], n)}
                assert zeros == expected


def test_magnitude_rows_prune_exactly_floor_cs() -> None:
    w = _weights(5, 17, seed=5)
    pruned = magnitude_prune(w, 0.6, parse_structure("unstructured"))
    for i in range(5):
        zeros = {j for j in range(17) if float(pruned[i, j]) == 0.0}
        assert zeros == _brute_pruned_indices([abs(float(x)) for x in w[i]], math.floor(17 * 0.6))


def test_nm_needs_a_multiple_of_m_inputs() -> None:
    with pytest.raises(InterplabError, match="not a multiple of 4"):
        magnitude_prune(torch.ones(2, 6), 0.5, parse_structure("2:4"))


@pytest.mark.parametrize("text", ["3:2", "0:4", "2:2", "2-4", "a:b", "", "2:4:8"])
def test_malformed_structure(text: str) -> None:
    with pytest.raises(InterplabError, match="--structure"):
        parse_structure(text)


def test_structure_parsing() -> None:
    assert parse_structure("unstructured").is_nm is False
    s = parse_structure(" 4:8 ")
    assert (s.n, s.m, s.label, s.sparsity) == (4, 8, "4:8", 0.5)


@pytest.mark.parametrize("value", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_sparsity_outside_open_interval(value: float) -> None:
    with pytest.raises(InterplabError, match="strictly between 0 and 1"):
        check_sparsity(value)


def test_unknown_method_lists_choices() -> None:
    with pytest.raises(InterplabError, match="magnitude, wanda, sparsegpt"):
        check_method("obs")
