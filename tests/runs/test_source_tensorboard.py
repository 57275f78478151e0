"""TensorBoard runs: real event files written with torch's SummaryWriter, read back exactly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from interplab.common.errors import InterplabError
from interplab.runs.api import fetch_runs
from interplab.runs.cache import HistoryCache
from interplab.runs.sources import source_kind
from interplab.runs.sources.tensorboard import tensorboard_runs

STEPS = range(0, 60, 3)


def loss_value(step: int, lr: float, seed: int) -> float:
    return float(np.float32(1.0 / (step + 1) + lr + 0.05 * seed))


def write_tb_runs(
    root: Path, seeds: int = 3, lrs: tuple[float, ...] = (0.1, 0.5), extras: bool = True
) -> dict[str, dict]:
    """One run folder per (lr, seed): loss every 3 steps, hparams; with ``extras`` also acc (tensor
    style) every 6 steps and an ``add_scalars`` pair."""
    from torch.utils.tensorboard import SummaryWriter

    written = {}
    for lr in lrs:
        for seed in range(seeds):
            name = f"lr{lr}_seed{seed}"
            w = SummaryWriter(str(root / name))
            for step in STEPS:
                w.add_scalar("train/loss", loss_value(step, lr, seed), step)
                if extras and step % 6 == 0:
                    w.add_scalar("acc", step / 100, step, new_style=True)
            if extras:
                w.add_scalars("pair", {"a": 1.0, "b": 2.0}, 0)
            w.add_hparams({"lr": lr, "seed": seed, "opt": "adam"}, {"hp/score": 0.5})
            w.close()
            written[name] = {"lr": lr, "seed": seed}
    return written


@pytest.fixture(scope="module")
def tb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tb") / "logs"
    write_tb_runs(root)
    return root


def test_reads_exact_values_and_hparams(tb_root: Path) -> None:
    runs = tensorboard_runs(tb_root, cache=HistoryCache(None))
    assert [r.id for r in runs] == sorted(f"lr{lr}_seed{s}" for lr in (0.1, 0.5) for s in range(3))
    for run in runs:
        lr, seed = run.config["lr"], run.config["seed"]
        assert run.config["opt"] == "adam"
        assert run.id == f"lr{lr}_seed{seed}"
        hist = run.history()
        loss = hist.set_index("_step")["train/loss"].dropna()
        assert loss.index.tolist() == list(STEPS)
        assert loss.tolist() == [loss_value(s, lr, seed) for s in STEPS]
        acc = hist.set_index("_step")["acc"].dropna()
        assert acc.index.tolist() == [s for s in STEPS if s % 6 == 0]
        assert np.allclose(acc.to_numpy(), [s / 100 for s in acc.index], atol=1e-7)
        assert hist.set_index("_step").loc[0, "pair_a/pair"] == 1.0  # add_scalars: one subfolder per key
        assert "hp/score" not in hist.columns  # add_hparams' copy of the metric is skipped
        assert run.summary["_step"] == max(STEPS)


def test_auto_detection_filters_and_cache(tb_root: Path, tmp_path: Path) -> None:
    assert source_kind(str(tb_root)) == "tensorboard"
    assert source_kind(f"tb:{tb_root}") == "tensorboard"
    cache = HistoryCache(tmp_path / "cache")
    runs = fetch_runs(str(tb_root), extra_filters={"config.lr": {"$gt": 0.2}}, cache=cache)
    assert sorted(r.id for r in runs) == [f"lr0.5_seed{s}" for s in range(3)]
    assert len(list((tmp_path / "cache" / "tensorboard").glob("*.parquet"))) == 6
    again = fetch_runs(f"tb:{tb_root}", extra_filters={"config.seed": 0}, cache=cache)
    assert sorted(r.id for r in again) == ["lr0.1_seed0", "lr0.5_seed0"]
    cold = {r.id: r.history() for r in tensorboard_runs(tb_root, cache=HistoryCache(None))}
    for run in again:
        assert run.history().equals(cold[run.id])


def test_file_cut_mid_record(tb_root: Path, tmp_path: Path) -> None:
    src = next((tb_root / "lr0.1_seed0").glob("events.out.tfevents.*"))
    run_dir = tmp_path / "cut" / "run"
    run_dir.mkdir(parents=True)
    data = src.read_bytes()
    cut = run_dir / src.name
    cut.write_bytes(data[: len(data) - 7])
    old = 1_600_000_000
    os.utime(cut, (old, old))
    with pytest.raises(InterplabError, match=r"cut mid-record at byte \d+ of \d+"):
        tensorboard_runs(tmp_path / "cut", cache=HistoryCache(None))
    os.utime(cut, None)  # just written: a run still logging, its complete records are read
    (run,) = tensorboard_runs(tmp_path / "cut", cache=HistoryCache(None))
    assert run.state == "running"
    loss = run.history().set_index("_step")["train/loss"].dropna()
    assert loss.index.tolist() == list(STEPS)[:-1]  # the cut record was the last loss


def test_not_a_tensorboard_folder(tmp_path: Path) -> None:
    with pytest.raises(InterplabError, match="no TensorBoard runs found"):
        tensorboard_runs(tmp_path, cache=HistoryCache(None))
    with pytest.raises(InterplabError, match="does not exist"):
        tensorboard_runs(f"tb:{tmp_path / 'nope'}", cache=HistoryCache(None))
