"""The full SAE analysis: ``SAEAnalyzer`` (the steps one by one) and ``run_comprehensive_analysis``.

One collection pass (forward stopped after the hooked layer) builds the Parquet activation database
and every streaming statistic; the matrices come from the SAE weights (similarity) and the
co-occurrence counts; a bounded ablation subset gets full forward passes for the loss-based
metrics; then summaries, plots, ``SUMMARY_<ts>.json`` and ``README_<ts>.md`` are written. Every
output file is written atomically. See ``docs/sae-analysis.md`` for the folder layout and formulas.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from interplab.common.atomic import save_npy, save_sparse, write_json, write_jsonl
from interplab.common.errors import InterplabError, one_of, require
from interplab.common.interrupt import resumable
from interplab.common.markdown_html import html_beside
from interplab.common.models import LoadedModel, load_model, load_tokenizer
from interplab.common.output import OutputDir, output_dir, timestamp
from interplab.common.overwrite import remove_previous_outputs
from interplab.common.progress import track
from interplab.sae import plots
from interplab.sae.ablation import ablation_on_subset, ablation_windows, most_frequent_features
from interplab.sae.activation_db import ActivationDatabase, ActivationDBWriter, Shard, read_manifest
from interplab.sae.collect import CollectionResult, collect
from interplab.sae.configs import AnalysisConfig
from interplab.sae.cooccurrence import (
    COOCCURRENCE_METRICS,
    dense_metric,
    sparse_metric,
    topk_neighbours,
)
from interplab.sae.cooccurrence import METRICS as COOCCURRENCE_REGISTRY
from interplab.sae.cooccurrence import row_topk as cooccurrence_row_topk
from interplab.sae.corpus import TokenWindows, load_windows
from interplab.sae.formats import load_history, load_sae
from interplab.sae.hooks import HookPoint, resolve_sae_hook
from interplab.sae.layout import DATABASE, DB_MANIFEST, AnalysisPaths, cooccurrence_key
from interplab.sae.model import SAE
from interplab.sae.report import build_summary, write_readme
from interplab.sae.similarity import (
    SIMILARITY_METRICS,
    larger_is_closer,
    row_topk,
    similarity_matrix,
    similarity_topk,
)
from interplab.sae.stats import HIST_EDGES
from interplab.sae.summaries import (
    LogitUnit,
    SummaryInputs,
    iter_feature_records,
    model_logit_unit,
    quantile_pass,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class AnalysisResult:
    """Where everything went and the key numbers (the content of ``SUMMARY_<ts>.json``)."""

    out: Path
    timestamp: str
    files: dict[str, str]
    summary: dict[str, Any]
    results: dict[str, Any]


def _sha256_tensor(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def _texts_digest(windows: TokenWindows) -> str:
    h = hashlib.sha256()
    h.update(windows.input_ids.numpy().tobytes())
    h.update(windows.attention_mask.numpy().tobytes())
    return h.hexdigest()[:16]


class SAEAnalyzer:
    """The analysis steps one by one, on one model + SAE + hook.

    ``collect_all_activations`` must run first; the other steps use its accumulators and database.
    """

    def __init__(
        self,
        model_name: str,
        sae_path: str | Path,
        layer: int | None,
        hook_name: str | None = "hook_resid_post",
        analysis_dir: str | Path = "sae-analysis",
        batch_size: int = 8,
        loaded: LoadedModel | None = None,
        sae: SAE | None = None,
        hook_point: HookPoint | None = None,
        **options: Any,
    ) -> None:
        self.cfg = AnalysisConfig(
            model_name=str(model_name),
            sae_path=str(sae_path),
            layer=layer,
            hook_name=hook_name,
            analysis_dir=str(analysis_dir),
            batch_size=int(batch_size),
            **options,
        )
        # phi is always computed: it ranks the co-active features of the summaries
        self.cfg.cooccurrence = ("phi", *(m for m in self.cfg.cooccurrence if m != "phi"))
        self.cfg.validate()
        self.sae = sae if sae is not None else load_sae(self.cfg.sae_path, dtype=self.cfg.dtype)
        self._loaded = loaded
        self._tokenizer: Any = None
        # a known hook point (e.g. a database's) spares loading the model until a step needs it
        self.hp = hook_point or resolve_sae_hook(self.loaded, self.sae, self.cfg.hook_name, self.cfg.layer)
        if self.sae.cfg.hook_name_out and self.sae.cfg.out_width != self.sae.d_in:
            raise InterplabError(
                f"sae analyze: transcoder with d_out={self.sae.cfg.out_width} ≠ d_in={self.sae.d_in} is not "
                "supported; use sae quick"
            )
        self.out = Path(self.cfg.analysis_dir)
        self.windows: TokenWindows | None = None
        self.collection: CollectionResult | None = None
        self._cooc: dict[str, Any] = {}
        self._similarity: np.ndarray | None = None
        self._ablation: dict[str, Any] | None = None
        self._transcoder: dict[str, Any] | None = None
        self._logit_unit: LogitUnit | None = None
        self.stored_corpus: dict[str, Any] | None = None  # the corpus summary of a database's manifest
        self.writer_factory: Any = ActivationDBWriter  # replaceable, e.g. to inject write errors in tests

    # -- model and data ---------------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel:
        """The model, loaded on first use."""
        if self._loaded is None:
            self._loaded = load_model(self.cfg.model_name)
        return self._loaded

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (without loading the weights when the model is not loaded yet)."""
        if self._loaded is not None:
            return self._loaded.tokenizer
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.cfg.model_name)
        return self._tokenizer

    def logit_unit(self) -> LogitUnit:
        """The SAE's logit effects through the model's unembedding (stored, or computed once)."""
        if self._logit_unit is None:
            self._logit_unit = model_logit_unit(self.loaded, self.sae.W_dec)
        return self._logit_unit

    def use_logit_unit(self, unit: LogitUnit | None) -> None:
        """Take stored logit effects instead of computing them (None: compute them when needed)."""
        self._logit_unit = unit

    def corpus_summary(self) -> dict[str, Any] | None:
        """Counts of the tokenised corpus, for the report."""
        return self.windows.summary() if self.windows is not None else self.stored_corpus

    def load_data(self, data_path: str | None = None) -> TokenWindows:
        """Tokenise the corpus into windows (errors name the data file)."""
        if data_path is not None:
            self.cfg.data_path = str(data_path)
        self.windows = load_windows(
            self.tokenizer,
            self.cfg.data_path,
            context_size=self.cfg.context_size,
            max_tokens=self.cfg.max_tokens,
        )
        log.info(
            "%s: %d tokens in %d windows (%d empty texts skipped)",
            self.cfg.data_path,
            self.windows.n_tokens,
            self.windows.n_windows,
            self.windows.n_empty_texts,
        )
        return self.windows

    def sae_identity(self) -> dict[str, str]:
        """The SAE's weights by hash (part of :meth:`fingerprint`)."""
        return {
            "sae_W_enc_sha256": _sha256_tensor(self.sae.W_enc),
            "sae_W_dec_sha256": _sha256_tensor(self.sae.W_dec),
        }

    def fingerprint(self) -> dict[str, Any]:
        """What the activation database depends on; a resumed run must match it."""
        assert self.windows is not None
        return {
            "model": self.cfg.model_name,
            "sae": str(Path(self.cfg.sae_path).expanduser().resolve()),
            **self.sae_identity(),
            "layer": self.hp.layer,
            "hook": self.hp.name,
            "data": self.cfg.data_path,
            "tokens_sha256": _texts_digest(self.windows),
            "context_size": self.cfg.context_size,
            "max_tokens": self.cfg.max_tokens,
            "dtype": self.cfg.dtype,
        }

    # -- steps ------------------------------------------------------------------------------------
    def collect_all_activations(self, data_path: str | None = None, **kwargs: Any) -> CollectionResult:
        """The collection pass into ``<analysis_dir>/activation_database`` (resumes when possible)."""
        if self.windows is None or data_path is not None:
            self.load_data(data_path)
        assert self.windows is not None
        from interplab.sae.merge import collect_or_merge_sharded

        sharded = collect_or_merge_sharded(self)
        if sharded is not None:  # a database written shard by shard: fill missing shards, merge
            self.collection = sharded
            return sharded
        self.collection = collect(
            self.loaded,
            self.hp,
            self.sae,
            self.windows,
            self.out / DATABASE,
            self.fingerprint(),
            batch_size=self.cfg.batch_size,
            top_k=self.cfg.top_k,
            shard_tokens=self.cfg.shard_tokens,
            cooccurrence_dense_limit=self.cfg.cooccurrence_dense_limit,
            overwrite=self.cfg.overwrite,
            **{"writer_factory": self.writer_factory, **kwargs},
        )
        return self.collection

    def _need_collection(self) -> CollectionResult:
        require(self.collection is not None, "run collect_all_activations() first")
        assert self.collection is not None
        return self.collection

    @property
    def database(self) -> ActivationDatabase:
        """DuckDB queries over the activation database."""
        return ActivationDatabase(self.out / DATABASE)

    def compute_feature_similarity(
        self, metric: str | None = None
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Decoder similarity: the dense matrix while d_sae ≤ the dense limit, else top-k
        ``(indices, values)`` arrays."""
        metric = one_of(metric or self.cfg.similarity, SIMILARITY_METRICS, "similarity metric")
        if self.sae.d_sae <= self.cfg.similarity_dense_limit:
            return similarity_matrix(self.sae.W_dec, metric)
        return similarity_topk(self.sae.W_dec, self.cfg.n_neighbours, metric)

    def find_similar_features(
        self, feature: int, top_k: int = 10, metric: str | None = None
    ) -> list[dict[str, Any]]:
        """The ``top_k`` features whose decoder directions are closest to ``feature``'s."""
        metric = metric or self.cfg.similarity
        require(0 <= int(feature) < self.sae.d_sae, f"feature {feature} out of range 0..{self.sae.d_sae - 1}")
        W = self.sae.W_dec.detach()
        idx, val = row_topk(W, int(feature), top_k, metric)
        return [{"feature": int(i), "value": float(v)} for i, v in zip(idx, val, strict=True)]

    def compute_feature_cooccurrence(self, metric: str = "phi") -> np.ndarray | sp.csr_array:
        """phi / jaccard / pmi from the co-occurrence counts (dense, or sparse above the limit)."""
        metric = one_of(metric, COOCCURRENCE_METRICS, "co-occurrence metric")
        if metric not in self._cooc:
            col = self._need_collection()
            counts = col.cooccurrence.counts()
            n = col.cooccurrence.n_tokens
            self._cooc[metric] = (
                sparse_metric(counts, n, metric) if sp.issparse(counts) else dense_metric(counts, n, metric)
            )
        return self._cooc[metric]

    def find_coactivating_features(
        self, feature: int, top_k: int = 10, metric: str = "phi"
    ) -> list[dict[str, Any]]:
        """The ``top_k`` features most co-active with ``feature`` by ``metric``."""
        require(0 <= int(feature) < self.sae.d_sae, f"feature {feature} out of range 0..{self.sae.d_sae - 1}")
        m = self.compute_feature_cooccurrence(metric)
        idx, val = cooccurrence_row_topk(m, int(feature), top_k)
        return [{"feature": int(i), "value": float(v)} for i, v in zip(idx, val, strict=True) if i >= 0]

    def compute_sparsity_metrics(self) -> dict[str, Any]:
        """The ``sparsity`` section (L0/L1 per token, per-feature firing frequency)."""
        return self._need_collection().sections["sparsity"]

    def find_dead_features(self) -> dict[str, Any]:
        """The ``dead_features`` section: features that never fired on the tokens seen, and more."""
        return self._need_collection().sections["dead_features"]

    def compute_reconstruction_metrics(self) -> dict[str, Any]:
        """The ``reconstruction`` section (MSE, explained variance, cosine, L2 ratio)."""
        return self._need_collection().sections["reconstruction"]

    def ablation_study(self, n_tokens: int | None = None, n_features: int | None = None) -> dict[str, Any]:
        """Loss-based metrics on the first ``n_tokens`` tokens (whole windows; full forward passes):
        the ``ablation`` section and per-feature effects of removing each of the ``n_features`` most
        frequent features from the SAE reconstruction."""
        col = self._need_collection()
        if self.windows is None:
            self.load_data()
        assert self.windows is not None
        n_tokens = self.cfg.ablation_tokens if n_tokens is None else int(n_tokens)
        n_features = self.cfg.ablation_features if n_features is None else int(n_features)
        feats = most_frequent_features(col.feature_stats.count, n_features)
        if self.sae.cfg.hook_name_out:  # a transcoder: its prediction is spliced at the output hook
            from interplab.sae.transcoder import analysis_sections

            self._transcoder = analysis_sections(
                self.loaded,
                self.hp,
                self.sae,
                self.windows,
                ablation_windows(self.windows, n_tokens),
                self.cfg.batch_size,
                self.cfg.eval_convention,
            )
            self._ablation = {k: self._transcoder[k] for k in ("ablation", "feature_ablation")}
            return self._ablation
        self._ablation = ablation_on_subset(
            self.loaded,
            self.hp,
            self.sae,
            self.windows,
            self.cfg.batch_size,
            n_tokens,
            feats,
            convention=self.cfg.eval_convention,
        )
        return self._ablation

    def find_max_activating_examples(self, feature: int, top_k: int | None = None) -> list[dict[str, Any]]:
        """The top activations of ``feature`` with their tokens (value desc), from the database."""
        with self.database as db:
            df = db.get_feature_activations(int(feature), top_k or self.cfg.top_k)
        return df.to_dict(orient="records")

    # -- the whole pipeline ------------------------------------------------------------------------
    def run(self, arguments: dict[str, Any] | None = None) -> AnalysisResult:
        """Every step, writing the analysis folder (see docs/sae-analysis.md)."""
        ts = timestamp()
        args = arguments or dataclasses.asdict(self.cfg)
        if self.cfg.overwrite:  # the earlier run's README, SUMMARY, matrices… go; other files stay
            remove_previous_outputs(self.out)
        with output_dir(self.out, "sae analyze", args) as od:
            return _write_everything(self, od, ts)


def _write_everything(an: SAEAnalyzer, od: OutputDir, ts: str) -> AnalysisResult:
    """The analysis folder, one named step after the other (paths from :mod:`interplab.sae.layout`)."""
    paths = AnalysisPaths(ts)
    files: dict[str, str] = {}
    with od.timed("collect"):
        col = an.collection if an.collection is not None else an.collect_all_activations()
    files["activation_database"] = f"{DATABASE}/"
    od.record(od.path / DATABASE / DB_MANIFEST)
    with od.timed("similarity"):
        similar = _similarity_step(od, paths, an.sae.W_dec, an.cfg, files)
    with od.timed("cooccurrence"):
        counts = col.cooccurrence.counts()
        metrics = {m: an.compute_feature_cooccurrence(m) for m in an.cfg.cooccurrence}
        coactive = _cooccurrence_step(od, paths, counts, metrics, an.cfg.n_neighbours, files)
    with od.timed("ablation"):
        abl = an._ablation if an._ablation is not None else an.ablation_study()
    results = _results(an, col, abl, dense=not sp.issparse(counts))
    files["analysis_results"] = paths.results
    write_json(od.file(files["analysis_results"]), results)
    with od.timed("summaries"):
        inputs = _summaries_step(od, paths, an, col, similar, coactive, counts, abl, results, files)
    with od.timed("plots"):
        history = load_history(an.cfg.sae_path)
        files.update(
            plots.analysis_plots(
                od,
                col.feature_stats,
                an.sae.W_dec,
                an.cfg.similarity,
                counts,
                col.cooccurrence.n_tokens,
                history,
            )
        )
    summary = build_summary(results, col.feature_stats, ts)
    files["summary"] = paths.summary
    files["readme"] = paths.readme
    summary["files"] = dict(files)
    write_json(od.file(files["summary"]), summary)
    write_readme(od.file(files["readme"]), summary, results, inputs)
    html_beside(od.file(files["readme"]))
    # results file again with the logit-effects note (atomic overwrite)
    write_json(od.file(files["analysis_results"]), results)
    return AnalysisResult(out=od.path, timestamp=ts, files=files, summary=summary, results=results)


def _similarity_step(
    od: OutputDir, paths: AnalysisPaths, W_dec: torch.Tensor, cfg: AnalysisConfig, files: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Decoder similarity: the dense matrix (up to the dense limit) and the top-k neighbour arrays."""
    k_nb = cfg.n_neighbours
    if W_dec.shape[0] <= cfg.similarity_dense_limit:
        sim = similarity_matrix(W_dec, cfg.similarity)
        files["similarity"] = paths.similarity()
        save_npy(od.file(files["similarity"]), sim)
        similar = topk_neighbours(sim, k_nb, largest=larger_is_closer(cfg.similarity))
        del sim
    else:
        similar = similarity_topk(W_dec, k_nb, cfg.similarity)
    files["similarity_topk_indices"] = paths.neighbours("similarity", "indices")
    files["similarity_topk_values"] = paths.neighbours("similarity", "values")
    save_npy(od.file(files["similarity_topk_indices"]), similar[0])
    save_npy(od.file(files["similarity_topk_values"]), similar[1])
    return similar


def _save_matrix(od: OutputDir, rel: str, m: np.ndarray | sp.csr_array) -> None:
    if sp.issparse(m):
        save_sparse(od.file(rel), m)
    else:
        save_npy(od.file(rel), m)


def _cooccurrence_step(
    od: OutputDir,
    paths: AnalysisPaths,
    counts: np.ndarray | sp.csr_array,
    metrics: dict[str, np.ndarray | sp.csr_array],
    k_nb: int,
    files: dict[str, str],
) -> tuple[np.ndarray, np.ndarray]:
    """The co-firing counts, each metric matrix and its top-k neighbours; returns phi's neighbours."""
    sparse = sp.issparse(counts)
    files["cooccurrence_counts"] = paths.cooccurrence_counts(sparse=sparse)
    _save_matrix(od, files["cooccurrence_counts"], counts)
    neighbours = {}
    for metric, m in metrics.items():
        key = cooccurrence_key(metric)
        files[key] = paths.cooccurrence(metric, sparse=sparse)
        _save_matrix(od, files[key], m)
        nb = topk_neighbours(m, k_nb, largest=COOCCURRENCE_REGISTRY[metric].larger_is_more_related)
        files[f"{key}_topk_indices"] = paths.neighbours(f"cooccurrence_{metric}", "indices")
        files[f"{key}_topk_values"] = paths.neighbours(f"cooccurrence_{metric}", "values")
        save_npy(od.file(files[f"{key}_topk_indices"]), nb[0])
        save_npy(od.file(files[f"{key}_topk_values"]), nb[1])
        neighbours[metric] = nb
    return neighbours["phi"]


def _results(an: SAEAnalyzer, col: CollectionResult, abl: dict[str, Any], dense: bool) -> dict[str, Any]:
    """The content of ``results/analysis_results_<ts>.json``."""
    cfg = an.cfg
    sections = col.sections
    if an._transcoder is not None:  # prediction vs the true output, not the input's reconstruction
        sections = {**sections, "reconstruction": an._transcoder["reconstruction"]}
    return {
        "config": {**dataclasses.asdict(cfg), "hook": an.hp.name, "layer": an.hp.layer},
        "data": an.corpus_summary(),
        "sae": {
            "architecture": an.sae.cfg.architecture,
            "k": an.sae.cfg.k,
            "d_in": an.sae.d_in,
            "d_sae": an.sae.d_sae,
            "source_format": an.sae.cfg.source_format,
            "hook_name_in_config": an.sae.cfg.hook_name,
            "hook_name_out": an.sae.cfg.hook_name_out,
            "hook_source": "--hook" if cfg.hook_name else an.sae.cfg.extra.get("hook_source", "SAE config"),
        },
        "model": {"name": cfg.model_name, "has_lm_head": an.logit_unit().has_lm_head},
        **sections,
        "ablation": abl["ablation"],
        "feature_ablation": abl["feature_ablation"],
        "feature_stats": {**col.feature_stats.summary(), "histogram_bin_edges": HIST_EDGES.tolist()},
        "similarity": {
            "metric": cfg.similarity,
            "dense": an.sae.d_sae <= cfg.similarity_dense_limit,
            "n_neighbours": cfg.n_neighbours,
        },
        "cooccurrence": {
            "metrics": list(cfg.cooccurrence),
            "dense": dense,
            "n_tokens": col.cooccurrence.n_tokens,
            "stored_nonzeros": None if dense else int(col.cooccurrence.counts().nnz),
            "zero_variance_phi": 0.0,
        },
        "collection": {
            "n_tokens": col.n_tokens,
            "n_shards": col.n_shards,
            "resumed_shards": col.resumed_shards,
            "seconds": round(col.seconds, 3),
            "seconds_forward": round(col.seconds_forward, 3),
            "missing_token_ranges": col.missing_token_ranges,
        },
    }


def _summaries_step(
    od: OutputDir,
    paths: AnalysisPaths,
    an: SAEAnalyzer,
    col: CollectionResult,
    similar: tuple[np.ndarray, np.ndarray],
    coactive: tuple[np.ndarray, np.ndarray],
    counts: np.ndarray | sp.csr_array,
    abl: dict[str, Any],
    results: dict[str, Any],
    files: dict[str, str],
) -> SummaryInputs:
    """``results/feature_summaries_<ts>.jsonl``, one line per feature (second pass for quantiles)."""
    shards = [Shard(**s) for s in read_manifest(col.db_path)["shards"]]
    logits = an.logit_unit().effects
    inputs = SummaryInputs(
        stats=col.feature_stats,
        quantiles=col.quantiles
        if col.quantiles is not None
        else quantile_pass(col.feature_stats, col.db_path, shards, an.cfg.examples_per_quantile),
        db_path=col.db_path,
        shards=shards,
        n_tokens=col.n_tokens,
        tokenizer=an.tokenizer,
        similar=similar,
        coactivating=coactive,
        cooccurrence_counts=counts,
        logits=logits,
        ablation={e["feature"]: e for e in ((abl.get("feature_ablation") or {}).get("features") or [])},
        context_radius=an.cfg.context_radius,
    )
    files["feature_summaries"] = paths.feature_summaries
    write_jsonl(
        od.file(files["feature_summaries"]),
        track(iter_feature_records(inputs), "feature summaries", total=an.sae.d_sae),
    )
    results["logit_effects"] = (
        "W_dec · W_Uᵀ with the model's output embeddings (no final norm)"
        if logits is not None
        else "null: the model has no unembedding (output embeddings) of the SAE's width"
    )
    return inputs


def _run_all(an: SAEAnalyzer) -> AnalysisResult:
    t0 = time.perf_counter()
    an.load_data()
    result = an.run()
    log.info("analysis written to %s in %.1fs", result.out, time.perf_counter() - t0)
    return result


@resumable
def run_analysis(cfg: AnalysisConfig) -> AnalysisResult:
    """Load the model, the SAE and the corpus, then run every analysis step and write
    ``cfg.analysis_dir`` (layout in docs/sae-analysis.md)."""
    options = dataclasses.asdict(cfg)
    fixed = [
        options.pop(k) for k in ("model_name", "sae_path", "layer", "hook_name", "analysis_dir", "batch_size")
    ]
    return _run_all(SAEAnalyzer(*fixed, **options))


@resumable
def run_comprehensive_analysis(
    model_name: str = "minilm",
    sae_path: str | Path = "",
    layer: int | None = None,
    hook_name: str | None = "hook_resid_post",
    data_path: str = "docs",
    batch_size: int = 8,
    analysis_dir: str | Path = "sae-analysis",
    **options: Any,
) -> AnalysisResult:
    """The old scripts' signature of :func:`run_analysis`: options are the fields of
    :class:`AnalysisConfig` (context_size, max_tokens, top_k, similarity, cooccurrence, …)."""
    an = SAEAnalyzer(
        model_name, sae_path, layer, hook_name, analysis_dir, batch_size, data_path=str(data_path), **options
    )
    return _run_all(an)


@dataclasses.dataclass
class DemoResult:
    """The demo's trained SAE folder and its analysis."""

    sae_folder: Path
    analysis: AnalysisResult
    trained: bool


def run_sae_demo(
    out: str | Path = "sae-demo",
    max_tokens: int = 32_768,
    d_sae: int = 1024,
    k: int = 32,
    steps: int = 400,
    model: str = "minilm",
    layer: int = 3,
    hook: str = "hook_resid_post",
    data: str = "docs",
    **options: Any,
) -> DemoResult:
    """Train a TopK SAE on ``model`` (``out/sae``; reused when already there) and analyse it
    (``out/analysis``; an interrupted analysis resumes)."""
    from interplab.sae.train import train_sae

    out = Path(out)
    sae_folder = out / "sae"
    trained = False
    if not ((sae_folder / "cfg.json").exists() and (sae_folder / "sae_weights.safetensors").exists()):
        train_sae(
            model=model,
            layer=layer,
            hook=hook,
            data=data,
            d_sae=d_sae,
            k=k,
            steps=steps,
            out=sae_folder,
            max_tokens=max_tokens,
        )
        trained = True
    options = {
        "max_tokens": max_tokens,
        "batch_size": 16,
        "ablation_tokens": 2048,
        "ablation_features": 8,
        **options,
    }
    batch_size = options.pop("batch_size")
    analysis = run_comprehensive_analysis(
        model, sae_folder, layer, hook, data, batch_size, out / "analysis", **options
    )
    return DemoResult(sae_folder=sae_folder, analysis=analysis, trained=trained)


__all__ = [
    "AnalysisConfig",
    "AnalysisResult",
    "SAEAnalyzer",
    "run_analysis",
    "run_comprehensive_analysis",
    "run_sae_demo",
]
