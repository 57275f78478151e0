"""``interplab runs sweep``: which hyperparameters matter, and how, for runs of a sweep.

Per run one value of ``metric`` (its last logged value, or its best with ``final="best"``); the
hyperparameters are the config keys that differ between runs, seeds excluded (as
``--group-by all-but-seed``). Then:

* importance: permutation importance (scikit-learn) of a random forest fit on (hyperparameters →
  value): the drop in R² when one hyperparameter's column is shuffled, mean ± std over repeats,
  and the forest's out-of-bag R² so a reader sees how much the forest explains at all. Text values
  enter as category codes (their sorted order); booleans as 0/1; a key missing in a run as NaN;
* partial dependence: the forest's average prediction as one hyperparameter moves over its range;
* best so far: the best value among the first k runs, in launch order (``created_at``, else the
  source's order);
* parallel coordinates: one line per run across the hyperparameter axes and the metric axis, as a
  figure (PNG + PDF) and as a self-contained HTML page (inline SVG, no script or network: it works
  from ``file://``).

Layout::

    sweep.csv                     per run: id, name, order, hyperparameters, value
    importance.csv                per hyperparameter: importance mean, std; oob R² in the manifest args
    partial_dependence.parquet    hyperparameter, grid value, average prediction
    figures/importance.*, figures/partial_dependence.*, figures/best_so_far.*,
    figures/parallel_coordinates.*
    parallel_coordinates.html     the interactive-free, file:// safe version
    index.html                    the sweep page: all of the above
    manifest.json
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError, one_of
from interplab.runs.run import Run

MIN_RUNS = 4


@dataclass
class SweepOptions:
    """Options of ``interplab runs sweep`` (one field per flag)."""

    #: which direction is better: min | max
    goal: str = "min"
    #: value per run: last | best
    final: str = "last"
    #: seed config keys left out of the hyperparameters (default: names like seed)
    seed_keys: list[str] = field(default_factory=list)
    #: trees of the random forest
    n_estimators: int = 300
    #: shuffles per hyperparameter for permutation importance
    n_repeats: int = 20
    #: seed of the forest and the shuffles
    seed: int = 0
    #: history column used as the step
    step_key: str = "_step"


@dataclass
class SweepResult:
    """The sweep table and every analysis of it."""

    metric: str
    goal: str
    table: pd.DataFrame
    hyperparameters: list[str]
    importance: pd.DataFrame
    partial_dependence: pd.DataFrame
    oob_r2: float
    best_so_far: np.ndarray
    files: list[Path] = field(default_factory=list)


def sweep_table(runs: Sequence[Run], metric: str, opts: SweepOptions) -> tuple[pd.DataFrame, list[str]]:
    """Per run (launch order): id, name, order, the hyperparameter columns and ``value``."""
    from interplab.runs.frames import get_runs_data
    from interplab.runs.stats import final_values, group_columns, group_matrices, require_metric

    one_of(opts.goal, ["min", "max"], "--goal")
    one_of(opts.final, ["last", "best"], "--final")
    order = sorted(
        range(len(runs)),
        key=lambda i: (
            runs[i].created_at is None,
            runs[i].created_at.timestamp() if runs[i].created_at else 0,
            i,
        ),
    )
    runs = [runs[i] for i in order]
    if len(runs) < MIN_RUNS:
        raise InterplabError(f"runs sweep needs at least {MIN_RUNS} runs, got {len(runs)}")
    require_metric(runs, metric)
    df = get_runs_data(runs, [metric], step_key=opts.step_key)
    hp = group_columns(df, "all-but-seed", opts.seed_keys)
    hp = [c for c in hp if not df[c].map(lambda v: isinstance(v, list | dict)).any()]
    if not hp:
        raise InterplabError("the runs differ in no config key except seeds: nothing to analyse as a sweep")
    labels = {r.id: r.id for r in runs}
    mats = {g.label: g for g in group_matrices(df, metric, labels, opts.step_key)}
    per_run = df.drop_duplicates("_run_id").set_index("_run_id")
    rows = []
    for i, run in enumerate(runs):
        (value,) = final_values(mats[run.id], opts.final, opts.goal)
        row = {"id": run.id, "name": run.name, "order": i}
        row.update({c.removeprefix("cfg."): per_run.loc[run.id, c] for c in hp})
        row["value"] = value
        rows.append(row)
    return pd.DataFrame(rows), [c.removeprefix("cfg.") for c in hp]


def encode(table: pd.DataFrame, hps: Sequence[str]) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """Feature matrix: numbers as they are, booleans 0/1, text as codes of its sorted values."""
    cols, categories = [], {}
    for h in hps:
        col = table[h]
        values = [v for v in col.tolist() if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if all(isinstance(v, bool | np.bool_) for v in values):
            cols.append(np.array([np.nan if v is None else float(v) for v in col], dtype=float))
        elif all(isinstance(v, int | float | np.integer | np.floating) for v in values):
            cols.append(pd.to_numeric(col, errors="coerce").to_numpy(dtype=float))
        else:
            cats = sorted({str(v) for v in values})
            categories[h] = cats
            index = {c: i for i, c in enumerate(cats)}
            cols.append(
                np.array([index.get(str(v), np.nan) if v is not None else np.nan for v in col], float)
            )
    return np.column_stack(cols), categories


def analyse(
    table: pd.DataFrame, hps: list[str], opts: SweepOptions
) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """(importance, partial dependence, out-of-bag R²) of a random forest on the sweep table."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import partial_dependence, permutation_importance

    x, _ = encode(table, hps)
    y = table["value"].to_numpy(dtype=float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(y) < MIN_RUNS:
        raise InterplabError(f"only {len(y)} runs have a finite value; the sweep analysis needs {MIN_RUNS}")
    forest = RandomForestRegressor(
        n_estimators=opts.n_estimators, random_state=opts.seed, oob_score=True, n_jobs=1
    ).fit(x, y)
    imp = permutation_importance(forest, x, y, n_repeats=opts.n_repeats, random_state=opts.seed, n_jobs=1)
    importance = pd.DataFrame(
        {"hyperparameter": hps, "importance": imp.importances_mean, "std": imp.importances_std}
    ).sort_values("importance", ascending=False, ignore_index=True)
    parts = []
    for j, h in enumerate(hps):
        if np.isnan(x[:, j]).all():
            continue
        pd_res = partial_dependence(forest, x, [j], kind="average", grid_resolution=20)
        parts.append(
            pd.DataFrame(
                {"hyperparameter": h, "value": pd_res["grid_values"][0], "prediction": pd_res["average"][0]}
            )
        )
    return importance, pd.concat(parts, ignore_index=True), float(forest.oob_score_)


def best_so_far(values: np.ndarray, goal: str) -> np.ndarray:
    """Best value among the first k runs, k = 1 … n (NaN values skipped)."""
    v = np.where(np.isnan(values), np.inf if goal == "min" else -np.inf, values)
    best = np.minimum.accumulate(v) if goal == "min" else np.maximum.accumulate(v)
    return np.where(np.isinf(best), np.nan, best)


def compute_sweep(runs: Sequence[Run], metric: str, opts: SweepOptions | None = None) -> SweepResult:
    """Every analysis of the sweep (pure: writes nothing)."""
    opts = opts or SweepOptions()
    table, hps = sweep_table(runs, metric, opts)
    importance, pdep, oob = analyse(table, hps, opts)
    return SweepResult(
        metric,
        opts.goal,
        table,
        hps,
        importance,
        pdep,
        oob,
        best_so_far(table["value"].to_numpy(float), opts.goal),
    )


def _axes_values(table: pd.DataFrame, hps: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    """Every run's position on each axis in [0, 1] and (name, low label, high label) per axis."""
    x, cats = encode(table, hps)
    cols = np.column_stack([x, table["value"].to_numpy(float)])
    names = [*hps, "value"]
    pos = np.zeros_like(cols)
    labels = []
    for j, name in enumerate(names):
        c = cols[:, j]
        lo, hi = np.nanmin(c), np.nanmax(c)
        pos[:, j] = 0.5 if hi == lo else (c - lo) / (hi - lo)
        if name in cats:
            labels.append((name, cats[name][0], cats[name][-1]))
        else:
            labels.append((name, f"{lo:.4g}", f"{hi:.4g}"))
    return pos, labels


def parallel_figure(res: SweepResult) -> Any:
    """Parallel coordinates: a line per run over the hyperparameter axes and the metric axis."""
    import matplotlib

    from interplab.common.figures import new_figure, report_style

    pos, labels = _axes_values(res.table, res.hyperparameters)
    fig, ax = new_figure(1, 1, figsize=(1.6 * len(labels) + 2, 4.0))
    cmap = matplotlib.colormaps["viridis_r" if res.goal == "min" else "viridis"]
    with report_style():
        for row in pos:
            ax.plot(
                range(len(labels)),
                row,
                color=cmap(row[-1]) if np.isfinite(row[-1]) else "0.7",
                lw=1.2,
                alpha=0.8,
            )
        for j, (_name, lo, hi) in enumerate(labels):
            ax.axvline(j, color="0.3", lw=0.8)
            ax.text(j, -0.06, lo, ha="center", va="top", fontsize=7)
            ax.text(j, 1.04, hi, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(
            range(len(labels)), [n if n != "value" else res.metric for n, _, _ in labels], fontsize=8
        )
        ax.set_yticks([])
        ax.set_ylim(-0.15, 1.12)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"parallel coordinates; colour: {res.metric} (brighter = better)", fontsize=9)
        fig.tight_layout()
    return fig


def parallel_html(res: SweepResult) -> str:
    """The parallel-coordinates plot as one self-contained page (inline SVG, CSS hover, no scripts)."""
    import matplotlib

    pos, labels = _axes_values(res.table, res.hyperparameters)
    cmap = matplotlib.colormaps["viridis_r" if res.goal == "min" else "viridis"]
    width, height, pad = 160 * len(labels) + 80, 420, 50
    xs = [pad + j * (width - 2 * pad) / max(1, len(labels) - 1) for j in range(len(labels))]
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif'>",
    ]
    for j, (name, lo, hi) in enumerate(labels):
        label = res.metric if name == "value" else name
        parts.append(
            f"<line x1='{xs[j]:.1f}' y1='{pad}' x2='{xs[j]:.1f}' y2='{height - pad}' stroke='#555'/>"
        )
        parts.append(
            f"<text x='{xs[j]:.1f}' y='{pad - 22}' text-anchor='middle' font-size='13'>{html.escape(label)}</text>"
        )
        parts.append(
            f"<text x='{xs[j]:.1f}' y='{pad - 6}' text-anchor='middle' font-size='11'>{html.escape(hi)}</text>"
        )
        parts.append(
            f"<text x='{xs[j]:.1f}' y='{height - pad + 16}' text-anchor='middle' font-size='11'>{html.escape(lo)}</text>"
        )
    for i, row in enumerate(pos):
        pts = " ".join(
            f"{xs[j]:.1f},{height - pad - v * (height - 2 * pad):.1f}"
            for j, v in enumerate(row)
            if np.isfinite(v)
        )
        r, g, b, _ = cmap(row[-1]) if np.isfinite(row[-1]) else (0.6, 0.6, 0.6, 1)
        rec = res.table.iloc[i]
        tip = ", ".join(
            [
                f"{rec['name']}",
                *(f"{h}={rec[h]}" for h in res.hyperparameters),
                f"{res.metric}={rec['value']:.4g}",
            ]
        )
        parts.append(
            f"<polyline class='run' points='{pts}' stroke='rgb({r * 255:.0f},{g * 255:.0f},{b * 255:.0f})'>"
            f"<title>{html.escape(tip)}</title></polyline>"
        )
    parts.append("</svg>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Parallel coordinates — {html.escape(res.metric)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em}polyline.run{fill:none;stroke-width:1.5;stroke-opacity:.75}"
        "polyline.run:hover{stroke-width:4;stroke-opacity:1}</style></head><body>"
        f"<h1>Parallel coordinates — {html.escape(res.metric)} ({html.escape(res.goal)} is better)</h1>"
        "<p>One line per run; hover a line for its values. Axes run from the smallest (bottom) to the "
        "largest (top) value; text values are in sorted order.</p>" + "".join(parts) + "</body></html>\n"
    )


def importance_figure(res: SweepResult) -> Any:
    from interplab.common.figures import new_figure, report_style

    imp = res.importance.iloc[::-1]
    fig, ax = new_figure(1, 1, figsize=(5.5, 0.8 + 0.4 * len(imp)))
    with report_style():
        ax.barh(imp["hyperparameter"], imp["importance"], xerr=imp["std"], color="#4C72B0")
        ax.set_xlabel("permutation importance (drop in R²)")
        ax.set_title(f"{res.metric}: random forest, out-of-bag R² = {res.oob_r2:.2f}", fontsize=9)
        fig.tight_layout()
    return fig


def partial_dependence_figure(res: SweepResult) -> Any:
    from interplab.common.figures import new_figure, report_style

    hps = list(dict.fromkeys(res.partial_dependence["hyperparameter"]))
    x, cats = encode(res.table, res.hyperparameters)
    fig, axes = new_figure(1, len(hps), figsize=(3.2 * len(hps), 3.2), squeeze=False, sharey=True)
    with report_style():
        for ax, h in zip(axes[0], hps, strict=True):
            sub = res.partial_dependence[res.partial_dependence["hyperparameter"] == h]
            ax.plot(sub["value"], sub["prediction"], color="#C44E52", lw=1.8, label="partial dependence")
            ax.scatter(
                x[:, res.hyperparameters.index(h)], res.table["value"], s=10, color="0.4", label="runs"
            )
            if h in cats:
                ax.set_xticks(range(len(cats[h])), cats[h], fontsize=7)
            ax.set_xlabel(h)
        axes[0][0].set_ylabel(res.metric)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
    return fig


def best_so_far_figure(res: SweepResult) -> Any:
    from interplab.common.figures import new_figure, report_style

    fig, ax = new_figure(1, 1, figsize=(5.5, 3.5))
    k = np.arange(1, len(res.table) + 1)
    with report_style():
        ax.scatter(k, res.table["value"], s=12, color="0.5", label="run")
        ax.step(k, res.best_so_far, where="post", color="#55A868", lw=1.8, label="best so far")
        ax.set_xlabel("runs in launch order")
        ax.set_ylabel(res.metric)
        ax.legend(fontsize=8)
        fig.tight_layout()
    return fig


FIGURES = (
    ("importance", "Hyperparameter importance", importance_figure),
    ("partial_dependence", "Partial dependence", partial_dependence_figure),
    ("best_so_far", "Best so far", best_so_far_figure),
    ("parallel_coordinates", "Parallel coordinates", parallel_figure),
)


def render_page(res: SweepResult, source: str) -> str:
    """index.html: the sweep page (tables and figures, relative links only)."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Sweep — {esc(res.metric)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%;border:1px solid #eee}</style></head><body>",
        f"<h1>Sweep: {esc(res.metric)} ({esc(res.goal)} is better)</h1>",
        f"<p>Source <code>{esc(source)}</code>, {len(res.table)} runs, hyperparameters: "
        f"{esc(', '.join(res.hyperparameters))}. Random forest out-of-bag R² = {res.oob_r2:.3f}. "
        "Files: <a href='sweep.csv'>sweep.csv</a>, <a href='importance.csv'>importance.csv</a>, "
        "<a href='parallel_coordinates.html'>parallel_coordinates.html</a>.</p>",
        "<h2>Importance</h2>",
        res.importance.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0),
    ]
    for name, title, _ in FIGURES:
        parts.append(
            f"<h2>{esc(title)}</h2><a href='figures/{name}.pdf'><img src='figures/{name}.png' alt='{esc(title)}'></a>"
        )
    best = res.table.iloc[
        int(np.nanargmin(res.table["value"]) if res.goal == "min" else np.nanargmax(res.table["value"]))
    ]
    parts.append(f"<h2>Runs</h2><p>Best: {esc(str(best['name']))} ({best['value']:.4g}).</p>")
    parts.append(res.table.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_sweep(res: SweepResult, out: Path, source: str, od: Any) -> list[Path]:
    """Every file of the sweep folder through the open output dir ``od``."""
    from interplab.common.atomic import write_parquet, write_text
    from interplab.runs.frames import write_frame

    files = [
        write_frame(res.table, od.file("sweep.csv")),
        write_text(od.file("importance.csv"), res.importance.to_csv(index=False)),
        write_parquet(od.file("partial_dependence.parquet"), res.partial_dependence),
        write_text(od.file("parallel_coordinates.html"), parallel_html(res)),
    ]
    for name, _, make in FIGURES:
        files.extend(od.save_figure(make(res), Path("figures") / name))
    files.append(write_text(od.file("index.html"), render_page(res, source)))
    return files


def runs_sweep(
    source: str,
    metric: str,
    out: str | os.PathLike[str],
    opts: SweepOptions | None = None,
    tags: Sequence[str] | None = None,
    filter_json: str | None = None,
) -> SweepResult:
    """The sweep analysis of ``metric`` over the runs of ``source`` → the folder ``out``."""
    from interplab.common.output import output_dir
    from interplab.runs.api import load_runs

    opts = opts or SweepOptions()
    res = compute_sweep(load_runs(source, tags, filter_json), metric, opts)
    arguments = {
        "source": source,
        "metric": metric,
        **asdict(opts),
        "tags": list(tags or []),
        "filter": filter_json,
    }
    with output_dir(Path(out), "runs sweep", arguments) as od:
        res.files = write_sweep(res, Path(out), source, od)
    return res
