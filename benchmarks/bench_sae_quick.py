"""Speed of the SAE hooks and the quick check against a bare forward pass, measured in one run.

On ``minilm`` (layer ``--layer``, ``hook_resid_post``) over the same ``--tokens`` tokens of the
``docs`` corpus:

* baseline: a bare full forward pass (``model(input_ids, attention_mask)``) over every batch;
* ``capture stop=True``: the activation with the forward pass stopped after the hooked block
  (should be faster than the full pass, about (layer + 1) / n_layers of it);
* ``capture + SAE encode/decode + metrics``: the quick check without ablation;
* ``quick check with ablation``: three forward passes per batch (clean, zero, SAE), so ≈ 1/3 of
  the bare-forward throughput is the best possible.

Run: ``.venv/bin/python benchmarks/bench_sae_quick.py [--tokens 8192] [--layer 3]``
"""

from __future__ import annotations

import argparse

import torch

from interplab.common.models import load_model
from interplab.common.timing import best_time
from interplab.sae.corpus import iter_batches, load_windows
from interplab.sae.hooks import capture_activations, resolve_hook, run_forward
from interplab.sae.model import SAE, SAEConfig
from interplab.sae.quick import run_pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--layer", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    lm = load_model("minilm")
    hp = resolve_hook(lm, "hook_resid_post", args.layer)
    windows = load_windows(lm.tokenizer, "docs", context_size=128, max_tokens=args.tokens)
    batches = list(iter_batches(windows, args.batch_size))
    g = torch.Generator().manual_seed(0)
    d_in = lm.config.hidden_size
    W_dec = torch.randn(args.d_sae, d_in, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    sae = SAE.from_weights(
        SAEConfig(d_in=d_in, d_sae=args.d_sae, architecture="topk", k=32), W_enc=W_dec.T, W_dec=W_dec
    ).requires_grad_(False)

    @torch.no_grad()
    def bare() -> None:
        for b in batches:
            run_forward(lm.model, b.input_ids, b.attention_mask)

    def capture() -> None:
        for b in batches:
            capture_activations(lm, hp, b.input_ids, b.attention_mask, stop=True)

    t_bare = best_time(bare, args.repeats)
    t_cap = best_time(capture, args.repeats)
    t_quick = best_time(lambda: run_pass(lm, hp, sae, windows, args.batch_size, ablation=False), args.repeats)
    t_abl = best_time(lambda: run_pass(lm, hp, sae, windows, args.batch_size, ablation=True), args.repeats)
    n = windows.n_tokens
    print(f"minilm, {hp.name}, {n} tokens, batch {args.batch_size}, SAE d_sae={args.d_sae} k=32")
    print(f"{'step':45s} {'seconds':>8s} {'tokens/s':>10s} {'vs bare forward':>16s}")
    for name, t in [
        ("bare full forward (baseline)", t_bare),
        ("capture, stop after the hooked block", t_cap),
        ("quick check without ablation", t_quick),
        ("quick check with ablation (3 passes)", t_abl),
    ]:
        print(f"{name:45s} {t:8.3f} {n / t:10.0f} {t_bare / t:15.2f}x")


if __name__ == "__main__":
    main()
