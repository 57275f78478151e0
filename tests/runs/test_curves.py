"""Metric-curve figures: panels, lines, bands and phases, checked on hand-built tidy frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interplab.common.errors import InterplabError
from interplab.runs.curves import (
    NGRAM_METRICS,
    PREFIX_TEACHER_METRICS,
    curves_figure,
    mean_std,
    plot_kl_divergence,
    plot_kl_divergence_simple,
    plot_val_loss,
    plot_val_loss_simple,
)

K1, K2, K3 = PREFIX_TEACHER_METRICS


def _tidy(n_seeds: int = 3, scales=(0.01, 1.0)) -> pd.DataFrame:
    """KL to the unigram estimator is lowest until the switch step, then the bigram one."""
    rng = np.random.default_rng(0)
    steps = np.arange(0, 200, 10)
    frames = []
    for scale in scales:
        switch = 100 if scale < 0.5 else 50
        for seed in range(n_seeds):
            noise = rng.normal(0, 0.001, size=(3, len(steps)))
            frames.append(
                pd.DataFrame(
                    {
                        "_step": steps,
                        K1: np.where(steps < switch, 0.1, 0.3) + noise[0],
                        K2: np.where(steps < switch, 0.2, 0.05) + noise[1],
                        K3: 0.25 + noise[2],
                        "val_loss": 1.0 - steps / 1000 + seed * 0.01,
                        "cfg.init_scale": scale,
                        "cfg.seed": seed,
                        "_run_id": f"r{scale}-{seed}",
                        "_run_name": f"run {scale} {seed}",
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _band_of(ax):
    return [
        c for c in ax.collections if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection")
    ]


def test_mean_std_matches_numpy():
    df = _tidy()
    stats = mean_std(df, "val_loss", group_by="cfg.init_scale")
    sub = df[(df["cfg.init_scale"] == 1.0) & (df["_step"] == 30)]["val_loss"].to_numpy()
    row = stats[(stats["cfg.init_scale"] == 1.0) & (stats["step"] == 30)].iloc[0]
    assert row["mean"] == pytest.approx(sub.mean())
    assert row["std"] == pytest.approx(sub.std(ddof=1))
    assert row["n"] == 3


def test_several_metrics_one_panel_with_bands_and_labels():
    df = _tidy(scales=(1.0,))
    fig = curves_figure(df, [K1, K2, K3], labels={K1: "uni"})
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert labels == ["uni", "2-token context (bigram)", "3-token context (trigram)"]
    np.testing.assert_allclose(ax.lines[1].get_ydata(), df.groupby("_step")[K2].mean().to_numpy())
    assert len(_band_of(ax)) == 3  # three seeds → a std band per line


def test_group_by_one_metric_gives_a_line_per_group_and_shift_and_max_step():
    df = _tidy()
    fig = curves_figure(df, ["val_loss"], group_by="cfg.init_scale", shift_steps=1000, max_steps=100)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["init_scale=0.01", "init_scale=1.0"]
    x = ax.lines[0].get_xdata()
    assert x.min() == 1000 and x.max() == 1100
    expected = df[(df["cfg.init_scale"] == 0.01) & (df["_step"] <= 100)].groupby("_step")["val_loss"].mean()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected.to_numpy())


def test_group_by_several_metrics_gives_a_panel_per_group_with_auto_phases():
    fig = plot_kl_divergence(_tidy(), divergence_steps="auto", group_by="cfg.init_scale")
    assert [ax.get_title() for ax in fig.axes] == ["init_scale=0.01", "init_scale=1.0"]
    for ax, switch in zip(fig.axes, (100, 50), strict=True):
        assert len(ax.lines) == 4  # three metrics + one phase boundary
        boundary = ax.lines[-1]
        assert boundary.get_xdata()[0] == switch
        texts = [t.get_text() for t in ax.texts]
        assert texts == ["unigram", "bigram"]


def test_given_phase_steps_shade_and_mark(tmp_path):
    fig = plot_val_loss(_tidy(), divergence_steps=[40, 120], save_name=tmp_path / "val_loss")
    ax = fig.axes[0]
    vlines = [line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == "--"]
    assert vlines == [40, 120]
    assert (tmp_path / "val_loss.png").exists() and (tmp_path / "val_loss.pdf").exists()
    assert (tmp_path / "val_loss.pdf").read_bytes().startswith(b"%PDF")


def test_val_loss_auto_phases_come_from_kl_metrics():
    fig = plot_val_loss(_tidy(scales=(0.01,)), divergence_steps="auto")
    vlines = [line.get_xdata()[0] for line in fig.axes[0].lines if line.get_linestyle() == "--"]
    assert vlines == [100]


def test_learnable_switch_and_aliases():
    df = _tidy(scales=(1.0,))
    for name, k in zip(NGRAM_METRICS, PREFIX_TEACHER_METRICS, strict=True):
        df[name] = df[k]
    assert plot_kl_divergence_simple is plot_kl_divergence and plot_val_loss_simple is plot_val_loss
    fig = plot_kl_divergence(df, learnable=False)
    assert [line.get_label() for line in fig.axes[0].lines] == ["unigram", "bigram", "trigram"]
    with pytest.raises(InterplabError, match="kl_div_unigram_val"):
        plot_kl_divergence(_tidy(), learnable=False)


def test_bad_inputs_name_the_key():
    df = _tidy()
    with pytest.raises(InterplabError, match=r"unknown metric 'nope'; logged keys: .*val_loss"):
        curves_figure(df, ["val_loss", "nope"])
    with pytest.raises(InterplabError, match=r"cfg\.init_scale"):
        curves_figure(df, ["val_loss"], group_by="cfg.nope")
    with pytest.raises(InterplabError, match="'auto'"):
        curves_figure(df, [K1, K2], phases="sometimes")
