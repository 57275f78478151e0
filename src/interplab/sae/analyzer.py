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

from interplab.common.atomic import save_npy, write_json, write_jsonl
from interplab.common.errors import one_of, require
from interplab.common.models import LoadedModel, load_model
from interplab.common.output import OutputDir, output_dir, timestamp
from interplab.common.progress import track
from interplab.sae import plots
from interplab.sae.activation_db import ActivationDatabase, ActivationDBWriter
from interplab.sae.collect import CollectionResult, collect, slice_windows
from interplab.sae.cooccurrence import (
    COOCCURRENCE_METRICS,
    dense_metric,
    sparse_metric,
    topk_neighbours,
)
from interplab.sae.cooccurrence import DENSE_LIMIT as CO_DENSE_LIMIT
from interplab.sae.corpus import Batch, TokenWindows, iter_batches, load_windows
from interplab.sae.formats import load_history, load_sae
from interplab.sae.metrics import AblationStats, ablation_losses, clean_forward, sae_splice
from interplab.sae.model import SAE
from interplab.sae.quick import resolve_sae_hook, validate_run_args
from interplab.sae.similarity import DENSE_LIMIT as SIM_DENSE_LIMIT
from interplab.sae.similarity import SIMILARITY_METRICS, similarity_matrix, similarity_topk
from interplab.sae.stats import EXAMPLES_PER_QUANTILE
from interplab.sae.summaries import (
    SummaryInputs,
    iter_feature_records,
    logit_effects,
    quantile_pass,
    unembedding,
)

log = logging.getLogger(__name__)

ABLATION_TOKENS = 4096
ABLATION_FEATURES = 8
ABLATION_GROUP = 8  # feature variants per forward pass
HEATMAP_FEATURES = 32


@dataclasses.dataclass
class AnalysisConfig:
    """Every knob of the analysis (flags of ``interplab sae analyze``)."""

    model_name: str = "minilm"
    sae_path: str = ""
    layer: int | None = None
    hook_name: str | None = "hook_resid_post"
    data_path: str = "docs"
    batch_size: int = 8
    analysis_dir: str = "sae-analysis"
    context_size: int = 128
    max_tokens: int | None = None
    top_k: int = 20
    similarity: str = "cosine"
    cooccurrence: tuple[str, ...] = ("phi",)
    n_neighbours: int = 10
    similarity_dense_limit: int = SIM_DENSE_LIMIT
    cooccurrence_dense_limit: int = CO_DENSE_LIMIT
    ablation_tokens: int = ABLATION_TOKENS
    ablation_features: int = ABLATION_FEATURES
    context_radius: int = 10
    shard_tokens: int = 32_768
    overwrite: bool = False
    dtype: str = "float32"
    examples_per_quantile: int = EXAMPLES_PER_QUANTILE

    def validate(self) -> None:
        validate_run_args(self.batch_size, self.context_size, self.max_tokens)
        require(bool(str(self.sae_path)), "--sae is required: a folder holding an SAE")
        one_of(self.similarity, SIMILARITY_METRICS, "similarity metric")
        require(len(self.cooccurrence) > 0, "--cooccurrence needs at least one of: phi, jaccard, pmi")
        for m in self.cooccurrence:
            one_of(m, COOCCURRENCE_METRICS, "co-occurrence metric")
        for name in ("top_k", "n_neighbours", "shard_tokens", "examples_per_quantile"):
            require(
                int(getattr(self, name)) >= 1,
                f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}",
            )
        for name in ("ablation_tokens", "ablation_features", "context_radius"):
            require(
                int(getattr(self, name)) >= 0,
                f"--{name.replace('_', '-')} must be ≥ 0, got {getattr(self, name)}",
            )


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
        self.loaded = loaded if loaded is not None else load_model(self.cfg.model_name)
        self.hp = resolve_sae_hook(self.loaded, self.sae, self.cfg.hook_name, self.cfg.layer)
        self.out = Path(self.cfg.analysis_dir)
        self.windows: TokenWindows | None = None
        self.collection: CollectionResult | None = None
        self._cooc: dict[str, Any] = {}
        self._similarity: np.ndarray | None = None
        self._ablation: dict[str, Any] | None = None
        self.writer_factory: Any = ActivationDBWriter  # replaceable, e.g. to inject write errors in tests

    # -- data -------------------------------------------------------------------------------------
    def load_data(self, data_path: str | None = None) -> TokenWindows:
        """Tokenise the corpus into windows (errors name the data file)."""
        if data_path is not None:
            self.cfg.data_path = str(data_path)
        self.windows = load_windows(
            self.loaded.tokenizer,
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

    def fingerprint(self) -> dict[str, Any]:
        """What the activation database depends on; a resumed run must match it."""
        assert self.windows is not None
        return {
            "model": self.cfg.model_name,
            "sae": str(Path(self.cfg.sae_path).expanduser().resolve()),
            "sae_W_enc_sha256": _sha256_tensor(self.sae.W_enc),
            "sae_W_dec_sha256": _sha256_tensor(self.sae.W_dec),
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
            self.out / "activation_database",
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
        return ActivationDatabase(self.out / "activation_database")

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
        idx, val = _row_topk(W, int(feature), top_k, metric)
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
        idx, val = _cooc_row_topk(m, int(feature), top_k)
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
        assert self.windows is not None
        n_tokens = self.cfg.ablation_tokens if n_tokens is None else int(n_tokens)
        n_features = self.cfg.ablation_features if n_features is None else int(n_features)
        freq = col.feature_stats.count
        order = np.lexsort((np.arange(freq.size), -freq))
        feats = [int(f) for f in order[:n_features] if freq[f] > 0]
        self._ablation = ablation_on_subset(
            self.loaded, self.hp, self.sae, self.windows, self.cfg.batch_size, n_tokens, feats
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
        if self.windows is None:
            self.load_data()
        ts = timestamp()
        args = arguments or dataclasses.asdict(self.cfg)
        with output_dir(self.out, "sae analyze", args) as od:
            return _write_everything(self, od, ts)


def _row_topk(W: torch.Tensor, feature: int, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    from interplab.sae.similarity import _block, _prepared

    Wp = _prepared(W, metric)
    sq = (Wp * Wp).sum(dim=1) if metric == "euclidean" else None
    row = _block(Wp, slice(feature, feature + 1), metric, sq)[0]
    largest = metric != "euclidean"
    row[feature] = -torch.inf if largest else torch.inf
    k = min(k, row.numel() - 1)
    v, i = torch.topk(row, k, largest=largest)
    return i.numpy(), v.numpy()


def _cooc_row_topk(m: np.ndarray | sp.csr_array, feature: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    if sp.issparse(m):
        row = sp.csr_array(m[[feature], :])
        cols, vals = row.indices, row.data
    else:
        cols, vals = np.arange(m.shape[1]), np.asarray(m[feature])
    keep = (cols != feature) & np.isfinite(vals)
    cols, vals = cols[keep], vals[keep]
    order = np.lexsort((cols, -vals))[:k]
    return cols[order], vals[order]


def _ablation_windows(windows: TokenWindows, n_tokens: int) -> TokenWindows | None:
    if n_tokens <= 0:
        return None
    per_window = (
        (windows.positions >= 0).sum(dim=1)
        if windows.positions is not None
        else windows.attention_mask.sum(dim=1)
    )
    cum = torch.cumsum(per_window, 0)
    stop = int(torch.searchsorted(cum, torch.tensor(n_tokens)).item()) + 1
    return slice_windows(windows, 0, min(stop, windows.n_windows))


def _repeat_batch(batch: Batch, g: int) -> Batch:
    return Batch(
        input_ids=batch.input_ids.repeat(g, 1),
        attention_mask=batch.attention_mask.repeat(g, 1),
        text_idx=batch.text_idx.repeat(g, 1),
        positions=batch.positions.repeat(g, 1),
    )


def _feature_removed_fn(sae: SAE, feats: list[int], b: int):
    """Replacement for ``g·b`` stacked copies of a batch: copy ``g`` gets the SAE reconstruction
    with feature ``feats[g]``'s contribution ``f_i · W_dec[i]`` removed."""
    idx = torch.tensor(feats, dtype=torch.long)

    def fn(act: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            a = act.to(device=sae.device, dtype=sae.dtype)
            _, state = sae._norm_in(a)
            f = sae.encode(a)
            g = len(feats)
            fv = f.view(g, b, *f.shape[1:])
            fv[torch.arange(g), ..., idx] = 0.0
            x_hat = sae._norm_out(sae.decode(fv.view_as(f)), state, sae.cfg.normalize_activations)
            return x_hat.to(device=act.device, dtype=act.dtype)

    return fn


def ablation_on_subset(
    loaded: LoadedModel,
    hp: Any,
    sae: SAE,
    windows: TokenWindows,
    batch_size: int,
    n_tokens: int,
    features: list[int],
    group: int = ABLATION_GROUP,
) -> dict[str, Any]:
    """The ``ablation`` section and per-feature ablation effects on the first ``n_tokens`` tokens."""
    sub = _ablation_windows(windows, n_tokens)
    stats = AblationStats.for_model(loaded)
    if sub is None:
        return {"ablation": None, "feature_ablation": None}
    sums = {f: np.zeros(2) for f in features}  # Σ loss, Σ kl of the feature-removed runs
    sae_sums = np.zeros(2)
    fires = dict.fromkeys(features, 0)
    n_seen = 0
    batches = list(iter_batches(sub, batch_size))
    for batch in track(batches, "ablation subset"):
        act, clean = clean_forward(loaded, hp, batch)
        losses = ablation_losses(
            loaded, hp, batch, {"zero": torch.zeros_like, "sae": sae_splice(sae)}, clean=clean
        )
        stats.update(**losses)
        sae_sums += [float(losses["sae_loss"].double().sum()), float(losses["kl_sae"].double().sum())]
        n_seen += int(losses["sae_loss"].numel())
        with torch.no_grad():
            f_tok = sae.encode(act[batch.token_mask.to(act.device)].to(sae.device, sae.dtype))
        if features:
            fired = (f_tok[:, features] != 0).sum(dim=0)
            for f, c in zip(features, fired.tolist(), strict=True):
                fires[f] += int(c)
        b = int(batch.input_ids.shape[0])
        reps = [1] * (clean.dim() - 1)
        for s in range(0, len(features), group):
            feats = features[s : s + group]
            g = len(feats)
            out = ablation_losses(
                loaded,
                hp,
                _repeat_batch(batch, g),
                {"abl": _feature_removed_fn(sae, feats, b)},
                clean=clean.repeat(g, *reps),
            )
            loss = out["abl_loss"].double().view(g, -1).sum(dim=1)
            kl = out["kl_abl"].double().view(g, -1).sum(dim=1)
            for j, f in enumerate(feats):
                sums[f] += [float(loss[j]), float(kl[j])]
    section = stats.result()
    section["n_windows"] = sub.n_windows
    section["note"] = (
        f"computed with full forward passes on the first {stats.n_tokens} tokens "
        f"({sub.n_windows} windows) of the corpus, not on all tokens"
    )
    n = max(n_seen, 1)
    sae_loss, sae_kl = sae_sums / n
    effects = [
        {
            "feature": f,
            "loss_with_feature_removed": float(sums[f][0] / n),
            "loss_delta": float(sums[f][0] / n - sae_loss),
            "kl_with_feature_removed": float(sums[f][1] / n),
            "kl_delta": float(sums[f][1] / n - sae_kl),
            "n_tokens_firing": int(fires[f]),
        }
        for f in features
    ]
    feature_ablation = {
        "method": "per feature i: the activation at the hook is replaced by the SAE reconstruction "
        "minus f_i·W_dec[i]; loss_delta = mean loss with feature i removed − mean loss with the full "
        "reconstruction (same tokens); kl_delta likewise for the divergence from the clean run",
        "loss": section.get("loss"),
        "n_tokens": n_seen,
        "sae_reconstruction_loss": float(sae_loss),
        "features": effects,
    }
    return {"ablation": section, "feature_ablation": feature_ablation}


def _write_everything(an: SAEAnalyzer, od: OutputDir, ts: str) -> AnalysisResult:
    from interplab.sae.report import build_summary, write_readme

    cfg = an.cfg
    files: dict[str, str] = {}
    with od.timed("collect"):
        col = an.collection if an.collection is not None else an.collect_all_activations()
    files["activation_database"] = "activation_database/"
    od.record(od.path / "activation_database" / "manifest.json")
    st = col.feature_stats
    d = an.sae.d_sae
    k_nb = cfg.n_neighbours

    with od.timed("similarity"):
        if d <= cfg.similarity_dense_limit:
            sim = similarity_matrix(an.sae.W_dec, cfg.similarity)
            files["similarity"] = f"matrices/feature_similarity_{ts}.npy"
            save_npy(od.file(files["similarity"]), sim)
            similar = topk_neighbours(sim, k_nb, largest=cfg.similarity != "euclidean")
            del sim
        else:
            similar = similarity_topk(an.sae.W_dec, k_nb, cfg.similarity)
        files["similarity_topk_indices"] = f"matrices/feature_similarity_{ts}_topk_indices.npy"
        files["similarity_topk_values"] = f"matrices/feature_similarity_{ts}_topk_values.npy"
        save_npy(od.file(files["similarity_topk_indices"]), similar[0])
        save_npy(od.file(files["similarity_topk_values"]), similar[1])

    with od.timed("cooccurrence"):
        counts = col.cooccurrence.counts()
        dense = not sp.issparse(counts)
        if dense:
            files["cooccurrence_counts"] = f"matrices/feature_cooccurrence_counts_{ts}.npy"
            save_npy(od.file(files["cooccurrence_counts"]), counts)
        else:
            files["cooccurrence_counts"] = f"matrices/feature_cooccurrence_counts_{ts}.npz"
            _save_sparse(od.file(files["cooccurrence_counts"]), counts)
        coactive = None
        for metric in cfg.cooccurrence:
            m = an.compute_feature_cooccurrence(metric)
            key = "cooccurrence" if metric == "phi" else f"cooccurrence_{metric}"
            name = "feature_cooccurrence" if metric == "phi" else f"feature_cooccurrence_{metric}"
            if dense:
                files[key] = f"matrices/{name}_{ts}.npy"
                save_npy(od.file(files[key]), m)
            else:
                files[key] = f"matrices/{name}_{ts}.npz"
                _save_sparse(od.file(files[key]), m)
            nb = topk_neighbours(m, k_nb)
            files[f"{key}_topk_indices"] = f"matrices/{name}_{ts}_topk_indices.npy"
            files[f"{key}_topk_values"] = f"matrices/{name}_{ts}_topk_values.npy"
            save_npy(od.file(files[f"{key}_topk_indices"]), nb[0])
            save_npy(od.file(files[f"{key}_topk_values"]), nb[1])
            if coactive is None:
                coactive = nb
        assert coactive is not None

    with od.timed("ablation"):
        abl = an._ablation if an._ablation is not None else an.ablation_study()

    sections = col.sections
    results: dict[str, Any] = {
        "config": {**dataclasses.asdict(cfg), "hook": an.hp.name, "layer": an.hp.layer},
        "data": an.windows.summary() if an.windows else None,
        "sae": {
            "architecture": an.sae.cfg.architecture,
            "k": an.sae.cfg.k,
            "d_in": an.sae.d_in,
            "d_sae": d,
            "source_format": an.sae.cfg.source_format,
            "hook_name_in_config": an.sae.cfg.hook_name,
        },
        "model": {"name": cfg.model_name, "has_lm_head": an.loaded.is_causal},
        **sections,
        "ablation": abl["ablation"],
        "feature_ablation": abl["feature_ablation"],
        "feature_stats": {**st.summary(), "histogram_bin_edges": st_edges()},
        "similarity": {
            "metric": cfg.similarity,
            "dense": d <= cfg.similarity_dense_limit,
            "n_neighbours": k_nb,
        },
        "cooccurrence": {
            "metrics": list(cfg.cooccurrence),
            "dense": dense,
            "n_tokens": col.cooccurrence.n_tokens,
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
    files["analysis_results"] = f"results/analysis_results_{ts}.json"
    write_json(od.file(files["analysis_results"]), results)

    with od.timed("summaries"):
        quant = (
            col.quantiles
            if getattr(col, "quantiles", None) is not None
            else quantile_pass(st, col.db_path, _shards(col), cfg.examples_per_quantile)
        )
        W_U = unembedding(an.loaded.model)
        logits = logit_effects(an.sae.W_dec, W_U if W_U is not None and W_U.shape[1] == an.sae.d_in else None)
        abl_by_feature = {
            e["feature"]: e for e in ((abl.get("feature_ablation") or {}).get("features") or [])
        }
        inputs = SummaryInputs(
            stats=st,
            quantiles=quant,
            db_path=col.db_path,
            shards=_shards(col),
            n_tokens=col.n_tokens,
            tokenizer=an.loaded.tokenizer,
            similar=similar,
            coactivating=coactive,
            cooccurrence_counts=counts,
            logits=logits,
            ablation=abl_by_feature,
            context_radius=cfg.context_radius,
        )
        files["feature_summaries"] = f"results/feature_summaries_{ts}.jsonl"
        write_jsonl(
            od.file(files["feature_summaries"]),
            track(iter_feature_records(inputs), "feature summaries", total=d),
        )
        results["logit_effects"] = (
            "W_dec · W_Uᵀ with the model's output embeddings (no final norm)"
            if logits is not None
            else "null: the model has no unembedding (output embeddings) of the SAE's width"
        )

    with od.timed("plots"):
        plot_files = _plots(an, od, ts, st, col, counts)
        files.update(plot_files)

    summary = build_summary(an, results, files, ts)
    files["summary"] = f"SUMMARY_{ts}.json"
    files["readme"] = f"README_{ts}.md"
    summary["files"] = dict(files)
    write_json(od.file(files["summary"]), summary)
    write_readme(od.file(files["readme"]), summary, results, an, inputs)
    # results file again with the logit-effects note (atomic overwrite)
    write_json(od.file(files["analysis_results"]), results)
    return AnalysisResult(out=od.path, timestamp=ts, files=files, summary=summary, results=results)


def st_edges() -> list[float]:
    from interplab.sae.stats import HIST_EDGES

    return HIST_EDGES.tolist()


def _shards(col: CollectionResult):
    from interplab.sae.activation_db import Shard, read_manifest

    return [Shard(**s) for s in read_manifest(col.db_path)["shards"]]


def _save_sparse(path: Path, m: sp.csr_array) -> None:
    from interplab.common.atomic import atomic_path

    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        sp.save_npz(fh, sp.csr_matrix(m), compressed=True)


def _plots(
    an: SAEAnalyzer, od: OutputDir, ts: str, st: Any, col: CollectionResult, counts: Any
) -> dict[str, str]:
    files: dict[str, str] = {}
    d = an.sae.d_sae
    order = np.lexsort((np.arange(d), -st.count))
    top = order[: min(HEATMAP_FEATURES, d)]
    top = top[st.count[top] > 0]
    files["plot_feature_density"] = "plots/feature_density.png"
    plots.feature_density_histogram(st, od.file("plots/feature_density.png"))
    od.record("plots/feature_density.pdf")
    files["plot_l0"] = "plots/l0_histogram.png"
    plots.l0_histogram(st.l0_hist, od.file("plots/l0_histogram.png"))
    od.record("plots/l0_histogram.pdf")
    files["plot_activation_distributions"] = "plots/activation_distributions.png"
    plots.activation_distributions(st, top[:10], od.file("plots/activation_distributions.png"))
    od.record("plots/activation_distributions.pdf")
    if top.size >= 2:
        from interplab.sae.similarity import similarity_matrix

        sub_sim = similarity_matrix(an.sae.W_dec.detach()[torch.from_numpy(top)], an.cfg.similarity)
        files["plot_similarity_heatmap"] = "plots/similarity_heatmap.png"
        plots.heatmap(
            sub_sim,
            top,
            f"Decoder {an.cfg.similarity} similarity (most frequent features)",
            od.file("plots/similarity_heatmap.png"),
            cmap="RdBu_r" if an.cfg.similarity != "euclidean" else "viridis",
            symmetric=an.cfg.similarity != "euclidean",
        )
        od.record("plots/similarity_heatmap.pdf")
        if sp.issparse(counts):
            sub_counts = sp.csr_array(counts)[top][:, top].toarray()
        else:
            sub_counts = counts[np.ix_(top, top)]
        full_n = np.asarray([int(c) for c in st.count[top]])
        sub = sub_counts.copy()
        np.fill_diagonal(sub, full_n)
        phi = dense_metric(sub, col.cooccurrence.n_tokens, "phi")
        files["plot_cooccurrence_heatmap"] = "plots/cooccurrence_heatmap.png"
        plots.heatmap(
            phi, top, "Co-occurrence (phi, most frequent features)", od.file("plots/cooccurrence_heatmap.png")
        )
        od.record("plots/cooccurrence_heatmap.pdf")
    history = load_history(an.cfg.sae_path)
    if history:
        written = plots.training_history(history, od.file("plots/training_history.png"))
        if written:
            files["plot_training_history"] = "plots/training_history.png"
            od.record("plots/training_history.pdf")
    return files


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
    """Load the model, the SAE and the corpus, then run every analysis step and write
    ``analysis_dir`` (layout in docs/sae-analysis.md). Options are the fields of
    :class:`AnalysisConfig` (context_size, max_tokens, top_k, similarity, cooccurrence, …)."""
    t0 = time.perf_counter()
    an = SAEAnalyzer(
        model_name, sae_path, layer, hook_name, analysis_dir, batch_size, data_path=str(data_path), **options
    )
    an.load_data()
    result = an.run()
    log.info("analysis written to %s in %.1fs", result.out, time.perf_counter() - t0)
    return result


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


__all__ = ["AnalysisConfig", "AnalysisResult", "SAEAnalyzer", "run_comprehensive_analysis", "run_sae_demo"]
