"""Figures of an SAE analysis (each saved as PNG + PDF via ``common.figures.save_figure``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from interplab.common.figures import new_figure, plain_log_ticks, save_figure
from interplab.common.output import OutputDir
from interplab.sae.cooccurrence import dense_metric
from interplab.sae.layout import AnalysisPaths
from interplab.sae.similarity import larger_is_closer, similarity_matrix
from interplab.sae.stats import HIST_EDGES, FeatureStats

HEATMAP_FEATURES = 32  # the heatmaps show this many of the most frequent features


def feature_density_histogram(stats: FeatureStats, path: Path) -> list[Path]:
    """Histogram of log10 feature density (dead features counted separately in the title)."""
    dens = stats.density
    alive = dens > 0
    fig, ax = new_figure(figsize=(6, 4))
    if alive.any():
        ax.hist(np.log10(dens[alive]), bins=50, color="#4c72b0")
    ax.set_xlabel("log10(feature density)")
    ax.set_ylabel("features")
    ax.set_title(f"Feature density ({int((~alive).sum())} dead of {dens.size})")
    return save_figure(fig, path)


def l0_histogram(l0_counts: np.ndarray, path: Path) -> list[Path]:
    """Histogram of active features per token (``l0_counts[j]`` = tokens with L0 = j).

    When every token has the same L0 (a TopK SAE: L0 = k) a one-bar histogram says nothing; the
    figure states the value instead.
    """
    fig, ax = new_figure(figsize=(6, 4))
    xs = np.arange(l0_counts.size)
    nz = np.flatnonzero(l0_counts)
    total = int(l0_counts.sum())
    if nz.size == 1:
        ax.text(
            0.5,
            0.5,
            f"L0 = {int(nz[0])} for every token\n({total:,} tokens)",
            ha="center",
            va="center",
            fontsize=14,
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        ax.set_title("L0 per token (constant)")
        return save_figure(fig, path)
    ax.bar(xs, l0_counts, width=1.0, color="#55a868")
    if nz.size:
        ax.set_xlim(nz[0] - 1, nz[-1] + 1)
    mean = float((xs * l0_counts).sum() / max(total, 1))
    ax.axvline(mean, color="k", linestyle="--", linewidth=1, label=f"mean {mean:.1f}")
    ax.set_xlabel("active features per token (L0)")
    ax.set_ylabel("tokens")
    ax.legend()
    ax.set_title("L0 per token")
    return save_figure(fig, path)


def activation_distributions(stats: FeatureStats, features: np.ndarray, path: Path) -> list[Path]:
    """Per-feature activation histograms (log-spaced bins) of the given features."""
    fig, ax = new_figure(figsize=(7, 4.5))
    centres = np.sqrt(HIST_EDGES[:-1] * HIST_EDGES[1:])
    used = np.zeros(centres.size, dtype=bool)
    for f in features:
        counts = stats.hist[f]
        if counts.sum() == 0:
            continue
        used |= counts > 0
        ax.plot(centres, counts / counts.sum(), label=f"#{int(f)}", linewidth=1.2)
    ax.set_xscale("log")
    if used.any():  # fit the axis to the bins that hold data, not the whole fixed bin range
        lo, hi = np.flatnonzero(used)[[0, -1]]
        ax.set_xlim(HIST_EDGES[lo], HIST_EDGES[hi + 1])
    plain_log_ticks(ax, "x")
    ax.set_xlabel("activation (non-zero)")
    ax.set_ylabel("fraction of firing tokens")
    ax.set_title("Activation distributions of the most frequent features")
    if len(features):
        ax.legend(fontsize=7, ncol=2)
    return save_figure(fig, path)


def heatmap(
    matrix: np.ndarray,
    labels: np.ndarray,
    title: str,
    path: Path,
    cmap: str = "RdBu_r",
    symmetric: bool = True,
) -> list[Path]:
    """Heatmap of a (sub)matrix with feature labels."""
    fig, ax = new_figure(figsize=(6.5, 5.5))
    m = np.where(np.isfinite(matrix), matrix, np.nan)
    kw: dict[str, Any] = {}
    if symmetric:
        lim = float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 1.0
        kw = {"vmin": -lim, "vmax": lim}
    im = ax.imshow(m, cmap=cmap, aspect="auto", interpolation="nearest", **kw)
    fig.colorbar(im, ax=ax)
    if len(labels) <= 40:
        ax.set_xticks(range(len(labels)), [str(int(x)) for x in labels], rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), [str(int(x)) for x in labels], fontsize=6)
    ax.grid(False)
    ax.set_title(title)
    return save_figure(fig, path)


#: history keys that count progress rather than measure the model: never a panel of their own
PROGRESS_KEYS = ("step", "epoch", "tokens", "n_tokens", "tokens_seen", "samples")


def informative_series(history: list[dict[str, Any]], max_panels: int = 6) -> dict[str, list[str]]:
    """Panels worth drawing: each numeric, non-progress key that varies, with the keys whose series
    is identical to it folded into its label (``loss`` = ``fvu``). Keys are in logged order."""
    keys = [k for k in history[0] if k not in PROGRESS_KEYS and isinstance(history[0].get(k), int | float)]
    panels: dict[str, list[str]] = {}
    series: dict[str, np.ndarray] = {}
    for key in keys:
        ys = np.array([h.get(key) if isinstance(h.get(key), int | float) else np.nan for h in history], float)
        finite = ys[np.isfinite(ys)]
        if finite.size == 0 or np.ptp(finite) <= 1e-12 * max(1.0, float(np.abs(finite).max())):
            continue  # constant (or empty): a flat line informs nothing
        same = next((k for k, v in series.items() if np.allclose(v, ys, equal_nan=True)), None)
        if same is not None:
            panels[same].append(key)
            continue
        mirror = next((k for k, v in series.items() if np.allclose(v, 1.0 - ys, equal_nan=True)), None)
        if mirror is not None:  # explained variance = 1 − fvu: the same curve upside down
            panels[mirror].append(f"1 − {key}")
            continue
        series[key] = ys
        panels[key] = [key]
    return dict(list(panels.items())[:max_panels])


def training_history(history: list[dict[str, Any]], path: Path) -> list[Path] | None:
    """The informative numeric series of ``history.json`` against the step, one panel each (≤ 6):
    progress counters (tokens), constant series and exact duplicates get no panel of their own."""
    if not history:
        return None
    panels = informative_series(history)
    if not panels:
        return None
    steps = [h.get("step", i) for i, h in enumerate(history)]
    fig, axes = new_figure(len(panels), 1, figsize=(6, 2.2 * len(panels)), squeeze=False)
    for ax, (key, names) in zip(axes[:, 0], panels.items(), strict=True):
        ys = [h.get(key) for h in history]
        pts = [(s, y) for s, y in zip(steps, ys, strict=True) if isinstance(y, int | float)]
        if pts:
            ax.plot(*zip(*pts, strict=True), linewidth=1.2)
        ax.set_ylabel(" = ".join(names))
    axes[-1, 0].set_xlabel("step")
    axes[0, 0].set_title("Training history")
    return save_figure(fig, path)


def analysis_plots(
    od: OutputDir,
    st: FeatureStats,
    W_dec: torch.Tensor,
    similarity_metric: str,
    counts: np.ndarray | sp.csr_array,
    n_tokens: int,
    history: list[dict[str, Any]] | None,
    n_heatmap: int = HEATMAP_FEATURES,
) -> dict[str, str]:
    """Every plot of an analysis folder into ``od`` (PNG + PDF); returns ``files`` key → PNG path.
    The heatmaps show the ``n_heatmap`` most frequent features."""
    files: dict[str, str] = {}

    def add(key: str, written: list[Path] | None) -> None:
        if written:
            files[key] = AnalysisPaths.plot(key)
            od.record(Path(files[key]).with_suffix(".pdf"))

    d = st.d_sae
    order = np.lexsort((np.arange(d), -st.count))
    top = order[: min(n_heatmap, d)]
    top = top[st.count[top] > 0]
    add(
        "plot_feature_density",
        feature_density_histogram(st, od.file(AnalysisPaths.plot("plot_feature_density"))),
    )
    add("plot_l0", l0_histogram(st.l0_hist, od.file(AnalysisPaths.plot("plot_l0"))))
    add(
        "plot_activation_distributions",
        activation_distributions(st, top[:10], od.file(AnalysisPaths.plot("plot_activation_distributions"))),
    )
    if top.size >= 2:
        sub_sim = similarity_matrix(W_dec.detach()[torch.from_numpy(top)], similarity_metric)
        add(
            "plot_similarity_heatmap",
            heatmap(
                sub_sim,
                top,
                f"Decoder {similarity_metric} similarity (most frequent features)",
                od.file(AnalysisPaths.plot("plot_similarity_heatmap")),
                cmap="RdBu_r" if larger_is_closer(similarity_metric) else "viridis",
                symmetric=larger_is_closer(similarity_metric),
            ),
        )
        sub = (
            sp.csr_array(counts)[top][:, top].toarray()
            if sp.issparse(counts)
            else counts[np.ix_(top, top)].copy()
        )
        np.fill_diagonal(sub, np.asarray([int(c) for c in st.count[top]]))
        phi = dense_metric(sub, n_tokens, "phi")
        add(
            "plot_cooccurrence_heatmap",
            heatmap(
                phi,
                top,
                "Co-occurrence (phi, most frequent features)",
                od.file(AnalysisPaths.plot("plot_cooccurrence_heatmap")),
            ),
        )
    if history:
        add(
            "plot_training_history",
            training_history(history, od.file(AnalysisPaths.plot("plot_training_history"))),
        )
    return files
