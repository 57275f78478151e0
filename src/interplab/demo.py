"""``interplab demo``: all three areas on built-in defaults, offline, with one index page.

Steps (each skipped on a re-run when its marker ``.steps/<name>.json`` exists):

1. masks: prune ``minilm`` with Wanda and SparseGPT; multi-seed clustering of one layer's matrix for
   both methods; multi-exec JSONs; the comparative report.
2. sae: train a small TopK SAE on ``minilm`` (layer 3, ``hook_resid_post``, built-in corpus), run the
   full analysis, export the static feature browser.
3. runs: the built-in Markov-chain in-context-learning experiment (offline W&B runs) and its report.

Then ``index.html`` links every report, figure and the browser, with the key numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interplab.common.atomic import write_json
from interplab.common.interrupt import resumable
from interplab.common.output import output_dir

log = logging.getLogger(__name__)

DEMO_LAYER = 1
DEMO_COMPONENT = "output.dense"  # MiniLM's MLP down-projection [384, 1536]: 1536 features
DEMO_METHODS = ("wanda", "sparsegpt")


@dataclasses.dataclass
class DemoSettings:
    """Sizes of the demo; the defaults finish in under 10 minutes on 2 CPU cores."""

    prune_nsamples: int = 64
    prune_seqlen: int = 128
    mask_seeds: int = 3
    mask_k_values: tuple[int, ...] = (4, 8, 16)
    mask_n_similar: int = 128
    mask_executions: int = 5
    sae_layer: int = 3
    sae_d_sae: int = 1024
    sae_k: int = 32
    sae_steps: int = 400
    sae_tokens: int = 32768
    #: the ablation passes dominate the SAE step (one full forward per ablated feature and token on
    #: top of the clean, zero and SAE passes): 1024 tokens × 4 features costs a third of 2048 × 8
    sae_ablation_tokens: int = 1024
    sae_ablation_features: int = 4
    runs_seeds: int = 3
    runs_steps: int | None = None

    def sae_arguments(self) -> dict[str, Any]:
        """The ``sae_*`` settings as :func:`~interplab.sae.analyzer.run_sae_demo`'s arguments
        (``sae_tokens`` is its ``max_tokens``)."""
        named = {
            k.removeprefix("sae_"): v for k, v in dataclasses.asdict(self).items() if k.startswith("sae_")
        }
        named["max_tokens"] = named.pop("tokens")
        return named


@dataclasses.dataclass
class StepResult:
    """Key numbers and links of one finished demo step."""

    name: str
    seconds: float
    numbers: dict[str, Any]
    links: dict[str, str]


def _run_step(out: Path, name: str, fn: Callable[[], tuple[dict[str, Any], dict[str, str]]]) -> StepResult:
    """Run ``fn`` unless its marker exists and every output it links to is still there; the marker
    stores its numbers and links (paths relative to ``out``)."""
    marker = out / ".steps" / f"{name}.json"
    if marker.exists():
        data = json.loads(marker.read_text(encoding="utf-8"))
        missing = [rel for rel in data.get("links", {}).values() if not (out / rel).exists()]
        if not missing:
            log.info("demo: %s already done (delete %s to redo)", name, marker)
            return StepResult(**data)
        log.info("demo: %s is redone: %d of its outputs are gone (%s)", name, len(missing), missing[0])
    log.info("demo: %s …", name)
    t0 = time.perf_counter()
    numbers, links = fn()
    result = StepResult(name=name, seconds=round(time.perf_counter() - t0, 1), numbers=numbers, links=links)
    write_json(marker, dataclasses.asdict(result))
    log.info("demo: %s done in %.1f s", name, result.seconds)
    return result


def _rel(path: Path, out: Path) -> str:
    return str(Path(path).resolve().relative_to(out.resolve()).as_posix())


def _masks_prune(out: Path, s: DemoSettings) -> tuple[dict[str, Any], dict[str, str]]:
    from interplab.masks.prune import prune_model

    numbers: dict[str, Any] = {}
    links: dict[str, str] = {}
    for method in DEMO_METHODS:
        res = prune_model(
            "minilm",
            out=out / "masks" / "pruned",
            method=method,
            sparsity=0.5,
            nsamples=s.prune_nsamples,
            seqlen=s.prune_seqlen,
        )
        numbers[f"{method} mean relative output error"] = res.mean_relative_output_error
        numbers.update(
            {f"{method} {k}": v for k, v in dataclasses.asdict(res.quality).items() if isinstance(v, float)}
        )
        numbers[f"{method} seconds"] = round(res.seconds, 1)
        links[f"{method} pruning report"] = _rel(res.out_dir / "pruning_report.md", out)
    return numbers, links


def _masks_analysis(out: Path, s: DemoSettings) -> tuple[dict[str, Any], dict[str, str]]:
    from interplab.masks.multi_exec import multi_exec_analysis
    from interplab.masks.multi_seed import multi_seed_analysis
    from interplab.masks.report import comparative_report

    numbers: dict[str, Any] = {}
    links: dict[str, str] = {}
    results = out / "masks" / "results"
    for method in DEMO_METHODS:
        folder = out / "masks" / "multi_seed" / method / DEMO_COMPONENT
        multi_seed_analysis(
            method,
            layer=DEMO_LAYER,
            component=DEMO_COMPONENT,
            matrix_dir=out / "masks" / "pruned",
            seeds=s.mask_seeds,
            n_similar=s.mask_n_similar,
            k_values=s.mask_k_values,
            output_dir_path=folder,
        )
        links[f"{method} separation ratios"] = _rel(folder / "summary" / "summary_separation_ratios.png", out)
        links[f"{method} distances"] = _rel(folder / "summary" / "summary_distances.png", out)
        matrix = out / "masks" / "pruned" / method / f"layer{DEMO_LAYER}-{DEMO_COMPONENT}.pt"
        res = multi_exec_analysis(
            matrix,
            n_executions=s.mask_executions,
            n_features=s.mask_n_similar,
            n_clusters=8,
            seed=42,
            output_json=results / f"{method}_layer{DEMO_LAYER}_{DEMO_COMPONENT}.json",
        )
        agg = res.get("aggregate", {})
        for key in ("separation_ratio", "min_hamming", "mean_within", "mean_between"):
            if key in agg:
                numbers[f"{method} {key} (k=8, mean)"] = agg[key]["mean"]
        numbers[f"{method} multi-seed k values"] = list(s.mask_k_values)
    comparative_report(results, out / "masks" / "report")
    links["comparative report"] = _rel(out / "masks" / "report" / "comparative_report.md", out)
    return numbers, links


def _sae(out: Path, s: DemoSettings) -> tuple[dict[str, Any], dict[str, str]]:
    from interplab.sae.analyzer import run_sae_demo
    from interplab.sae.browser.export import export_browser

    sae_out = out / "sae"
    run_sae_demo(sae_out, **s.sae_arguments())
    analysis_dir = sae_out / "analysis"
    export_browser(analysis_dir, sae_out / "browser")
    numbers = _sae_numbers(analysis_dir)
    links = {"feature browser (static)": "sae/browser/index.html"}
    for readme in sorted(analysis_dir.glob("README_*.md"))[-1:]:
        links["analysis report"] = _rel(readme, out)
    for png in sorted((analysis_dir / "plots").glob("*.png")):
        links[f"plot: {png.stem}"] = _rel(png, out)
    return numbers, links


def _sae_prune(out: Path, s: DemoSettings) -> tuple[dict[str, Any], dict[str, str]]:
    """The demo SAE run through MiniLM pruned to 50 % with Wanda (``sae compare --model-b``)."""
    from interplab.masks.prune import prune_model
    from interplab.sae.compare import CompareConfig, compare

    pruned = prune_model(
        "minilm",
        out=out / "sae" / "pruned",
        method="wanda",
        sparsity=0.5,
        nsamples=s.prune_nsamples,
        seqlen=s.prune_seqlen,
        save_model=True,
    )
    res = compare(
        CompareConfig(
            a=str(out / "sae" / "analysis"),
            model_b=str(pruned.out_dir / "model"),
            out=str(out / "sae" / "prune-compare"),
            label_a="MiniLM dense",
            label_b="MiniLM Wanda 50 %",
        )
    )
    sm = res.summary
    numbers = {
        "explained variance, dense": sm["explained_variance_a"],
        "explained variance, Wanda 50 %": sm["explained_variance_b"],
        "features that die": sm["n_died"],
        "features that appear": sm["n_appeared"],
        "activation correlation (median)": sm["activation_corr_median"],
        "firing-rate ratio (median)": sm["firing_rate_ratio_median"],
    }
    links = {
        "comparison report": _rel(res.out / res.files["report"], out),
        "plot: pruning bridge": _rel(res.out / res.files["plot_bridge"], out),
    }
    return numbers, links


def _sae_numbers(analysis_dir: Path) -> dict[str, Any]:
    files = sorted((analysis_dir / "results").glob("analysis_results_*.json"))
    if not files:
        return {}
    res = json.loads(files[-1].read_text(encoding="utf-8"))
    picks = {
        "L0 (mean active features per token)": ("sparsity", "l0_mean"),
        "dead features (%)": ("dead_features", "pct_dead"),
        "explained variance": ("reconstruction", "explained_variance"),
        "cosine similarity": ("reconstruction", "cosine_similarity"),
        "loss recovered": ("ablation", "loss_recovered"),
        "tokens analysed": ("sparsity", "n_tokens"),
        "features": ("sparsity", "n_features"),
    }
    numbers: dict[str, Any] = {}
    for label, (section, key) in picks.items():
        value = res.get(section, {}).get(key)
        if value is not None:
            numbers[label] = value
    return numbers


def _runs(out: Path, s: DemoSettings) -> tuple[dict[str, Any], dict[str, str]]:
    from interplab.runs.experiment import run_experiment
    from interplab.runs.report import runs_report

    exp_dir = out / "runs" / "experiment"
    run_experiment(exp_dir, seeds=s.runs_seeds, steps=s.runs_steps)
    rep_dir = out / "runs" / "report"
    report = runs_report(str(exp_dir), rep_dir)
    links = {"runs report": _rel(rep_dir / "index.html", out)}
    for fig in report.figures[:12]:
        links[f"figure: {fig.section} · {fig.title}"] = _rel(rep_dir / fig.png, out)
    numbers: dict[str, Any] = {}
    for fig in report.figures:  # interval bands across seeds (the first 12 may not reach them)
        if fig.section == "Statistics across seeds":
            links[f"figure: {fig.section} · {fig.title}"] = _rel(rep_dir / fig.png, out)
    if (rep_dir / "sweep" / "index.html").exists():
        links["runs sweep page"] = _rel(rep_dir / "sweep" / "index.html", out)
    comparisons = rep_dir / "stats" / "comparisons.json"
    if comparisons.exists():
        for c in json.loads(comparisons.read_text(encoding="utf-8")):
            numbers[f"P({c['a']} better than {c['b']})"] = c["p_improvement"]
            numbers[f"permutation p ({c['a']} vs {c['b']})"] = c["p_value"]
    runs_csv = rep_dir / "runs.csv"
    if runs_csv.exists():
        import pandas as pd

        df = pd.read_csv(runs_csv)
        numbers["runs"] = len(df)
        for col in ("val_loss", "kl_div_prefix_1_teacher_val", "kl_div_prefix_2_teacher_val"):
            if col in df:
                numbers[f"final {col} (mean over runs)"] = float(df[col].mean())
    return numbers, links


@resumable
def run_demo(out: str | Path = "demo-output", settings: DemoSettings | None = None) -> Path:
    """Run every demo step (reusing finished ones) and write ``out/index.html``; returns its path."""
    from interplab.demo_page import render_index

    s = settings or DemoSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arguments = dataclasses.asdict(s)
    with output_dir(out, "demo", arguments) as od:
        steps = []
        for name, fn in (
            ("masks-prune", _masks_prune),
            ("masks-analysis", _masks_analysis),
            ("sae", _sae),
            ("sae-prune", _sae_prune),
            ("runs", _runs),
        ):
            with od.timed(name):
                steps.append(_run_step(out, name, lambda fn=fn: fn(out, s)))
        index = render_index(out, steps)
        od.record(index)
    return index
