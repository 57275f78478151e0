"""Peak memory of Wanda pruning one layer with in = 11 008 inputs: with the in×in Gram matrix that
was accumulated for every method before, and with the per-input squared norms Wanda needs now.

Each variant runs in a fresh subprocess on the same layer ``Linear(in, out)`` and the same
calibration inputs (``--tokens`` × in, fed in batches of 256 as the block forward passes do):

- gram (before): ``collect_input_stats(gram=True)`` → Wanda from diag(G) → output error from G;
- norms (after): ``collect_input_stats(gram=False)`` → Wanda → output error in one more pass
  (``collect_output_errors``).

Printed: peak RSS above the process's RSS once the layer and inputs exist (``ru_maxrss``), the
time, and the ratio before/after. Both variants must report the same relative output error.

Run: ``.venv/bin/python benchmarks/bench_masks_memory.py`` (``--in-features``/``--tokens``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from interplab.masks.layers import collect_input_stats, find_linear_layers
from interplab.masks.output_error import collect_output_errors
from interplab.masks.quality import relative_output_error
from interplab.masks.selection import Structure
from interplab.masks.wanda import wanda_prune


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def child(variant: str, in_features: int, out_features: int, tokens: int) -> dict[str, float]:
    torch.manual_seed(0)
    block = torch.nn.Sequential(torch.nn.Linear(in_features, out_features))
    x = torch.randn(tokens, in_features)
    layers = find_linear_layers(block)
    layer = layers[0]
    base = peak_mb()
    t0 = time.perf_counter()
    with torch.no_grad():
        with collect_input_stats(layers, gram=variant == "gram") as stats:
            for batch in x.split(256):
                block(batch)
        weight = layer.weight()
        entry = stats[layer.component]
        pruned = wanda_prune(weight, entry.sq_norms, 0.5, Structure())
        if variant == "gram":
            error = relative_output_error(weight, pruned, entry.gram)
        else:
            with collect_output_errors(layers, {layer.component: pruned}) as errors:
                for batch in x.split(256):
                    block(batch)
            error = errors[layer.component].relative_error
    return {"peak_mb": peak_mb() - base, "seconds": time.perf_counter() - t0, "error": error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-features", type=int, default=11008)
    parser.add_argument("--out-features", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--child", choices=("gram", "norms"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.in_features, args.out_features, args.tokens)))
        return
    results = {}
    for variant in ("gram", "norms"):
        cmd = [
            sys.executable, __file__, "--child", variant, "--in-features", str(args.in_features),
            "--out-features", str(args.out_features), "--tokens", str(args.tokens),
        ]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[variant] = json.loads(out.strip().splitlines()[-1])
    print(
        f"Wanda on Linear({args.in_features}, {args.out_features}), {args.tokens} calibration tokens; "
        f"the Gram matrix alone is {args.in_features**2 * 4 / 1e6:.0f} MB"
    )
    print(f"{'variant':<16} {'peak RSS MB':>12} {'seconds':>9} {'rel. output error':>18}")
    for variant, label in (("gram", "gram (before)"), ("norms", "norms (after)")):
        r = results[variant]
        print(f"{label:<16} {r['peak_mb']:>12.0f} {r['seconds']:>9.2f} {r['error']:>18.6f}")
    ratio = results["gram"]["peak_mb"] / max(results["norms"]["peak_mb"], 1.0)
    print(f"peak memory before / after: {ratio:.1f}×")


if __name__ == "__main__":
    main()
