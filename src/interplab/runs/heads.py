"""Attention heads from a logged table (columns head, query_idx, key_idx, weight; optional layer).

The table is pivoted into an array ``[H, Q, K]`` with numpy fancy indexing, and heads are blended
into one RGB image with array operations (no loop per cell):

* multiply blend (``plot_combined_heads``): pixel = Π_h (1 − w_h · (1 − c_h)) on white, each head
  tinting the pixel towards its colour ``c_h`` (RGB in [0, 1]) in proportion to its weight;
* screen blend with gamma (``plot_combined_heads_individual``): pixel = 1 − Π_h (1 − w_h^γ · c_h) on
  black, γ < 1 brightens faint attention;
* ``plot_separated_heads``: a grid of steps × heads, each head in a white → colour map.

"Staircase" outlines trace the cells ``key = query − offset`` (offset 0 = the diagonal, 1 = the
previous token …), the attention an ideal n-gram head would show.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap, to_rgb

from interplab.common.errors import InterplabError
from interplab.common.figures import new_figure, report_style, save_if_named

HEAD_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#e377c2", "#8c564b")
TABLE_COLUMNS = ("head", "query_idx", "key_idx", "weight")

Tables = Mapping[Any, pd.DataFrame] | pd.DataFrame


@dataclasses.dataclass
class HeadStack:
    """Attention of several heads on one sequence: ``weights[h, q, k]`` and a label per head."""

    weights: np.ndarray
    labels: list[str]


def pivot_heads(table: pd.DataFrame, size: tuple[int, int] | None = None) -> HeadStack:
    """Pivot a long attention table into ``[H, Q, K]`` (missing cells are 0).

    Heads are identified by ``(layer, head)`` when a ``layer`` column exists and ``head`` repeats
    across layers, else by ``head``; they are ordered by that key.
    """
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InterplabError(
            f"attention table lacks column {missing[0]!r}; it has: {', '.join(map(str, table.columns))}"
        )
    if table.empty:
        raise InterplabError("attention table is empty")
    keys = ["head"]
    if "layer" in table.columns and table.groupby("head")["layer"].nunique().max() > 1:
        keys = ["layer", "head"]
    head_keys = table[keys].drop_duplicates().sort_values(keys)
    head_index = pd.MultiIndex.from_frame(head_keys) if len(keys) > 1 else pd.Index(head_keys["head"])
    h = head_index.get_indexer(pd.MultiIndex.from_frame(table[keys]) if len(keys) > 1 else table["head"])
    q = table["query_idx"].to_numpy(dtype=np.int64)
    k = table["key_idx"].to_numpy(dtype=np.int64)
    if (q < 0).any() or (k < 0).any():
        raise InterplabError("attention table has negative query_idx/key_idx")
    Q, K = size or (int(q.max()) + 1, int(k.max()) + 1)
    weights = np.zeros((len(head_index), Q, K), dtype=np.float64)
    inside = (q < Q) & (k < K)
    weights[h[inside], q[inside], k[inside]] = table["weight"].to_numpy(dtype=np.float64)[inside]
    if len(keys) > 1:
        labels = [f"L{int(layer)}H{int(hd)}" for layer, hd in head_index]
    elif "layer" in table.columns:
        layer_of = table.groupby("head")["layer"].first()
        labels = [f"head {hd} (layer {int(layer_of[hd])})" for hd in head_index]
    else:
        labels = [f"head {hd}" for hd in head_index]
    return HeadStack(weights, labels)


def head_colors(n: int, colors: Sequence[Any] | None = None) -> np.ndarray:
    """``[n, 3]`` RGB colours in [0, 1] (the given ones, else the default cycle)."""
    palette = list(colors) if colors else list(HEAD_COLORS)
    if len(palette) < n:
        raise InterplabError(f"{n} heads but only {len(palette)} colours given")
    return np.array([to_rgb(c) for c in palette[:n]])


def _normalized(weights: np.ndarray, normalize: bool) -> np.ndarray:
    w = np.clip(weights, 0.0, 1.0) if not normalize else weights
    if normalize:
        peak = w.max(axis=(1, 2), keepdims=True)
        w = np.divide(w, peak, out=np.zeros_like(w), where=peak > 0)
    return w


def multiply_blend(weights: np.ndarray, colors: np.ndarray, normalize: bool = False) -> np.ndarray:
    """``[H, Q, K]`` weights → ``[Q, K, 3]`` image: Π_h (1 − w_h (1 − c_h))."""
    w = _normalized(weights, normalize)[..., None]  # [H, Q, K, 1]
    return np.prod(1.0 - w * (1.0 - colors[:, None, None, :]), axis=0)


def screen_blend(
    weights: np.ndarray, colors: np.ndarray, gamma: float = 0.5, normalize: bool = False
) -> np.ndarray:
    """``[H, Q, K]`` weights → ``[Q, K, 3]`` image: 1 − Π_h (1 − w_h^γ c_h)."""
    w = _normalized(weights, normalize)[..., None] ** gamma
    return 1.0 - np.prod(1.0 - w * colors[:, None, None, :], axis=0)


def staircase(offset: int, n_query: int, n_key: int) -> tuple[np.ndarray, np.ndarray]:
    """x, y of a step line along the right/bottom edges of the cells ``key = query − offset``.

    Image coordinates: cell (q, k) spans x ∈ [k − ½, k + ½], y ∈ [q − ½, q + ½].
    """
    q = np.arange(max(offset, 0), n_query)
    k = q - offset
    q, k = q[k < n_key], k[k < n_key]
    if len(q) == 0:
        return np.zeros(0), np.zeros(0)
    # For each cell: top-right corner then bottom-right corner; consecutive cells join with a step.
    x = np.repeat(k + 0.5, 2)
    y = np.stack([q - 0.5, q + 0.5], axis=1).ravel()
    return x, y


def _as_tables(tables: Tables) -> dict[Any, pd.DataFrame]:
    if isinstance(tables, pd.DataFrame):
        if "step" in tables.columns:
            return {s: t.drop(columns="step") for s, t in tables.groupby("step", sort=True)}
        return {None: tables}
    if not tables:
        raise InterplabError("no attention tables to plot")
    return dict(tables)


def _step_title(step: Any) -> str:
    return "" if step is None else f"step {step}"


def _legend(ax: Any, labels: Sequence[str], colors: np.ndarray) -> None:
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=c, label=lab) for lab, c in zip(labels, colors, strict=True)],
        loc="upper right",
        fontsize=7,
        frameon=True,
    )


def _image_panels(
    tables: Tables,
    blend: str,
    colors: Sequence[Any] | None,
    staircase_offsets: Sequence[int],
    gamma: float,
    normalize: bool,
    figsize: tuple[float, float] | None,
    title: str | None,
) -> Any:
    by_step = _as_tables(tables)
    stacks = {s: pivot_heads(t) for s, t in by_step.items()}
    n = len(stacks)
    fig, axes = new_figure(1, n, figsize=figsize or (3.6 * n, 3.6), squeeze=False)
    with report_style():
        for ax, (step, stack) in zip(axes[0], stacks.items(), strict=True):
            rgb = head_colors(len(stack.labels), colors)
            if blend == "multiply":
                img = multiply_blend(stack.weights, rgb, normalize)
            else:
                img = screen_blend(stack.weights, rgb, gamma, normalize)
            ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
            Q, K = stack.weights.shape[1:]
            for off in staircase_offsets:
                x, y = staircase(int(off), Q, K)
                ax.plot(x, y, color="black" if blend == "multiply" else "white", lw=0.8, alpha=0.8)
            ax.set_xlim(-0.5, K - 0.5)
            ax.set_ylim(Q - 0.5, -0.5)
            ax.set_title(_step_title(step))
            ax.set_xlabel("key position")
            ax.grid(False)
            _legend(ax, stack.labels, rgb)
        axes[0][0].set_ylabel("query position")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def combined_heads_figure(
    tables: Tables,
    colors: Sequence[Any] | None = None,
    staircase_offsets: Sequence[int] = (),
    normalize: bool = False,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
) -> Any:
    """Multiply-blended heads, one panel per step (``tables``: {step: table} or one table)."""
    return _image_panels(tables, "multiply", colors, staircase_offsets, 1.0, normalize, figsize, title)


def combined_heads_individual_figure(
    tables: Tables,
    colors: Sequence[Any] | None = None,
    gamma: float = 0.5,
    staircase_offsets: Sequence[int] = (),
    normalize: bool = False,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
) -> Any:
    """Screen-blended heads with gamma, one panel per step."""
    return _image_panels(tables, "screen", colors, staircase_offsets, gamma, normalize, figsize, title)


def separated_heads_figure(
    tables: Tables,
    colors: Sequence[Any] | None = None,
    normalize: bool = False,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
) -> Any:
    """A grid: one row per step, one column per head, each head in a white → colour map."""
    by_step = _as_tables(tables)
    stacks = {s: pivot_heads(t) for s, t in by_step.items()}
    n_heads = max(len(s.labels) for s in stacks.values())
    rows = len(stacks)
    fig, axes = new_figure(rows, n_heads, figsize=figsize or (3.0 * n_heads, 3.0 * rows), squeeze=False)
    with report_style():
        for r, (step, stack) in enumerate(stacks.items()):
            rgb = head_colors(len(stack.labels), colors)
            w = _normalized(stack.weights, normalize)
            for h in range(n_heads):
                ax = axes[r][h]
                ax.grid(False)
                if h >= len(stack.labels):
                    ax.axis("off")
                    continue
                cmap = LinearSegmentedColormap.from_list(stack.labels[h], [(1, 1, 1), tuple(rgb[h])])
                ax.imshow(w[h], cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
                ax.set_title(" ".join(p for p in (_step_title(step), stack.labels[h]) if p), fontsize=9)
                if r == rows - 1:
                    ax.set_xlabel("key position")
                if h == 0:
                    ax.set_ylabel("query position")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def plot_combined_heads(
    tables: Tables, *args: Any, save_name: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Any:
    """:func:`combined_heads_figure` (same arguments), saved as PNG + PDF when ``save_name`` is given."""
    return save_if_named(combined_heads_figure(tables, *args, **kwargs), save_name)


def plot_combined_heads_individual(
    tables: Tables, *args: Any, save_name: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Any:
    """:func:`combined_heads_individual_figure` (same arguments), saved when ``save_name`` is given."""
    return save_if_named(combined_heads_individual_figure(tables, *args, **kwargs), save_name)


def plot_separated_heads(
    tables: Tables, *args: Any, save_name: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Any:
    """:func:`separated_heads_figure` (same arguments), saved when ``save_name`` is given."""
    return save_if_named(separated_heads_figure(tables, *args, **kwargs), save_name)


HEAD_MODES = {
    "combined": plot_combined_heads,
    "individual": plot_combined_heads_individual,
    "separated": plot_separated_heads,
}
