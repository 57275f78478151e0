"""Sharded collection: the shard plan equals the one-process cuts, `--shard i/N` + merge equals a
one-process `sae analyze` (rows, integers, floats to 1e-6, top and quantile examples), missing shards
are named and refilled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from analyze_support import ANALYSIS_OPTIONS, CONTEXT, HOOK, LAYER, STAT_SECTIONS, load_db

from interplab.common.errors import InterplabError
from interplab.sae.launch import CollectConfig, run_collect
from interplab.sae.layout import ABLATION_UNIT
from interplab.sae.merge import ANALYSIS_ONLY, run_merge
from interplab.sae.shards import assigned, parse_shard_arg, plan_shards

BATCH = 4


def collect_cfg(setup, out: Path, **kw) -> CollectConfig:
    options = {
        "sae": str(setup.sae),
        "out": str(out),
        "model": str(setup.model),
        "layer": LAYER,
        "hook": HOOK,
        "data": str(setup.data),
        "batch_size": BATCH,
        "context_size": CONTEXT,
        "top_k": ANALYSIS_OPTIONS["top_k"],
        "shard_tokens": ANALYSIS_OPTIONS["shard_tokens"],
        "ablation_tokens": ANALYSIS_OPTIONS["ablation_tokens"],
        "ablation_features": ANALYSIS_OPTIONS["ablation_features"],
    }
    return CollectConfig(**{**options, **kw})


MERGE_OPTIONS = {k: v for k, v in ANALYSIS_OPTIONS.items() if k in ANALYSIS_ONLY}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


ALL_MATRICES = ("cooccurrence_counts", "cooccurrence", "cooccurrence_jaccard", "similarity_topk_indices")


def _strip(examples: list[dict], keys) -> list[dict]:
    return examples if keys is None else [{k: e.get(k) for k in keys} for e in examples]


def assert_same_analysis(a, b, sections=STAT_SECTIONS, matrices=ALL_MATRICES, example_keys=None) -> None:
    """Two analysis results agree: rows, integers exactly, floats to 1e-6 relative, examples."""
    db_a, db_b = load_db(a.out / "activation_database"), load_db(b.out / "activation_database")
    for x, y in zip(db_a, db_b, strict=True):
        pd.testing.assert_frame_equal(x, y)
    ra, rb = a.results, b.results
    for key in sections:
        _close(ra[key], rb[key], key)
    for key in matrices:
        x, y = np.load(a.out / a.files[key]), np.load(b.out / b.files[key])
        if x.dtype.kind in "iu":
            np.testing.assert_array_equal(x, y, err_msg=key)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-12, err_msg=key)
    sa, sb = _jsonl(a.out / a.files["feature_summaries"]), _jsonl(b.out / b.files["feature_summaries"])
    for x, y in zip(sa, sb, strict=True):
        for key in ("top_examples", "quantile_examples"):
            assert _strip(x[key], example_keys) == _strip(y[key], example_keys), (key, x["feature"])
        assert x["n_fires"] == y["n_fires"]


def _close(x, y, where: str) -> None:
    if isinstance(x, dict):
        assert set(x) == set(y), where
        for k in x:
            _close(x[k], y[k], f"{where}.{k}")
    elif isinstance(x, list):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            _close(u, v, f"{where}[{i}]")
    elif (
        isinstance(x, bool) or (isinstance(x, int) and isinstance(y, int)) or x is None or isinstance(x, str)
    ):
        assert x == y, where
    else:
        assert x == pytest.approx(y, rel=1e-6, abs=1e-12, nan_ok=True), where


def test_plan_equals_the_one_process_cuts(sae_analysis) -> None:
    from interplab.common.models import load_model
    from interplab.sae.corpus import load_windows
    from interplab.sae.shards import window_token_counts

    manifest = json.loads((sae_analysis.db / "manifest.json").read_text())
    loaded = load_model(str(sae_analysis.model))
    w = load_windows(loaded.tokenizer, str(sae_analysis.data), context_size=CONTEXT)
    specs = plan_shards(window_token_counts(w.positions), BATCH, ANALYSIS_OPTIONS["shard_tokens"])
    got = [(s.window_start, s.window_end, s.token_start, s.token_end) for s in specs]
    want = [
        (s["window_start"], s["window_end"], s["token_start"], s["token_end"]) for s in manifest["shards"]
    ]
    assert got == want and len(got) >= 3


def test_plan_by_hand() -> None:
    # batches of 2 windows: tokens 3+3 | 3+1 | 5 → cut when a shard reaches 6 tokens
    specs = plan_shards([3, 3, 3, 1, 5], batch_size=2, shard_tokens=6)
    assert [(s.window_start, s.window_end, s.token_start, s.token_end) for s in specs] == [
        (0, 2, 0, 6),
        (2, 5, 6, 15),
    ]
    assert [s.index for s in assigned(plan_shards([1] * 10, 1, 1), 1, 3)] == [1, 4, 7]
    assert plan_shards([], 2, 6)[0].n_tokens == 0


@pytest.mark.parametrize("bad", ["3/2", "-1/4", "a/b", "2/2", "1/0", "1"])
def test_bad_shard_argument(bad: str) -> None:
    with pytest.raises(InterplabError, match=r"^--shard: .*" + repr(bad).replace("/", "/")[1:-1]):
        parse_shard_arg(bad)
    assert parse_shard_arg(" 2/3 ") == (2, 3)


def _no_forward(*args, **kwargs):
    raise AssertionError("the merge ran model forward passes")


@pytest.mark.slow
def test_shards_then_merge_equal_one_process_analyze(sae_analysis, tmp_path, monkeypatch) -> None:
    out = tmp_path / "sharded"
    for i in range(3):
        r = run_collect(collect_cfg(sae_analysis, out, shard=f"{i}/3"))
        assert r.analysis is None
    assert r.missing == [] and r.n_shards >= 3
    unit = out / "activation_database" / ABLATION_UNIT
    assert unit.exists()  # computed by the worker that found every shard complete
    stored = json.loads(unit.read_text())
    for key in ("ablation", "feature_ablation"):
        _close(stored[key], sae_analysis.result.results[key], key)
    # the merge takes the stored units: no forward pass (both entry points fail if called), and it
    # neither loads the model's weights nor tokenises the corpus (the plan is in the manifest)
    monkeypatch.setattr("interplab.sae.analyzer.ablation_on_subset", _no_forward)
    monkeypatch.setattr("interplab.sae.merge.ablation_on_subset", _no_forward)
    monkeypatch.setattr("interplab.sae.analyzer.load_model", _no_forward)
    monkeypatch.setattr("interplab.sae.analyzer.load_windows", _no_forward)
    merged = run_merge(out, **MERGE_OPTIONS)
    assert_same_analysis(merged, sae_analysis.result)
    for key in ("data", "model"):
        assert merged.results[key] == sae_analysis.result.results[key], key
    one = _jsonl(sae_analysis.out / sae_analysis.result.files["feature_summaries"])
    many = _jsonl(out / merged.files["feature_summaries"])
    assert any(r["logit_effects"] for r in one)  # the tiny GPT-2 has an unembedding
    for x, y in zip(one, many, strict=True):
        _close(x["logit_effects"], y["logit_effects"], f"logit_effects of {x['feature']}")
    # a missing unit is named by the merge; a rerun of any worker computes only it
    unit.unlink()
    with pytest.raises(
        InterplabError, match=r"ablation unit \(units/ablation\.json\) is missing.*sae collect"
    ):
        run_merge(out, **MERGE_OPTIONS)
    monkeypatch.undo()
    again = run_collect(collect_cfg(sae_analysis, out, shard="1/3"))
    assert again.collected == [] and unit.exists()
    _close(json.loads(unit.read_text())["ablation"], sae_analysis.result.results["ablation"], "ablation")
    # every quantile example lies in its quantile's bin and there are several per quantile
    recs = _jsonl(out / merged.files["feature_summaries"])
    n_per_q = [
        sum(e["quantile"] == q for e in r["quantile_examples"])
        for r in recs
        if r["n_fires"] > 50
        for q in (0.5,)
    ]
    assert max(n_per_q) == 5


@pytest.mark.slow
def test_missing_shard_is_named_then_filled_by_a_rerun(sae_analysis, tmp_path) -> None:
    out = tmp_path / "partial"
    run_collect(collect_cfg(sae_analysis, out, shard="0/2"))
    with pytest.raises(InterplabError) as err:
        run_merge(out, **MERGE_OPTIONS)
    msg = str(err.value)
    assert "\n" not in msg and "shards are missing (ids 1, 3" in msg and "interplab sae collect" in msg
    partial = run_merge(out, allow_partial=True, **MERGE_OPTIONS)
    ranges = partial.results["collection"]["missing_token_ranges"]
    assert (
        ranges
        and partial.results["sparsity"]["n_tokens"] + sum(b - a for a, b in ranges)
        == (sae_analysis.result.results["sparsity"]["n_tokens"])
    )
    # `sae analyze` on the folder fills the missing shards in-process, then merges
    from analyze_support import run_analysis

    full = run_analysis(sae_analysis.model, sae_analysis.sae, sae_analysis.data, out)
    assert full.results["collection"]["missing_token_ranges"] == []
    assert_same_analysis(full, sae_analysis.result)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli_args(setup, out: Path) -> list[str]:
    return [
        "--sae", str(setup.sae), "--out", str(out), "--model", str(setup.model), "--layer", str(LAYER),
        "--hook", HOOK, "--data", str(setup.data), "--batch-size", str(BATCH), "--context-size", str(CONTEXT),
        "--top-k", str(ANALYSIS_OPTIONS["top_k"]), "--shard-tokens", str(ANALYSIS_OPTIONS["shard_tokens"]),
        "--ablation-tokens", str(ANALYSIS_OPTIONS["ablation_tokens"]),
        "--ablation-features", str(ANALYSIS_OPTIONS["ablation_features"]),
    ]  # fmt: skip


def _read_result(out: Path):
    from interplab.sae.analyzer import AnalysisResult

    summary = json.loads(next(out.glob("SUMMARY_*.json")).read_text())
    results = json.loads((out / summary["files"]["analysis_results"]).read_text())
    return AnalysisResult(out=out, timestamp="", files=summary["files"], summary=summary, results=results)


COLLECTION_SECTIONS = ("sparsity", "dead_features", "reconstruction", "feature_stats")


@pytest.mark.slow
def test_torchrun_two_ranks_gloo_equal_one_process(sae_analysis, tmp_path) -> None:
    """`torchrun --nproc-per-node 2 -m interplab sae collect …`: rank r takes shards r, r+2, …, rank 0
    merges after the barrier; the result equals the one-process analysis."""
    import os
    import subprocess
    import sys

    out = tmp_path / "torchrun"
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    cmd = [
        *launcher, "--nnodes", "1", "--nproc-per-node", "2", "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "-m", "interplab", "sae", "collect",
        *_cli_args(sae_analysis, out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INTERPLAB_PROGRESS": "0"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list((out / "activation_database" / "shards").glob("*.json"))) >= 3
    assert_same_analysis(
        _read_result(out),
        sae_analysis.result,
        COLLECTION_SECTIONS,
        ("cooccurrence_counts", "cooccurrence"),
        example_keys=("activation", "token_idx", "token_id", "text_idx", "position", "quantile"),
    )


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_backend_equal_one_process(sae_analysis, tmp_path, local_ray) -> None:
    """`--backend ray --workers 2` on a local Ray instance: an actor pool collects every shard; the
    merged analysis equals the one-process one; a rerun has nothing left to collect."""
    out = tmp_path / "ray"
    r = run_collect(collect_cfg(sae_analysis, out, backend="ray", workers=2, merge=False))
    assert r.missing == [] and sorted(r.collected) == list(range(r.n_shards))
    assert_same_analysis(run_merge(out, **MERGE_OPTIONS), sae_analysis.result)
    again = run_collect(collect_cfg(sae_analysis, out, backend="ray", workers=2, merge=False))
    assert again.collected == [] and len(again.skipped) == r.n_shards


def test_unreachable_ray_address_is_one_line(sae_analysis, tmp_path) -> None:
    pytest.importorskip("ray")
    from interplab.sae.ray_backend import connect

    port = _free_port()  # nothing listens there
    with pytest.raises(
        InterplabError, match=rf"^--ray-address 127.0.0.1:{port}: no Ray cluster answers there"
    ):
        connect(f"127.0.0.1:{port}")


@pytest.mark.slow
def test_killed_worker_is_detected_by_merge_and_refilled(sae_analysis, tiny_texts, tmp_path) -> None:
    """A `sae collect` process SIGKILLed after its first shard leaves complete shards only; merge
    names the missing ones; a rerun collects exactly those, and the database then equals an
    uninterrupted run's (rows and every partial array)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from interplab.sae.partials import load_partial

    data = tmp_path / "many.json"
    data.write_text(json.dumps(tiny_texts * 12))
    setup = type(sae_analysis)(sae_analysis.model, sae_analysis.sae, data, tmp_path, None)
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INTERPLAB_PROGRESS": "0"}
    args = _cli_args(setup, out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "interplab", "sae", "collect", *args, "--shard", "0/1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = out / "activation_database" / "shards" / "part-00000.json"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    db = out / "activation_database"
    done = sorted(int(p.stem.split("-")[1]) for p in (db / "shards").glob("*.json"))
    n_shards = json.loads((db / "manifest.json").read_text())["plan"]["n_shards"]
    missing = sorted(set(range(n_shards)) - set(done))
    assert done and missing, (done, n_shards)
    with pytest.raises(InterplabError, match=rf"shards are missing \(ids {', '.join(map(str, missing[:3]))}"):
        run_merge(out)
    refill = run_collect(collect_cfg(setup, out, merge=False))
    assert refill.collected == missing and refill.skipped == done
    clean = tmp_path / "clean"
    run_collect(collect_cfg(setup, clean, merge=False))
    for x, y in zip(load_db(db), load_db(clean / "activation_database"), strict=True):
        pd.testing.assert_frame_equal(x, y)
    for i in range(n_shards):
        a = load_partial(db / "partials" / f"part-{i:05d}.npz")
        b = load_partial(clean / "activation_database" / "partials" / f"part-{i:05d}.npz")
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert not list(db.rglob("*.tmp")) and not list(db.rglob(".*"))


def test_a_worker_with_other_settings_is_refused_naming_the_field(sae_analysis, tmp_path) -> None:
    out = tmp_path / "mixed"
    run_collect(collect_cfg(sae_analysis, out, shard="0/2"))
    with pytest.raises(InterplabError, match=r"differs in: plan\.top_k\); use another --out"):
        run_collect(collect_cfg(sae_analysis, out, shard="1/2", top_k=3))
    with pytest.raises(InterplabError, match=r"differs in: context_size, tokens_sha256, plan\.digest\)"):
        run_collect(collect_cfg(sae_analysis, out, shard="1/2", context_size=CONTEXT // 2))
    # a record from another configuration slipped in: merge names the field and the record
    rec = out / "activation_database" / "shards" / "part-00000.json"
    data = json.loads(rec.read_text())
    data["fingerprint"]["hook"] = "blocks.1.hook_resid_post"
    rec.write_text(json.dumps(data))
    with pytest.raises(
        InterplabError, match=r"shard 0 was collected with a different configuration \(differs in: hook\)"
    ):
        run_merge(out, allow_partial=True)
    assert not list((out / "activation_database" / "shards").glob("part-00001*"))


@pytest.mark.parametrize("bad", ["3/2", "-1/4", "a/b"])
def test_cli_bad_shard_is_one_line_exit_2(bad: str, tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "INTERPLAB_PROGRESS": "0"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "interplab",
            "sae",
            "collect",
            "--sae",
            "x",
            "--out",
            str(tmp_path / "o"),
            "--shard",
            bad,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --shard: ") and lines[0].endswith(f"got '{bad}'")
    assert not (tmp_path / "o").exists()


def test_disk_full_in_a_worker_keeps_its_finished_shards(sae_analysis, tmp_path, monkeypatch) -> None:
    """ENOSPC while writing shard 1's partial: one line naming the shard; shard 0 stays complete,
    shard 1 has no record (its Parquet files are not listed anywhere); a rerun fills the rest."""
    import interplab.sae.shard_worker as worker

    real = worker.save_partial

    def disk_full_on_shard_1(path, arrays):
        if path.name == "part-00001.npz":
            raise OSError(28, "No space left on device")
        real(path, arrays)

    out = tmp_path / "full"
    monkeypatch.setattr(worker, "save_partial", disk_full_on_shard_1)
    with pytest.raises(
        InterplabError,
        match=r"writing shard 1 failed .*No space left.*1 shards finished by this worker are kept",
    ):
        run_collect(collect_cfg(sae_analysis, out, merge=False))
    db = out / "activation_database"
    assert sorted(p.name for p in (db / "shards").iterdir()) == ["part-00000.json"]
    assert not list(db.rglob("*.tmp")) and not [p for p in db.rglob(".*") if p.is_file()]
    monkeypatch.setattr(worker, "save_partial", real)
    again = run_collect(collect_cfg(sae_analysis, out, merge=False))
    assert again.skipped == [0] and again.collected == list(range(1, again.n_shards)) and again.missing == []


@pytest.mark.slow
def test_merge_checks_the_stored_plan_and_the_sae(sae_analysis, tmp_path) -> None:
    """The merge takes the plan from the manifest (a table that does not hash to the plan's digest is
    refused), falls back to recomputing it for manifests without one, and refuses an SAE whose
    weights changed since collection, naming the field."""
    import shutil

    from analyze_support import write_sae

    sae = write_sae(tmp_path / "sae")
    out = tmp_path / "db"
    run_collect(collect_cfg(sae_analysis, out, sae=str(sae), shard="0/1"))
    manifest_path = out / "activation_database" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    n_tokens = manifest["n_tokens"]
    assert manifest["plan"]["table"][-1][3] == n_tokens and manifest["corpus"]["n_tokens"] == n_tokens

    tampered = json.loads(json.dumps(manifest))
    tampered["plan"]["table"][0][1] += 1
    manifest_path.write_text(json.dumps(tampered))
    with pytest.raises(InterplabError, match=r"plan\.table does not match plan\.params\.digest"):
        run_merge(out, **MERGE_OPTIONS)

    older = {k: v for k, v in manifest.items() if k != "corpus"}  # as written before the table
    older["plan"] = {k: v for k, v in manifest["plan"].items() if k != "table"}
    manifest_path.write_text(json.dumps(older))
    fallback = run_merge(out, **MERGE_OPTIONS)
    assert fallback.results["sparsity"]["n_tokens"] == n_tokens
    assert fallback.results["data"]["n_tokens"] == n_tokens

    shutil.rmtree(sae)
    write_sae(sae, seed=1)
    with pytest.raises(InterplabError, match=r"changed since collection \(differs in: sae_W_dec_sha256"):
        run_merge(out, **MERGE_OPTIONS)

    shutil.rmtree(sae)
    write_sae(sae)  # the collected SAE again
    record = out / "activation_database" / "shards" / "part-00000.json"
    record.write_text('{"index": 0,')
    with pytest.raises(
        InterplabError, match=r"part-00000\.json: malformed JSON at line 1.*delete it to recollect"
    ):
        run_merge(out, **MERGE_OPTIONS)
