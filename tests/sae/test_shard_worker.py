"""The GPU hot-loop pieces of the shard worker, run on CPU against the CPU path: the same sparse codes
and the same reconstruction statistics."""

from __future__ import annotations

import pytest
import torch
from analyze_support import make_sae

from interplab.sae.collect import sparse_codes
from interplab.sae.metrics import ReconstructionStats
from interplab.sae.model import SAE, SAEConfig
from interplab.sae.shard_worker import add_reconstruction_terms, device_batch


def topk_sae(d_in: int = 32, d_sae: int = 64, k: int = 8) -> SAE:
    g = torch.Generator().manual_seed(3)
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k)
    return SAE.from_weights(
        cfg,
        W_enc=torch.randn(d_in, d_sae, generator=g),
        W_dec=torch.randn(d_sae, d_in, generator=g),
        b_enc=torch.randn(d_sae, generator=g) * 0.1,
        b_dec=torch.randn(d_in, generator=g) * 0.1,
    )


@pytest.mark.parametrize("sae", [topk_sae(), make_sae()], ids=["topk", "relu"])
def test_device_batch_equals_the_cpu_path(sae: SAE) -> None:
    g = torch.Generator().manual_seed(0)
    act = torch.randn(3, 7, sae.d_in, generator=g)
    mask = torch.rand(3, 7, generator=g) > 0.3
    mask[1, 0] = False  # a padding-like hole
    db = device_batch(sae, act, mask)
    db.ready.synchronize()
    rows, cols, vals = db.sparse()
    x = act[mask]
    r_ref, c_ref, v_ref, x_hat = sparse_codes(sae, x)
    torch.testing.assert_close(rows, r_ref, rtol=0, atol=0)
    torch.testing.assert_close(cols, c_ref, rtol=0, atol=0)
    torch.testing.assert_close(vals, v_ref.float(), rtol=1e-6, atol=1e-6)
    a, b = ReconstructionStats(sae.d_in), ReconstructionStats(sae.d_in)
    for _ in range(2):  # two batches: the moments merge as well
        add_reconstruction_terms(a, db.terms, db.n)
        b.update(x, x_hat)
    ra, rb = a.result(), b.result()
    assert ra.keys() == rb.keys()
    for k in ra:
        assert ra[k] == pytest.approx(rb[k], rel=1e-6, abs=1e-9), k
