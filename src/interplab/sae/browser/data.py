"""Read-only queries over an ``interplab sae analyze`` folder for the feature browser.

Nothing per feature is loaded at start-up. On first open a small index of the feature summaries'
scalar columns (feature, density, mean/max activation, top-token text, byte offset of the JSON line)
is written atomically to ``DIR/browser_cache/`` as Parquet (or kept in memory when ``DIR`` is
read-only); lists, search and sorting are DuckDB queries over that index, one feature's detail is
one seek into the summaries file, and the shaded context windows come from DuckDB queries over
the Parquet activation database.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from interplab.common.errors import InterplabError, one_of, require
from interplab.sae import layout
from interplab.sae.activation_db import Shard, read_manifest
from interplab.sae.browser import annotations
from interplab.sae.browser.tokens import attach_display, drop_duplicate_examples, shareable_paths
from interplab.sae.layout import (
    DENSE_THRESHOLD,
    SUMMARY_KEYS,
    SUMMARY_SCALARS,
    Example,
    FeatureSummary,
    Histogram,
    LogitToken,
    Neighbour,
    QuantileExample,
    latest,
)

log = logging.getLogger(__name__)

SORT_COLUMNS = {
    "density": "density",
    "max": "max_activation",
    "mean": "mean_activation",
    "feature": "feature",
}
FILTERS = ("all", "alive", "dead", "dense")
CONTEXT_RADIUS = 12  # tokens shown on each side of an example's activating token
MAX_PER_PAGE = 500
INDEX_VERSION = 2


# --------------------------------------------------------------------------------------------------
# locating files


@dataclasses.dataclass(frozen=True)
class AnalysisFiles:
    """The files of one analysis folder that the browser reads (latest timestamp wins)."""

    root: Path
    summaries: Path
    results: Path | None
    summary: Path | None
    readme: Path | None
    similarity: Path | None
    cooccurrence: Path | None
    database: Path | None
    plots: tuple[Path, ...]

    @classmethod
    def locate(cls, root: str | Path) -> AnalysisFiles:
        """Find the files in ``root``; error when it is not an analysis folder."""
        root = Path(root).expanduser().resolve()
        require(
            root.is_dir(), f"{root}: analysis folder not found (expected the --out folder of `sae analyze`)"
        )
        summaries = latest(root / layout.RESULTS, "feature_summaries_", ".jsonl")
        require(
            summaries is not None,
            f"{root}: no {layout.RESULTS}/feature_summaries_<timestamp>.jsonl found; "
            "expected a folder written by `interplab sae analyze`",
        )
        db = root / layout.DATABASE
        plots_dir = root / layout.PLOTS
        plots = tuple(sorted(p for p in plots_dir.glob("*.png") if p.is_file())) if plots_dir.is_dir() else ()
        return cls(
            root=root,
            summaries=summaries,  # type: ignore[arg-type]
            results=latest(root / layout.RESULTS, "analysis_results_", ".json"),
            summary=latest(root, "SUMMARY_", ".json"),
            readme=latest(root, "README_", ".md"),
            similarity=latest(root / layout.MATRICES, "feature_similarity_", ".npy"),
            cooccurrence=latest(root / layout.MATRICES, "feature_cooccurrence_", ".npy"),
            database=db if (db / layout.DB_MANIFEST).is_file() else None,
            plots=plots,
        )


# --------------------------------------------------------------------------------------------------
# one summary line in the browser's shape


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _example(e: Example) -> dict[str, Any]:
    out: dict[str, Any] = dict(e)
    out["activation"] = _num(e["activation"])
    return out


def _quantile_groups(examples: list[QuantileExample]) -> list[dict]:
    """Quantile examples grouped by ``quantile q · activation in [lo, hi)`` (first-seen order)."""
    by_label: dict[str, list[dict]] = {}
    for e in examples:
        label = f"quantile {e['quantile']}"
        lo, hi = _num(e.get("bin_lower")), _num(e.get("bin_upper"))
        if lo is not None or hi is not None:
            lo_s = "0" if lo is None else f"{lo:.3g}"
            hi_s = "∞" if hi is None else f"{hi:.3g}"
            label += f" · activation in [{lo_s}, {hi_s})"
        by_label.setdefault(label, []).append(_example(e))
    return [{"label": k, "examples": v} for k, v in by_label.items()]


def _histogram(h: Histogram) -> dict | None:
    counts = [float(c or 0) for c in h["counts"]]
    if not counts:
        return None
    edges = h["bin_edges"] if len(h["bin_edges"]) == len(counts) + 1 else None
    return {"counts": counts, "edges": [float(x) for x in edges] if edges else None, "log_scale": False}


def _neighbours(items: list[Neighbour]) -> list[dict]:
    out = []
    for n in items:
        entry: dict[str, Any] = {"feature": int(n["feature"]), "value": _num(n["value"])}
        if "count" in n:
            entry["count"] = int(n["count"])
        out.append(entry)
    return out


def _logit_tokens(items: list[LogitToken]) -> list[dict]:
    return [{"token": str(t["token"]), "value": _num(t["value"]), "token_id": t["token_id"]} for t in items]


def browser_record(rec: FeatureSummary) -> dict[str, Any]:
    """One feature-summary line in the browser's shape (see docs/sae-browser.md, ``/api/feature``)."""
    logit = rec["logit_effects"]
    return {
        "feature": int(rec["feature"]),
        "density": _num(rec["density"]),
        "mean_activation": _num(rec["mean_activation"]),
        "max_activation": _num(rec["max_activation"]),
        "top_tokens": [
            {"token": str(t["token"]), "value": _num(t["count"]), "max_activation": t["max_activation"]}
            for t in rec["top_tokens"]
        ],
        "top_examples": [_example(e) for e in rec["top_examples"]],
        "quantile_examples": _quantile_groups(rec["quantile_examples"]),
        "logit_effects": None
        if logit is None
        else {"promoted": _logit_tokens(logit["promoted"]), "suppressed": _logit_tokens(logit["suppressed"])},
        "similar_features": _neighbours(rec["similar_features"]),
        "coactivating_features": _neighbours(rec["coactivating_features"]),
        "histogram": _histogram(rec["activation_histogram"]),
        "ablation": rec["ablation"],
        "extra": {k: rec[k] for k in SUMMARY_SCALARS if rec.get(k) is not None},  # type: ignore[literal-required]
    }


def _require_keys(rec: Any, keys: tuple[str, ...], where: str) -> None:
    """One clear line when a summary line is not an ``sae analyze`` feature summary."""
    if not isinstance(rec, dict):
        raise InterplabError(f"{where}: not a feature summary (expected a JSON object)")
    missing = [k for k in keys if k not in rec]
    if missing:
        raise InterplabError(
            f"{where}: not a feature summary of `interplab sae analyze` (missing keys: {', '.join(missing)})"
        )


# --------------------------------------------------------------------------------------------------
# the cheap feature index


INDEX_SCHEMA = pa.schema(
    [
        ("feature", pa.int64()),
        ("density", pa.float64()),
        ("mean_activation", pa.float64()),
        ("max_activation", pa.float64()),
        ("top_tokens", pa.list_(pa.string())),
        ("top_tokens_text", pa.string()),
        ("byte_offset", pa.int64()),
        ("byte_length", pa.int64()),
    ]
)


HEAVY_KEY = b'"top_examples":'  # the bulky part of a line; the index needs only what comes before
INDEX_KEYS = ("feature", "density", "mean_activation", "max_activation", "top_tokens")


def _scalars(raw: bytes, fast: bool) -> dict[str, Any]:
    """The record's leading keys when ``fast`` and they hold everything the index needs (the part of
    the line before ``"top_examples":`` is closed with ``}`` and parsed); else the whole line.

    Inside a JSON string every quote is escaped, so ``"top_examples":`` found in the raw bytes is a
    key, never text of the corpus."""
    if fast:
        cut = raw.find(HEAVY_KEY)
        if cut > 0:
            head = raw[:cut].rstrip()
            if head.endswith(b","):
                try:
                    rec = json.loads(head[:-1] + b"}")
                except ValueError:
                    rec = None
                if isinstance(rec, dict) and all(k in rec for k in INDEX_KEYS):
                    return rec
    return json.loads(raw)


def build_feature_index(summaries: Path, fast: bool = True) -> pa.Table:
    """Scalar columns of the summaries JSONL plus each line's byte offset and length.

    One pass over the lines. ``fast``: parse only each line's leading keys (everything before
    ``top_examples``, where ``sae analyze`` puts the scalars and top tokens), falling back to the
    whole line when they are not all there; ``fast=False`` parses every whole line.
    """
    cols: dict[str, list] = {name: [] for name in INDEX_SCHEMA.names}
    offset = 0
    with summaries.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            where = f"{summaries}: line {lineno}"
            try:
                rec = _scalars(raw, fast)
            except ValueError as exc:
                raise InterplabError(f"{where}: not a feature summary ({exc})") from exc
            _require_keys(rec, INDEX_KEYS, where)
            try:
                feature = int(rec["feature"])
                tokens = [str(t["token"]) for t in rec["top_tokens"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise InterplabError(f"{where}: not a feature summary ({exc!r})") from exc
            cols["feature"].append(feature)
            cols["density"].append(_num(rec["density"]))
            cols["mean_activation"].append(_num(rec["mean_activation"]))
            cols["max_activation"].append(_num(rec["max_activation"]))
            cols["top_tokens"].append(tokens)
            cols["top_tokens_text"].append("\n".join(tokens).lower())
            cols["byte_offset"].append(start)
            cols["byte_length"].append(len(raw))
    return pa.table(cols, schema=INDEX_SCHEMA)


def _index_cache_path(files: AnalysisFiles) -> Path:
    st = files.summaries.stat()
    return (
        files.root
        / "browser_cache"
        / f"feature_index_v{INDEX_VERSION}_{files.summaries.stem}_{st.st_size}_{st.st_mtime_ns}.parquet"
    )


# --------------------------------------------------------------------------------------------------
# the query object


@dataclasses.dataclass
class FeaturePage:
    """One page of the feature list."""

    total: int
    page: int
    per_page: int
    pages: int
    q: str
    sort: str
    order: str
    filter: str
    features: list[dict]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _sql_str(s: str | Path) -> str:
    return "'" + str(s).replace("'", "''") + "'"


class AnalysisData:
    """Queries over one analysis folder; thread-safe (one DuckDB connection behind a lock)."""

    def __init__(self, root: str | Path, use_cache: bool = True) -> None:
        import duckdb

        self.files = AnalysisFiles.locate(root)
        self._lock = threading.Lock()
        self._con = duckdb.connect(":memory:")
        self._summary_cache: dict[str, Any] | None = None
        self._setup_index(use_cache)
        self._setup_database()
        annotations.register(self._con, self.files.root)

    # ---- set-up
    def _setup_index(self, use_cache: bool) -> None:
        cache = _index_cache_path(self.files)
        if use_cache and cache.is_file():
            self._con.execute(f"CREATE VIEW features AS SELECT * FROM read_parquet({_sql_str(cache)})")
            log.debug("feature index from cache %s", cache)
            return
        table = build_feature_index(self.files.summaries)
        if use_cache:
            try:
                from interplab.common.atomic import write_parquet

                write_parquet(cache, table)
                for old in cache.parent.glob("feature_index_v*.parquet"):  # superseded indexes
                    if old != cache:
                        old.unlink(missing_ok=True)
                self._con.execute(f"CREATE VIEW features AS SELECT * FROM read_parquet({_sql_str(cache)})")
                return
            except OSError as exc:  # read-only folder: keep the index in memory
                log.info("could not write the index cache %s (%s); keeping it in memory", cache, exc)
        self._con.register("features_arrow", table)
        self._con.execute("CREATE TABLE features AS SELECT * FROM features_arrow")
        self._con.unregister("features_arrow")

    def _setup_database(self) -> None:
        self.has_database = False
        db = self.files.database
        if db is None:
            return
        try:
            shards = [Shard(**sh) for sh in read_manifest(db).get("shards", [])]
        except InterplabError as exc:
            log.warning("no activation contexts: %s", exc)
            return
        tok = [db / sh.tokens for sh in shards if (db / sh.tokens).is_file()]
        act = [db / sh.activations for sh in shards if (db / sh.activations).is_file()]
        if not tok:
            return
        tok_list = "[" + ", ".join(_sql_str(p) for p in tok) + "]"
        self._con.execute(f"CREATE VIEW tokens AS SELECT * FROM read_parquet({tok_list})")
        if act:
            act_list = "[" + ", ".join(_sql_str(p) for p in act) + "]"
            self._con.execute(f"CREATE VIEW activations AS SELECT * FROM read_parquet({act_list})")
        else:
            self._con.execute(
                "CREATE VIEW activations AS SELECT 0::BIGINT AS token_idx, 0::INTEGER AS feature, 0::FLOAT AS value WHERE false"
            )
        self.has_database = True

    def _query(self, sql: str, params: list | None = None) -> list[tuple]:
        with self._lock:
            return self._con.execute(sql, params or []).fetchall()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    # ---- overview
    @property
    def n_features(self) -> int:
        return int(self._query("SELECT count(*) FROM features")[0][0])

    def feature_ids(self) -> np.ndarray:
        return np.array(
            [r[0] for r in self._query("SELECT feature FROM features ORDER BY feature")], dtype=np.int64
        )

    def has_feature(self, feature: int) -> bool:
        return bool(self._query("SELECT count(*) FROM features WHERE feature = ?", [int(feature)])[0][0])

    def _read_json(self, path: Path | None) -> dict[str, Any]:
        if path is None:
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("could not read %s: %s", path, exc)
            return {}
        return data if isinstance(data, dict) else {"value": data}

    def summary(self) -> dict[str, Any]:
        """Overview data: SUMMARY and analysis-results JSON, counts, plots and matrix shapes."""
        if self._summary_cache is None:
            stats = self._query(
                "SELECT count(*), count(*) FILTER (WHERE coalesce(density, 0) = 0), "
                f"count(*) FILTER (WHERE density > {DENSE_THRESHOLD}), avg(density), max(max_activation) FROM features"
            )[0]
            matrices = {}
            for name, p in (("similarity", self.files.similarity), ("cooccurrence", self.files.cooccurrence)):
                if p is not None:
                    try:
                        arr = np.load(p, mmap_mode="r", allow_pickle=False)
                        matrices[name] = {
                            "file": p.relative_to(self.files.root).as_posix(),
                            "shape": list(arr.shape),
                        }
                    except (OSError, ValueError) as exc:
                        log.warning("could not read %s: %s", p, exc)
            n_tokens = None
            if self.has_database:
                n_tokens = int(self._query("SELECT count(*) FROM tokens")[0][0])
            self._summary_cache = {
                "folder": self.files.root.name,  # never the local absolute path: pages get shared
                "summary": shareable_paths(self._read_json(self.files.summary), self.files.root),
                "results": shareable_paths(self._read_json(self.files.results), self.files.root),
                "readme": (
                    shareable_paths(self.files.readme.read_text(encoding="utf-8"), self.files.root)
                    if self.files.readme
                    else None
                ),
                "index": {
                    "n_features": int(stats[0]),
                    "n_dead": int(stats[1]),
                    "n_dense": int(stats[2]),
                    "dense_threshold": DENSE_THRESHOLD,
                    "mean_density": _num(stats[3]),
                    "max_activation": _num(stats[4]),
                    "n_tokens_in_database": n_tokens,
                },
                "plots": [p.name for p in self.files.plots],
                "matrices": matrices,
                "files": {
                    k: (
                        getattr(self.files, k).relative_to(self.files.root).as_posix()
                        if getattr(self.files, k)
                        else None
                    )
                    for k in ("summaries", "results", "summary", "readme")
                },
            }
        return self._summary_cache

    # ---- list
    def list_features(
        self,
        q: str = "",
        sort: str = "density",
        order: str | None = None,
        filter: str = "all",
        page: int = 1,
        per_page: int = 50,
        ids: list[int] | None = None,
        min_score: float | None = None,
    ) -> FeaturePage:
        """Search (feature id, top-token or explanation text), filter (also on the explanation score),
        sort and paginate the feature index."""
        one_of(sort, tuple(SORT_COLUMNS), "sort")
        one_of(filter, FILTERS, "filter")
        order = order or ("asc" if sort == "feature" else "desc")
        one_of(order, ("asc", "desc"), "order")
        require(page >= 1, f"page: expected a positive integer, got {page}")
        require(1 <= per_page <= MAX_PER_PAGE, f"per_page: expected 1..{MAX_PER_PAGE}, got {per_page}")
        where, params = [], []
        q = (q or "").strip()
        if q:
            ids_in_q = re.fullmatch(r"#?\s*(\d+)", q)
            if ids_in_q:
                where.append("(feature = ? OR contains(top_tokens_text, ?))")
                params += [int(ids_in_q.group(1)), q.lower()]
            else:
                where.append("(contains(top_tokens_text, ?) OR contains(coalesce(explanation_text, ''), ?))")
                params += [q.lower(), q.lower()]
        if min_score is not None:
            where.append("explanation_score >= ?")
            params.append(float(min_score))
        if filter == "dead":
            where.append("coalesce(density, 0) = 0")
        elif filter == "alive":
            where.append("density > 0")
        elif filter == "dense":
            where.append(f"density > {DENSE_THRESHOLD}")
        if ids is not None:
            where.append("list_contains(?, feature)")
            params.append([int(i) for i in ids])
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        source = "features LEFT JOIN feature_notes USING (feature)"
        total = int(self._query(f"SELECT count(*) FROM {source}{clause}", params)[0][0])
        pages = max(1, math.ceil(total / per_page))
        col = SORT_COLUMNS[sort]
        rows = self._query(
            "SELECT feature, density, mean_activation, max_activation, top_tokens, explanation, "
            f"explanation_score FROM {source}{clause} "
            f"ORDER BY {col} {order.upper()} NULLS LAST, feature ASC LIMIT ? OFFSET ?",
            [*params, per_page, (page - 1) * per_page],
        )
        feats = [
            {
                "feature": int(r[0]),
                "density": _num(r[1]),
                "mean_activation": _num(r[2]),
                "max_activation": _num(r[3]),
                "top_tokens": list(r[4] or []),
                "explanation": r[5],
                "explanation_score": _num(r[6]),
            }
            for r in rows
        ]
        return FeaturePage(total, page, per_page, pages, q, sort, order, filter, feats)

    def adjacent(self, feature: int) -> tuple[int | None, int | None]:
        """The previous and next feature ids present in the index."""
        rows = self._query(
            "SELECT (SELECT max(feature) FROM features WHERE feature < ?), (SELECT min(feature) FROM features WHERE feature > ?)",
            [int(feature), int(feature)],
        )[0]
        return (None if rows[0] is None else int(rows[0]), None if rows[1] is None else int(rows[1]))

    def densest(self, n: int) -> list[int]:
        """The ``n`` features with the highest density (ties by id)."""
        rows = self._query(
            "SELECT feature FROM features ORDER BY density DESC NULLS LAST, feature LIMIT ?", [int(n)]
        )
        return [int(r[0]) for r in rows]

    # ---- one feature
    def raw_feature(self, feature: int) -> dict[str, Any] | None:
        """The feature's summary line as written by the analysis, or None when unknown."""
        rows = self._query("SELECT byte_offset, byte_length FROM features WHERE feature = ?", [int(feature)])
        if not rows:
            return None
        offset, length = rows[0]
        with self.files.summaries.open("rb") as fh:
            fh.seek(int(offset))
            return json.loads(fh.read(int(length)))

    def feature(self, feature: int, radius: int = CONTEXT_RADIUS) -> dict[str, Any] | None:
        """Everything the feature page shows; examples carry per-token activations of this feature."""
        raw = self.raw_feature(feature)
        if raw is None:
            return None
        _require_keys(raw, SUMMARY_KEYS, f"{self.files.summaries}: feature {feature}")
        rec = browser_record(raw)  # type: ignore[arg-type]
        rec.update(annotations.for_feature(self._query, self.files.root, rec["feature"]))
        examples = rec["top_examples"] + [e for g in rec["quantile_examples"] for e in g["examples"]]
        self.attach_contexts(rec["feature"], examples, radius)
        rec["top_examples"], rec["duplicates_dropped"] = drop_duplicate_examples(rec["top_examples"])
        if not rec["logit_effects"]:
            note = self.summary()["results"].get("logit_effects")
            rec["logit_effects_note"] = note if isinstance(note, str) and note.startswith("null") else None
        return rec

    def attach_contexts(self, feature: int, examples: list[dict], radius: int = CONTEXT_RADIUS) -> None:
        """Give each example ``tokens`` = [{token, activation, position, token_idx, is_target}] from the DB.

        One DuckDB query for all examples: the tokens of the same text within ``radius`` positions of
        the example's position, left-joined with this feature's activations on those tokens.
        """
        for e in examples:
            e["tokens"] = None
        usable = [
            (i, e)
            for i, e in enumerate(examples)
            if e.get("text_idx") is not None and e.get("position") is not None
        ]
        if not self.has_database or not usable:
            return
        ex = pa.table(
            {
                "ex_id": pa.array([i for i, _ in usable], pa.int64()),
                "text_idx": pa.array([e["text_idx"] for _, e in usable], pa.int64()),
                "lo": pa.array([e["position"] - radius for _, e in usable], pa.int64()),
                "hi": pa.array([e["position"] + radius for _, e in usable], pa.int64()),
                "center": pa.array([e["position"] for _, e in usable], pa.int64()),
            }
        )
        text_ids = sorted({e["text_idx"] for _, e in usable})
        sql = """
            WITH win AS (
                SELECT ex.ex_id, ex.center, t.token_idx, t.position, t.token_str
                FROM ex_table ex JOIN tokens t
                  ON t.text_idx = ex.text_idx AND t.position BETWEEN ex.lo AND ex.hi
                WHERE t.text_idx BETWEEN ? AND ?
            ), bounds AS (SELECT min(token_idx) AS lo, max(token_idx) AS hi FROM win),
            acts AS (
                SELECT a.token_idx, max(a.value) AS value FROM activations a, bounds
                WHERE a.feature = ? AND a.token_idx BETWEEN bounds.lo AND bounds.hi
                  AND a.token_idx IN (SELECT token_idx FROM win)
                GROUP BY a.token_idx
            )
            SELECT win.ex_id, win.position, win.token_idx, win.token_str, coalesce(acts.value, 0.0), win.center
            FROM win LEFT JOIN acts USING (token_idx)
            ORDER BY win.ex_id, win.position, win.token_idx
        """
        with self._lock:
            cur = self._con.cursor()
            try:
                cur.register("ex_table", ex)
                rows = cur.execute(sql, [text_ids[0], text_ids[-1], int(feature)]).fetchall()
            finally:
                cur.close()
        by_ex: dict[int, list[dict]] = {}
        seen: dict[int, set] = {}
        for ex_id, pos, tidx, tstr, value, center in rows:
            if pos in seen.setdefault(
                ex_id, set()
            ):  # several windows of one text: keep one token per position
                continue
            seen[ex_id].add(pos)
            by_ex.setdefault(ex_id, []).append(
                {
                    "token": "" if tstr is None else str(tstr),
                    "activation": float(value),
                    "position": int(pos),
                    "token_idx": int(tidx),
                    "is_target": pos == center,
                }
            )
        for i, e in usable:
            if i in by_ex:
                attach_display(by_ex[i])
                e["tokens"] = by_ex[i]
