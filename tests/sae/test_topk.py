"""topk_sorted_by_index equals torch.topk + sorting the indices, bit for bit, ties and NaN included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interplab.sae.topk import topk_sorted_by_index


def _reference(pre: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, idx = torch.topk(pre, k, dim=-1)
    idx, perm = idx.sort(dim=1)
    return values.gather(1, perm), idx


def _bits(t: torch.Tensor) -> np.ndarray:
    a = t.numpy()
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("n", "d", "k"), [(1, 5, 1), (7, 5, 4), (50, 64, 8), (200, 512, 32), (30, 100, 99), (0, 10, 3)]
)
def test_topk_sorted_by_index_equals_torch(dtype: torch.dtype, n: int, d: int, k: int) -> None:
    g = torch.Generator().manual_seed(n * 1000 + d + k)
    x = torch.randn(n, d, generator=g, dtype=dtype)
    ties = (torch.randint(0, 4, (n, d), generator=g) * 0.5).to(dtype)  # the k-th value is often tied
    special = x.clone()
    if n:
        special[0, 1] = float("nan")
        special[-1, :] = 0.0
        special[n // 2, ::2] = -0.0
    neg_inf = x.clone()
    neg_inf[:, : d // 2] = float("-inf")
    for pre in (x, ties, special, neg_inf):
        values, idx = topk_sorted_by_index(pre, k)
        ref_values, ref_idx = _reference(pre, k)
        assert torch.equal(idx, ref_idx)
        assert np.array_equal(_bits(values), _bits(ref_values))
        assert bool((idx[:, 1:] > idx[:, :-1]).all())
