"""The options of the ``runs`` commands, each declared once as a dataclass (flag, help, default): the
typer command, the Python call and the ``--config`` file read the same declaration.

Free of pandas/wandb imports so ``interplab --help`` stays fast; the defaults of ``runs stats`` and
``runs sweep`` are those of :class:`~interplab.runs.stats_report.StatsOptions` and
:class:`~interplab.runs.sweep.SweepOptions` (a test keeps them equal)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from interplab.common.options import option

SOURCE_HELP = (
    "wandb:ENTITY/PROJECT, or a folder holding wandb/ or offline-run-*/run-* folders, or one run folder."
)
FIGURE_HELP = "Figure path (.pdf or .png; both are written)."
ATTENTION_KEY = "val_attention_weights"  # table key of the attention weights logged by the experiment


TAG_HELP = "Keep runs with any of these tags (repeatable)."
FILTER_HELP = 'W&B Mongo-style filter as JSON, e.g. \'{"config.lr": {"$gt": 0.001}}\'.'


@dataclasses.dataclass
class ListConfig:
    """``interplab runs list``."""

    source: str = option(argument=True, help=SOURCE_HELP)
    tag: list[str] | None = option(None, aliases=("-t",), help=TAG_HELP)
    filter: str | None = option(None, help=FILTER_HELP)
    metric: list[str] | None = option(None, aliases=("-m",), help="Summary metric to show (repeatable).")


@dataclasses.dataclass
class DiffConfig:
    """``interplab runs diff``."""

    source: str = option(argument=True, help=SOURCE_HELP)
    tag: list[str] | None = option(None, aliases=("-t",), help=TAG_HELP)
    filter: str | None = option(None, help=FILTER_HELP)
    out: Path | None = option(None, help="Also write the table (.csv or .parquet).")


@dataclasses.dataclass(kw_only=True)
class ExportConfig:
    """``interplab runs export``."""

    source: str = option(argument=True, help=SOURCE_HELP)
    metrics: list[str] = option(aliases=("--metric", "-m"), help="Metrics (repeatable or a,b,c).")
    out: Path = option(help="Output file: .parquet or .csv.")
    tag: list[str] | None = option(None, aliases=("-t",), help=TAG_HELP)
    filter: str | None = option(None, help=FILTER_HELP)
    step_key: str = option("_step", help="History column used as the step.")


@dataclasses.dataclass(kw_only=True)
class PlotConfig:
    """``interplab runs plot``."""

    source: str = option(argument=True, help=SOURCE_HELP)
    metric: list[str] = option(aliases=("-m",), help="Metrics to plot (repeatable or a,b,c).")
    out: Path = option(help=FIGURE_HELP)
    group_by: str | None = option(
        None, help="Config column for groups (mean and band per value), e.g. cfg.init_scale."
    )
    phases: str | None = option(None, help="'auto' (argmin of KL metrics changes) or steps S1,S2,…")
    phase_metric: list[str] | None = option(
        None, help="KL metrics for --phases auto (default: the plotted metrics, or the prefix-teacher set)."
    )
    max_step: float | None = option(None, help="Drop steps above this.")
    shift: float = option(0, help="Add this to every step on the x axis.")
    tag: list[str] | None = option(None, aliases=("-t",), help=TAG_HELP)
    filter: str | None = option(None, help=FILTER_HELP)
    title: str | None = option(None, help="Figure title.")
    logy: bool = option(False, help="Log-scale y axis.")
    band: str = option("ci", help="Band around the mean: ci (bootstrap) | se | std | none.")
    ci: float = option(0.95, help="Confidence level of the ci band.")


@dataclasses.dataclass(kw_only=True)
class HeadsConfig:
    """``interplab runs heads``."""

    source: str = option(argument=True, help=SOURCE_HELP)
    run: str = option(argument=True, help="Run id (or unique run name).")
    out: Path = option(help=FIGURE_HELP)
    steps: list[str] | None = option(
        None, aliases=("-s",), help="Steps (repeatable or a,b,c); default the last."
    )
    key: str = option(ATTENTION_KEY, help="Table key logged in the run.")
    mode: str = option(
        "combined", help="combined (multiply blend) | individual (screen blend) | separated (grid)."
    )
    staircase: list[str] | None = option(None, help="Outline cells key = query − offset (repeatable or a,b).")
    gamma: float = option(0.5, help="Gamma of the individual (screen) blend.")
    normalize: bool = option(False, help="Scale each head to its maximum weight.")


@dataclasses.dataclass(kw_only=True)
class ReportConfig:
    """``interplab runs report``."""

    source: str = option(argument=True, help=SOURCE_HELP)
    out: Path = option(help="Output folder.")
    tag: list[str] | None = option(None, aliases=("-t",), help=TAG_HELP)
    filter: str | None = option(None, help=FILTER_HELP)
    key: str = option(ATTENTION_KEY, help="Attention table key.")
    head_steps: int = option(4, help="How many table steps per run to show.")


@dataclasses.dataclass(kw_only=True)
class ExperimentConfig:
    """``interplab runs experiment``."""

    out: Path = option(help="Output folder (runs go to OUT/wandb/).")
    seeds: int = option(3, help="Seeds per sweep point.")
    sweep: list[str] | None = option(
        None, help="KEY=V1,V2 (repeatable; default init_scale=0.01,1.0), e.g. dataset_size=0,2000."
    )
    steps: int | None = option(None, help="Training steps per run (default 1000).")


GOAL_HELP = "min | max: which direction is better."


@dataclasses.dataclass(kw_only=True)
class StatsConfig:
    """``interplab runs stats``: the source selection plus the fields of ``StatsOptions``."""

    source: str = option(argument=True, help=SOURCE_HELP)
    metric: str = option(aliases=("-m",), help="Logged metric to aggregate.")
    out: Path = option(help="Output folder.")
    group_by: str = option(
        "all-but-seed", help="Config keys (a,b) or all-but-seed (every differing key but seeds)."
    )
    seed_keys: list[str] | None = option(None, help="Seed config keys (default: names seed, *_seed, seed_*).")
    align: str = option("exact", help="exact | interpolate (onto the union of steps).")
    smooth: str = option("none", help="Per-run smoothing: none | ema:W | window:K.")
    ci: float = option(0.95, help="Confidence level of the intervals.")
    n_boot: int = option(2000, help="Bootstrap resamples.")
    interval: str = option("percentile", help="percentile | bca.")
    statistic: str = option("mean", help="Statistic drawn with its band: mean | iqm | median.")
    final: str = option("last", help="Value per run for tables and tests: last | best.")
    goal: str = option("min", help=GOAL_HELP)
    fdr: float = option(0.05, help="False discovery rate along the curve.")
    power: float = option(0.8, help="Power for the seeds-needed calculation.")
    difference: float | None = option(None, help="Difference to detect (default: the observed one).")
    downsample: str = option("lttb", help="Plot downsampling: lttb | minmax | none.")
    max_points: int = option(1000, help="Most points per plotted curve.")
    tag: list[str] | None = option(None, aliases=("-t",), help=TAG_HELP)
    filter: str | None = option(None, help=FILTER_HELP)


@dataclasses.dataclass(kw_only=True)
class SweepConfig:
    """``interplab runs sweep``: the source selection plus the fields of ``SweepOptions``."""

    source: str = option(argument=True, help=SOURCE_HELP)
    metric: str = option(aliases=("-m",), help="Logged metric to explain.")
    out: Path = option(help="Output folder.")
    goal: str = option("min", help=GOAL_HELP)
    final: str = option("last", help="Value per run: last | best.")
    seed_keys: list[str] | None = option(
        None, help="Seed config keys left out (default: names seed, *_seed, seed_*)."
    )
    tag: list[str] | None = option(None, aliases=("-t",), help=TAG_HELP)
    filter: str | None = option(None, help=FILTER_HELP)


SELECTION = ("source", "metric", "out", "tag", "filter")  # StatsConfig/SweepConfig fields not in the options


def options_of(config: Any, options_cls: type) -> Any:
    """The library's options dataclass (``StatsOptions``/``SweepOptions``) from a command config:
    every field but the run selection; ``seed_keys`` split on commas."""
    from interplab.runs.api import split_values

    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in SELECTION}
    values["seed_keys"] = split_values(values["seed_keys"])
    return options_cls(**values)
