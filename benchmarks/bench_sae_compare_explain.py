"""``sae compare`` and ``sae explain`` at SAE scale, on synthetic analysis folders, in one run.

Two random SAEs of ``--d-sae`` (16,384) features on ``d_in`` = 384, B a feature-permuted, slightly
perturbed copy of A, and activation databases of ``--tokens`` (100,000) shared tokens with ``--k``
(32) active features per token (B's activations: A's, permuted, plus noise). Measured:

* ``sae compare A B`` (blocked best-partner search above 8,192 features; decoder cosine and
  activation correlation both ways): wall time and peak RSS of the process; the baseline is the
  same comparison on decoder cosine only (what matching without the databases costs), so the ratio
  says what the activation evidence adds;
* ``sae explain`` with the built-in explainer over every feature (no embedding score): features per
  second; the baseline reads each feature's examples with one database query per feature
  (``ActivationDatabase.get_feature_activations``), timed on ``--baseline-features`` features and
  extrapolated. Goal: the whole SAE in under 10 minutes.

Numbers measured on a shared, loaded machine vary between runs.

Run: ``.venv/bin/python benchmarks/bench_sae_compare_explain.py [--d-sae 16384 --tokens 100000]``
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from interplab.sae.activation_db import ACTIVATIONS_SCHEMA, TOKENS_SCHEMA, ActivationDBWriter
from interplab.sae.formats import save_sae
from interplab.sae.model import SAE, SAEConfig

D_IN = 384
WORDS = [f"w{i}" for i in range(2000)] + [str(i) for i in range(100)] + list(".,;:()[]{}")


def make_sae(W_dec: torch.Tensor) -> SAE:
    d_sae, d_in = W_dec.shape
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=32, hook_name="blocks.3.hook_resid_post")
    return SAE.from_weights(cfg, W_enc=W_dec.T.contiguous(), W_dec=W_dec)


def build(root: Path, d: int, n: int, k: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    W = torch.nn.functional.normalize(
        torch.randn(d, D_IN, generator=torch.Generator().manual_seed(seed)), dim=1
    )
    perm = rng.permutation(d)
    Wb = W[torch.from_numpy(perm)] + 0.02 * torch.randn(d, D_IN)
    save_sae(make_sae(W), root / "sae_a")
    save_sae(make_sae(Wb), root / "sae_b")
    token_ids = rng.integers(0, len(WORDS), n)
    # features tied to tokens, so rules exist to be found: feature f prefers token f % len(WORDS)
    feats = np.empty((n, k), np.int64)
    feats[:, 0] = (token_ids * 7) % d
    feats[:, 1:] = rng.integers(0, d, (n, k - 1))
    feats.sort(axis=1)
    keep = np.ones_like(feats, bool)
    keep[:, 1:] = np.diff(feats, axis=1) != 0  # a repeated feature counts once
    vals = rng.random((n, k)).astype(np.float32) + 0.1
    inverse = np.argsort(perm)
    a, b = root / "an_a", root / "an_b"
    fa, va = feats[keep], vals[keep]
    per_row = keep.sum(1)
    write_db_flat(a, root / "sae_a", token_ids, fa, va, per_row, d)
    write_db_flat(
        b, root / "sae_b", token_ids, inverse[fa], va * (1 + 0.1 * rng.standard_normal(va.size)), per_row, d
    )
    return a, b


def write_db_flat(
    root: Path,
    sae_dir: Path,
    token_ids: np.ndarray,
    f: np.ndarray,
    v: np.ndarray,
    per_row: np.ndarray,
    d: int,
) -> None:
    """One-shard activation database: the active (feature, value) pairs of each token, row by row."""
    n = token_ids.size
    rows = np.repeat(np.arange(n), per_row)
    order = np.lexsort((rows, f))
    text = np.arange(n) // 100
    writer = ActivationDBWriter(
        root / "activation_database",
        {
            "model": "minilm",
            "hook": "blocks.3.hook_resid_post",
            "sae": str(sae_dir),
            "tokens_sha256": "bench",
        },
        int(text[-1]) + 1,
        d,
    )
    writer.write_shard(
        int(text[-1]) + 1,
        pa.Table.from_arrays(
            [
                pa.array(rows[order], pa.int64()),
                pa.array(f[order].astype(np.int32)),
                pa.array(v[order].astype(np.float32)),
            ],
            schema=ACTIVATIONS_SCHEMA,
        ),
        pa.Table.from_arrays(
            [
                pa.array(np.arange(n), pa.int64()),
                pa.array(text, pa.int64()),
                pa.array((np.arange(n) % 100).astype(np.int32)),
                pa.array(token_ids.astype(np.int32)),
                pa.array([WORDS[i] for i in token_ids], pa.string()),
            ],
            schema=TOKENS_SCHEMA,
        ),
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--d-sae", type=int, default=16384)
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--baseline-features", type=int, default=64)
    ap.add_argument("--skip-explain", action="store_true")
    args = ap.parse_args()
    from interplab.sae.compare import CompareConfig, compare
    from interplab.sae.explain import ExplainConfig, explain

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        a, b = build(root, args.d_sae, args.tokens, args.k)
        print(
            f"built two synthetic analyses ({args.d_sae} features, {args.tokens} tokens) in {time.perf_counter() - t:.1f}s"
        )
        rss0 = peak_rss_mib()
        from interplab.sae import matching
        from interplab.sae.formats import load_sae

        Wa, Wb = load_sae(root / "sae_a").W_dec.detach(), load_sae(root / "sae_b").W_dec.detach()
        t = time.perf_counter()
        matching.best_partners(Wa, Wb)
        matching.best_partners(Wb, Wa)
        dec_only = time.perf_counter() - t
        t = time.perf_counter()
        res = compare(CompareConfig(a=str(a), b=str(b), out=str(root / "cmp"), write_back=False))
        ours = time.perf_counter() - t
        s = res.summary
        print(
            f"sae compare: {ours:.1f}s ({s['method']}, {s['match_on']}); peak RSS {peak_rss_mib():.0f} MiB "
            f"(before: {rss0:.0f} MiB); {s['memory_bound']}"
        )
        print(
            f"  decoder-only best partners (both ways): {dec_only:.1f}s → compare / decoder-only = {ours / dec_only:.1f}×"
        )
        print(
            f"  matched decoder cos > 0.7: {s['fraction_of_a_matched_decoder_cos']['> 0.7']:.3f}; "
            f"mean activation corr {s['matched_activation_corr_mean']:.3f}"
        )
        if args.skip_explain:
            return
        from interplab.sae.activation_db import ActivationDatabase

        db = ActivationDatabase(a)
        t = time.perf_counter()
        for f in range(args.baseline_features):
            db.get_feature_activations(f, top_k=None)
        per_feature = (time.perf_counter() - t) / args.baseline_features
        db.close()
        t = time.perf_counter()
        r = explain(ExplainConfig(analysis_dir=str(a), embedding=False))
        secs = time.perf_counter() - t
        fps = args.d_sae / secs
        print(
            f"sae explain (rules, {args.d_sae} features): {secs:.1f}s = {fps:.1f} features/s "
            f"(goal: under 600s); {len(r.rows)} explanations"
        )
        print(
            f"  baseline: one query per feature for its examples alone: {per_feature * 1000:.0f} ms/feature "
            f"→ {per_feature * args.d_sae:.0f}s extrapolated; ratio {per_feature * args.d_sae / secs:.1f}×"
        )
        print(f"  timings: {r.summary['timings']}")


if __name__ == "__main__":
    main()
