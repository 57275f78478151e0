"""What other commands add to an analysis folder, for the browser: the explanations of
``sae explain`` (``results/explanations_<ts>.jsonl``) and the stability of ``sae compare``
(``results/feature_stability_<ts>.parquet``); the latest file of each wins.

:func:`register` creates three DuckDB views on the browser's connection:

* ``explanations`` — feature, explainer, explanation, score (detection balanced accuracy);
* ``stability`` — feature, partner, decoder_cos, activation_corr, stability, stable, compared_with,
  partner_url;
* ``feature_notes`` — per feature: ``explanation_text`` (all explanations, lower case, for search)
  and ``explanation_score`` (the best detection score), what the feature list searches and filters.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from interplab.common.data import nonblank_lines
from interplab.sae import layout

log = logging.getLogger(__name__)

EXPLANATIONS = layout.EXPLANATION_FILES
STABILITY = layout.STABILITY_FILES
SCORE_KEY = "detection_balanced_accuracy"


def latest(root: Path, prefix: str, suffix: str) -> Path | None:
    """``root/results/<prefix><YYYYmmdd_HHMMSS><suffix>`` with the latest timestamp."""
    return layout.latest(Path(root) / layout.RESULTS, prefix, suffix)


def _sql_str(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def _explanation_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in nonblank_lines(path):
        try:
            r = json.loads(line)
            score = (r.get("scores") or {}).get(SCORE_KEY)
            rows.append(
                {
                    "feature": int(r["feature"]),
                    "explainer": str(r.get("explainer", "")),
                    "explanation": str(r.get("explanation", "")),
                    "score": float(score)
                    if isinstance(score, int | float) and math.isfinite(score)
                    else None,
                    "scores": r.get("scores") or {},
                }
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: line %d is not an explanation (%s); skipped", path, lineno, exc)
    return rows


def register(con: Any, root: Path) -> dict[str, Path | None]:
    """Create the ``explanations``, ``stability`` and ``feature_notes`` views (empty when the
    folder has no such file); returns the files used."""
    import pyarrow as pa

    expl = latest(root, *EXPLANATIONS)
    rows = _explanation_rows(expl) if expl else []
    table = pa.table(
        {
            "feature": pa.array([r["feature"] for r in rows], pa.int64()),
            "explainer": pa.array([r["explainer"] for r in rows], pa.string()),
            "explanation": pa.array([r["explanation"] for r in rows], pa.string()),
            "score": pa.array([r["score"] for r in rows], pa.float64()),
            "scores": pa.array([json.dumps(r["scores"]) for r in rows], pa.string()),
        }
    )
    con.register("explanations_arrow", table)
    con.execute("CREATE OR REPLACE TABLE explanations AS SELECT * FROM explanations_arrow")
    con.unregister("explanations_arrow")
    stab = latest(root, *STABILITY)
    if stab is not None:
        con.execute(f"CREATE OR REPLACE VIEW stability AS SELECT * FROM read_parquet({_sql_str(stab)})")
    else:
        con.execute(
            "CREATE OR REPLACE VIEW stability AS SELECT 0::BIGINT AS feature, 0::BIGINT AS partner, "
            "0::DOUBLE AS decoder_cos, 0::DOUBLE AS activation_corr, 0::DOUBLE AS stability, false AS stable, "
            "''::VARCHAR AS compared_with, ''::VARCHAR AS compared_with_dir, NULL::VARCHAR AS partner_url WHERE false"
        )
    con.execute(
        "CREATE OR REPLACE VIEW feature_notes AS SELECT feature, "
        "string_agg(lower(explanation), '\n') AS explanation_text, max(score) AS explanation_score, "
        "first(explanation ORDER BY score DESC NULLS LAST, explainer) AS explanation "
        "FROM explanations GROUP BY feature"
    )
    return {"explanations": expl, "stability": stab}


def for_feature(query: Any, root: Path, feature: int) -> dict[str, Any]:
    """``{"explanations": [...], "stability": {...} | None}`` of one feature; ``query(sql, params)``
    returns rows as tuples."""
    expl = [
        {"explainer": r[0], "explanation": r[1], "score": r[2], "scores": json.loads(r[3] or "{}")}
        for r in query(
            "SELECT explainer, explanation, score, scores FROM explanations WHERE feature = ? "
            "ORDER BY score DESC NULLS LAST, explainer",
            [int(feature)],
        )
    ]
    cols = [
        "partner",
        "decoder_cos",
        "activation_corr",
        "stability",
        "stable",
        "compared_with",
        "compared_with_dir",
        "partner_url",
    ]
    rows = query(f"SELECT {', '.join(cols)} FROM stability WHERE feature = ?", [int(feature)])
    stab = None
    if rows:
        stab = dict(zip(cols, rows[0], strict=True))
        for k in ("decoder_cos", "activation_corr", "stability"):
            v = stab[k]
            stab[k] = None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)
        other = stab["compared_with_dir"]
        # the partner's page is in this browser: the template links it with its own feature_url
        stab["same_analysis"] = bool(other) and Path(other).resolve() == Path(root).resolve()
    return {"explanations": expl, "stability": stab}
