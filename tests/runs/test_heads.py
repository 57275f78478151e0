"""Attention-head figures: pivot and blends checked against direct per-pixel formulas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from interplab.common.errors import InterplabError
from interplab.runs.heads import (
    combined_heads_figure,
    combined_heads_individual_figure,
    head_colors,
    multiply_blend,
    pivot_heads,
    plot_combined_heads,
    plot_separated_heads,
    screen_blend,
    separated_heads_figure,
    staircase,
)


def _table(seed: int = 0, heads=(0, 1, 2), size: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for h in heads:
        for q in range(size):
            w = rng.dirichlet(np.ones(q + 1))
            rows += [(h, q, k, float(w[k])) for k in range(q + 1)]
    return pd.DataFrame(rows, columns=["head", "query_idx", "key_idx", "weight"]).sample(
        frac=1, random_state=1
    )


def test_pivot_places_every_weight():
    t = _table()
    stack = pivot_heads(t)
    assert stack.weights.shape == (3, 5, 5)
    for row in t.itertuples():
        assert stack.weights[row.head, row.query_idx, row.key_idx] == row.weight
    # upper triangle was never logged → zeros; rows sum to one
    assert np.all(np.triu(stack.weights, 1) == 0)
    np.testing.assert_allclose(stack.weights.sum(-1), 1.0)


def test_pivot_separates_heads_that_repeat_across_layers():
    t0 = _table(0, heads=(0,)).assign(layer=0)
    t1 = _table(1, heads=(0,)).assign(layer=1)
    stack = pivot_heads(pd.concat([t1, t0]))
    assert stack.labels == ["L0H0", "L1H0"]
    assert stack.weights[1, 4, 2] == t1[(t1.query_idx == 4) & (t1.key_idx == 2)].weight.item()


def test_pivot_errors_name_the_missing_column():
    with pytest.raises(InterplabError, match="'weight'"):
        pivot_heads(pd.DataFrame({"head": [0], "query_idx": [0], "key_idx": [0]}))


def test_multiply_blend_matches_per_pixel_formula():
    stack = pivot_heads(_table())
    colors = head_colors(3)
    img = multiply_blend(stack.weights, colors)
    H, Q, K = stack.weights.shape
    for q in range(Q):
        for k in range(K):
            expected = np.ones(3)
            for h in range(H):
                expected *= 1 - stack.weights[h, q, k] * (1 - colors[h])
            np.testing.assert_allclose(img[q, k], expected)
    assert np.all(img[0, 1:] == 1.0)  # no attention → white


def test_screen_blend_matches_per_pixel_formula():
    stack = pivot_heads(_table(3))
    colors = np.array([to_rgb(c) for c in ("red", "lime", "blue")])
    gamma = 0.4
    img = screen_blend(stack.weights, colors, gamma)
    H, Q, K = stack.weights.shape
    for q in range(Q):
        for k in range(K):
            prod = np.ones(3)
            for h in range(H):
                prod *= 1 - stack.weights[h, q, k] ** gamma * colors[h]
            np.testing.assert_allclose(img[q, k], 1 - prod)


def test_staircase_traces_offset_cells():
    x, y = staircase(1, 4, 4)
    # cells (q, k) = (1,0), (2,1), (3,2): right edge x = k + .5 from y = q - .5 to q + .5
    assert x.tolist() == [0.5, 0.5, 1.5, 1.5, 2.5, 2.5]
    assert y.tolist() == [0.5, 1.5, 1.5, 2.5, 2.5, 3.5]


def test_combined_figure_panels_images_and_outlines(tmp_path):
    tables = {0: _table(0), 100: _table(1)}
    fig = combined_heads_figure(tables, staircase_offsets=[0, 1])
    axes = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in axes] == ["step 0", "step 100"]
    expected = multiply_blend(pivot_heads(tables[100]).weights, head_colors(3))
    np.testing.assert_allclose(axes[1].images[0].get_array(), expected)
    assert len(axes[0].lines) == 2  # one staircase per offset
    written = plot_combined_heads(tables, save_name=tmp_path / "heads.pdf")
    assert written is not None
    assert (tmp_path / "heads.pdf").stat().st_size > 0 and (tmp_path / "heads.png").stat().st_size > 0


def test_individual_figure_uses_gamma():
    t = _table(2)
    fig = combined_heads_individual_figure({5: t}, gamma=0.5)
    expected = screen_blend(pivot_heads(t).weights, head_colors(3), 0.5)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), expected)


def test_separated_grid_is_steps_by_heads(tmp_path):
    tables = {0: _table(0), 10: _table(1), 20: _table(2)}
    fig = separated_heads_figure(tables)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 9
    np.testing.assert_allclose(image_axes[5].images[0].get_array(), pivot_heads(tables[10]).weights[2])
    assert image_axes[5].get_title() == "step 10 head 2"
    plot_separated_heads(tables, save_name=tmp_path / "sep")
    assert (tmp_path / "sep.pdf").exists()


def test_one_frame_with_step_column_splits_into_panels():
    t = pd.concat([_table(0).assign(step=3), _table(1).assign(step=7)])
    fig = combined_heads_figure(t)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["step 3", "step 7"]
