"""``interplab sae explain DIR``: explain every feature of an analysis and score the explanations on
held-out examples from its activation database.

Examples per feature (all from the database, seeded):

* training positives: the ``top_k`` strongest activations plus ``n_train`` random activating tokens;
* held-out positives: ``n_heldout`` further random activating tokens (disjoint from training);
* negatives: a pool of ``n_negatives`` random corpus tokens split in two halves (training and
  held-out), each feature using the pool tokens where it is silent;
* windows: ``window_radius`` tokens each side of an example, inside its text.

The built-in explainer (``rules``) learns a rule on the training examples
(:mod:`interplab.sae.explain.rules`) and is scored by evaluating the rule on the held-out tokens; an
explainer behind an OpenAI-compatible endpoint (``llm``) writes an explanation from marked training
windows and is scored by the same endpoint on held-out windows (:mod:`interplab.sae.explain.scoring`).
Both get the MiniLM embedding score. Results go to ``DIR/results/explanations_<ts>.jsonl``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from interplab.common.atomic import write_json, write_jsonl
from interplab.common.errors import InterplabError, require
from interplab.common.output import package_versions, timestamp
from interplab.common.progress import track
from interplab.sae.activation_db import ActivationDatabase, iter_shard_tables
from interplab.sae.configs import ExplainConfig
from interplab.sae.explain import openai_client as oc
from interplab.sae.explain.rules import Rule, TokenTable, learn_rule
from interplab.sae.explain.scoring import binary_scores, embedding_score

log = logging.getLogger(__name__)

EXPLANATIONS_PREFIX = "explanations_"


@dataclasses.dataclass
class ExplainResult:
    """Where the explanations went, the rows and the failures."""

    out: Path
    files: dict[str, str]
    rows: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    summary: dict[str, Any]


def parse_features(spec: str | None, d_sae: int) -> np.ndarray | None:
    """``0-9,12`` → feature ids (checked against ``d_sae``)."""
    if spec is None:
        return None
    out: list[int] = []
    try:
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            if "-" in part:
                lo, hi = part.split("-", 1)
                out += range(int(lo), int(hi) + 1)
            else:
                out.append(int(part))
    except ValueError:
        raise InterplabError(f"--features: expected ids and ranges like 0-99,512, got {spec!r}") from None
    bad = [f for f in out if not 0 <= f < d_sae]
    require(not bad, f"--features: {bad[0] if bad else ''} out of range 0..{d_sae - 1}")
    return np.unique(np.asarray(out, np.int64))


# -- examples from the database --------------------------------------------------------------------
def load_token_table(db: ActivationDatabase) -> TokenTable:
    cols = {"token_id": [], "text_idx": [], "position": [], "token_str": []}
    for _, t in iter_shard_tables(db.path, db.shards, "tokens", list(cols)):
        for k in cols:
            cols[k].append(t[k].to_numpy(zero_copy_only=False))
    return TokenTable.build(
        *(np.concatenate(cols[k]) for k in ("token_id", "text_idx", "position", "token_str"))
    )


@dataclasses.dataclass
class FeatureExamples:
    """One feature's token indices: training/held-out positives and negatives, and windows."""

    feature: int
    train_pos: np.ndarray
    test_pos: np.ndarray
    train_neg: np.ndarray
    test_neg: np.ndarray
    hard_neg: np.ndarray
    n_fires: int


def _window(table: TokenTable, centre: int, r: int) -> np.ndarray:
    lo, hi = max(0, centre - r), min(table.n_tokens, centre + r + 1)
    idx = np.arange(lo, hi)
    return idx[table.text_idx[idx] == table.text_idx[centre]]


class ExampleSampler:
    """Draws every feature's examples from the database, a chunk of features per query."""

    def __init__(self, db: ActivationDatabase, table: TokenTable, cfg: ExplainConfig) -> None:
        self.db, self.table, self.cfg = db, table, cfg
        rng = np.random.default_rng(cfg.seed)
        n = table.n_tokens
        pool = np.sort(rng.choice(n, size=min(cfg.n_negatives, n), replace=False))
        self.pool_train, self.pool_test = pool[0::2], pool[1::2]
        db.con.register("neg_pool", pa.table({"token_idx": pa.array(pool, pa.int64())}))
        act = db.query("SELECT a.token_idx, a.feature FROM activations a JOIN neg_pool USING (token_idx)")
        db.con.unregister("neg_pool")
        # which pool tokens each feature fires on: column f of a [pool, d_sae] sparse pattern
        rows = np.searchsorted(pool, act["token_idx"].to_numpy(np.int64))
        self.pool = pool
        self.pool_active = sp.csc_array(
            (np.ones(rows.size, bool), (rows, act["feature"].to_numpy(np.int64))), shape=(pool.size, db.d_sae)
        )

    def silent_pool(self, f: int) -> tuple[np.ndarray, np.ndarray]:
        """The training and held-out pool tokens on which feature ``f`` is silent."""
        ip = self.pool_active.indptr
        fired = self.pool[self.pool_active.indices[ip[f] : ip[f + 1]]]
        return (
            self.pool_train[~np.isin(self.pool_train, fired)],
            self.pool_test[~np.isin(self.pool_test, fired)],
        )

    def chunk(self, features: np.ndarray) -> list[FeatureExamples]:
        cfg = self.cfg
        lo, hi = int(features.min()), int(features.max())
        df = self.db.query(
            "SELECT feature, token_idx, value, "
            "row_number() OVER (PARTITION BY feature ORDER BY value DESC, token_idx) AS top_rank, "
            "row_number() OVER (PARTITION BY feature ORDER BY hash(token_idx + ?), token_idx) AS rnd_rank, "
            "count(*) OVER (PARTITION BY feature) AS n_fires "
            "FROM activations WHERE feature BETWEEN ? AND ? "
            "QUALIFY top_rank <= ? OR rnd_rank <= ?",
            [int(cfg.seed), lo, hi, int(cfg.top_k), int(cfg.n_train + cfg.n_heldout + cfg.top_k)],
        )
        wanted = set(features.tolist())
        out: list[FeatureExamples] = []
        for f, g in df.groupby("feature", sort=True):
            f = int(f)
            if f not in wanted:
                continue
            top = g[g.top_rank <= cfg.top_k].sort_values("top_rank").token_idx.to_numpy(np.int64)
            rnd = g[g.top_rank > cfg.top_k].sort_values("rnd_rank").token_idx.to_numpy(np.int64)
            train = np.concatenate([top, rnd[: cfg.n_train]])
            test = rnd[cfg.n_train : cfg.n_train + cfg.n_heldout]
            neg_tr, neg_te = self.silent_pool(f)
            out.append(
                FeatureExamples(f, train, test, neg_tr, neg_te, np.empty(0, np.int64), int(g.n_fires.iloc[0]))
            )
        return out

    def activity(self, pairs: list[tuple[int, np.ndarray]]) -> set[int]:
        """Keys ``feature << 40 | token_idx`` of the given (feature, tokens) pairs that fire."""
        if not pairs:
            return set()
        f = np.concatenate([np.full(len(t), f, np.int64) for f, t in pairs])
        t = np.concatenate([t for _, t in pairs]).astype(np.int64)
        self.db.con.register("cand", pa.table({"feature": pa.array(f, pa.int32()), "token_idx": pa.array(t)}))
        try:
            act = self.db.query(
                "SELECT DISTINCT a.feature, a.token_idx FROM activations a "
                "JOIN cand c ON a.feature = c.feature AND a.token_idx = c.token_idx "
                "WHERE a.feature BETWEEN ? AND ?",
                [int(f.min()), int(f.max())],
            )
        finally:
            self.db.con.unregister("cand")
        return set((act["feature"].to_numpy(np.int64) << 40 | act["token_idx"].to_numpy(np.int64)).tolist())

    def hard_negatives(self, ex: FeatureExamples, n: int, rng: np.random.Generator) -> np.ndarray:
        """Candidates: tokens with the same id as the feature's commonest training token."""
        if ex.train_pos.size == 0 or n == 0:
            return np.empty(0, np.int64)
        ids, counts = np.unique(self.table.token_id[ex.train_pos], return_counts=True)
        same = np.flatnonzero(self.table.token_id == ids[np.argmax(counts)])
        same = same[~np.isin(same, ex.train_pos)]
        return np.sort(rng.choice(same, size=min(4 * n, same.size), replace=False)) if same.size else same


# -- one chunk -------------------------------------------------------------------------------------
@dataclasses.dataclass
class Windows:
    """Token windows around examples with the feature's activity on each token."""

    tokens: list[np.ndarray]
    active: list[np.ndarray]


def _windows(table: TokenTable, f: int, centres: np.ndarray, r: int, active: set[int]) -> Windows:
    toks = [_window(table, int(c), r) for c in centres]
    act = [np.array([(f << 40 | int(i)) in active for i in w], bool) for w in toks]
    return Windows(toks, act)


def _quiet_centres(table: TokenTable, f: int, centres: np.ndarray, r: int, active: set[int]) -> np.ndarray:
    """The centres whose whole window is silent for feature ``f``."""
    keep = [c for c in centres if not any((f << 40 | int(i)) in active for i in _window(table, int(c), r))]
    return np.asarray(keep, np.int64)


def _texts(table: TokenTable, w: Windows) -> list[str]:
    return [table.text(t) for t in w.tokens]


def _marked(table: TokenTable, w: Windows, active: list[np.ndarray] | None = None) -> list[str]:
    marks = active if active is not None else w.active
    return [
        oc.mark([str(table.vocab[table.token_id[i]]) for i in t], m.tolist())
        for t, m in zip(w.tokens, marks, strict=True)
    ]


def score_rule(rule: Rule, table: TokenTable, ex: FeatureExamples, fuzz: Windows) -> dict[str, float | None]:
    """Detection on the held-out tokens and fuzzing inside the held-out windows, by the rule."""
    labels = np.r_[np.ones(ex.test_pos.size, bool), np.zeros(ex.test_neg.size, bool)]
    pred = rule.mask(table, np.r_[ex.test_pos, ex.test_neg])
    scores = binary_scores(labels, pred, "detection")
    if fuzz.tokens:
        idx = np.concatenate(fuzz.tokens)
        lab = np.concatenate(fuzz.active)
        scores |= binary_scores(lab, rule.mask(table, idx), "fuzzing")
    else:
        scores |= {"fuzzing_balanced_accuracy": None, "fuzzing_auroc": None}
    return scores


def _fuzz_marks(w: Windows, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """Half of the windows keep their true marks (label 1); the other half mark as many random
    silent tokens instead (label 0), as in delphi's fuzzing scorer."""
    marks, labels = [], []
    for i, a in enumerate(w.active):
        if i % 2 == 0 or a.all():
            marks.append(a)
            labels.append(1)
        else:
            silent = np.flatnonzero(~a)
            wrong = np.zeros_like(a)
            wrong[rng.choice(silent, size=min(max(1, int(a.sum())), silent.size), replace=False)] = True
            marks.append(wrong)
            labels.append(0)
    return marks, np.asarray(labels, bool)


class LLMExplainer:
    """Explain and score through an OpenAI-compatible endpoint."""

    def __init__(self, cfg: ExplainConfig, cache_dir: Path) -> None:
        import importlib.util

        require(
            importlib.util.find_spec("httpx") is not None,
            "--explainer llm needs the httpx package: pip install 'interplab[explain]'",
        )
        self.cfg = cfg
        self.client = oc.ChatClient(
            url=str(cfg.explainer_url),
            model=str(cfg.model_name),
            api_key=cfg.api_key(),
            timeout=cfg.timeout,
            max_retries=cfg.max_retries,
            backoff=cfg.backoff,
            cache=oc.ResponseCache(cache_dir),
        )
        self.name = f"llm:{cfg.model_name}"

    def _ask(self, feature: int, task: str, messages: list[dict[str, str]]) -> str:
        key = oc.ResponseCache.key(
            feature=feature,
            task=task,
            messages=messages,
            model=self.cfg.model_name,
            url=self.cfg.explainer_url,
        )
        return self.client.complete(messages, cache_key=key)

    def explain(self, feature: int, examples: list[str]) -> str:
        text = self._ask(feature, "explain", oc.explain_messages(examples))
        return oc.parse_explanation(text, self.client.endpoint)

    def detect(
        self, feature: int, explanation: str, pos: list[str], neg: list[str]
    ) -> dict[str, float | None]:
        order = np.random.default_rng(feature).permutation(len(pos) + len(neg))
        texts = [(pos + neg)[i] for i in order]
        labels = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)][order]
        answer = self._ask(feature, "detection", oc.scorer_messages(oc.DETECTION_SYSTEM, explanation, texts))
        pred = oc.parse_binary_list(answer, len(texts), self.client.endpoint)
        return binary_scores(labels, np.asarray(pred), "detection")

    def fuzz(
        self, feature: int, explanation: str, texts: list[str], labels: np.ndarray
    ) -> dict[str, float | None]:
        answer = self._ask(feature, "fuzzing", oc.scorer_messages(oc.FUZZING_SYSTEM, explanation, texts))
        pred = oc.parse_binary_list(answer, len(texts), self.client.endpoint)
        return binary_scores(labels, np.asarray(pred), "fuzzing")


# -- the command -----------------------------------------------------------------------------------
def explain(cfg: ExplainConfig | None = None, **kwargs: Any) -> ExplainResult:
    """Explain and score the features of ``cfg.analysis_dir`` (see the module docstring)."""
    cfg = cfg or ExplainConfig(**kwargs)
    t0 = time.perf_counter()
    cfg.validate()
    root = Path(cfg.analysis_dir).expanduser()
    require(root.is_dir(), f"{root}: analysis folder not found (expected the --out folder of `sae analyze`)")
    llm = None
    if cfg.explainer != "rules":
        cfg.api_key()  # a missing key variable fails before anything is read or written
    db = ActivationDatabase(root)
    feats = parse_features(cfg.features, db.d_sae)
    if feats is None:
        feats = np.arange(db.d_sae)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else root / "explain_cache"
    if cfg.explainer != "rules":
        llm = LLMExplainer(cfg, cache_dir)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    table = load_token_table(db)
    sampler = ExampleSampler(db, table, cfg)
    timings["load"] = round(time.perf_counter() - t, 3)
    embed = None
    if cfg.embedding:
        from interplab.sae.explain.scoring import Embedder

        t = time.perf_counter()
        embed = Embedder(cfg.embedding_model)
        timings["load_embedder"] = round(time.perf_counter() - t, 3)
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    rng = np.random.default_rng(cfg.seed + 1)  # hard-negative candidates
    n_silent = 0
    t_rules = t_llm = t_embed = 0.0
    chunks = [feats[s : s + cfg.chunk] for s in range(0, feats.size, cfg.chunk)]
    for chunk in track(chunks, "explaining features"):
        examples = sampler.chunk(chunk)
        n_silent += len(chunk) - len(examples)
        r = cfg.window_radius
        hard = {ex.feature: sampler.hard_negatives(ex, cfg.embedding_windows, rng) for ex in examples}
        pairs = []
        for ex in examples:
            for c in np.r_[ex.test_pos, ex.train_pos[: cfg.n_llm_examples if llm is not None else 0]]:
                pairs.append((ex.feature, _window(table, int(c), r)))
            if hard[ex.feature].size:
                pairs.append((ex.feature, hard[ex.feature]))
        need_neg_windows = llm is not None or embed is not None
        neg_cand: dict[int, np.ndarray] = {}
        if need_neg_windows:
            k = max(cfg.n_llm_examples, cfg.embedding_windows)
            for ex in examples:
                neg_cand[ex.feature] = ex.test_neg[: 4 * k]
                for c in neg_cand[ex.feature]:
                    pairs.append((ex.feature, _window(table, int(c), r)))
        active = sampler.activity(pairs)
        llm_jobs: list[tuple] = []
        for ex in examples:
            f = ex.feature
            ex.hard_neg = np.array([i for i in hard[f] if (f << 40 | int(i)) not in active], np.int64)
            fuzz = _windows(table, f, ex.test_pos, r, active)
            # non-activating windows: the feature is silent on every token of them
            quiet = _quiet_centres(table, f, neg_cand.get(f, np.empty(0, np.int64)), r, active)
            base = {
                "feature": f,
                "n_fires": ex.n_fires,
                "n_train_positives": int(ex.train_pos.size),
                "n_heldout_positives": int(ex.test_pos.size),
                "n_heldout_negatives": int(ex.test_neg.size),
            }
            emb_pos = emb_neg = None
            if embed is not None:
                k = cfg.embedding_windows
                emb_pos = _texts(table, _windows(table, f, ex.test_pos[:k], r, active))
                negc = np.r_[quiet[: max(1, k // 2)], ex.hard_neg[: k - max(1, k // 2)]]
                emb_neg = _texts(table, _windows(table, f, negc, r, active))
            if cfg.explainer in ("rules", "both"):
                ts = time.perf_counter()
                rule, train_ba = learn_rule(table, ex.train_pos, ex.train_neg)
                if rule is not None:
                    scores = score_rule(rule, table, ex, fuzz)
                    t_rules += time.perf_counter() - ts
                    row = {
                        **base,
                        "explainer": "rules",
                        "explanation": rule.sentence(),
                        "rule": rule.to_dict(),
                        "train_balanced_accuracy": round(train_ba, 6),
                        "scores": scores,
                    }
                    if embed is not None:
                        te = time.perf_counter()
                        scores["embedding_auroc"] = embedding_score(
                            embed, row["explanation"], emb_pos, emb_neg
                        )
                        t_embed += time.perf_counter() - te
                    rows.append(row)
            if llm is not None:
                train_w = _windows(table, f, ex.train_pos[: cfg.n_llm_examples], r, active)
                llm_jobs.append((ex, train_w, fuzz, quiet, base, emb_pos, emb_neg))
        if llm_jobs:
            ts = time.perf_counter()

            def run_job(job: tuple) -> dict[str, Any] | None:
                ex, train_w, fuzz, quiet, base = job[:5]
                rng_f = np.random.default_rng([cfg.seed, ex.feature])
                return _llm_row(llm, cfg, table, ex, train_w, fuzz, quiet, base, rng_f, failures)

            done = oc.run_concurrently(llm_jobs, run_job, cfg.concurrency)
            t_llm += time.perf_counter() - ts
            for job, row, _ in done:
                if row is None:
                    continue
                if embed is not None:
                    te = time.perf_counter()
                    row["scores"]["embedding_auroc"] = embedding_score(
                        embed, row["explanation"], job[5], job[6]
                    )
                    t_embed += time.perf_counter() - te
                rows.append(row)
    db.close()
    rows.sort(key=lambda row: (row["feature"], row["explainer"] != "rules"))
    failures.sort(key=lambda fl: (fl["feature"], fl["step"]))
    timings |= {"rules": round(t_rules, 3), "llm": round(t_llm, 3), "embedding": round(t_embed, 3)}
    return _write(root, cfg, rows, failures, timings, t0, n_silent, feats.size, llm)


def _llm_row(
    llm: LLMExplainer,
    cfg: ExplainConfig,
    table: TokenTable,
    ex: FeatureExamples,
    train_w: Windows,
    fuzz: Windows,
    quiet: np.ndarray,
    base: dict[str, Any],
    rng: np.random.Generator,
    failures: list[dict[str, Any]],
) -> dict[str, Any] | None:
    """Explain one feature and score the explanation (failures recorded, never raised)."""
    f = ex.feature
    try:
        explanation = llm.explain(f, _marked(table, train_w))
    except oc.ExplainerFailure as exc:
        failures.append(
            {"feature": f, "explainer": llm.name, "step": "explain", "kind": exc.kind, "message": exc.message}
        )
        return None
    scores: dict[str, float | None] = {}
    n = cfg.n_llm_examples
    pos_w = Windows(fuzz.tokens[:n], fuzz.active[:n])
    neg_w = _windows(table, f, quiet[:n], cfg.window_radius, set())
    try:
        scores |= llm.detect(f, explanation, _texts(table, pos_w), _texts(table, neg_w))
    except oc.ExplainerFailure as exc:
        failures.append(
            {
                "feature": f,
                "explainer": llm.name,
                "step": "detection",
                "kind": exc.kind,
                "message": exc.message,
            }
        )
    if pos_w.tokens:
        marks, labels = _fuzz_marks(pos_w, rng)
        try:
            scores |= llm.fuzz(f, explanation, _marked(table, pos_w, marks), labels)
        except oc.ExplainerFailure as exc:
            failures.append(
                {
                    "feature": f,
                    "explainer": llm.name,
                    "step": "fuzzing",
                    "kind": exc.kind,
                    "message": exc.message,
                }
            )
    return {**base, "explainer": llm.name, "explanation": explanation, "rule": None, "scores": scores}


def scores_figure(rows: list[dict[str, Any]]) -> Any:
    from interplab.common.figures import new_figure

    explainers = sorted({r["explainer"] for r in rows})
    keys = ("detection_balanced_accuracy", "fuzzing_balanced_accuracy", "embedding_auroc")
    fig, axes = new_figure(1, 3, figsize=(11, 3.2), sharey=True)
    bins = np.linspace(0, 1, 21)
    for ax, key in zip(axes, keys, strict=True):
        for i, e in enumerate(explainers):
            v = [r["scores"].get(key) for r in rows if r["explainer"] == e]
            v = [x for x in v if x is not None]
            if v:
                ax.hist(v, bins=bins, histtype="step", lw=1.5, color=f"C{i}", label=e)
        ax.set_xlabel(key.replace("_", " "))
    axes[0].set_ylabel("features")
    axes[0].legend(loc="upper left")
    fig.tight_layout()
    return fig


def _mean(rows: list[dict[str, Any]], explainer: str, key: str) -> float | None:
    v = [r["scores"].get(key) for r in rows if r["explainer"] == explainer]
    v = [x for x in v if x is not None]
    return round(float(np.mean(v)), 6) if v else None


def _write(
    root: Path,
    cfg: ExplainConfig,
    rows: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    timings: dict[str, float],
    t0: float,
    n_silent: int,
    n_requested: int,
    llm: LLMExplainer | None,
) -> ExplainResult:
    from interplab.common.figures import save_figure

    ts = timestamp()
    files = {
        "explanations": f"results/{EXPLANATIONS_PREFIX}{ts}.jsonl",
        "summary": f"results/explain_summary_{ts}.json",
        "plot_scores": f"plots/explanation_scores_{ts}.png",
        "manifest": f"results/explain_manifest_{ts}.json",
    }
    write_jsonl(root / files["explanations"], rows)
    written = [files["explanations"]]
    if rows:
        (root / "plots").mkdir(exist_ok=True)
        written += [
            str(p.relative_to(root)) for p in save_figure(scores_figure(rows), root / files["plot_scores"])
        ]
    seconds = time.perf_counter() - t0
    by_kind: dict[str, int] = {}
    for fl in failures:
        by_kind[fl["kind"]] = by_kind.get(fl["kind"], 0) + 1
    explainers = sorted({r["explainer"] for r in rows})
    summary = {
        "analysis": str(root.resolve()),
        "explainers": explainers,
        "n_features_requested": int(n_requested),
        "n_features_silent": int(n_silent),
        "n_explanations": len(rows),
        "mean_scores": {
            e: {
                k: _mean(rows, e, k)
                for k in (
                    "detection_balanced_accuracy",
                    "detection_auroc",
                    "fuzzing_balanced_accuracy",
                    "fuzzing_auroc",
                    "embedding_auroc",
                )
            }
            for e in explainers
        },
        "failures_by_kind": by_kind,
        "failures": failures,
        "n_requests": llm.client.n_requests if llm else 0,
        "seconds": round(seconds, 3),
        "features_per_second": round(n_requested / seconds, 3) if seconds > 0 else None,
        "timings": timings,
        "files": dict(files),
    }
    write_json(root / files["summary"], summary)
    written.append(files["summary"])
    write_json(
        root / files["manifest"],
        {
            "command": "sae explain",
            "argv": sys.argv,
            "arguments": dataclasses.asdict(cfg),
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - t0, 3),
            "timings": timings,
            "versions": package_versions(),
            "files": sorted(written),
        },
    )
    return ExplainResult(out=root, files=files, rows=rows, failures=failures, summary=summary)
