"""Co-occurrence speed of ``interplab.sae.cooccurrence`` against a dense ``numpy.corrcoef``, in one run.

Synthetic binary firing for ``d_sae`` = 4096 features over 100k tokens with heavy-tailed feature
densities and ~48 active features per token before de-duplication (L0 ≈ 30–50, like a trained
TopK/JumpReLU SAE). Ours: the counts ``C = FᵀF`` accumulated shard by shard exactly as the analysis
does (32k-token shards) + the symmetric matrix + phi for every pair. Baseline: ``np.corrcoef`` of the
dense ``[tokens, 4096]`` float64 firing matrix (what the old scripts' dense path amounts to). The
corrcoef cost is linear in the number of tokens, so by default it is timed on a 20k-token subset
and extrapolated linearly (``--corrcoef-tokens`` to change; ``--corrcoef-tokens 100000`` times it on
all tokens, which needs ~10 GB of RAM). Results are checked against corrcoef on the subset.
Target: ≥ 100× faster.

Run: ``.venv/bin/python benchmarks/bench_cooccurrence.py``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from interplab.sae.cooccurrence import CooccurrenceCounts, dense_metric


def synthetic_firing(n_tokens: int, d: int, l0: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(token, feature) rows of a random firing matrix with Pareto-distributed feature densities."""
    rng = np.random.default_rng(seed)
    p = rng.pareto(1.0, d) + 0.05
    p /= p.sum()
    feats = rng.choice(d, size=(n_tokens, l0), p=p)
    feats.sort(axis=1)
    keep = np.ones_like(feats, dtype=bool)
    keep[:, 1:] = feats[:, 1:] != feats[:, :-1]  # de-duplicate within a token
    tokens = np.broadcast_to(np.arange(n_tokens)[:, None], feats.shape)
    return tokens[keep].astype(np.int64), feats[keep].astype(np.int64)


def ours(tokens: np.ndarray, feats: np.ndarray, n_tokens: int, d: int, shard: int = 32_768) -> np.ndarray:
    acc = CooccurrenceCounts(d)
    starts = np.searchsorted(tokens, np.arange(0, n_tokens, shard))
    ends = [*starts[1:], tokens.size]
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        lo = i * shard
        acc.update(tokens[a:b], feats[a:b], min(shard, n_tokens - lo), lo)
    return dense_metric(acc.counts(), n_tokens, "phi")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--l0", type=int, default=48, help="features drawn per token (before de-duplication)")
    ap.add_argument("--corrcoef-tokens", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n, d = args.tokens, args.d_sae
    tokens, feats = synthetic_firing(n, d, args.l0)
    print(f"firing matrix: {n} tokens × {d} features, mean L0 {tokens.size / n:.1f}, nnz {tokens.size}")

    ours(tokens[:1000], feats[:1000], 1000, d)  # compile the kernel (cached on disk afterwards)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        phi = ours(tokens, feats, n, d)
        times.append(time.perf_counter() - t0)
    t_ours = min(times)

    m = min(args.corrcoef_tokens, n)
    dense = np.zeros((m, d), np.float64)
    sel = tokens < m
    dense[tokens[sel], feats[sel]] = 1.0
    t0 = time.perf_counter()
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.corrcoef(dense.T)
    t_sub = time.perf_counter() - t0
    t_corr = t_sub * n / m
    phi_sub = ours(tokens[sel], feats[sel], m, d)
    err = float(np.abs(phi_sub - np.nan_to_num(ref, nan=0.0)).max())
    assert err < 1e-5, f"phi differs from corrcoef by {err}"
    del dense, ref
    how = "measured" if m == n else f"measured on {m} tokens ({t_sub:.2f}s), extrapolated ×{n / m:.1f}"
    print(
        f"ours (counts by shard + phi): {t_ours:.3f}s (best of {args.repeats}: {', '.join(f'{t:.3f}' for t in times)})"
    )
    print(f"np.corrcoef dense float64:    {t_corr:.2f}s ({how})")
    print(f"max |phi − corrcoef| on the subset: {err:.2e}; phi matrix {phi.shape}")
    ratio = t_corr / t_ours
    print(f"speed-up: {ratio:.0f}× (target ≥ 100×) {'PASS' if ratio >= 100 else 'FAIL'}")


if __name__ == "__main__":
    main()
