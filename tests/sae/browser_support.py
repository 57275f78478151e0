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


D_SAE = 64
N_DEAD = 8  # the last N_DEAD features can never enter the top-k: dead by construction


def build_analysis(root: Path, tiny_gpt2: Path) -> Path:
    """Run the real ``sae analyze`` pipeline (tiny GPT-2 + tiny TopK SAE) over the XSS corpus.

    The folder is built once per test session (per xdist worker) under ``root`` and reused.
    """
    done = root / "DONE"
    if done.exists():
        return root / "analysis"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    import torch

    from interplab.sae import run_comprehensive_analysis
    from interplab.sae.formats import save_sae
    from interplab.sae.model import SAE, SAEConfig

    model = xss_model(tiny_gpt2, root / "model")
    g = torch.Generator().manual_seed(0)
    d_in = 32
    b_enc = torch.zeros(D_SAE)
    b_enc[-N_DEAD:] = -1e4
    sae = SAE.from_weights(
        SAEConfig(
            d_in=d_in,
            d_sae=D_SAE,
            architecture="topk",
            k=4,
            hook_name="blocks.1.hook_resid_post",
            hook_layer=1,
        ),
        W_enc=torch.randn(d_in, D_SAE, generator=g),
        W_dec=torch.nn.functional.normalize(torch.randn(D_SAE, d_in, generator=g), dim=1),
        b_enc=b_enc,
        b_dec=torch.zeros(d_in),
    )
    save_sae(sae, root / "sae")
    (root / "texts.json").write_text(json.dumps(xss_corpus()), encoding="utf-8")
    run_comprehensive_analysis(
        str(model),
        str(root / "sae"),
        layer=1,
        hook_name="hook_resid_post",
        data_path=str(root / "texts.json"),
        batch_size=8,
        analysis_dir=str(root / "analysis"),
        context_size=32,
        ablation_tokens=64,
        ablation_features=2,
    )
    done.write_text("ok", encoding="utf-8")
    return root / "analysis"


def shared_analysis(tmp_path_factory, tiny_models) -> Path:
    """The session's analysis folder (built by the first test module that asks for it)."""
    return build_analysis(tmp_path_factory.getbasetemp() / "sae_browser_analysis", tiny_models["gpt2"])


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
