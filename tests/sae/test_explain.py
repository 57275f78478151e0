"""``sae explain``: the rule explainer and the scorers on planted features with known rules, the
MiniLM embedding score against a direct computation, and the OpenAI-compatible client against a
small HTTP server on 127.0.0.1 (requests, concurrency, retries on 429/5xx, cache, failures)."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from interplab.common.errors import InterplabError
from interplab.sae.activation_db import ACTIVATIONS_SCHEMA, TOKENS_SCHEMA, ActivationDBWriter
from interplab.sae.explain import ExplainConfig, explain
from interplab.sae.explain import openai_client as oc
from interplab.sae.explain.rules import Rule, TokenTable, learn_rule, token_classes
from interplab.sae.explain.run import ExampleSampler, _windows, load_token_table, score_rule
from interplab.sae.explain.scoring import auroc

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "run",
    "fast",
    "Paris",
    "London",
    "Alice",
    "(",
    ")",
    ".",
    ",",
    "1",
    "2",
    "7",
    "42",
    "2024",
    "x",
    "y",
    "and",
    "of",
    "to",
]
D_SAE = 6
# planted features: 0 digits, 1 the token after "(", 2 capitalised words, 3 the first token of a
# text, 4 never fires, 5 fires at random on ~15 % of tokens
N_TEXTS, TEXT_LEN = 80, 30


def planted_analysis(root: Path, seed: int = 0) -> Path:
    """An analysis folder holding only a hand-written activation database of planted features."""
    rng = np.random.default_rng(seed)
    toks, text, pos = [], [], []
    for t in range(N_TEXTS):
        for p in range(TEXT_LEN):
            toks.append(WORDS[rng.integers(len(WORDS))])
            text.append(t)
            pos.append(p)
    toks_a = np.array(toks, dtype=object)
    text_a, pos_a = np.array(text), np.array(pos)
    n = len(toks)
    prev = np.concatenate([np.array([""], dtype=object), toks_a[:-1]])
    prev[pos_a == 0] = ""
    fires = {
        0: np.array([s.isdigit() for s in toks]),
        1: prev == "(",
        2: np.array([s[0].isupper() for s in toks]),
        3: pos_a == 0,
        4: np.zeros(n, bool),
        5: rng.random(n) < 0.15,
    }
    rows_t, rows_f, rows_v = [], [], []
    for f, m in fires.items():
        idx = np.flatnonzero(m)
        rows_t.append(idx)
        rows_f.append(np.full(idx.size, f))
        rows_v.append(1.0 + rng.random(idx.size))
    vocab = {w: i for i, w in enumerate(WORDS)}
    writer = ActivationDBWriter(root / "activation_database", {"model": "planted"}, N_TEXTS, D_SAE)
    writer.write_shard(
        N_TEXTS,
        pa.Table.from_arrays(
            [
                pa.array(np.concatenate(rows_t), pa.int64()),
                pa.array(np.concatenate(rows_f), pa.int32()),
                pa.array(np.concatenate(rows_v), pa.float32()),
            ],
            schema=ACTIVATIONS_SCHEMA,
        ),
        pa.Table.from_arrays(
            [
                pa.array(np.arange(n), pa.int64()),
                pa.array(text_a, pa.int64()),
                pa.array(pos_a, pa.int32()),
                pa.array([vocab[w] for w in toks], pa.int32()),
                pa.array(toks, pa.string()),
            ],
            schema=TOKENS_SCHEMA,
        ),
    )
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return planted_analysis(tmp_path_factory.mktemp("planted"))


def test_token_classes() -> None:
    c = token_classes(["7", "2024", ".", "),", "Paris", "NASA", "cat", "##ing", "def", " ", "x1"])
    from interplab.sae.explain.rules import CLASSES

    got = {cls: [i for i in range(c.shape[0]) if c[i, CLASSES.index(cls)]] for cls in CLASSES}
    assert got["digits"] == [0, 1]
    assert got["punctuation"] == [2, 3]
    assert got["capitalised"] == [4]
    assert got["uppercase"] == [5]
    assert got["lowercase"] == [6, 7, 8]  # "##ing" normalises to "ing"
    assert got["continuation"] == [7]
    assert got["code"] == [8]
    assert got["whitespace"] == [9]


def test_scorers_on_planted_digits_feature(planted) -> None:
    from interplab.sae.activation_db import ActivationDatabase

    db = ActivationDatabase(planted)
    table = load_token_table(db)
    cfg = ExplainConfig(analysis_dir=str(planted), n_negatives=1000, embedding=False)
    sampler = ExampleSampler(db, table, cfg)
    ex = next(e for e in sampler.chunk(np.arange(D_SAE)) if e.feature == 0)
    pairs = [(0, np.arange(max(0, c - 6), c + 7)) for c in ex.test_pos]
    fuzz = _windows(table, 0, ex.test_pos, 6, sampler.activity(pairs))
    right = score_rule(Rule("class", ("digits",)), table, ex, fuzz)
    assert right["detection_balanced_accuracy"] == pytest.approx(1.0)
    assert right["fuzzing_balanced_accuracy"] == pytest.approx(1.0)
    assert right["detection_auroc"] == pytest.approx(1.0)
    wrong = score_rule(Rule("class", ("punctuation",)), table, ex, fuzz)
    assert wrong["detection_balanced_accuracy"] == pytest.approx(0.5, abs=0.12)
    assert wrong["fuzzing_balanced_accuracy"] == pytest.approx(0.5, abs=0.12)
    # the held-out tokens are disjoint from the training ones
    assert not set(ex.test_pos) & set(ex.train_pos)
    assert ex.test_pos.size == cfg.n_heldout
    db.close()


def test_auroc_and_learn_rule_by_hand() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.random(50) < 0.4
    s = rng.normal(size=50) + y
    s[:5] = s[5]  # ties
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    table = TokenTable.build(
        np.array([0, 1, 2, 0, 1, 2]), np.zeros(6), np.arange(6), np.array(["a", "b", "7"] * 2)
    )
    rule, ba = learn_rule(table, np.array([2, 5]), np.array([0, 1, 3, 4]))
    assert rule == Rule("class", ("digits",)) and ba == 1.0  # the class beats the one-token set "7"


def test_rule_explainer_end_to_end(planted) -> None:
    res = explain(ExplainConfig(analysis_dir=str(planted), n_negatives=1000, embedding=False))
    by = {r["feature"]: r for r in res.rows}
    assert set(by) == {0, 1, 2, 3, 5}  # feature 4 never fires
    assert by[0]["rule"] == {"kind": "class", "values": ["digits"]}
    assert by[0]["explanation"] == "fires on digits"
    assert by[1]["rule"] == {"kind": "previous_token", "values": ["("]}
    assert by[2]["rule"] == {"kind": "class", "values": ["capitalised"]}
    assert by[3]["rule"] == {"kind": "position", "values": ["1"]}
    for f in (0, 1, 2, 3):
        assert by[f]["scores"]["detection_balanced_accuracy"] == pytest.approx(1.0), f
        assert by[f]["scores"]["fuzzing_balanced_accuracy"] == pytest.approx(1.0), f
    assert by[5]["scores"]["detection_balanced_accuracy"] == pytest.approx(0.5, abs=0.2)
    lines = [json.loads(x) for x in (planted / res.files["explanations"]).read_text().splitlines()]
    assert [x["feature"] for x in lines] == [0, 1, 2, 3, 5]
    assert (planted / res.files["plot_scores"]).exists()
    assert (planted / res.files["plot_scores"].replace(".png", ".pdf")).exists()
    manifest = json.loads((planted / res.files["manifest"]).read_text())
    assert res.files["explanations"] in manifest["files"]
    assert res.summary["n_features_silent"] == 1


@pytest.mark.slow
def test_embedding_score_matches_direct_minilm(planted) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from interplab.common.models import builtin_model_path
    from interplab.sae.explain.scoring import Embedder, embedding_score

    pos = ["the year 2024 and 42", "1 2 7", "in 1999 there were 7 cats"]
    neg = ["the cat sat on the mat", "Paris and London", "run fast"]
    emb = Embedder()
    got = embedding_score(emb, "numbers and digits", pos, neg)
    path = builtin_model_path("minilm")
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    def e(texts):
        enc = tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state
        m = enc["attention_mask"][..., None].float()
        v = (h * m).sum(1) / m.sum(1)
        return (v / v.norm(dim=1, keepdim=True)).numpy()

    sims = e(pos + neg) @ e(["numbers and digits"])[0]
    from sklearn.metrics import roc_auc_score

    assert got == pytest.approx(roc_auc_score([1, 1, 1, 0, 0, 0], sims), abs=1e-6)
    assert got > 0.5  # digits windows sit closer to "numbers and digits"
    res = explain(
        ExplainConfig(analysis_dir=str(planted), features="0", n_negatives=400, embedding_windows=6)
    )
    assert res.rows[0]["scores"]["embedding_auroc"] is not None


# -- the OpenAI-compatible client ------------------------------------------------------------------
class FakeLLM:
    """Chat-completions server: fixed explanation, scorer answers 1 for examples with a digit;
    the first ``fail_first`` requests get 429 then 503; ``garbage`` answers non-JSON."""

    def __init__(self, fail_first: int = 0, garbage: bool = False, delay: float = 0.05) -> None:
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_first = fail_first
        self.garbage = garbage
        self.delay = delay
        self.lock = threading.Lock()

    def answer(self, body: dict) -> tuple[int, str]:
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        examples = re.findall(r"^Example \d+: (.*)$", user, flags=re.M)
        if system == oc.EXPLAIN_SYSTEM:
            content = "Looking at the marked tokens.\n[EXPLANATION]: digits and numbers"
        elif system == oc.DETECTION_SYSTEM:
            content = json.dumps([int(bool(re.search(r"\d", ex))) for ex in examples])
        else:
            marked = [re.findall(r"<<(.*?)>>", ex) for ex in examples]
            content = json.dumps([int(bool(m) and all(x.strip().isdigit() for x in m)) for m in marked])
        return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})

    def serve(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    k = len(fake.requests)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                time.sleep(fake.delay)
                with fake.lock:
                    fake.in_flight -= 1
                if k <= fake.fail_first:
                    status, text = (429, "slow down") if k % 2 else (503, "busy")
                elif fake.garbage:
                    status, text = 200, "<html>not an API</html>"
                else:
                    status, text = fake.answer(body)
                data = text.encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@pytest.fixture
def fake_llm():
    servers = []

    def start(**kw):
        fake = FakeLLM(**kw)
        server = fake.serve()
        servers.append(server)
        return fake, f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_llm_explainer_requests_retries_concurrency_cache(planted, tmp_path, fake_llm, monkeypatch) -> None:
    fake, url = fake_llm(fail_first=2)
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    cfg = ExplainConfig(
        analysis_dir=str(planted),
        explainer="both",
        explainer_url=url,
        model_name="tiny-explainer",
        api_key_env="TEST_LLM_KEY",
        concurrency=3,
        backoff=0.01,
        embedding=False,
        n_negatives=2000,
        window_radius=2,
        cache_dir=str(tmp_path / "cache"),
    )
    res = explain(cfg)
    assert res.failures == []
    llm = {r["feature"]: r for r in res.rows if r["explainer"] == "llm:tiny-explainer"}
    assert set(llm) == {0, 1, 2, 3, 5}
    assert llm[0]["explanation"] == "digits and numbers"
    assert llm[0]["scores"]["detection_balanced_accuracy"] == pytest.approx(1.0)
    assert llm[0]["scores"]["fuzzing_balanced_accuracy"] == pytest.approx(1.0)
    assert llm[2]["scores"]["detection_balanced_accuracy"] < 0.8  # capitalised words: wrong explanation
    # 5 features × (explain, detection, fuzzing) plus the two failed attempts that were retried
    assert len(fake.requests) == 5 * 3 + 2
    assert 2 <= fake.max_in_flight <= 3
    assert fake.requests[0]["model"] == "tiny-explainer" and fake.requests[0]["temperature"] == 0
    assert all(h.get("Authorization") == "Bearer sk-test" for h in fake.headers)
    assert res.summary["n_requests"] == 17
    # a re-run with the same examples and prompts is answered from the cache: no request at all
    again = explain(cfg)
    assert len(fake.requests) == 17 and again.summary["n_requests"] == 0
    assert [r["explanation"] for r in again.rows] == [r["explanation"] for r in res.rows]


def test_llm_failures_are_listed_and_the_run_goes_on(planted, tmp_path, fake_llm) -> None:
    fake, url = fake_llm(garbage=True)
    res = explain(
        ExplainConfig(
            analysis_dir=str(planted),
            explainer="both",
            explainer_url=url,
            model_name="m",
            embedding=False,
            max_retries=0,
            n_negatives=400,
            cache_dir=str(tmp_path / "c1"),
            features="0-2",
        )
    )
    assert {r["explainer"] for r in res.rows} == {"rules"} and len(res.rows) == 3
    assert res.summary["failures_by_kind"] == {"garbage": 3}
    assert all(f["step"] == "explain" for f in res.failures)
    assert len(fake.requests) == 3  # garbage is not retried
    # nothing listens on this port: unreachable, tried once, then not again
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    res = explain(
        ExplainConfig(
            analysis_dir=str(planted),
            explainer="llm",
            explainer_url=f"http://127.0.0.1:{port}/v1",
            model_name="m",
            embedding=False,
            max_retries=1,
            backoff=0.01,
            n_negatives=400,
            cache_dir=str(tmp_path / "c2"),
            concurrency=1,
        )
    )
    assert res.rows == [] and res.summary["failures_by_kind"] == {"unreachable": 5}
    assert res.summary["n_requests"] == 2  # one try + one retry, then the endpoint counts as down


def test_bad_input_writes_nothing(planted, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    before = sorted(p.name for p in (planted / "results").glob("*")) if (planted / "results").exists() else []
    with pytest.raises(InterplabError, match="environment variable NO_SUCH_KEY_VAR is not set"):
        explain(
            ExplainConfig(
                analysis_dir=str(planted),
                explainer="llm",
                explainer_url="http://127.0.0.1:9/v1",
                model_name="m",
                api_key_env="NO_SUCH_KEY_VAR",
            )
        )
    with pytest.raises(InterplabError, match="needs --explainer-url"):
        explain(ExplainConfig(analysis_dir=str(planted), explainer="llm", model_name="m"))
    with pytest.raises(InterplabError, match=r"out of range 0\.\.5"):
        explain(ExplainConfig(analysis_dir=str(planted), features="3,9", embedding=False))
    with pytest.raises(InterplabError, match="not an activation database"):
        explain(ExplainConfig(analysis_dir=str(tmp_path), embedding=False))
    after = sorted(p.name for p in (planted / "results").glob("*")) if (planted / "results").exists() else []
    assert after == before


def _cli(*args: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, "INTERPLAB_PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, "-m", "interplab", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.slow
def test_explain_cli(planted, tmp_path) -> None:
    r = _cli("sae", "explain", str(planted), "--no-embedding", "--features", "0-3", "--n-negatives", "800")
    assert r.returncode == 0, r.stderr
    assert "4 explanations" in r.stdout
    r = _cli("sae", "explain", str(planted), "--explainer", "llm", "--model-name", "m")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == "error: --explainer llm needs --explainer-url"
    r = _cli("sae", "compare", str(planted), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "give either B" in r.stderr
    assert not (tmp_path / "x").exists()
