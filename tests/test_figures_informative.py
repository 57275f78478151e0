"""Figures show what informs: fitted ranges, no flat or duplicate panels, legends, plain log ticks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import interplab.masks.plots as mplots
import interplab.sae.plots as splots
from interplab.common.figures import save_figure
from interplab.runs.curves import axis_label, curves_figure
from interplab.sae.stats import HIST_EDGES, FeatureStats


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Each figure the plotting modules save (they still write PNG + PDF as usual)."""
    figures: list[Any] = []

    def keep(fig: Any, path: Path, **kw: Any) -> list[Path]:
        figures.append(fig)
        return save_figure(fig, path, **kw)

    monkeypatch.setattr(splots, "save_figure", keep)
    monkeypatch.setattr(mplots, "save_figure", keep)
    return figures


def test_activation_distribution_axis_fits_the_data(saved: list[Any], tmp_path: Path) -> None:
    stats = FeatureStats(d_sae=3)
    rng = np.random.default_rng(0)
    for f in range(3):
        values = rng.uniform(0.1, 5.0, size=500)
        stats.hist[f] = np.histogram(values, bins=HIST_EDGES)[0]
    splots.activation_distributions(stats, np.arange(3), tmp_path / "a.png")
    ax = saved[-1].axes[0]
    lo, hi = ax.get_xlim()
    assert 0.05 <= lo <= 0.1 and 5.0 <= hi <= 10.0  # not the fixed 1e-3 … 1e3 bin range
    saved[-1].canvas.draw()
    ticks = [t.get_text() for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True) if t.get_text()]
    assert ticks and all("×" not in t and "^" not in t for t in ticks)


def test_constant_l0_says_so_instead_of_one_bar(saved: list[Any], tmp_path: Path) -> None:
    counts = np.zeros(33, np.int64)
    counts[8] = 4096  # TopK with k = 8
    splots.l0_histogram(counts, tmp_path / "l0.png")
    ax = saved[-1].axes[0]
    assert [t.get_text() for t in ax.texts] == ["L0 = 8 for every token\n(4,096 tokens)"]
    assert not ax.patches
    counts[9] = 10
    splots.l0_histogram(counts, tmp_path / "l0b.png")
    assert len(saved[-1].axes[0].patches) == 33 and not saved[-1].axes[0].texts


def test_training_history_panels_inform(saved: list[Any], tmp_path: Path) -> None:
    history = [
        {
            "step": i,
            "tokens": 512 * i,
            "loss": 1 / (i + 1),
            "fvu": 1 / (i + 1),
            "aux_loss": 0.0,
            "l0": 8 + i % 3,
        }
        for i in range(20)
    ]
    assert splots.informative_series(history) == {"loss": ["loss", "fvu"], "l0": ["l0"]}
    mirrored = [{**h, "explained_variance": 1 - h["fvu"]} for h in history]
    assert splots.informative_series(mirrored)["loss"] == ["loss", "fvu", "1 − explained_variance"]
    splots.training_history(history, tmp_path / "h.png")
    assert [ax.get_ylabel() for ax in saved[-1].axes] == ["loss = fvu", "l0"]


def test_spy_plot_has_kept_pruned_legend(saved: list[Any], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.random((6, 20)) > 0.5
    mplots.plot_spy(vectors, np.arange(6), np.array([0, 0, 1, 1, 2, 2]), tmp_path / "s.png", "spy")
    legend = saved[-1].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "kept (mask = 1)",
        "pruned (mask = 0)",
        "cluster boundary",
    ]


def test_kl_axis_label_and_plain_log_ticks() -> None:
    kl = ["kl_div_prefix_1_teacher_val", "kl_div_prefix_2_teacher_val"]
    assert axis_label(kl, {}) == "KL divergence"
    assert axis_label(["train_loss", "val_loss"], {}) == "loss"
    steps = np.arange(50)
    df = pd.DataFrame({"_step": steps, kl[0]: 1.1 + steps / 100, kl[1]: 1.2 + steps / 120})
    fig = curves_figure(df, kl, logy=True)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "KL divergence"
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels(minor=True) + ax.get_yticklabels()]
    shown = [t for t in labels if t]
    assert shown and not any("10" in t and ("×" in t or "^" in t) for t in shown)
    assert all(float(t) > 0 for t in shown)
