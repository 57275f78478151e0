"""``interplab sae compare``: match the features of two analyses, or run one SAE through a second
model (the pruning bridge), and write the comparison folder (layout in ``docs/sae-compare.md``).

Feature matching (:func:`compare_analyses`) reads the two SAEs named by the analyses' activation
databases and, when both databases cover the same corpus tokens (identical token-id sequences), the
two sparse activation matrices; the formulas are in :mod:`interplab.sae.matching`. The pruning
bridge (:func:`compare_models`) runs the analysis' SAE over the analysis' corpus through the
analysis' model and a second model in lockstep and accumulates, per feature,

* firing rate ``p = #{tokens with f > 0} / N`` in each model and the ratio ``p_B / p_A``;
* the Pearson correlation of ``f_A`` and ``f_B`` on the same tokens (0 where a feature is silent);
* the SAE's explained variance on each model's activations, ``1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²``;
* features that die (fire in A, never in B) and appear (never in A, fire in B).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
import torch

from interplab.common.atomic import write_json, write_parquet, write_text
from interplab.common.errors import require
from interplab.common.output import OutputDir, output_dir, timestamp
from interplab.sae import matching
from interplab.sae.activation_db import Shard, iter_shard_tables, read_manifest
from interplab.sae.configs import ASSIGNMENT_LIMIT, BLOCK_ROWS, CompareConfig

log = logging.getLogger(__name__)

THRESHOLDS = (0.5, 0.7, 0.9)
STABILITY_PREFIX = "feature_stability_"


@dataclasses.dataclass
class Side:
    """One analysis: its folder, activation database manifest and SAE."""

    root: Path
    label: str
    db: Path
    manifest: dict[str, Any]
    sae: Any

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self.manifest.get("fingerprint") or {}

    @property
    def shards(self) -> list[Shard]:
        return [Shard(**s) for s in self.manifest["shards"]]


@dataclasses.dataclass
class CompareResult:
    """Where the comparison went and its headline numbers (``results/compare.json``)."""

    out: Path
    files: dict[str, str]
    summary: dict[str, Any]


# -- inputs ----------------------------------------------------------------------------------------
def _is_analysis(path: Path) -> bool:
    return (path / "activation_database" / "manifest.json").is_file()


def ensure_analysis(path: str, which: str, cfg: CompareConfig, out: Path) -> Path:
    """``path`` itself when it is an analysis folder; an SAE folder is analysed into ``out``."""
    p = Path(path).expanduser()
    require(p.exists(), f"{p}: {which} not found (expected an analysis folder or an SAE folder)")
    if _is_analysis(p):
        return p
    from interplab.sae.analyzer import run_comprehensive_analysis
    from interplab.sae.formats import load_sae

    load_sae(p)  # a clear error when it is neither an analysis nor an SAE folder
    target = out / f"analysis_{which.lower()}"
    log.info("%s is an SAE folder: analysing it into %s", p, target)
    run_comprehensive_analysis(
        cfg.model, p, None, None, cfg.data, cfg.batch_size, target, max_tokens=cfg.max_tokens
    )
    return target


def load_side(root: Path, label: str | None) -> Side:
    """Open an analysis folder: its database manifest and the SAE named in the fingerprint."""
    from interplab.sae.formats import load_sae

    db = root / "activation_database"
    manifest = read_manifest(db)
    require(bool(manifest.get("shards")), f"{db}: the activation database has no complete shard")
    sae_path = (manifest.get("fingerprint") or {}).get("sae")
    require(bool(sae_path), f"{db / 'manifest.json'}: fingerprint.sae is missing (which SAE made it?)")
    require(
        Path(sae_path).exists(),
        f"{db / 'manifest.json'}: the SAE folder it names, {sae_path}, no longer exists",
    )
    return Side(
        root=root, label=label or root.resolve().name, db=db, manifest=manifest, sae=load_sae(sae_path)
    )


def check_compatible(a: Side, b: Side, allow_mismatch: bool) -> list[str]:
    """Raise when d_in differs (or model/hook differ without ``allow_mismatch``); return notes."""
    require(
        a.sae.d_in == b.sae.d_in,
        f"{a.root} and {b.root}: the SAEs read different widths (d_in {a.sae.d_in} vs {b.sae.d_in}); "
        "decoder directions of different spaces cannot be matched",
    )
    notes = []
    for key in ("model", "hook"):
        va, vb = a.fingerprint.get(key), b.fingerprint.get(key)
        if va != vb:
            msg = f"the analyses differ in {key}: {va!r} (A) vs {vb!r} (B)"
            require(allow_mismatch, f"{a.root} vs {b.root}: {msg}; pass --allow-mismatch to compare anyway")
            notes.append(msg)
    return notes


def token_ids(side: Side) -> np.ndarray:
    """The database's token-id sequence (token_idx order)."""
    parts = [
        t["token_id"].to_numpy() for _, t in iter_shard_tables(side.db, side.shards, "tokens", ["token_id"])
    ]
    return np.concatenate(parts) if parts else np.empty(0, np.int32)


def shared_tokens(a: Side, b: Side) -> bool:
    """Whether both databases hold the same corpus tokens (equal token-id sequences)."""
    if a.manifest.get("n_tokens") != b.manifest.get("n_tokens"):
        return False
    fa, fb = a.fingerprint.get("tokens_sha256"), b.fingerprint.get("tokens_sha256")
    if fa and fa == fb:
        return True
    return bool(np.array_equal(token_ids(a), token_ids(b)))


def activation_matrix(side: Side) -> sp.csc_array:
    """The sparse activation matrix ``[n_tokens, d_sae]`` of a database (memory O(non-zeros))."""
    rows, cols, vals = [], [], []
    for _, t in iter_shard_tables(side.db, side.shards, "activations"):
        rows.append(t["token_idx"].to_numpy())
        cols.append(t["feature"].to_numpy())
        vals.append(t["value"].to_numpy())
    n, d = int(side.manifest["n_tokens"]), int(side.manifest["d_sae"])
    if not rows:
        return sp.csc_array((n, d), dtype=np.float32)
    return sp.csc_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, d), dtype=np.float32
    )


# -- matching --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Matching:
    """Matched pairs (A→B), best partners both ways and splits."""

    feature_a: np.ndarray
    feature_b: np.ndarray
    decoder_cos: np.ndarray
    activation_corr: np.ndarray  # NaN without shared tokens
    rank: np.ndarray  # rank of feature_b among A's candidates by decoder cosine (1 = best)
    score: np.ndarray  # what the assignment maximised
    method: str
    match_on: str
    best_b: np.ndarray  # best decoder partner in B of each feature of A
    best_b_cos: np.ndarray
    best_a: np.ndarray  # best decoder partner in A of each feature of B
    best_a_cos: np.ndarray
    best_b_corr: np.ndarray | None = None  # best correlated partner in B of each feature of A
    best_b_corr_value: np.ndarray | None = None
    best_a_corr: np.ndarray | None = None
    best_a_corr_value: np.ndarray | None = None
    splits: list[matching.Split] = dataclasses.field(default_factory=list)
    split_direction: str | None = None


def match_features(
    W_a: torch.Tensor,
    W_b: torch.Tensor,
    X: sp.csc_array | None,
    Y: sp.csc_array | None,
    match_on: str = "auto",
    assignment_limit: int = ASSIGNMENT_LIMIT,
    block_rows: int = BLOCK_ROWS,
    split_threshold: float = 0.8,
) -> Matching:
    """Match features of A to B (see :mod:`interplab.sae.matching`); ``X``/``Y`` are the activation
    matrices on shared tokens, or None (decoder matching only)."""
    have_act = X is not None and Y is not None
    if match_on == "auto":
        match_on = "both" if have_act else "decoder"
    require(
        have_act or match_on == "decoder",
        f"--match-on {match_on} needs activations on shared corpus tokens; these databases share none",
    )
    d_a, d_b = int(W_a.shape[0]), int(W_b.shape[0])
    best_b, best_b_cos = matching.best_partners(W_a, W_b, block_rows)
    best_a, best_a_cos = matching.best_partners(W_b, W_a, block_rows)
    extra: dict[str, Any] = {}
    if have_act:
        assert X is not None and Y is not None
        extra["best_b_corr"], extra["best_b_corr_value"] = matching.best_correlated(X, Y, block_rows)
        extra["best_a_corr"], extra["best_a_corr_value"] = matching.best_correlated(Y, X, block_rows)
    if max(d_a, d_b) <= assignment_limit:
        C = matching.decoder_cosine(W_a, W_b)
        if match_on == "decoder":
            S = C
        else:
            R = np.concatenate([blk for _, blk in matching.correlation_blocks(X, Y, block_rows)], axis=0)
            # a silent feature has no activation evidence: "both" falls back to the decoder cosine
            S = (
                np.nan_to_num(R, nan=0.0)
                if match_on == "activation"
                else np.where(np.isnan(R), C, (C + R) / 2.0)
            )
        fa, fb = matching.assign(S)
        cos = C[fa, fb]
        rank = 1 + (C[fa] > cos[:, None]).sum(axis=1)
        score = S[fa, fb]
        method = "linear_sum_assignment"
    else:
        if match_on == "activation":
            fa = np.flatnonzero(extra["best_b_corr"] >= 0)
            fb = extra["best_b_corr"][fa]
        else:
            fa, fb = np.arange(d_a), best_b
        cos = (matching.unit_rows(W_a)[fa] * matching.unit_rows(W_b)[fb]).sum(dim=1).numpy()
        rank = np.where(fb == best_b[fa], 1, 0)  # 0: not the decoder best partner (rank not computed)
        score = cos
        method = f"blocked best partner ({block_rows} rows per block)"
    corr = matching.pair_correlation(X, Y, fa, fb) if have_act else np.full(fa.shape, np.nan)
    if have_act and method != "linear_sum_assignment":
        if match_on == "activation":
            score = np.nan_to_num(corr, nan=0.0)
        elif match_on == "both":
            score = np.where(np.isnan(corr), cos, (cos + corr) / 2.0)
    m = Matching(
        feature_a=fa,
        feature_b=fb,
        decoder_cos=np.asarray(cos, np.float64),
        activation_corr=np.asarray(corr, np.float64),
        rank=np.asarray(rank, np.int64),
        score=np.asarray(score, np.float64),
        method=method,
        match_on=match_on,
        best_b=best_b,
        best_b_cos=best_b_cos,
        best_a=best_a,
        best_a_cos=best_a_cos,
        **extra,
    )
    if have_act and d_a != d_b:
        assert X is not None and Y is not None
        narrow, wide = (X, Y) if d_a < d_b else (Y, X)
        m.splits = matching.splits(narrow, wide, split_threshold)
        m.split_direction = "A→B" if d_a < d_b else "B→A"
    return m


def _fractions(values: np.ndarray, n: int) -> dict[str, float]:
    v = np.nan_to_num(np.asarray(values, np.float64), nan=-np.inf)
    return {f"> {t}": float((v > t).sum() / max(n, 1)) for t in THRESHOLDS}


def matching_summary(m: Matching, d_a: int, d_b: int) -> dict[str, Any]:
    """The headline numbers: fraction of A (and B) with a partner above each threshold."""
    out: dict[str, Any] = {
        "method": m.method,
        "match_on": m.match_on,
        "d_a": d_a,
        "d_b": d_b,
        "n_matched": int(m.feature_a.size),
        "matched_decoder_cos_mean": float(np.mean(m.decoder_cos)) if m.decoder_cos.size else None,
        "matched_activation_corr_mean": (
            float(np.nanmean(m.activation_corr)) if np.isfinite(m.activation_corr).any() else None
        ),
        "fraction_of_a_matched_decoder_cos": _fractions(m.decoder_cos, d_a),
        "fraction_of_a_matched_activation_corr": _fractions(m.activation_corr, d_a),
        "fraction_of_a_best_partner_decoder_cos": _fractions(m.best_b_cos, d_a),
        "fraction_of_b_best_partner_decoder_cos": _fractions(m.best_a_cos, d_b),
        "matched_pairs_that_are_mutual_best_partners": int(
            np.sum((m.best_b[m.feature_a] == m.feature_b) & (m.best_a[m.feature_b] == m.feature_a))
        ),
    }
    if m.best_b_corr_value is not None and m.best_a_corr_value is not None:
        out["fraction_of_a_best_partner_activation_corr"] = _fractions(m.best_b_corr_value, d_a)
        out["fraction_of_b_best_partner_activation_corr"] = _fractions(m.best_a_corr_value, d_b)
    if m.split_direction is not None:
        out["splits"] = {
            "direction": m.split_direction,
            "threshold": None,
            "n_split_features": len(m.splits),
            "n_children": int(sum(len(s.children) for s in m.splits)),
        }
    return out


def matches_table(m: Matching) -> pa.Table:
    return pa.table(
        {
            "feature_a": pa.array(m.feature_a, pa.int64()),
            "feature_b": pa.array(m.feature_b, pa.int64()),
            "decoder_cos": pa.array(m.decoder_cos, pa.float64()),
            "activation_corr": nullable_floats(m.activation_corr),
            "rank": pa.array(m.rank, pa.int64()),
            "score": pa.array(m.score, pa.float64()),
        }
    )


def nullable_floats(x: np.ndarray | None, n: int | None = None) -> pa.Array:
    """Float array with NaN as null (Parquet readers then see missing values, not NaN)."""
    if x is None:
        return pa.nulls(int(n or 0), pa.float64())
    x = np.asarray(x, np.float64)
    return pa.array(x, pa.float64(), mask=~np.isfinite(x))


def best_partner_table(
    n: int, best: np.ndarray, best_cos: np.ndarray, corr_idx: np.ndarray | None, corr_val: np.ndarray | None
) -> pa.Table:
    return pa.table(
        {
            "feature": pa.array(np.arange(n), pa.int64()),
            "best_partner_decoder": pa.array(best, pa.int64()),
            "best_decoder_cos": pa.array(best_cos.astype(np.float64), pa.float64()),
            "best_partner_activation": pa.array(
                corr_idx if corr_idx is not None else np.full(n, -1), pa.int64(), mask=None
            ),
            "best_activation_corr": nullable_floats(corr_val, n),
        }
    )


def stability_table(
    d: int,
    own: np.ndarray,
    partner: np.ndarray,
    cos: np.ndarray,
    corr: np.ndarray,
    score: np.ndarray,
    label: str,
    other_root: Path,
    threshold: float,
    partner_base: str | None = None,
) -> pa.Table:
    """Per feature of one side: its matched partner on the other side and the stability score
    (the matching score; features left unmatched get null)."""
    p = np.full(d, -1, np.int64)
    c = np.full(d, np.nan)
    r = np.full(d, np.nan)
    s = np.full(d, np.nan)
    p[own], c[own], r[own], s[own] = partner, cos, corr, score
    return pa.table(
        {
            "feature": pa.array(np.arange(d), pa.int64()),
            "partner": pa.array(p, pa.int64()),
            "decoder_cos": nullable_floats(c),
            "activation_corr": nullable_floats(r),
            "stability": nullable_floats(s),
            "stable": pa.array(np.nan_to_num(s, nan=-1) >= threshold, pa.bool_()),
            "compared_with": pa.array([label] * d, pa.string()),
            "compared_with_dir": pa.array([str(other_root.resolve())] * d, pa.string()),
            "partner_url": pa.array(
                [
                    f"{partner_base.rstrip('/')}/feature/{int(j)}" if partner_base and j >= 0 else None
                    for j in p
                ],
                pa.string(),
            ),
        }
    )


# -- figures ---------------------------------------------------------------------------------------
def write_summary(
    od: OutputDir,
    files: dict[str, str],
    summary: dict[str, Any],
    t0: float,
    summary_file: str,
    report: Callable[[dict[str, Any]], str],
) -> None:
    """Close a comparison folder: the seconds since ``t0`` and the files so far go into
    ``summary``, written as JSON at ``summary_file``, and ``report(summary)`` as ``README.md``;
    both land in ``files``."""
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["files"] = dict(files)
    files["summary"] = summary_file
    write_json(od.file(summary_file), summary)
    files["report"] = "README.md"
    write_text(od.file(files["report"]), report(summary))


def matches_figure(m: Matching, label_a: str, label_b: str) -> Any:
    from interplab.common.figures import new_figure

    have_corr = np.isfinite(m.activation_corr).any()
    fig, axes = new_figure(1, 2 if have_corr else 1, figsize=(9 if have_corr else 5, 3.4), squeeze=False)
    bins = np.linspace(-1, 1, 41)
    ax = axes[0, 0]
    ax.hist(m.decoder_cos, bins=bins, color="C0", label="matched pair")
    ax.hist(m.best_b_cos, bins=bins, histtype="step", color="C1", label="best partner")
    ax.set_xlabel("decoder cosine")
    ax.set_ylabel("features of A")
    ax.set_title(f"{label_a} → {label_b}")
    ax.legend(loc="upper left")
    if have_corr:
        ax = axes[0, 1]
        ax.hist(
            m.activation_corr[np.isfinite(m.activation_corr)], bins=bins, color="C2", label="matched pair"
        )
        if m.best_b_corr_value is not None:
            v = m.best_b_corr_value[np.isfinite(m.best_b_corr_value)]
            ax.hist(v, bins=bins, histtype="step", color="C3", label="best partner")
        ax.set_xlabel("activation correlation (shared tokens)")
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


# -- the command -----------------------------------------------------------------------------------
def compare(cfg: CompareConfig | None = None, **kwargs: Any) -> CompareResult:
    """``interplab sae compare``: :func:`compare_analyses` with B, :func:`compare_models` with
    ``model_b``."""
    cfg = cfg or CompareConfig(**kwargs)
    cfg.validate()
    if cfg.model_b is not None:
        from interplab.sae.bridge import compare_models

        return compare_models(cfg)
    return compare_analyses(cfg)


def compare_analyses(cfg: CompareConfig) -> CompareResult:
    """Match the features of analyses A and B and write ``cfg.out``."""
    t0 = time.perf_counter()
    out = Path(cfg.out)
    assert cfg.b is not None
    root_a = ensure_analysis(cfg.a, "A", cfg, out)
    root_b = ensure_analysis(cfg.b, "B", cfg, out)
    a, b = load_side(root_a, cfg.label_a), load_side(root_b, cfg.label_b)
    notes = check_compatible(a, b, cfg.allow_mismatch)
    shared = shared_tokens(a, b)
    if not shared:
        notes.append(
            "the databases share no corpus tokens: decoder matching only (no activation correlation)"
        )
        log.warning("%s and %s share no corpus tokens: decoder matching only", a.root, b.root)
    X = activation_matrix(a) if shared else None
    Y = activation_matrix(b) if shared else None
    m = match_features(
        a.sae.W_dec.detach(),
        b.sae.W_dec.detach(),
        X,
        Y,
        cfg.match_on,
        cfg.assignment_limit,
        cfg.block_rows,
        cfg.split_threshold,
    )
    ts = timestamp()
    files: dict[str, str] = {}
    with output_dir(out, "sae compare", dataclasses.asdict(cfg)) as od:
        summary = {
            "a": {"dir": str(a.root.resolve()), "label": a.label, "d_sae": a.sae.d_sae, **_fp(a)},
            "b": {"dir": str(b.root.resolve()), "label": b.label, "d_sae": b.sae.d_sae, **_fp(b)},
            "shared_tokens": shared,
            "n_shared_tokens": int(a.manifest["n_tokens"]) if shared else 0,
            "notes": notes,
            "memory_bound": (
                f"dense {a.sae.d_sae}×{b.sae.d_sae} score matrices (≤ {cfg.assignment_limit}² features)"
                if max(a.sae.d_sae, b.sae.d_sae) <= cfg.assignment_limit
                else f"blocks of {cfg.block_rows}×{max(a.sae.d_sae, b.sae.d_sae)} scores "
                f"({cfg.block_rows * max(a.sae.d_sae, b.sae.d_sae) * 8 / 2**20:.0f} MiB per float64 block; a few "
                "blocks at a time) plus the sparse activation matrices (16 bytes per non-zero)"
            ),
            **matching_summary(m, a.sae.d_sae, b.sae.d_sae),
        }
        if "splits" in summary:
            summary["splits"]["threshold"] = cfg.split_threshold
        with od.timed("write"):
            files["matches"] = "matches.parquet"
            write_parquet(od.file(files["matches"]), matches_table(m))
            files["best_partners_a"] = "best_partners_a.parquet"
            write_parquet(
                od.file(files["best_partners_a"]),
                best_partner_table(a.sae.d_sae, m.best_b, m.best_b_cos, m.best_b_corr, m.best_b_corr_value),
            )
            files["best_partners_b"] = "best_partners_b.parquet"
            write_parquet(
                od.file(files["best_partners_b"]),
                best_partner_table(b.sae.d_sae, m.best_a, m.best_a_cos, m.best_a_corr, m.best_a_corr_value),
            )
            if m.split_direction is not None:
                files["splits"] = "splits.json"
                write_json(
                    od.file(files["splits"]),
                    {
                        "direction": m.split_direction,
                        "threshold": cfg.split_threshold,
                        "definition": "c(j ⊂ i) = |fires(i) ∧ fires(j)| / |fires(j)|",
                        "splits": [dataclasses.asdict(s) for s in m.splits],
                    },
                )
            files["plot_matches"] = "plots/match_histograms.png"
            od.save_figure(matches_figure(m, a.label, b.label), files["plot_matches"])
            write_summary(od, files, summary, t0, "results/compare.json", compare_report)
        if cfg.write_back:
            with od.timed("write_back"):
                for side, other, own, partner, base in (
                    (a, b, m.feature_a, m.feature_b, cfg.url_b),
                    (b, a, m.feature_b, m.feature_a, cfg.url_a),
                ):
                    order = np.argsort(own)
                    table = stability_table(
                        side.sae.d_sae,
                        own[order],
                        partner[order],
                        m.decoder_cos[order],
                        m.activation_corr[order],
                        m.score[order],
                        other.label,
                        other.root,
                        cfg.stable_threshold,
                        base,
                    )
                    target = side.root / "results" / f"{STABILITY_PREFIX}{ts}.parquet"
                    write_parquet(target, table)
                    summary.setdefault("written_back", []).append(str(target))
                write_json(od.file(files["summary"]), summary)
    log.info("comparison written to %s", out)
    return CompareResult(out=out, files=files, summary=summary)


def _fp(side: Side) -> dict[str, Any]:
    fp = side.fingerprint
    return {k: fp.get(k) for k in ("model", "hook", "sae", "data", "tokens_sha256")} | {
        "n_tokens": side.manifest.get("n_tokens")
    }


def compare_report(s: dict[str, Any]) -> str:
    """The short README of a feature comparison."""
    lines = [
        f"# SAE comparison: {s['a']['label']} vs {s['b']['label']}",
        "",
        f"- A: `{s['a']['dir']}` ({s['a']['d_sae']} features, hook {s['a']['hook']})",
        f"- B: `{s['b']['dir']}` ({s['b']['d_sae']} features, hook {s['b']['hook']})",
        f"- matching: {s['method']} on {s['match_on']}; {s['memory_bound']}",
        f"- shared corpus tokens: {s['n_shared_tokens'] if s['shared_tokens'] else 'none (decoder cosine only)'}",
        f"- mean decoder cosine of matched pairs: {s['matched_decoder_cos_mean']:.4f}",
    ]
    if s.get("matched_activation_corr_mean") is not None:
        lines.append(
            f"- mean activation correlation of matched pairs: {s['matched_activation_corr_mean']:.4f}"
        )
    lines += ["", "| fraction of A | " + " | ".join(s["fraction_of_a_matched_decoder_cos"]) + " |"]
    lines.append("|---|" + "---|" * len(THRESHOLDS))
    for key in (
        "fraction_of_a_matched_decoder_cos",
        "fraction_of_a_matched_activation_corr",
        "fraction_of_a_best_partner_decoder_cos",
        "fraction_of_a_best_partner_activation_corr",
    ):
        if key in s:
            lines.append(
                f"| {key.removeprefix('fraction_of_a_')} | "
                + " | ".join(f"{v:.3f}" for v in s[key].values())
                + " |"
            )
    if "splits" in s:
        sp_ = s["splits"]
        lines += [
            "",
            f"Splits ({sp_['direction']}, containment ≥ {sp_['threshold']}): {sp_['n_split_features']} "
            f"features split into {sp_['n_children']} features (`splits.json`).",
        ]
    for note in s.get("notes", []):
        lines.append(f"\nNote: {note}.")
    lines += [
        "",
        "Files: `matches.parquet`, `best_partners_a.parquet`, `best_partners_b.parquet`, "
        "`plots/match_histograms.png`, `results/compare.json` (see docs/sae-compare.md).",
        "",
    ]
    return "\n".join(lines)
