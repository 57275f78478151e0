"""Offline runs as real training jobs leave them: dead, killed, resumed, retagged, summary-less.

Every case is written here by the installed ``wandb`` in a child process (SIGKILL for crashes).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from interplab.cli import app
from interplab.common.errors import InterplabError
from interplab.runs import differing_config, fetch_run, fetch_runs, get_runs_data
from interplab.runs.commands import runs_list
from interplab.runs.leveldb_log import encode_log, read_log_bytes, scan_log
from interplab.runs.offline import decode_log_exact
from interplab.runs.records import parse_record
from tests.runs.sdk_subprocess import logs_of, write_killed_run, write_run

runner = CliRunner()


@pytest.fixture(scope="module")
def dead_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One good run, one killed right after ``init`` and one whose log was truncated to 0 bytes."""
    root = tmp_path_factory.mktemp("dead")
    write_run(
        root,
        """
        for rid in ("good1", "zero1"):
            run = init(id=rid, config={"lr": 0.1})
            for i in range(5):
                run.log({"loss": 1.0 / (i + 1)})
            run.finish()
            time.sleep(1.1)  # offline folder names carry the second
        """,
    )
    write_killed_run(root, 'run = init(id="dead1")\nprint("KILL ME", flush=True)')
    zero = next(p for p in logs_of(root) if p.name == "run-zero1.wandb")
    zero.write_bytes(b"")
    return root


def test_runs_without_logged_data_are_skipped_and_listed(dead_folder: Path, caplog, tmp_path: Path) -> None:
    logs = {p.name: p for p in logs_of(dead_folder)}
    assert logs["run-zero1.wandb"].stat().st_size == 0
    assert len(decode_log_exact(logs["run-dead1.wandb"]).history) == 0  # died before its first log
    with caplog.at_level(logging.WARNING, logger="interplab"):
        runs = fetch_runs(dead_folder)
    assert [r.id for r in runs] == ["good1"]
    assert sorted(s.run_id for s in runs.skipped) == ["dead1", "zero1"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and any("dead1" in w for w in warnings) and any("zero1" in w for w in warnings)
    df = get_runs_data(runs, ["loss"])
    assert df["loss"].tolist() == [1.0 / (i + 1) for i in range(5)]
    assert sorted(d["run_id"] for d in df.attrs["skipped_runs"]) == ["dead1", "zero1"]
    out = tmp_path / "loss.csv"
    res = runner.invoke(app, ["runs", "export", str(dead_folder), "-m", "loss", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "skipped 2 run(s)" in res.output and "dead1" in res.output and "zero1" in res.output
    assert len(pd.read_csv(out)) == 5
    res = runner.invoke(
        app, ["runs", "plot", str(dead_folder), "-m", "loss", "--out", str(tmp_path / "f.png")]
    )
    assert res.exit_code == 0, res.output
    assert "dead1" in res.output and "zero1" in res.output
    res = runner.invoke(app, ["runs", "list", str(dead_folder)])
    assert res.exit_code == 0 and "1 runs" in res.output and "dead1" in res.output


def test_tags_cleared_mid_run_and_notes(tmp_path: Path) -> None:
    write_run(
        tmp_path,
        """
        run = init(id="tagged", tags=["icl", "seed0"], notes="first idea")
        run.log({"loss": 1.0})
        run.tags = ()
        run.notes = "second thoughts"
        run.log({"loss": 0.5})
        run.finish()
        time.sleep(1.1)
        run = init(id="kept", tags=["a", "b"], notes="kept notes")
        run.log({"loss": 1.0})
        run.finish()
        """,
    )
    runs = {r.id: r for r in fetch_runs(tmp_path)}
    assert runs["tagged"].tags == [] and runs["tagged"].notes == "second thoughts"
    assert runs["kept"].tags == ["a", "b"] and runs["kept"].notes == "kept notes"
    assert [r.id for r in fetch_runs(tmp_path, tags_any=["icl"])] == []


def test_resumed_run_is_one_run_in_time_order(tmp_path: Path) -> None:
    write_run(
        tmp_path,
        """
        run = init(id="res1", config={"lr": 0.1, "model": {"width": 8, "depth": 2}})
        for i in range(3):
            run.log({"loss": 10.0 - i, "first_only": i}, step=i)
        run.log({"attn": wandb.Table(columns=["q", "w"], data=[[0, 0.5], [1, 0.25]])}, step=2)
        run.finish()
        """,
    )
    time.sleep(1.1)
    write_run(
        tmp_path,
        """
        run = init(id="res1", resume="allow", config={"lr": 0.05, "model": {"width": 16}},
                   allow_val_change=True)
        for i in range(3, 6):
            run.log({"loss": 10.0 - i, "flag": i % 2 == 0}, step=i)
        run.config.update({"extra": 1}, allow_val_change=True)
        run.finish()
        """,
    )
    write_run(tmp_path, 'run = init(id="other", config={"lr": 0.1})\nrun.log({"loss": 3.0})\nrun.finish()')
    assert len([p for p in logs_of(tmp_path) if p.name == "run-res1.wandb"]) == 2
    run = fetch_run(tmp_path, "res1")
    assert len(run.segments) == 2 and run.segments[0] != run.segments[1]
    hist = run.history()
    assert hist["_step"].tolist() == [0, 1, 2, 3, 4, 5]
    assert hist["loss"].tolist() == [10.0 - i for i in range(6)]
    assert (
        hist["first_only"].tolist()[:3] == [0, 1, 2] and hist["first_only"].isna().tolist()[3:] == [True] * 3
    )
    assert run.config == {"lr": 0.05, "model": {"width": 16, "depth": 2}, "extra": 1}
    assert run.summary["loss"] == 5.0 and run.summary["_step"] == 5 and run.summary["first_only"] == 2
    assert run.state == "finished"
    diff = differing_config(fetch_runs(tmp_path))
    assert diff.set_index("_run_id").loc["res1", "cfg.lr"] == 0.05
    # a table logged in the first folder is found there
    from interplab.runs import get_table

    assert get_table(run, "attn").to_numpy().tolist() == [[0, 0.5], [1, 0.25]]
    listed = runs_list(str(tmp_path))
    assert listed.set_index("id").loc["res1", "resumed"] == "2 folders"
    assert listed.set_index("id").loc["res1", "steps"] == 5


def _strip_summary_records(log: Path) -> None:
    """Rewrite ``log`` without its summary records, as crashed runs of older SDKs leave them."""
    kept = []
    for payload in scan_log(read_log_bytes(log), log).records():
        record = parse_record(bytes(payload))
        if record is not None and record.WhichOneof("record_type") == "summary":
            continue
        if record is not None and record.WhichOneof("record_type") == "run":
            record.run.ClearField("summary")
            payload = record.SerializeToString()
        kept.append(bytes(payload))
    log.write_bytes(encode_log(kept))


def test_crashed_run_without_summary_gets_the_last_logged_values(tmp_path: Path) -> None:
    # wandb-core buffers the log: enough rows that most reach the disk before the SIGKILL
    write_killed_run(
        tmp_path,
        """
        run = init(id="crash", config={"lr": 0.1})
        for i in range(3000):
            row = {"loss": 1.0 / (i + 1), "nested": {"kl": 0.5 * i}, "odd_nan": float("nan") if i % 2 else i}
            if i < 10:
                row["early"] = i
            run.log(row)
        print("KILL ME", flush=True)
        """,
    )
    (log,) = logs_of(tmp_path)
    _strip_summary_records(log)
    old = time.time() - 3600  # not written for an hour: crashed, not running
    os.utime(log, (old, old))
    exact = decode_log_exact(log)
    assert exact.summary == {} and exact.exit_code is None
    n = len(exact.history)
    assert n > 100
    (run,) = fetch_runs(tmp_path)
    assert run.state == "crashed" and run.summary_source != "logged"
    last = n - 1
    assert run.summary["_step"] == last and run.summary["early"] == 9
    assert run.summary["loss"] == 1.0 / (last + 1) and run.summary["nested"] == {"kl": 0.5 * last}
    assert math.isnan(run.summary["odd_nan"]) if last % 2 else run.summary["odd_nan"] == last
    listed = runs_list(str(tmp_path), metrics=["early"])
    assert listed["steps"].tolist() == [last] and listed["early"].tolist() == [9]
    assert listed.attrs["summary_derived"] == ["crash"]
    res = runner.invoke(app, ["runs", "list", str(tmp_path), "-m", "early"])
    assert res.exit_code == 0 and "derived from the last logged values" in res.output


def test_unknown_summary_metric_lists_the_closest_keys(tmp_path: Path) -> None:
    write_run(
        tmp_path,
        """
        run = init(id="wide")
        run.log({f"layer{i}.loss": float(i) for i in range(300)})
        run.finish()
        """,
    )
    (run,) = fetch_runs(tmp_path)
    assert len(run.summary) >= 300
    with pytest.raises(InterplabError) as err:
        runs_list(str(tmp_path), metrics=["layer12.los"])
    msg = str(err.value)
    assert "layer12.loss" in msg and "of 30" in msg  # the count of keys, not the keys
    assert msg.count("layer") <= 6 and "\n" not in msg
    assert np.isfinite(run.summary["layer12.loss"])


def test_colliding_dotted_names_and_bool_gaps(tmp_path: Path) -> None:
    from interplab.runs.offline import decode_log

    write_run(
        tmp_path,
        """
        run = init(id="coll")
        run.log({"m": {"v": 5.0}})
        run.log({"first": 1.0, "flag": True})
        run.log({"m.v": 2.0})
        run.log({"a.b": 1.0})
        run.log({"z": 0.0, "first": 3.0})
        run.log({"a": {"b": 2.0}})
        run.log({"flag": False})
        run.finish()
        """,
    )
    (log,) = logs_of(tmp_path)
    fast, exact = decode_log(log), decode_log_exact(log)
    cols = list(exact.history.columns)
    # the path m/v (row 0) and the key "m.v" (row 2) are one column, placed where it was first seen
    assert cols.index("m.v") < min(cols.index("first"), cols.index("flag"))
    assert cols.index("a.b") < cols.index("z")
    assert exact.history["m.v"].iloc[0] == 5.0 and exact.history["m.v"].iloc[2] == 2.0
    assert exact.history["a.b"].tolist()[3] == 1.0 and exact.history["a.b"].tolist()[5] == 2.0
    assert list(fast.history.columns) == cols
    pd.testing.assert_frame_equal(fast.history, exact.history)
    for suffix in (".parquet", ".csv"):
        out = tmp_path / f"flag{suffix}"
        res = runner.invoke(app, ["runs", "export", str(tmp_path), "-m", "flag", "--out", str(out)])
        assert res.exit_code == 0, res.output
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "flag.parquet")
    assert str(table.schema.field("flag").type) == "bool"
    assert table.column("flag").to_pylist() == [True, False]
    csv = pd.read_csv(tmp_path / "flag.csv")
    assert csv["flag"].tolist() == [True, False]
    # with a gap between them in the exported rows (another metric logged in between)
    for suffix in (".parquet", ".csv"):
        out = tmp_path / f"both{suffix}"
        res = runner.invoke(app, ["runs", "export", str(tmp_path), "-m", "flag,first", "--out", str(out)])
        assert res.exit_code == 0, res.output
    from_parquet = pq.read_table(tmp_path / "both.parquet").column("flag").to_pylist()
    from_csv = pd.read_csv(tmp_path / "both.csv", dtype={"flag": "boolean"})["flag"].tolist()
    assert from_parquet == [True, None, False]
    assert [None if v is pd.NA else v for v in from_csv] == from_parquet


def test_incremental_table_is_concatenated_up_to_the_step(tmp_path: Path) -> None:
    from interplab.runs import get_table, table_keys

    write_run(
        tmp_path,
        """
        run = init(id="inc")
        table = wandb.Table(columns=["step", "value"], log_mode="INCREMENTAL")
        for step in range(0, 40, 10):
            table.add_data(step, step * 0.5)
            table.add_data(step, step * 0.5 + 1)
            run.log({"preds": table, "loss": 1.0 / (step + 1)}, step=step)
            run.log({"loss": 0.5 / (step + 1)}, step=step + 5)
        run.finish()
        """,
    )
    (run,) = fetch_runs(tmp_path)
    assert table_keys(run) == ["preds"]
    hist = run.history()
    assert set(hist["preds._type"].dropna()) == {"incremental-table-file"}

    def expected(upto: int) -> list[list[float]]:
        return [[s, s * 0.5 + k] for s in range(0, upto + 1, 10) for k in (0, 1)]

    for step in (0, 10, 30):
        got = get_table(run, "preds", step=step)
        assert got.columns.tolist() == ["step", "value"]
        assert got.to_numpy().tolist() == expected(step)
    assert get_table(run, "preds").to_numpy().tolist() == expected(30)
    with pytest.raises(InterplabError, match="steps: 0, 10, 20, 30"):
        get_table(run, "preds", step=5)


def test_wide_run_reads_like_the_reference_and_caches_without_warnings(tmp_path: Path) -> None:
    import warnings

    from interplab.runs.cache import HistoryCache
    from interplab.runs.offline import decode_log

    write_run(
        tmp_path / "runs",
        """
        run = init(id="wide")
        for step in range(4):
            row = {f"layer{k // 50}/head{k % 50}": k * 0.25 + step for k in range(600)}
            row["flag"] = step % 2 == 0
            if step == 2:
                row["note"] = "mid"
            run.log(row)
        run.finish()
        """,
    )
    (log,) = logs_of(tmp_path / "runs")
    fast, exact = decode_log(log), decode_log_exact(log)
    pd.testing.assert_frame_equal(fast.history, exact.history)
    assert exact.history.shape == (4, 605)  # 600 keys, flag, note, _step, _timestamp, _runtime
    assert exact.history["layer3/head7"].tolist() == [157 * 0.25 + s for s in range(4)]
    cache = HistoryCache(tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        (cold,) = fetch_runs(tmp_path / "runs", cache=cache)
        (warm,) = fetch_runs(tmp_path / "runs", cache=cache)
    pd.testing.assert_frame_equal(warm.history(), cold.history())
    note = warm.history()["note"]
    assert note.iloc[2] == "mid" and note.isna().tolist() == [True, True, False, True]
