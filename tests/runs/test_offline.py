"""Reading REAL offline runs written by the wandb SDK: discovery, values, state, damage."""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from interplab.common.errors import InterplabError
from interplab.runs import fetch_run, fetch_run_data, fetch_runs, metric_keys
from interplab.runs.leveldb_log import encode_log, read_log_bytes, scan_log
from interplab.runs.offline import decode_log, decode_log_exact, discover_logs

from .conftest import N_STEPS, WrittenRun, WrittenRuns


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _check_history(hist: pd.DataFrame, spec: WrittenRun, n_rows: int | None = None) -> None:
    """Every logged value comes back exactly at its step; keys not logged at a step are missing."""
    steps = sorted(spec.rows)[: n_rows if n_rows is not None else len(spec.rows)]
    assert hist["_step"].tolist() == steps
    keys = sorted({k for s in steps for k in spec.rows[s]})
    for key in keys:
        assert key in hist.columns, key
        col = hist[key].tolist()
        for i, step in enumerate(steps):
            want = spec.rows[step].get(key)
            got = col[i]
            if want is None:
                assert got is None or (isinstance(got, float) and math.isnan(got)), (key, step, got)
            else:
                assert _same(got, want), (key, step, got, want)


def test_discovers_each_run_once(sdk_runs: WrittenRuns) -> None:
    logs = discover_logs(sdk_runs.root)
    assert len(logs) == 4
    assert (sdk_runs.root / "wandb" / "latest-run").is_symlink()  # the link is there, and not counted
    assert discover_logs(sdk_runs.root / "wandb") == logs
    one = sdk_runs.runs["beta"]
    assert one.folder is not None
    assert discover_logs(one.folder) == [next(one.folder.glob("run-*.wandb")).resolve()]
    assert discover_logs(sdk_runs.root / "wandb" / "latest-run") == discover_logs(
        sdk_runs.runs["delta"].folder
    )


def test_values_read_back_exactly(sdk_runs: WrittenRuns) -> None:
    runs = {r.name: r for r in fetch_runs(sdk_runs.root)}
    assert sorted(runs) == sorted(sdk_runs.runs)
    for name, spec in sdk_runs.runs.items():
        run = runs[name]
        assert run.id == spec.id
        assert run.tags == spec.tags
        assert run.config == spec.config
        assert run.project == "interplab-tests"
        assert run.state == ("finished" if spec.exit_code == 0 else "failed")
        assert run.source == f"offline:{sdk_runs.root}"
        hist = run.history()
        assert len(hist) == N_STEPS
        _check_history(hist, spec)
        assert hist["_step"].dtype == np.int64
        assert run.summary["best_val"] == 0.5 + spec.config["seed"]
        assert run.summary["loss"] == spec.rows[N_STEPS - 1]["loss"]


def test_fast_decoder_matches_protobuf_reference(sdk_runs: WrittenRuns) -> None:
    for spec in sdk_runs.runs.values():
        assert spec.folder is not None
        log_file = next(spec.folder.glob("run-*.wandb"))
        fast, exact = decode_log(log_file), decode_log_exact(log_file)
        pd.testing.assert_frame_equal(fast.history, exact.history)
        assert fast.meta() == exact.meta()
        assert fast.history.attrs == exact.history.attrs


def test_fetch_run_data_and_metric_keys(sdk_runs: WrittenRuns) -> None:
    run = fetch_run(sdk_runs.root, sdk_runs.runs["gamma"].id)
    assert run.name == "gamma"
    assert fetch_run(sdk_runs.root, "gamma").id == run.id
    data = fetch_run_data(run, ["val_loss"])
    assert set(data) == {"df", "config", "name", "id"}
    df = data["df"]
    assert df["_step"].tolist() == list(range(0, N_STEPS, 10))  # only steps that logged val_loss
    assert df["val_loss"].tolist() == [
        sdk_runs.runs["gamma"].rows[s]["val_loss"] for s in range(0, N_STEPS, 10)
    ]
    keys = metric_keys(run)
    assert {"loss", "val_loss", "kl.prefix_1", "kl.prefix_2", "λ_ünïcode"} <= set(keys)


def test_bad_inputs_name_what_was_expected(sdk_runs: WrittenRuns, tmp_path: Path) -> None:
    with pytest.raises(InterplabError, match=r"no W&B runs found in .*run-<id>\.wandb"):
        fetch_runs(tmp_path)
    with pytest.raises(InterplabError, match="does not exist"):
        fetch_runs(tmp_path / "nope")
    run = fetch_run(sdk_runs.root, "alpha")
    with pytest.raises(InterplabError, match=r"unknown metric 'val_los'.*logged keys: .*val_loss"):
        fetch_run_data(run, ["val_los"])
    with pytest.raises(InterplabError, match=r"unknown run 'zzz'; runs: .*alpha"):
        fetch_run(sdk_runs.root, "zzz")
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not a log at all")
    with pytest.raises(InterplabError, match=r"run-x\.wandb: not a W&B log"):
        fetch_runs(bad)


def _copy_run(spec: WrittenRun, dest: Path, data: bytes) -> Path:
    assert spec.folder is not None
    folder = dest / spec.folder.name
    shutil.copytree(spec.folder, folder)
    log_file = next(folder.glob("run-*.wandb"))
    log_file.write_bytes(data)
    return folder


def test_cut_off_run_reads_every_complete_record(sdk_runs: WrittenRuns, tmp_path: Path) -> None:
    spec = sdk_runs.runs["alpha"]
    assert spec.folder is not None
    full = read_log_bytes(next(spec.folder.glob("run-*.wandb")))
    payloads = [bytes(p) for p in scan_log(full).records()]
    assert encode_log(payloads) == full  # our writer reproduces the SDK's bytes, so offsets below are exact
    from interplab.runs.records import parse_record

    is_history = [parse_record(p).WhichOneof("record_type") == "history" for p in payloads]
    for frac in (0.13, 0.5, 0.77):
        n_rec = int(len(payloads) * frac)
        end = len(encode_log(payloads[:n_rec]))
        for cut in (end, end + 3, end + 9):  # at a record boundary, inside a header, inside data
            folder = _copy_run(spec, tmp_path / f"cut{frac}_{cut}", full[:cut])
            os.utime(next(folder.glob("run-*.wandb")), (1, 1))  # old file: not "running"
            (run,) = fetch_runs(folder)
            assert run.state == "crashed"
            n_hist = sum(is_history[:n_rec])
            assert len(run.history()) == n_hist
            _check_history(run.history(), spec, n_rows=n_hist)
    for cut in (7, 8, 20):  # header only / almost nothing
        folder = _copy_run(spec, tmp_path / f"tiny{cut}", full[:cut])
        runs = fetch_runs(folder)  # nothing logged yet: skipped and listed, never an empty run
        assert list(runs) == [] and [s.run_id for s in runs.skipped] == [spec.id]


def test_corrupted_byte_skips_only_that_record(
    sdk_runs: WrittenRuns, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = sdk_runs.runs["beta"]
    assert spec.folder is not None
    full = read_log_bytes(next(spec.folder.glob("run-*.wandb")))
    payloads = [bytes(p) for p in scan_log(full).records()]
    from interplab.runs.records import parse_record

    kinds = [parse_record(p).WhichOneof("record_type") for p in payloads]
    # a history record in the middle that sits whole inside one block
    j = next(
        i
        for i in range(len(payloads) // 2, len(payloads))
        if kinds[i] == "history"
        and len(encode_log(payloads[:i])) // 32768 == (len(encode_log(payloads[: i + 1])) - 1) // 32768
    )
    start = len(encode_log(payloads[:j])) + 7
    step_lost = parse_record(payloads[j]).history.step.num
    damaged = bytearray(full)
    damaged[start + len(payloads[j]) // 2] ^= 0xFF
    folder = _copy_run(spec, tmp_path / "corrupt", bytes(damaged))
    with caplog.at_level(logging.WARNING, logger="interplab.runs.leveldb_log"):
        (run,) = fetch_runs(folder)
    assert "damaged chunk" in caplog.text
    hist = run.history()
    assert len(hist) == N_STEPS - 1
    assert step_lost not in set(hist["_step"].tolist())
    kept = {s: r for s, r in spec.rows.items() if s != step_lost}
    spec_kept = WrittenRun(name=spec.name, config=spec.config, tags=spec.tags, rows=kept)
    _check_history(hist, spec_kept)
    assert run.state == "finished"  # the exit record after the damage is still read


def _unusual_log(path: Path) -> None:
    """A log with every record shape the fast path must treat exactly like protobuf."""
    from wandb.proto import wandb_internal_pb2 as pb

    from interplab.runs.leveldb_log import write_log

    recs = []

    def rec(**fill: object) -> pb.Record:
        r = pb.Record()
        r.num = len(recs) + 1
        recs.append(r)
        return r

    r = rec()
    r.run.run_id, r.run.display_name, r.run.project = "odd1", "odd", "p"
    r.run.tags.extend(["t"])
    u = r.run.config.update.add()
    u.key, u.value_json = "a", '{"b": 1, "c": [1, 2]}'
    u = r.run.summary.update.add()
    u.key, u.value_json = "from_run", "1"
    for step in range(300):
        h = rec()
        if step % 7 == 0:
            h._info.stream_id = "odd1"  # an extra top-level field
        it = h.history.item.add()
        it.key, it.value_json = "_step", str(step)  # plain key instead of nested_key
        it = h.history.item.add()
        it.nested_key.extend(["deep", "x"])
        it.value_json = repr(step * 0.5)
        if step % 3 == 0:
            it = h.history.item.add()
            it.nested_key.append("mixed")
            it.value_json = ['"text"', "true", "null", "[1, 2]", "1e400", "-0", "12345678901234567890"][
                step % 7
            ]
        if step == 5:
            it = h.history.item.add()
            it.nested_key.append("big")
            it.value_json = '"' + "é" * 5000 + '"'  # a long value: multi-byte lengths, multi-block record
        if step == 11:
            h.history.item.add(key="", value_json="1")  # empty key
        if step == 13:
            h.history.item.add(key="weird", value_json="1.2.3")  # not JSON: kept as text
        h.history.step.num = step
        s = rec()
        u = s.summary.update.add()
        u.nested_key.extend(["deep", "x"])
        u.value_json = repr(step * 0.5)
        if step == 100:
            s.summary.remove.add(key="from_run")
            c = rec()
            c.config.remove.add(key="a")
            c.config.update.add(nested_key=["n", "m"], value_json='"v"')
    e = rec()
    e.exit.exit_code = 0
    write_log(path, (r.SerializeToString() for r in recs))


def test_fast_path_equals_reference_on_unusual_records(tmp_path: Path) -> None:
    log_file = tmp_path / "run-odd1.wandb"
    _unusual_log(log_file)
    fast, exact = decode_log(log_file), decode_log_exact(log_file)
    pd.testing.assert_frame_equal(fast.history, exact.history)
    assert fast.history.attrs == exact.history.attrs
    assert fast.meta() == exact.meta()
    assert exact.config == {"n": {"m": "v"}}
    assert exact.summary == {"deep": {"x": 299 * 0.5}}
    assert exact.history["_step"].tolist() == list(range(300))
    mixed = exact.history["mixed"]
    assert (mixed.iloc[0], mixed.iloc[3], mixed.iloc[6], mixed.iloc[12]) == (
        "text",
        [1, 2],
        12345678901234567890,
        0,
    )
    assert mixed.iloc[9] is None and mixed.iloc[1] is None  # logged null / not logged
    assert exact.history["deep.x"].iloc[8] == 4.0
    assert exact.history["weird"].iloc[13] == "1.2.3"


def test_logwriter_runs_read_back(tmp_path: Path) -> None:
    from interplab.runs.logwriter import write_offline_run

    rng = np.random.default_rng(0)
    loss = rng.normal(size=3000)
    val = np.where(np.arange(3000) % 7 == 0, rng.normal(size=3000), np.nan)
    write_offline_run(tmp_path, "w1", {"loss": loss, "val": val}, config={"lr": 0.5}, tags=["x"])
    (run,) = fetch_runs(tmp_path)
    assert (run.id, run.config, run.tags, run.state) == ("w1", {"lr": 0.5}, ["x"], "finished")
    hist = run.history()
    assert hist["loss"].tolist() == loss.tolist()
    np.testing.assert_array_equal(hist["val"].to_numpy(), val)
    assert run.summary["loss"] == loss[-1]


def test_a_record_that_is_not_protobuf_is_skipped(sdk_runs: WrittenRuns, tmp_path: Path) -> None:
    spec = sdk_runs.runs["gamma"]
    assert spec.folder is not None
    full = read_log_bytes(next(spec.folder.glob("run-*.wandb")))
    payloads = [bytes(p) for p in scan_log(full).records()]
    payloads.insert(len(payloads) // 2, b"\xff\xff\xff\xff")  # valid CRC, not a Record
    log_file = tmp_path / "run-x.wandb"
    log_file.write_bytes(encode_log(payloads))
    fast, exact = decode_log(log_file), decode_log_exact(log_file)
    pd.testing.assert_frame_equal(fast.history, exact.history)
    _check_history(exact.history, spec)
    assert exact.config == spec.config


def test_source_forms_and_history_helper(sdk_runs: WrittenRuns) -> None:
    from interplab.runs import history

    spec = sdk_runs.runs["alpha"]
    assert spec.folder is not None
    log_file = next(spec.folder.glob("run-*.wandb"))
    by_prefix = fetch_runs(f"offline:{sdk_runs.root}")
    assert sorted(r.id for r in by_prefix) == sorted(s.id for s in sdk_runs.runs.values())
    (one,) = fetch_runs(log_file)
    assert one.id == spec.id and one.path == spec.folder.resolve()
    sub = history(one, ["val_loss", "kl.prefix_2"])
    assert sub.columns.tolist() == ["_step", "val_loss", "kl.prefix_2"] and len(sub) == N_STEPS
    assert sub["kl.prefix_2"].iloc[10] == spec.rows[10]["kl.prefix_2"]
    assert history(one) is one.history()
    with pytest.raises(InterplabError, match=r"unknown key 'nope' in run alpha"):
        history(one, ["nope"])
