"""Honest statistics across seeds: groups of runs, aligned per-run curves, per-step and final
statistics with bootstrap intervals, and comparisons between two groups.

Pipeline (pure functions on the tidy frame of :func:`interplab.runs.get_runs_data`):

1. :func:`assign_groups` — a group label per run, from named config keys or from every differing
   config key except the seed keys (``"all-but-seed"``; seed keys found by name: ``seed``,
   ``*_seed``, ``seed_*``, or given).
2. :func:`group_matrices` — per group a runs × steps matrix of the metric, each run smoothed on its
   own first (EMA or trailing window, so nothing leaks across seeds), then aligned: ``exact`` keeps
   the steps each run logged (n per step may vary and is reported), ``interpolate`` puts every run on
   the union of the group's steps by linear interpolation inside the run's own range.
3. :func:`curve_stats`, :func:`final_stats` — mean, standard error, median, min, max, IQM and the
   bootstrap interval of the chosen statistic (:mod:`interplab.runs.bootstrap`), with n everywhere.
4. :func:`compare_groups` — P(improvement) with its interval, the permutation test on the final
   value, permutation tests along the curve with Benjamini–Hochberg control, and seeds needed.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from interplab.common.errors import InterplabError, one_of
from interplab.runs import bootstrap as bs
from interplab.runs.frames import RUN_ID, differing_config

log = logging.getLogger(__name__)

ALL_BUT_SEED = "all-but-seed"
ALIGN_MODES = ("exact", "interpolate")
FINAL_MODES = ("last", "best")
GOALS = ("min", "max")
SEED_PATTERN = re.compile(r"(^|[._])seed$|(^|[._])seed_|_seed$", re.IGNORECASE)


@dataclass(frozen=True)
class Smoothing:
    """Per-run smoothing: ``none``, ``ema`` (weight in [0, 1), TensorBoard-style debiased) or
    ``window`` (trailing mean over ``size`` logged points)."""

    kind: str = "none"
    value: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> Smoothing:
        """``none`` | ``ema:0.9`` | ``window:10``."""
        if not text or text == "none":
            return cls()
        kind, _, arg = text.partition(":")
        try:
            value = float(arg)
        except ValueError:
            value = math.nan
        if kind == "ema" and 0 <= value < 1:
            return cls("ema", value)
        if kind == "window" and value >= 1 and value == int(value):
            return cls("window", value)
        raise InterplabError(
            f"--smooth must be none, ema:W with 0 ≤ W < 1 or window:K with K ≥ 1; got {text!r}"
        )

    def apply(self, values: np.ndarray) -> np.ndarray:
        """The smoothed series of one run (NaN gaps stay gaps and are skipped)."""
        if self.kind == "none" or len(values) == 0:
            return values
        s = pd.Series(values)
        if self.kind == "ema":
            return s.ewm(alpha=1 - self.value, adjust=True, ignore_na=True).mean().where(s.notna()).to_numpy()
        return s.rolling(int(self.value), min_periods=1).mean().where(s.notna()).to_numpy()


def seed_keys_of(columns: Sequence[str], given: Sequence[str] | None = None) -> list[str]:
    """The ``cfg.*`` seed columns: ``given`` (each must exist) or those named like a seed."""
    cfg = [c for c in columns if str(c).startswith("cfg.")]
    if given:
        out = []
        for key in given:
            col = key if key in cfg else f"cfg.{key}"
            if col not in cfg:
                names = ", ".join(c.removeprefix("cfg.") for c in cfg) or "(none)"
                raise InterplabError(f"unknown seed key {key!r} in --seed-keys; config keys: {names}")
            out.append(col)
        return out
    return [c for c in cfg if SEED_PATTERN.search(c.removeprefix("cfg."))]


def _per_run(df: pd.DataFrame) -> pd.DataFrame:
    if RUN_ID not in df.columns:
        raise InterplabError("statistics need a frame from get_runs_data (column _run_id missing)")
    return df.drop_duplicates(subset=[RUN_ID], keep="first").reset_index(drop=True)


def group_columns(
    df: pd.DataFrame, group_by: Sequence[str] | str | None, seed_keys: Sequence[str] | None = None
) -> list[str]:
    """The ``cfg.*`` columns that define groups (``all-but-seed``: differing keys except seeds)."""
    if isinstance(group_by, str):
        group_by = [g for g in group_by.split(",") if g.strip()]
    group_by = [g.strip() for g in group_by or []]
    seeds = seed_keys_of(list(df.columns), seed_keys)
    if group_by == [ALL_BUT_SEED]:
        return [c for c in differing_config(df).columns if str(c).startswith("cfg.") and c not in seeds]
    out = []
    for key in group_by:
        col = key if key in df.columns else f"cfg.{key}"
        if col not in df.columns:
            names = ", ".join(c.removeprefix("cfg.") for c in df.columns if str(c).startswith("cfg."))
            raise InterplabError(f"unknown --group-by key {key!r}; config keys: {names or '(none)'}")
        out.append(col)
    return out


def assign_groups(df: pd.DataFrame, columns: Sequence[str]) -> dict[str, str]:
    """``{run id: group label}``, the label ``key=value, …`` (``all`` without columns)."""
    per_run = _per_run(df)
    labels = {}
    for _, row in per_run.iterrows():
        parts = [f"{c.removeprefix('cfg.')}={_label_value(row[c])}" for c in columns]
        labels[str(row[RUN_ID])] = ", ".join(parts) or "all"
    return labels


def _label_value(v: Any) -> str:
    """A config value as it reads in the config (``1.0`` stays ``1.0``, as in the curve legends)."""
    return str(v.item() if isinstance(v, np.generic) else v)


@dataclass
class GroupData:
    """One group: its runs and their aligned metric matrix (runs × steps, NaN where absent)."""

    label: str
    run_ids: list[str]
    steps: np.ndarray
    values: np.ndarray

    @property
    def n(self) -> int:
        return len(self.run_ids)


def _run_series(rdf: pd.DataFrame, step_key: str, metric: str, smooth: Smoothing) -> np.ndarray:
    s = rdf[[step_key, metric]].to_numpy(dtype=np.float64)
    s = s[np.argsort(s[:, 0], kind="stable")]
    last = np.r_[s[1:, 0] != s[:-1, 0], True] if len(s) else np.zeros(0, bool)
    s = s[last]
    s = s[~np.isnan(s[:, 1])]
    s[:, 1] = smooth.apply(s[:, 1])
    return s


def require_metric(runs: Sequence[Any], metric: str) -> None:
    """Raise one error naming every run that never logged ``metric`` (or a list of logged keys)."""
    from interplab.runs.frames import metric_keys

    missing = [r for r in runs if metric not in r.history().columns]
    if not missing:
        return
    if len(missing) == len(runs):
        keys = sorted({k for r in runs for k in metric_keys(r) if not k.startswith("_")})
        raise InterplabError(
            f"unknown metric {metric!r}: no run logged it; logged keys: {', '.join(keys) or '(none)'}"
        )
    which = ", ".join(r.label for r in missing)
    raise InterplabError(f"metric {metric!r} is missing in {len(missing)} of {len(runs)} runs: {which}")


def group_matrices(
    df: pd.DataFrame,
    metric: str,
    groups: dict[str, str],
    step_key: str = "_step",
    align: str = "exact",
    smooth: Smoothing | None = None,
) -> list[GroupData]:
    """Per group (sorted by label) the aligned runs × steps matrix of ``metric``.

    A run that never logged ``metric`` is an error naming the runs.
    """
    one_of(align, list(ALIGN_MODES), "--align")
    smooth = smooth or Smoothing()
    if metric not in df.columns:
        raise InterplabError(f"unknown metric {metric!r}; columns: {', '.join(map(str, df.columns))}")
    series: dict[str, np.ndarray] = {}
    for run_id, rdf in df.groupby(RUN_ID, sort=False, observed=True):
        series[str(run_id)] = _run_series(rdf, step_key, metric, smooth)
    missing = [r for r in groups if r not in series or not len(series[r])]
    if missing:
        names = dict(zip(df[RUN_ID].astype(str), df.get("_run_name", df[RUN_ID]).astype(str), strict=False))
        which = ", ".join(f"{names.get(r, r)} ({r})" for r in missing)
        raise InterplabError(f"metric {metric!r} is missing in {len(missing)} run(s): {which}")
    out = []
    for label in sorted(set(groups.values())):
        ids = [r for r, g in groups.items() if g == label]
        runs = [series[r] for r in ids]
        grid = np.unique(np.concatenate([s[:, 0] for s in runs]))
        mat = np.full((len(runs), len(grid)), np.nan)
        for i, s in enumerate(runs):
            idx = np.searchsorted(grid, s[:, 0])
            if align == "interpolate":
                lo, hi = idx[0], idx[-1] + 1
                mat[i, lo:hi] = np.interp(grid[lo:hi], s[:, 0], s[:, 1])
            mat[i, idx] = s[:, 1]
        if align == "exact" and np.isnan(mat).any():
            log.warning(
                "group %s: runs log %s at different steps; with --align exact each step uses only the runs "
                "that logged it (see column n); pass --align interpolate to put them on one grid",
                label,
                metric,
            )
        out.append(GroupData(label, ids, grid, mat))
    return out


@dataclass(frozen=True)
class StatsConfig:
    """Options of the statistics (``interplab runs stats`` flags)."""

    #: interval confidence level
    ci: float = 0.95
    #: bootstrap resamples
    n_boot: int = 2000
    #: percentile | bca
    interval: str = "percentile"
    #: the statistic whose interval is drawn: mean | iqm | median
    statistic: str = "mean"
    #: seed of the resampling
    seed: int = 0

    def check(self) -> None:
        one_of(self.interval, list(bs.INTERVALS), "--interval")
        one_of(self.statistic, list(bs.STATISTICS), "--statistic")
        if not 0 < self.ci < 1:
            raise InterplabError(f"--ci must be in (0, 1), got {self.ci}")
        if self.n_boot < 100:
            raise InterplabError(f"--n-boot must be ≥ 100, got {self.n_boot}")


def _column_stats(x: np.ndarray, cfg: StatsConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Statistics of the columns of a complete (no NaN) runs × steps matrix."""
    n = x.shape[0]
    inter = bs.bootstrap_interval(x, cfg.statistic, cfg.ci, cfg.n_boot, cfg.interval, rng)
    iqm_iv = (
        inter
        if cfg.statistic == "iqm"
        else bs.bootstrap_interval(x, "iqm", cfg.ci, cfg.n_boot, "percentile", rng)
    )
    return {
        "n": np.full(x.shape[1], n),
        "mean": x.mean(axis=0),
        "se": bs.standard_error(x),
        "std": x.std(axis=0, ddof=1) if n > 1 else np.full(x.shape[1], np.nan),
        "median": np.median(x, axis=0),
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "iqm": iqm_iv.estimate,
        "iqm_low": iqm_iv.low,
        "iqm_high": iqm_iv.high,
        "low": inter.low,
        "high": inter.high,
    }


STAT_COLUMNS = ("n", "mean", "se", "std", "median", "min", "max", "iqm", "iqm_low", "iqm_high", "low", "high")


def matrix_stats(values: np.ndarray, cfg: StatsConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """:func:`_column_stats` for a matrix with gaps: columns are batched by which runs are present."""
    steps = values.shape[1]
    out = {k: np.full(steps, np.nan) for k in STAT_COLUMNS}
    present = ~np.isnan(values)
    patterns, inverse = np.unique(present.T, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        cols = np.flatnonzero(inverse.ravel() == p)
        rows = np.flatnonzero(pattern)
        if not len(rows):
            out["n"][cols] = 0
            continue
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # inf logged values: NaN spreads, no noise
            res = _column_stats(values[np.ix_(rows, cols)], cfg, rng)
        for k, v in res.items():
            out[k][cols] = v
    return out


def curve_stats(groups: Sequence[GroupData], cfg: StatsConfig) -> pd.DataFrame:
    """Per (group, step): n, mean, se, std, median, min, max, iqm (+ interval), low/high of the
    chosen statistic's interval. Columns ``group``, ``step`` first."""
    cfg.check()
    rng = np.random.default_rng(cfg.seed)
    frames = []
    for g in groups:
        res = matrix_stats(g.values, cfg, rng)
        part = pd.DataFrame({"group": g.label, "step": g.steps, **res})
        part["n"] = part["n"].astype(np.int64)
        frames.append(part)
    return pd.concat(frames, ignore_index=True)


def final_values(g: GroupData, mode: str = "last", goal: str = "min") -> np.ndarray:
    """One value per run: its last logged value, or its best (``goal``) over the curve."""
    one_of(mode, list(FINAL_MODES), "--final")
    one_of(goal, list(GOALS), "--goal")
    out = np.full(g.n, np.nan)
    for i, row in enumerate(g.values):
        ok = row[~np.isnan(row)]
        if len(ok):
            out[i] = ok[-1] if mode == "last" else (ok.min() if goal == "min" else ok.max())
    return out


def final_stats(
    groups: Sequence[GroupData], cfg: StatsConfig, mode: str = "last", goal: str = "min"
) -> pd.DataFrame:
    """One row per group for the final (or best) value per run, with a ``note`` where intervals are
    undefined (a single run)."""
    cfg.check()
    rng = np.random.default_rng(cfg.seed + 1)
    rows = []
    for g in groups:
        vals = final_values(g, mode, goal)
        res = _column_stats(vals[:, None], cfg, rng)
        row: dict[str, Any] = {"group": g.label}
        row.update({k: float(v[0]) for k, v in res.items()})
        row["n"] = g.n
        row["note"] = "1 run: intervals undefined" if g.n < 2 else ""
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Comparison:
    """Group ``a`` against group ``b`` (``a`` better means larger with goal max, smaller with min)."""

    a: str
    b: str
    n_a: int
    n_b: int
    goal: str
    difference: float
    p_improvement: float
    p_improvement_low: float
    p_improvement_high: float
    p_value: float
    seeds_needed: int | None
    power: float
    alpha: float
    fdr: float
    significant_steps: list[float] = field(default_factory=list)
    step_p: np.ndarray | None = field(default=None, repr=False)
    step_q: np.ndarray | None = field(default=None, repr=False)
    steps: np.ndarray | None = field(default=None, repr=False)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the per-step arrays as lists)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("step_p", "step_q", "steps")}
        out["n_significant_steps"] = len(self.significant_steps)
        return out


def compare_groups(
    a: GroupData,
    b: GroupData,
    cfg: StatsConfig,
    *,
    final: str = "last",
    goal: str = "min",
    alpha: float = 0.05,
    fdr: float = 0.05,
    power: float = 0.8,
    difference: float | None = None,
    n_perm: int = 10_000,
) -> Comparison:
    """P(a better than b) with its interval, the final-value permutation test, permutation tests
    per common step with BH control at ``fdr``, and seeds per group needed to detect ``difference``
    (default: the observed difference) with ``power`` at ``alpha``."""
    rng = np.random.default_rng(cfg.seed + 2)
    va, vb = final_values(a, final, goal), final_values(b, final, goal)
    sign = 1.0 if goal == "max" else -1.0
    p_imp = bs.probability_of_improvement_interval(sign * va, sign * vb, cfg.ci, cfg.n_boot, rng)
    p_final = float(bs.permutation_test(va, vb, n_perm=n_perm, rng=rng)[0])
    observed = float(np.mean(va) - np.mean(vb))
    pooled = math.nan
    if a.n > 1 and b.n > 1:
        pooled = math.sqrt(
            ((a.n - 1) * np.var(va, ddof=1) + (b.n - 1) * np.var(vb, ddof=1)) / (a.n + b.n - 2)
        )
    delta = observed if difference is None else difference
    needed = bs.seeds_needed(delta, pooled, alpha, power)
    steps = np.intersect1d(a.steps, b.steps)
    ia, ib = np.searchsorted(a.steps, steps), np.searchsorted(b.steps, steps)
    xa, xb = a.values[:, ia], b.values[:, ib]
    complete = ~(np.isnan(xa).any(axis=0) | np.isnan(xb).any(axis=0))
    step_p = np.full(len(steps), np.nan)
    if complete.any():
        step_p[complete] = bs.permutation_test(xa[:, complete], xb[:, complete], n_perm=n_perm, rng=rng)
    step_q = bs.bh_adjust(step_p)
    sig = steps[np.nan_to_num(step_q, nan=1.0) <= fdr]
    note = ""
    if a.n < 2 or b.n < 2:
        note = "a group has 1 run: intervals and seeds needed are undefined"
    return Comparison(
        a=a.label,
        b=b.label,
        n_a=a.n,
        n_b=b.n,
        goal=goal,
        difference=observed,
        p_improvement=p_imp[0],
        p_improvement_low=p_imp[1],
        p_improvement_high=p_imp[2],
        p_value=p_final,
        seeds_needed=needed,
        power=power,
        alpha=alpha,
        fdr=fdr,
        significant_steps=[float(s) for s in sig],
        step_p=step_p,
        step_q=step_q,
        steps=steps,
        note=note,
    )


BANDS = ("ci", "se", "std", "none")


def band_frame(
    df: pd.DataFrame,
    metric: str,
    step_key: str = "_step",
    group_by: str | None = None,
    band: str = "ci",
    ci: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (group value, step): ``step``, ``group_by``, ``mean``, ``low``, ``high``, ``n`` and ``runs``
    (runs in the group) for a curve with a band: ``ci`` = percentile bootstrap interval of the mean
    (runs resampled within the group), ``se`` = mean ± standard error, ``std`` = mean ± std,
    ``none`` = no band. Runs are put on one grid by interpolation, as :func:`frames.aggregate`.
    A frame without ``_run_id`` (not from :func:`get_runs_data`) is one run."""
    one_of(band, list(BANDS), "--band")
    if RUN_ID not in df.columns:
        df = df.assign(**{RUN_ID: "run"})
    cfg = StatsConfig(ci=ci, n_boot=n_boot, seed=seed)
    cfg.check()
    data = df.loc[df[metric].notna()]
    per_run = data.drop_duplicates(RUN_ID)
    if group_by is None:
        labels = {str(r): "all" for r in per_run[RUN_ID]}
        values: dict[str, Any] = {"all": None}
    else:
        labels = {
            str(r): _canonical_label(v) for r, v in zip(per_run[RUN_ID], per_run[group_by], strict=True)
        }
        values = {_canonical_label(v): v for v in per_run[group_by]}
    rng = np.random.default_rng(seed)
    frames = []
    for g in group_matrices(data, metric, labels, step_key, "interpolate"):
        res = matrix_stats(g.values, cfg, rng) if band == "ci" else None
        n = (~np.isnan(g.values)).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: NaN is the answer
            mean = np.nanmean(g.values, axis=0)
            std = np.where(n > 1, np.nanstd(g.values, axis=0, ddof=1), np.nan)
        if band == "ci":
            low, high = res["low"], res["high"]
        elif band in ("se", "std"):
            half = std if band == "std" else std / np.sqrt(n)
            low, high = mean - half, mean + half
        else:
            low = high = np.full(len(mean), np.nan)
        part = {"step": g.steps, "mean": mean, "low": low, "high": high, "n": n, "runs": g.n}
        if group_by is not None:
            part = {group_by: [values[g.label]] * len(g.steps), **part}
        frames.append(pd.DataFrame(part))
    return pd.concat(frames, ignore_index=True)


def _canonical_label(v: Any) -> str:
    return f"{v!r}"
