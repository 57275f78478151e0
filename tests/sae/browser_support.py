"""Shared helpers of the feature-browser tests: an analysis folder made from a corpus full of HTML.

The tiny GPT-2 gets a word-level tokenizer whose vocabulary holds two XSS payloads as single tokens,
so the payloads reach the activation database, the summaries and the pages verbatim.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def xss_model(tiny_gpt2: Path, dest: Path) -> Path:
    """A copy of the tiny GPT-2 whose tokenizer knows the two payloads as words (vocab stays 64)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        if (tiny_gpt2 / name).exists():
            shutil.copyfile(tiny_gpt2 / name, dest / name)
    words = [f"w{i}" for i in range(58)] + [SCRIPT, IMG]
    vocab = {"<unk>": 0, "<pad>": 1, "<bos>": 2, "<eos>": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    pattern = r"<img src=x onerror=alert\(1\)>|<script>alert\(1\)</script>|[^\s<]+|<"
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )
    fast.save_pretrained(dest)
    return dest


def xss_corpus(n_texts: int = 24, seed: int = 0) -> list[str]:
    """Texts of words w0…w57 with the payloads sprinkled in (a few hundred tokens in all)."""
    rng = random.Random(seed)
    texts = []
    for i in range(n_texts):
        words = [f"w{rng.randrange(58)}" for _ in range(rng.randrange(8, 30))]
        if i % 3 == 0:
            words.insert(rng.randrange(len(words)), SCRIPT)
        if i % 4 == 1:
            words.insert(rng.randrange(len(words)), IMG)
        texts.append(" ".join(words))
    return texts


def build_analysis(root: Path, tiny_gpt2: Path) -> Path:
    """Run the real ``sae analyze`` pipeline on the tiny model + a tiny TopK SAE over the XSS corpus."""
    model = xss_model(tiny_gpt2, root / "model")
    return _handmade_analysis(root / "analysis", model, xss_corpus())


def _handmade_analysis(
    folder: Path, model: Path, texts: list[str]
) -> Path:  # TEMPORARY until sae analyze lands
    import numpy as np
    import pyarrow as pa
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    rows = []
    ti = 0
    for t, text in enumerate(texts):
        for p, i in enumerate(tok(text, add_special_tokens=False)["input_ids"]):
            rows.append((ti, t, p, i, tok.convert_ids_to_tokens(i)))
            ti += 1
    rng = np.random.default_rng(0)
    nf = 48
    acts = (rng.random((ti, nf)) * (rng.random((ti, nf)) < 0.15)).astype(np.float32)
    acts[:, 0] = 0
    db = folder / "activation_database"
    (db / "tokens").mkdir(parents=True)
    (db / "activations").mkdir()
    c = list(zip(*rows, strict=True))
    pq.write_table(
        pa.table(
            {
                "token_idx": pa.array(c[0], pa.int64()),
                "text_idx": pa.array(c[1], pa.int64()),
                "position": pa.array(c[2], pa.int64()),
                "token_id": pa.array(c[3], pa.int64()),
                "token_str": pa.array(c[4]),
            }
        ),
        db / "tokens/shard_00000.parquet",
    )
    idx = np.nonzero(acts)
    pq.write_table(
        pa.table(
            {
                "token_idx": pa.array(idx[0], pa.int64()),
                "feature": pa.array(idx[1], pa.int32()),
                "value": pa.array(acts[idx], pa.float32()),
            }
        ),
        db / "activations/shard_00000.parquet",
    )
    (folder / "results").mkdir()
    (folder / "plots").mkdir()
    lines = []
    for f in range(nf):
        a = acts[:, f]
        nz = np.nonzero(a)[0]
        top = nz[np.argsort(-a[nz])][:5]
        ex = [
            {
                "activation": float(a[i]),
                "token": rows[i][4],
                "context": texts[rows[i][1]],
                "text_idx": rows[i][1],
                "position": rows[i][2],
            }
            for i in top
        ]
        lines.append(
            json.dumps(
                {
                    "feature": f,
                    "density": len(nz) / ti,
                    "mean_activation": float(a[nz].mean()) if len(nz) else 0.0,
                    "max_activation": float(a.max()),
                    "top_tokens": [{"token": e["token"], "count": 1} for e in ex],
                    "top_examples": ex,
                    "quantile_examples": [{"quantile": "0.5-0.75", "examples": ex[:2]}],
                    "logit_effects": {"promoted": [[SCRIPT, 1.0]], "suppressed": [["w3", -1.0]]},
                    "similar_features": [{"feature": (f + 1) % nf, "similarity": 0.5}],
                    "coactivating_features": [{"feature": (f + 2) % nf, "phi": 0.2}],
                    "histogram": {"counts": [3, 2, 1], "edges": [0, 0.3, 0.6, 0.9]},
                }
            )
        )
    (folder / "results/feature_summaries_20260101_000000.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "results/analysis_results_20260101_000000.json").write_text(
        json.dumps({"sparsity": {"l0_mean": 3.2}})
    )
    (folder / "SUMMARY_20260101_000000.json").write_text(json.dumps({"model": "tiny", "n_tokens": ti}))
    (folder / "README_20260101_000000.md").write_text("# Report\n")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    fig.savefig(folder / "plots/density.png")
    plt.close(fig)
    return folder


def read_summaries(folder: Path) -> list[dict]:
    """All feature-summary lines of the folder (latest timestamp), parsed with ``json``."""
    path = sorted((folder / "results").glob("feature_summaries_*.jsonl"))[-1]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_database(folder: Path) -> tuple[dict, dict]:
    """Brute-force view of the activation database with pyarrow (no DuckDB):
    ``tokens[(text_idx, position)] = (token_idx, token_str)``, ``acts[(token_idx, feature)] = value``."""
    db = folder / "activation_database"
    tokens: dict = {}
    for p in sorted((db / "tokens").glob("*.parquet")):
        t = pq.read_table(p).to_pydict()
        for ti, tx, pos, s in zip(t["token_idx"], t["text_idx"], t["position"], t["token_str"], strict=True):
            tokens[(tx, pos)] = (ti, s)
    acts: dict = {}
    for p in sorted((db / "activations").glob("*.parquet")):
        a = pq.read_table(p).to_pydict()
        for ti, f, v in zip(a["token_idx"], a["feature"], a["value"], strict=True):
            acts[(ti, f)] = v
    return tokens, acts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(folder: Path) -> Iterator[str]:
    """The browser server over ``folder`` on a free loopback port, in a background thread."""
    from interplab.sae.browser import AnalysisData, make_server

    data = AnalysisData(folder)
    server = make_server(data, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        data.close()
