"""Fixtures for the runs area: REAL offline W&B runs written with the wandb SDK in a temp dir.

``sdk_runs`` writes four runs once per session (about 1–2 s each) and returns what was logged,
so tests compare what our reader gives back with the values that went in.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

N_STEPS = 2000
TABLE_STEPS = (0, 1000, 1990)


@dataclass
class WrittenRun:
    """What one SDK run logged: flat keys per step, tables per step, config, tags, exit code."""

    name: str
    config: dict[str, Any]
    tags: list[str]
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    tables: dict[int, list[list[Any]]] = field(default_factory=dict)
    exit_code: int = 0
    id: str = ""
    folder: Path | None = None


@dataclass
class WrittenRuns:
    root: Path
    runs: dict[str, WrittenRun]


def table_rows(step: int, seed: int) -> list[list[Any]]:
    """Attention weights of 2 heads over a 3-token sequence, depending on step and seed."""
    rows = []
    for head in range(2):
        for q in range(3):
            for k in range(q + 1):
                rows.append([head, q, k, round((step + 1) * 0.001 + head * 0.1 + q * 0.01 + k + seed, 6)])
    return rows


def _logged(step: int, seed: int, scale: float, eval_every: int) -> dict[str, Any]:
    """The flat (dotted) values logged at ``step``; nested dicts are built from them at log time."""
    row: dict[str, Any] = {"loss": 1.0 / (step + 1) + 0.01 * seed + scale}
    if step % eval_every == 0:
        val = 2.0 / (step + 1) + 0.02 * seed + scale
        if seed == 0 and scale == 0.01:
            val = {500: math.nan, 600: math.inf, 700: -math.inf}.get(step, val)
        row["val_loss"] = val
        row["kl.prefix_1"] = 0.5 / (step + 1) + seed
        row["kl.prefix_2"] = 0.25 / (step + 1) + seed
    if step % 100 == 0:
        row["λ_ünïcode"] = step * 3
    if step == 1000:
        row["note"] = "half-way ✓"
    return row


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


SPECS = [
    # name, seed, init_scale, dataset_size, eval_every, exit_code, extra tag
    ("alpha", 0, 0.01, 100, 10, 0, "small"),
    ("beta", 1, 0.01, 100, 10, 0, "small"),
    ("gamma", 0, 1.0, 100, 10, 0, "large"),
    ("delta", 1, 1.0, 200, 15, 1, "large"),
]


@pytest.fixture(scope="session")
def sdk_runs(tmp_path_factory: pytest.TempPathFactory) -> WrittenRuns:
    """Four offline runs written with ``wandb.init(mode="offline")`` under one folder."""
    import wandb

    root = tmp_path_factory.mktemp("wandb_runs")
    saved = {k: os.environ.get(k) for k in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR")}
    for k in saved:
        os.environ[k] = str(root / f".{k.lower()}")
    written: dict[str, WrittenRun] = {}
    try:
        for name, seed, scale, dsize, eval_every, exit_code, tag in SPECS:
            config = {
                "model": {"init_scale": scale, "n_layers": 2},
                "seed": seed,
                "lr": 0.001,
                "dataset_size": dsize,
                "schedule": [1, 2, 3],
                "név": "ünï",
            }
            tags = ["icl", f"seed{seed}", tag]
            spec = WrittenRun(name=name, config=config, tags=tags, exit_code=exit_code)
            run = wandb.init(
                mode="offline",
                dir=root,
                project="interplab-tests",
                name=name,
                config=config,
                tags=tags,
                settings=wandb.Settings(console="off", x_disable_stats=True, silent=True),
            )
            for step in range(N_STEPS):
                flat = _logged(step, seed, scale, eval_every)
                payload = _nest(flat)
                if step in TABLE_STEPS:
                    data = table_rows(step, seed)
                    payload["val_attention_weights"] = wandb.Table(
                        columns=["head", "query_idx", "key_idx", "weight"], data=data
                    )
                    spec.tables[step] = data
                run.log(payload, step=step)
                spec.rows[step] = flat
            run.summary["best_val"] = 0.5 + seed
            run.config.update({"late_key": seed * 10})
            spec.config["late_key"] = seed * 10
            spec.id = run.id
            spec.folder = Path(run.dir).parent
            run.finish(exit_code=exit_code)
            written[name] = spec
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return WrittenRuns(root=root, runs=written)


@pytest.fixture(autouse=True)
def runs_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every runs test uses a private cache folder (never ~/.cache)."""
    path = tmp_path_factory.mktemp("interplab_cache")
    monkeypatch.setenv("INTERPLAB_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def markov_experiment(tmp_path_factory: pytest.TempPathFactory):
    """The built-in experiment at toy size: init_scale 0.5 and 1.0, one seed, 30 steps (runs-figures)."""
    from interplab.runs.experiment import run_experiment

    out = tmp_path_factory.mktemp("markov_experiment")
    return run_experiment(out, seeds=1, sweep={"init_scale": [0.5, 1.0]}, steps=30, n_val=64)
