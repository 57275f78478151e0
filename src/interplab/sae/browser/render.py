"""HTML rendering with Jinja2 (autoescape on everywhere), shared by the server and the static export."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jinja2
from markupsafe import Markup

from interplab.common.atomic import to_jsonable
from interplab.common.numbers import format_number
from interplab.sae.layout import DENSE_THRESHOLD


def json_for_script(data: Any) -> Markup:
    """JSON safe to embed in ``<script type="application/json">``: ``<``, ``>``, ``&`` become ``\\u00XX``.

    No ``</script>`` or ``<!--`` can then appear inside the element, whatever the corpus holds.
    """
    text = json.dumps(to_jsonable(data), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return Markup(text)


def fmt(value: Any, digits: int = 4) -> str:
    """Compact number formatting for tables ("–" for missing or non-finite)."""
    return format_number(value, digits, infinity=False, thousands=True, scientific=True)


def shade(activation: float | None, scale: float | None) -> str:
    """CSS background colour for a token: orange with alpha proportional to activation / scale."""
    if not activation or not scale or scale <= 0 or activation <= 0:
        return "transparent"
    alpha = max(0.0, min(1.0, activation / scale))
    return f"rgba(255, 128, 0, {alpha:.3f})"


def histogram_svg_data(hist: dict | None, width: int = 560, height: int = 160) -> dict | None:
    """Bar geometry for the activation histogram (drawn as inline SVG by the template)."""
    if not hist or not hist.get("counts"):
        return None
    counts = list(hist["counts"])
    edges = list(hist["edges"]) if hist.get("edges") else None
    nz = [i for i, c in enumerate(counts) if c]
    if nz:  # drop empty bins at both ends (fixed log-spaced bins leave many)
        lo_i, hi_i = nz[0], nz[-1] + 1
        counts = counts[lo_i:hi_i]
        edges = edges[lo_i : hi_i + 1] if edges else None
    hist = {**hist, "counts": counts, "edges": edges}
    top = max(counts) or 1.0
    n = len(counts)
    bar_w = width / n
    bars = []
    for i, c in enumerate(counts):
        h = (c / top) * (height - 4)
        lo = hi = None
        if hist.get("edges"):
            lo, hi = hist["edges"][i], hist["edges"][i + 1]
        bars.append(
            {
                "x": round(i * bar_w, 2),
                "y": round(height - h, 2),
                "w": round(max(bar_w - 1, 0.5), 2),
                "h": round(h, 2),
                "count": c,
                "lo": lo,
                "hi": hi,
            }
        )
    edges = hist.get("edges")
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "min": edges[0] if edges else None,
        "max": edges[-1] if edges else None,
        "total": sum(counts),
        "top": top,
        "log_bins": bool(edges) and len(edges) > 2 and edges[0] > 0 and _log_spaced(edges),
    }


def _log_spaced(edges: list[float]) -> bool:
    """Whether bin edges grow by a constant ratio (log-spaced) rather than by a constant step."""
    pairs = list(itertools.pairwise(edges))
    ratios = [b / a for a, b in pairs if a > 0]
    steps = [b - a for a, b in pairs]
    if not ratios:
        return False
    constant_ratio = max(ratios) - min(ratios) <= 1e-6 * max(ratios)
    constant_step = max(steps) - min(steps) <= 1e-6 * max(abs(x) for x in steps)
    return constant_ratio and not constant_step


def flatten_metrics(data: Any, prefix: str = "", limit: int = 80) -> list[tuple[str, Any]]:
    """Scalar leaves of a nested JSON object as ``(dotted.key, value)``; lists are summarised by length."""
    out: list[tuple[str, Any]] = []

    def walk(obj: Any, key: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(obj, list):
            if len(obj) <= 4 and all(isinstance(x, int | float | str) for x in obj):
                out.append((key, ", ".join(fmt(x) for x in obj)))
            else:
                out.append((key, f"[{len(obj)} items]"))
        else:
            out.append((key, obj))

    walk(data, prefix)
    return out


def make_env() -> jinja2.Environment:
    """A Jinja environment over the package templates with autoescaping on for every template.

    Pages get ``root`` (prefix of static/plot URLs), ``nav`` and ``feature_url(id)`` (None when the
    feature has no page, e.g. not exported) in their context.
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("interplab.sae.browser", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["json_script"] = json_for_script
    env.globals.update(
        dense_threshold=DENSE_THRESHOLD,
        shade=shade,
        histogram_svg_data=histogram_svg_data,
        flatten_metrics=flatten_metrics,
    )
    return env
