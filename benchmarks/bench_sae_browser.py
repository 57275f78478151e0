"""Feature-browser start-up and page latency for a large SAE, against loading every summary, in one run.

A synthetic ``results/feature_summaries_<ts>.jsonl`` with ``--features`` (65,536) lines in the
shape ``sae analyze`` writes (20 top examples with contexts, quantile examples, histogram,
neighbours, logit effects). Measured:

* first open: building the feature index (leading keys of each line parsed) and caching it;
* the line-by-line ``json.loads`` index (the fallback path);
* baseline: ``json.loads`` of every line into memory (what the notebook did before showing anything);
* cached open (every later start) and the latency of the pages: list sorted by max activation
  (page 100), token search, one feature page (HTML, with context queries skipped as there is no
  activation database here), all through the server's request handler.

Ratios printed are baseline / ours. Target: cached open and every page well under a second; first
open faster than loading all summaries.

Run: ``.venv/bin/python benchmarks/bench_sae_browser.py [--features 65536]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from interplab.sae.browser import AnalysisData, BrowserApp
from interplab.sae.browser.data import build_feature_index


def write_summaries(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    words = [f" tok{i}" for i in range(5000)]
    ctx_tokens = [words[i] for i in rng.integers(0, 5000, 21)]
    with path.open("w", encoding="utf-8") as fh:
        for f in range(n):
            tok = [words[i] for i in rng.integers(0, 5000, 10)]
            ex = [
                {"activation": float(v), "token_idx": int(f * 7 + j), "token": tok[j % 10], "token_id": 1,
                 "text_idx": j, "position": 10, "context": "".join(ctx_tokens), "context_tokens": ctx_tokens,
                 "context_index": 10}
                for j, v in enumerate(sorted(rng.random(20) * 10, reverse=True))
            ]  # fmt: skip
            rec = {
                "feature": f,
                "density": float(rng.random() * 0.01),
                "n_fires": 10,
                "mean_activation": float(rng.random()),
                "mean_activation_all_tokens": 0.001,
                "std_activation": 0.5,
                "max_activation": float(ex[0]["activation"]),
                "is_dead": False,
                "is_dense": False,
                "top_tokens": [{"token": t, "count": 2, "max_activation": 1.0} for t in tok],
                "top_examples": ex,
                "quantile_examples": [dict(e, quantile=q) for e, q in zip(ex[:6], (0.1, 0.25, 0.5, 0.75, 0.9, 0.99), strict=True)],
                "logit_effects": {"promoted": [{"token": t, "value": 0.1, "token_id": 1} for t in tok], "suppressed": [{"token": t, "value": -0.1, "token_id": 1} for t in tok]},
                "similar_features": [{"feature": int(i), "value": 0.3} for i in rng.integers(0, n, 10)],
                "coactivating_features": [{"feature": int(i), "value": 0.2, "count": 3} for i in rng.integers(0, n, 10)],
                "activation_histogram": {"bin_edges": list(np.logspace(-3, 1, 41)), "counts": rng.integers(0, 50, 40).tolist()},
                "ablation": None,
            }  # fmt: skip
            fh.write(json.dumps(rec) + "\n")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=65_536)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_browser_"))
    try:
        (root / "results").mkdir()
        path = root / "results" / "feature_summaries_20000101_000000.jsonl"
        write_summaries(path, args.features)
        size_mb = path.stat().st_size / 1e6
        print(f"summaries: {args.features:,} features, {size_mb:.0f} MB")

        data, t_first = timed(lambda: AnalysisData(root))
        data.close()
        _, t_slow = timed(lambda: build_feature_index(path, fast=False))
        _, t_all = timed(lambda: [json.loads(line) for line in path.open("rb")])
        data, t_cached = timed(lambda: AnalysisData(root))
        app = BrowserApp(data)
        pages = {
            "list (sort=max, page 100)": "/features?sort=max&page=100",
            "token search": "/api/features?q=tok123",
            "feature page": f"/feature/{args.features // 2}",
            "overview": "/",
        }
        lat = {}
        for name, url in pages.items():
            resp, lat[name] = timed(lambda url=url: app.handle("GET", url))
            assert resp.status == 200, (url, resp.status)
        data.close()

        print(f"baseline: json.loads of every summary       {t_all:8.2f} s")
        print(f"first open (leading-keys index + cache)     {t_first:8.2f} s   ratio {t_all / t_first:6.1f}x")
        print(f"whole-line index (fallback)                 {t_slow:8.2f} s   ratio {t_all / t_slow:6.1f}x")
        print(
            f"cached open                                 {t_cached:8.3f} s   ratio {t_all / t_cached:6.0f}x"
        )
        for name, t in lat.items():
            print(f"{name:<44}{t * 1000:8.1f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
