"""Sharded SAE collection at scale, in one run: merge time, shard workers, storage, big SAEs.

Inputs: a small random BERT (hidden 64, 2 layers) with minilm's tokenizer and a random TopK SAE at
``blocks.1.hook_resid_post`` (``bench_sae_memory.build_inputs``), the built-in ``docs`` corpus in
windows of 128. Each measurement runs ``interplab sae collect`` in fresh subprocesses; a child's
peak RSS comes from ``os.wait4`` (``ru_maxrss``).

``--part merge [--merge-model minilm|tiny] [--merge-tokens N …]``: at each corpus size, collection of
all shards by one worker (``--shard 0/1``; it also computes the database's units: ablation sections
and logit effects), then ``sae merge``; prints merge seconds / collection seconds (target ≤ 10 %), the
partial-reduction time alone and the merge's step timings. The default model is the built-in minilm
hooked at layer 3 with a random TopK SAE (``--merge-d-sae`` 4096, ``--k``): a real forward pass; the
merge's cost does not grow with the corpus, so the ratio falls as the corpus grows.

``--part workers``: the same shards by 2 workers (``--shard 0/2`` and ``1/2`` at once, 1 thread each)
vs 1 worker with 2 threads: the wall-time ratio (no target on a 2-core machine) and each worker's
peak RSS at ``--tokens`` and 4 × ``--tokens`` (target: differ by < 20 %).

``--part storage``: bytes of the database per non-zero activation and per token, next to a float16
COO layout (uint32 feature + float16 value = 6 B per non-zero) and a dense float16 cache
(2 · d_sae B per token) of the same tokens.

``--part throughput [--device cuda]``: one sharded worker in this process vs the bare forward to the
hook over the same windows: tokens/s, the ratio (target ≥ 0.8) and the SAE-side µs/token.

``--part big``: ``sae collect`` + merge at ``--big-d-sae`` (default 16384 and 65536, k 64): time and
peak RSS of the collecting worker and of the merge.

Run: ``.venv/bin/python benchmarks/bench_sae_scale.py --part merge workers storage``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_sae_memory import build_inputs


def run_child(args: list[str], threads: int = 1) -> subprocess.Popen:
    env = {
        **os.environ,
        "INTERPLAB_PROGRESS": "0",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "NUMBA_NUM_THREADS": str(threads),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "interplab", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def wait(proc: subprocess.Popen) -> tuple[float, float]:
    """Wait for a child: ``(seconds since start, peak RSS in MB)``."""
    t0 = getattr(proc, "_t0", time.perf_counter())
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.args}):\n{proc.stderr.read().decode()[-3000:]}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def start(args: list[str], threads: int = 1) -> subprocess.Popen:
    proc = run_child(args, threads)
    proc._t0 = time.perf_counter()  # type: ignore[attr-defined]
    return proc


def collect_args(
    model: Path, sae: Path, out: Path, tokens: int, shard_tokens: int, layer: int = 1
) -> list[str]:
    return [
        "sae", "collect", "--sae", str(sae), "--out", str(out), "--model", str(model), "--layer", str(layer),
        "--hook", "hook_resid_post", "--data", "docs", "--batch-size", "16", "--max-tokens", str(tokens),
        "--shard-tokens", str(shard_tokens), "--no-merge",
    ]  # fmt: skip


def minilm_sae(root: Path, d_sae: int, k: int) -> Path:
    """A random TopK SAE (unit-norm decoder rows, tied encoder) for minilm's layer 3 (width 384)."""
    import torch

    from interplab.sae.formats import save_sae
    from interplab.sae.model import SAE, SAEConfig

    torch.manual_seed(0)
    W_dec = torch.randn(d_sae, 384)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    cfg = SAEConfig(d_in=384, d_sae=d_sae, architecture="topk", k=k, hook_name="blocks.3.hook_resid_post")
    sae = SAE.from_weights(cfg, W_enc=W_dec.T.contiguous(), W_dec=W_dec, b_enc=torch.zeros(d_sae))
    return save_sae(sae, root / f"minilm-sae-{d_sae}")


def part_merge(root: Path, model: str, sae: Path, layer: int, sizes: list[int], shard_tokens: int) -> None:
    """Collection of all shards by one worker, then ``sae merge``, at each corpus size."""
    for tokens in sizes:
        out = root / f"merge{tokens}"
        args = collect_args(Path(model), sae, out, tokens, shard_tokens, layer)
        secs, rss = wait(start([*args, "--shard", "0/1"], 2))
        m_secs, m_rss = wait(start(["sae", "merge", str(out)], 2))
        reduce_s = reduce_only(out)
        steps = json.loads((out / "manifest.json").read_text()).get("timings", {})
        print(
            f"merge ({model}, {tokens} tokens): collection {secs:.1f}s incl. the units (peak {rss:.0f} MB), "
            f"whole `sae merge` {m_secs:.1f}s (peak {m_rss:.0f} MB) = {100 * m_secs / secs:.1f} % of "
            f"collection (target ≤ 10 %); partial reduction alone {reduce_s:.2f}s = "
            f"{100 * reduce_s / secs:.1f} %; merge steps (s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in steps.items())
            + "; the rest is the process start, imports and the SAE and tokenizer load"
        )


def reduce_only(out: Path) -> float:
    """Seconds to reduce the partials alone (in this process)."""
    from interplab.sae.activation_db import read_manifest
    from interplab.sae.layout import DATABASE
    from interplab.sae.merge import analyzer_from_database, merge_collection, stored_setup

    an = analyzer_from_database(out)
    setup = stored_setup(an, read_manifest(out / DATABASE))
    assert setup is not None
    t0 = time.perf_counter()
    merge_collection(an, setup)
    return time.perf_counter() - t0


def part_workers(root: Path, model: Path, sae: Path, tokens: int, shard_tokens: int) -> None:
    out1 = root / "one"
    secs1, rss1 = wait(start([*collect_args(model, sae, out1, tokens, shard_tokens), "--shard", "0/1"], 2))
    out2 = root / "two"
    procs = [
        start([*collect_args(model, sae, out2, tokens, shard_tokens), "--shard", f"{i}/2"], 1) for i in (0, 1)
    ]
    res = [wait(p) for p in procs]
    wall2 = max(r[0] for r in res)
    print(
        f"workers: 1 worker × 2 threads {secs1:.1f}s (peak {rss1:.0f} MB); 2 workers × 1 thread {wall2:.1f}s "
        f"(peaks {res[0][1]:.0f} / {res[1][1]:.0f} MB); speed ratio 2w/1w = {secs1 / wall2:.2f}× (no target: 2 cores)"
    )
    out3 = root / "four"
    _, rss4 = wait(start([*collect_args(model, sae, out3, 4 * tokens, shard_tokens), "--shard", "0/2"], 1))
    print(
        f"worker peak RSS: {tokens} tokens {res[0][1]:.0f} MB vs {4 * tokens} tokens {rss4:.0f} MB: "
        f"{100 * (rss4 - res[0][1]) / res[0][1]:+.1f} % (target < 20 %)"
    )


def part_storage(root: Path, model: Path, sae: Path, tokens: int, shard_tokens: int, d_sae: int) -> None:
    out = root / "storage"
    wait(start([*collect_args(model, sae, out, tokens, shard_tokens), "--shard", "0/1"], 2))
    db = out / "activation_database"
    manifest = json.loads((db / "manifest.json").read_text())
    n_rows, n_tok = manifest["n_rows"], manifest["n_tokens"]

    def size(sub: str) -> int:
        return sum(p.stat().st_size for p in (db / sub).glob("*") if p.is_file())

    act, tok, part = size("activations"), size("tokens"), size("partials")
    print(
        f"storage ({n_tok} tokens, {n_rows:,} non-zeros, d_sae {d_sae}): activations {act / n_rows:.2f} B per "
        f"non-zero ({act / n_tok:.1f} B/token), tokens table {tok / n_tok:.1f} B/token, partials "
        f"{part / n_tok:.1f} B/token; float16 COO 6.00 B per non-zero ({6 * n_rows / n_tok:.1f} B/token); "
        f"dense float16 cache {2 * d_sae} B/token"
    )


def part_big(root: Path, tokens: int, shard_tokens: int, sizes: list[int], k: int) -> None:
    for d in sizes:
        model, sae = build_inputs(root / f"big{d}", d, k)
        out = root / f"big{d}-out"
        secs, rss = wait(start([*collect_args(model, sae, out, tokens, shard_tokens), "--shard", "0/1"], 2))
        m_secs, m_rss = wait(start(["sae", "merge", str(out)], 2))
        steps = json.loads((out / "manifest.json").read_text()).get("timings", {})
        results = json.loads(next((out / "results").glob("analysis_results_*.json")).read_text())
        print(
            f"big SAE d_sae {d} k {k}, {tokens} tokens: collect {secs:.0f}s peak {rss / 1024:.2f} GB; "
            f"merge + analysis {m_secs:.0f}s peak {m_rss / 1024:.2f} GB (target < 8 GB); merge steps (s): "
            + ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
            + f"; co-occurrence stored non-zeros {results['cooccurrence']['stored_nonzeros']}"
        )


def part_throughput(root: Path, model: Path, sae: Path, tokens: int, device: str, repeats: int) -> None:
    """Sharded worker vs the bare forward to the hook on the same windows, in this process."""
    import torch

    from interplab.sae.corpus import iter_batches
    from interplab.sae.hooks import capture_activations
    from interplab.sae.launch import CollectConfig, build_analyzer, prepare
    from interplab.sae.merge import worker_context
    from interplab.sae.shard_worker import collect_shards

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    best_bare = best_ours = float("inf")
    for r in range(repeats):
        cfg = CollectConfig(
            sae=str(sae), out=str(root / f"tp{r}"), model=str(model), layer=1, hook="hook_resid_post",
            max_tokens=tokens, batch_size=16, device=device, model_dtype="float32",
        )  # fmt: skip
        an = build_analyzer(cfg, device)
        setup = prepare(an, cfg, clear=True)
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            for b in iter_batches(an.windows, cfg.batch_size):
                capture_activations(
                    an.loaded, an.hp, b.input_ids.to(device), b.attention_mask.to(device), stop=True
                )
        sync()
        best_bare = min(best_bare, time.perf_counter() - t0)
        t0 = time.perf_counter()
        collect_shards(worker_context(an, setup, device), setup.specs)
        sync()
        best_ours = min(best_ours, time.perf_counter() - t0)
    n = an.windows.n_tokens
    print(
        f"throughput ({device}, {n} tokens, d_sae {an.sae.d_sae}): bare forward to the hook {n / best_bare:,.0f} tok/s, "
        f"sharded worker {n / best_ours:,.0f} tok/s = {best_bare / best_ours:.2f}× the bare forward (target ≥ 0.8); "
        f"SAE side + database {1e6 * (best_ours - best_bare) / n:.1f} µs/token"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", nargs="+", default=["merge", "workers", "storage"])
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--merge-model", choices=["minilm", "tiny"], default="minilm")
    ap.add_argument("--merge-tokens", type=int, nargs="+", default=[50_000, 200_000])
    ap.add_argument("--merge-d-sae", type=int, default=4096)
    ap.add_argument("--shard-tokens", type=int, default=32_768)
    ap.add_argument("--d-sae", type=int, default=2048)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--big-d-sae", type=int, nargs="+", default=[16_384, 65_536])
    ap.add_argument("--big-k", type=int, default=64)
    ap.add_argument("--big-tokens", type=int, default=200_000)
    ap.add_argument("--device", default="cpu", help="throughput part: cpu or cuda")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print("shared 2-core machine: absolute numbers are noisy; ratios are measured in this run")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, sae = build_inputs(root, args.d_sae, args.k)
        if "merge" in args.part:
            if args.merge_model == "minilm":
                merge_inputs = ("minilm", minilm_sae(root, args.merge_d_sae, args.k), 3)
            else:
                merge_inputs = (str(model), sae, 1)
            part_merge(root, *merge_inputs, args.merge_tokens, args.shard_tokens)
        if "workers" in args.part:
            part_workers(root, model, sae, args.tokens, args.shard_tokens)
        if "storage" in args.part:
            part_storage(root, model, sae, args.tokens, args.shard_tokens, args.d_sae)
        if "throughput" in args.part:
            part_throughput(root, model, sae, args.tokens, args.device, args.repeats)
        if "big" in args.part:
            part_big(root, args.big_tokens, args.shard_tokens, args.big_d_sae, args.big_k)


if __name__ == "__main__":
    main()
