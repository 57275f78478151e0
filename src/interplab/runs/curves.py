"""Metric curves over training: several metrics, mean with an interval band across seeds (bootstrap CI
by default; ± SE or ± std on request) grouped by a config key, step shift and cut-off, and training phases shaded (given steps or found automatically).

Input is the tidy frame of :func:`interplab.runs.get_runs_data` (columns ``_step``, metrics, ``cfg.*``,
``_run_id``). Every ``*_figure`` function returns the matplotlib Figure; every ``plot_*`` function also
saves it (PNG + PDF) when ``save_name`` is given and returns the Figure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError
from interplab.common.figures import new_figure, plain_log_ticks, report_style, save_if_named
from interplab.runs.phases import Phase, auto_phases, phases_from_steps, require_columns
from interplab.runs.stats import band_frame

PREFIX_TEACHER_METRICS = tuple(f"kl_div_prefix_{k}_teacher_val" for k in (1, 2, 3))
NGRAM_METRICS = ("kl_div_unigram_val", "kl_div_bigram_val", "kl_div_trigram_val")
DEFAULT_LABELS: dict[str, str] = {
    "kl_div_prefix_1_teacher_val": "1-token context (unigram)",
    "kl_div_prefix_2_teacher_val": "2-token context (bigram)",
    "kl_div_prefix_3_teacher_val": "3-token context (trigram)",
    "kl_div_unigram_val": "unigram",
    "kl_div_bigram_val": "bigram",
    "kl_div_trigram_val": "trigram",
    "val_loss": "validation loss",
    "train_loss": "training loss",
}
PHASE_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")

PhaseSpec = str | Sequence[float] | None


def axis_label(metrics: Sequence[str], names: Mapping[str, str]) -> str:
    """A y-axis label shared by ``metrics``: the one metric's label, the family (``KL divergence``,
    ``loss``), their common name prefix, or the labels themselves when few."""
    labels = [names.get(m, m) for m in metrics]
    if len(set(labels)) == 1:
        return labels[0]
    if all(m.lower().startswith(("kl_", "kl.", "kl-", "kl/")) for m in metrics):
        return "KL divergence"
    if all(m.lower().endswith("loss") for m in metrics):
        return "loss"
    first = metrics[0]
    n = next(
        (i for i in range(len(first)) if any(i >= len(m) or m[i] != first[i] for m in metrics)), len(first)
    )
    prefix = first[:n].rstrip("_-./ ")
    if len(prefix) >= 3:
        return prefix
    joined = " / ".join(labels)
    return joined if len(joined) <= 40 else "value"


def kl_metric_set(learnable: bool = True) -> tuple[str, ...]:
    """``learnable=True``: the prefix-teacher KL metrics; ``False``: the n-gram KL metrics."""
    return PREFIX_TEACHER_METRICS if learnable else NGRAM_METRICS


def _prepare(
    df: pd.DataFrame,
    metrics: Sequence[str],
    step_key: str,
    group_by: str | None,
    max_steps: float | None,
) -> pd.DataFrame:
    if not metrics:
        raise InterplabError("no metric to plot; pass at least one metric name")
    require_columns(df, [step_key, *metrics])
    if group_by is not None and group_by not in df.columns:
        cfg_cols = [c for c in df.columns if str(c).startswith("cfg.")]
        raise InterplabError(
            f"unknown --group-by column {group_by!r}; config columns: {', '.join(cfg_cols) or '(none)'}"
        )
    data = df if max_steps is None else df[df[step_key] <= max_steps]
    if data[list(metrics)].notna().sum().sum() == 0:
        raise InterplabError(f"no logged values for {', '.join(metrics)} up to step {max_steps}")
    return data


def mean_std(
    df: pd.DataFrame, metric: str, step_key: str = "_step", group_by: str | None = None
) -> pd.DataFrame:
    """Per (group, step): mean, std (ddof=1; 0 for a single run) and n of ``metric`` across runs.

    Uses :func:`interplab.runs.frames.aggregate` (runs logged at different steps are interpolated
    onto the union of their steps).
    """
    from interplab.runs.frames import aggregate

    stats = aggregate(df, metric, group_by=[group_by] if group_by else None, step_key=step_key)
    stats = stats.rename(columns={step_key: "step"})  # the drawing code's x column
    stats["std"] = stats["std"].fillna(0.0)
    return stats


def _resolve_phases(
    data: pd.DataFrame,
    phases: PhaseSpec,
    phase_metrics: Sequence[str],
    step_key: str,
    min_points: int,
) -> list[Phase]:
    if phases is None:
        return []
    first, last = float(data[step_key].min()), float(data[step_key].max())
    if isinstance(phases, str):
        if phases != "auto":
            raise InterplabError(f"--phases must be 'auto' or comma-separated steps, got {phases!r}")
        return auto_phases(data, phase_metrics, step_key, min_points)
    return phases_from_steps(list(phases), first, last)


def _shade(ax: Any, phases: Sequence[Phase], shift: float, labels: Mapping[str, str]) -> None:
    """Alternate light shading of the phases, a dashed line at each boundary, the phase name on top."""
    for i, ph in enumerate(phases):
        if i % 2 == 0:
            ax.axvspan(ph.start + shift, ph.end + shift, color="0.5", alpha=0.12, lw=0, zorder=0)
        if i > 0:
            ax.axvline(ph.start + shift, color="0.35", ls="--", lw=0.9, zorder=1)
        if ph.metric is not None:
            ax.text(
                (ph.start + ph.end) / 2 + shift,
                1.0,
                labels.get(ph.metric, ph.metric).split(" (")[-1].rstrip(")"),
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=8,
                color="0.3",
            )


def _draw_line(ax: Any, stats: pd.DataFrame, shift: float, label: str, color: Any) -> None:
    x = stats["step"].to_numpy(dtype=float) + shift
    mean = stats["mean"].to_numpy(dtype=float)
    if "low" in stats:
        low, high = stats["low"].to_numpy(dtype=float), stats["high"].to_numpy(dtype=float)
    else:
        std = stats["std"].to_numpy(dtype=float)
        low, high = mean - std, mean + std
    ax.plot(x, mean, label=label, color=color, lw=1.6)
    if (stats["n"] > 1).any() and np.isfinite(low).any():
        ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)


BAND_NAMES = {"ci": "{ci:.0%} bootstrap CI of the mean", "se": "± standard error", "std": "± std", "none": ""}


def _legend_title(runs_per_line: Sequence[int], band: str, ci: float) -> str:
    """``N = 3 runs per line; band: 95% bootstrap CI`` (N listed per line when they differ)."""
    counts = sorted(set(runs_per_line))
    n_text = (
        f"N = {counts[0]} runs per line" if len(counts) == 1 else "N = " + ", ".join(map(str, runs_per_line))
    )
    if runs_per_line and max(runs_per_line) < 2:
        return f"{n_text} (no band)"
    what = BAND_NAMES[band].format(ci=ci)
    return f"{n_text}; band: {what}" if what else n_text


def curves_figure(
    df: pd.DataFrame,
    metrics: Sequence[str],
    *,
    labels: Mapping[str, str] | None = None,
    group_by: str | None = None,
    step_key: str = "_step",
    shift_steps: float = 0,
    max_steps: float | None = None,
    phases: PhaseSpec = None,
    phase_metrics: Sequence[str] | None = None,
    min_phase_points: int = 2,
    title: str | None = None,
    ylabel: str | None = None,
    xlabel: str = "training step",
    logy: bool = False,
    figsize: tuple[float, float] | None = None,
    band: str = "ci",
    ci: float = 0.95,
    n_boot: int = 1000,
) -> Any:
    """The metric-curve figure.

    Lines are means across runs (seeds) with a band where a step has several runs: ``band="ci"``
    (default) the percentile bootstrap interval of the mean at level ``ci`` (runs resampled within
    the line's group, ``n_boot`` resamples), ``"se"`` ± standard error, ``"std"`` ± std, ``"none"``.
    The legend title gives N, the runs per line. Layout:
    without ``group_by`` one panel with one line per metric; with ``group_by`` and one metric, one
    panel with a line per group value; with ``group_by`` and several metrics, one panel per group
    value (a line per metric). ``phases`` is ``None``, ``"auto"`` (argmin over ``phase_metrics``,
    default the plotted metrics, per panel) or a list of boundary steps. ``max_steps`` drops steps
    above it (in logged units); ``shift_steps`` is added to every x value (and to phase edges).
    """
    metrics = list(metrics)
    data = _prepare(df, metrics, step_key, group_by, max_steps)
    names = {**DEFAULT_LABELS, **(labels or {})}
    phase_metrics = list(phase_metrics) if phase_metrics else metrics
    if phases == "auto":
        require_columns(data, phase_metrics)

    groups: list[Any] = [None]
    if group_by is not None:
        groups = sorted(data[group_by].dropna().unique().tolist())
    by_panel = group_by is not None and len(metrics) > 1
    n_panels = len(groups) if by_panel else 1
    size = figsize or (5.5 * n_panels if n_panels > 1 else 6.0, 4.0)
    fig, axes = new_figure(1, n_panels, figsize=size, squeeze=False, sharey=True)
    axes = axes[0]
    with report_style():
        for p, ax in enumerate(axes):
            sub = data if not by_panel else data[data[group_by] == groups[p]]
            colors = iter(PHASE_COLORS * 4)
            runs_per_line: list[int] = []
            if by_panel or group_by is None:
                for m in metrics:
                    stats = band_frame(sub, m, step_key, None, band, ci, n_boot)
                    runs_per_line.append(int(stats["runs"].iloc[0]))
                    _draw_line(ax, stats, shift_steps, names.get(m, m), next(colors))
            else:
                metric = metrics[0]
                stats = band_frame(sub, metric, step_key, group_by, band, ci, n_boot)
                for g in groups:
                    line = stats[stats[group_by] == g]
                    runs_per_line.append(int(line["runs"].iloc[0]) if len(line) else 0)
                    _draw_line(ax, line, shift_steps, f"{group_by.removeprefix('cfg.')}={g}", next(colors))
            _shade(
                ax,
                _resolve_phases(sub, phases, phase_metrics, step_key, min_phase_points),
                shift_steps,
                names,
            )
            if by_panel:
                ax.set_title(f"{group_by.removeprefix('cfg.')}={groups[p]}", pad=14)
            ax.set_xlabel(xlabel)
            if logy:
                ax.set_yscale("log")
                plain_log_ticks(ax, "y")
            ax.legend(loc="best", fontsize=8, title=_legend_title(runs_per_line, band, ci), title_fontsize=7)
        axes[0].set_ylabel(ylabel or axis_label(metrics, names))
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def plot_metric_curves(
    df: pd.DataFrame,
    metrics: Sequence[str],
    save_name: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Any:
    """:func:`curves_figure`, saved as PNG + PDF at ``save_name`` when given. Returns the Figure."""
    return save_if_named(curves_figure(df, metrics, **kwargs), save_name)


def plot_kl_divergence(
    df: pd.DataFrame,
    divergence_steps: Sequence[float] | str | None = None,
    max_steps: float | None = None,
    shift_steps: float = 0,
    figsize: tuple[float, float] | None = None,
    save_name: str | os.PathLike[str] | None = None,
    learnable: bool = True,
    group_by: str | None = None,
    step_key: str = "_step",
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
    logy: bool = False,
) -> Any:
    """KL divergence to the in-context estimators over training, phases shaded.

    ``learnable=True`` plots ``kl_div_prefix_{1,2,3}_teacher_val`` (what the built-in experiment logs);
    ``False`` plots ``kl_div_{unigram,bigram,trigram}_val``. ``divergence_steps``: boundary steps to
    shade between, or ``"auto"`` for the argmin changes of the plotted metrics.
    """
    return plot_metric_curves(
        df,
        kl_metric_set(learnable),
        save_name=save_name,
        labels=labels,
        group_by=group_by,
        step_key=step_key,
        shift_steps=shift_steps,
        max_steps=max_steps,
        phases=divergence_steps,
        figsize=figsize,
        title=title,
        ylabel="KL(estimator ‖ model) [nats]",
        logy=logy,
    )


def plot_val_loss(
    df: pd.DataFrame,
    divergence_steps: Sequence[float] | str | None = None,
    max_steps: float | None = None,
    shift_steps: float = 0,
    figsize: tuple[float, float] | None = None,
    save_name: str | os.PathLike[str] | None = None,
    group_by: str | None = None,
    metric: str = "val_loss",
    step_key: str = "_step",
    learnable: bool = True,
    title: str | None = None,
    logy: bool = False,
) -> Any:
    """Validation loss over training (mean ± std per ``group_by`` value), phases shaded.

    With ``divergence_steps="auto"`` the phases come from the KL metric set chosen by ``learnable``.
    """
    return plot_metric_curves(
        df,
        [metric],
        save_name=save_name,
        group_by=group_by,
        step_key=step_key,
        shift_steps=shift_steps,
        max_steps=max_steps,
        phases=divergence_steps,
        phase_metrics=kl_metric_set(learnable),
        figsize=figsize,
        title=title,
        ylabel="validation loss [nats]",
        logy=logy,
    )


plot_kl_divergence_simple = plot_kl_divergence
plot_val_loss_simple = plot_val_loss


def summarize_phases(
    df: pd.DataFrame, metrics: Sequence[str] = PREFIX_TEACHER_METRICS, **kw: Any
) -> list[dict]:
    """Automatic phases as JSON-ready dicts (start, end, metric)."""
    return [{"start": p.start, "end": p.end, "metric": p.metric} for p in auto_phases(df, metrics, **kw)]
