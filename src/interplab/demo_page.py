"""The demo's ``index.html``: one page linking every report, figure and the feature browser."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from pathlib import Path
from typing import Any

import jinja2

from interplab import __version__
from interplab.common.atomic import write_text
from interplab.common.markdown_html import prefer_html
from interplab.common.numbers import format_number

AREAS = {
    "masks-prune": ("Pruning", "MiniLM pruned to 50 % with Wanda and SparseGPT, layer by layer."),
    "masks-analysis": (
        "Mask structure",
        "Hamming neighbours, k-means clusters and null models of layer 1's MLP down-projection.",
    ),
    "sae": (
        "Sparse autoencoder",
        "A TopK SAE trained on MiniLM layer 3 (residual stream), analysed on the built-in corpus.",
    ),
    "sae-prune": (
        "Pruning × SAE",
        "The same SAE run on the same tokens through MiniLM pruned to 50 % with Wanda: which features "
        "fire less, die or appear (interplab sae compare --model-b).",
    ),
    "runs": (
        "W&B runs",
        "The built-in Markov-chain in-context-learning experiment, logged offline and read back.",
    ),
}

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>interplab demo</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}.sub{color:#666;margin-top:.2em}
section{border-top:1px solid #ddd;margin-top:1.5em;padding-top:.5em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.thumbs{display:flex;flex-wrap:wrap;gap:12px}.thumbs a{display:block;width:250px;font-size:.85em;color:#333}
.thumbs img{width:250px;border:1px solid #ddd}
</style></head><body>
<h1>interplab demo</h1>
<p class="sub">interplab {{ version }} · written {{ created }} · every number below was computed on this machine from built-in data.</p>
{% for step in steps %}
<section id="{{ step.name }}">
<h2>{{ areas[step.name][0] }}</h2>
<p>{{ areas[step.name][1] }} <small>({{ step.seconds }} s)</small></p>
{% if step.numbers %}<table>{% for k, v in step.numbers.items() %}
<tr><th>{{ k }}</th><td class="num">{{ fmt(v) }}</td></tr>{% endfor %}</table>{% endif %}
<ul>{% for label, href in step.links.items() if not href.endswith('.png') %}
<li><a href="{{ href }}">{{ label }}</a></li>{% endfor %}</ul>
<div class="thumbs">{% for label, href in step.links.items() if href.endswith('.png') %}
<a href="{{ href }}"><img src="{{ href }}" alt="{{ label }}" loading="lazy">{{ label }}</a>{% endfor %}</div>
</section>
{% endfor %}
<section><h2>Files</h2><p>Each folder has a <code>manifest.json</code> listing what it wrote;
formats are documented in the project's <code>docs/</code>.</p></section>
</body></html>
"""


def fmt(value: Any) -> str:
    """Numbers with 4 significant digits; lists and text as they are."""
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return format_number(value, thousands=True)


def render_index(out: Path, steps: list[Any]) -> Path:
    """Write ``out/index.html`` for the finished demo steps."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    steps = [
        dataclasses.replace(s, links={k: prefer_html(out, v) for k, v in s.links.items()}) for s in steps
    ]
    html = env.from_string(TEMPLATE).render(
        steps=steps,
        areas=AREAS,
        fmt=fmt,
        version=__version__,
        created=_dt.datetime.now().isoformat(timespec="seconds"),
    )
    return write_text(Path(out) / "index.html", html)
