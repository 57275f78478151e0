"""Peak memory of the full analysis at 100k vs 400k tokens (target: peak RSS differs by < 20 %).

Each run is a fresh subprocess calling ``run_comprehensive_analysis`` on the built-in ``docs``
corpus with ``max_tokens`` set; the child reports its own peak RSS (``resource.getrusage``,
``ru_maxrss``). The model is a small random BERT (hidden 64, 2 layers) using minilm's tokenizer, so
400k tokens take minutes rather than an hour on 2 CPU cores; the SAE is a random TopK SAE (d_sae
2048, k 32) at ``blocks.1.hook_resid_post``. Everything that could grow with the corpus (the
activation database, per-feature statistics, co-occurrence counts, summaries) is exercised; only the
model's own weights are small.

Run: ``.venv/bin/python benchmarks/bench_sae_memory.py`` (``--tokens 100000 400000`` by default).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from interplab.sae.analyzer import run_comprehensive_analysis
model, sae, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
t0 = time.perf_counter()
res = run_comprehensive_analysis(model, sae, 1, "hook_resid_post", "docs", 16, out, max_tokens=n)
print(json.dumps({
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "seconds": time.perf_counter() - t0,
    "n_tokens": res.summary["n_tokens"],
    "n_rows": json.load(open(res.out / "activation_database" / "manifest.json"))["n_rows"],
}))
"""


def build_inputs(root: Path, d_sae: int, k: int) -> tuple[Path, Path]:
    """A small random BERT with minilm's tokenizer, and a random TopK SAE for its layer 1."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from interplab.common.models import builtin_model_path
    from interplab.sae.formats import save_sae
    from interplab.sae.model import SAE, SAEConfig

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(builtin_model_path("minilm"))
    model = BertModel(
        BertConfig(
            vocab_size=len(tok),
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=512,
        )
    )
    model_dir = root / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    W_dec = torch.randn(d_sae, 64)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    cfg = SAEConfig(d_in=64, d_sae=d_sae, architecture="topk", k=k, hook_name="blocks.1.hook_resid_post")
    sae = SAE.from_weights(cfg, W_enc=W_dec.T.contiguous(), W_dec=W_dec, b_enc=torch.zeros(d_sae))
    return model_dir, save_sae(sae, root / "sae")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, nargs=2, default=[100_000, 400_000])
    ap.add_argument("--d-sae", type=int, default=2048)
    ap.add_argument("--k", type=int, default=32)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir, sae_dir = build_inputs(root, args.d_sae, args.k)
        results = []
        for n in args.tokens:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(model_dir), str(sae_dir), str(root / f"out{n}"), str(n)],
                capture_output=True,
                text=True,
                env={"INTERPLAB_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "PATH": ""},
            )
            if proc.returncode != 0:
                raise SystemExit(f"analysis of {n} tokens failed:\n{proc.stderr[-3000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print(
                f"{r['n_tokens']:>7} tokens: peak RSS {r['peak_rss_mb']:.0f} MB, {r['n_rows']:,} database rows, "
                f"{r['seconds']:.0f}s (wall {time.perf_counter() - t0:.0f}s)"
            )
    small, large = results[0]["peak_rss_mb"], results[1]["peak_rss_mb"]
    diff = (large - small) / small
    print(
        f"peak RSS growth {results[0]['n_tokens']} → {results[1]['n_tokens']} tokens: {100 * diff:+.1f} % "
        f"(target < 20 %) {'PASS' if abs(diff) < 0.2 else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
