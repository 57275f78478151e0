"""The cloud layer driven through a small in-memory stand-in for the W&B server (no network).

Only the network boundary is replaced: an object with the ``wandb.Api`` methods we call
(``runs``, ``artifact``) whose runs answer ``scan_history``. Filter pass-through, config
unwrapping, history at full resolution, the Parquet cache keyed by last update, back-off on
HTTP 429 and table versions are all checked against hand-worked expectations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest

from interplab.common.errors import InterplabError
from interplab.runs import fetch_runs, get_runs_data, get_table
from interplab.runs.cloud import table_versions, with_backoff


class HTTPError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"HTTP {code}")
        self.response = type("R", (), {"status_code": code})()


@dataclass
class ServerRun:
    id: str
    name: str
    tags: list[str]
    state: str
    config: dict[str, Any]
    summary_metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    _attrs: dict[str, Any]
    created_at: str = "2025-01-02T03:04:05Z"
    scans: int = 0
    fail_first: int = 0

    def scan_history(self, page_size: int = 1000) -> list[dict[str, Any]]:
        self.scans += 1
        if self.fail_first:
            self.fail_first -= 1
            raise HTTPError(429)
        return [dict(r) for r in self.rows]


@dataclass
class Table:
    columns: list[str]
    data: list[list[Any]]


@dataclass
class Artifact:
    tables: dict[str, Table]

    def get(self, name: str) -> Table | None:
        return self.tables.get(name)


@dataclass
class Server:
    runs_list: list[ServerRun]
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def runs(self, path: str, filters: dict[str, Any] | None = None) -> list[ServerRun]:
        self.calls.append((path, filters))
        return list(self.runs_list)

    def artifact(self, name: str) -> Artifact:
        self.calls.append(("artifact", name))
        if name not in self.artifacts:
            raise ValueError(f"artifact {name} not found")
        return self.artifacts[name]


def _table_row(step: int, sha: str) -> dict[str, Any]:
    return {
        "_step": step,
        "val_attention_weights": {
            "_type": "table-file",
            "path": f"media/table/t_{step}_{sha}.table.json",
            "sha256": sha,
        },
    }


def make_server() -> Server:
    rows = [{"_step": s, "loss": 1.0 / (s + 1), "_runtime": 0.1 * s} for s in range(50)]
    rows[7]["loss"] = math.nan
    rows += [_table_row(50, "aaa"), _table_row(60, "aaa"), _table_row(70, "bbb")]
    run = ServerRun(
        id="r1",
        name="alpha",
        tags=["icl", "seed0"],
        state="finished",
        config={
            "lr": {"value": 0.1, "desc": None},
            "model": {"value": {"init": 0.01}},
            "_wandb": {"value": {}},
        },
        summary_metrics={"loss": 0.02},
        rows=rows,
        _attrs={"heartbeatAt": "2025-01-02T04:00:00", "historyLineCount": 53},
    )
    other = ServerRun(
        id="r2",
        name="beta",
        tags=["icl"],
        state="crashed",
        config={"lr": 0.2},
        summary_metrics={},
        rows=[{"_step": 0, "loss": 3.0}],
        _attrs={"heartbeatAt": "x"},
    )
    server = Server([run, other])
    server.artifacts["ent/proj/run-r1-val_attention_weights:v0"] = Artifact(
        {"val_attention_weights": Table(["head", "query_idx", "key_idx", "weight"], [[0, 1, 0, 0.5]])}
    )
    server.artifacts["ent/proj/run-r1-val_attention_weights:v1"] = Artifact(
        {"val_attention_weights": Table(["head", "query_idx", "key_idx", "weight"], [[1, 1, 1, 0.25]])}
    )
    return server


def test_filters_go_to_the_server_and_runs_come_back_unwrapped() -> None:
    server = make_server()
    runs = fetch_runs(
        "wandb:ent/proj", tags_any=["icl"], extra_filters={"config.lr": {"$lt": 0.15}}, api=server
    )
    assert server.calls[0] == (
        "ent/proj",
        {"$and": [{"tags": {"$in": ["icl"]}}, {"config.lr": {"$lt": 0.15}}]},
    )
    r1 = runs[0]
    assert (r1.id, r1.name, r1.tags, r1.state) == ("r1", "alpha", ["icl", "seed0"], "finished")
    assert r1.config == {"lr": 0.1, "model": {"init": 0.01}}
    assert r1.summary == {"loss": 0.02}
    assert (r1.entity, r1.project, r1.source) == ("ent", "proj", "wandb:ent/proj")
    assert r1.created_at is not None and r1.created_at.year == 2025
    fetch_runs("wandb:ent/proj", api=server)
    assert server.calls[-1] == ("ent/proj", {})
    with pytest.raises(InterplabError, match=r"unknown filter operator '\$bogus'"):
        fetch_runs("wandb:ent/proj", extra_filters={"state": {"$bogus": 1}}, api=server)
    with pytest.raises(InterplabError, match="expected wandb:ENTITY/PROJECT"):
        fetch_runs("wandb:just-an-entity", api=server)


def test_full_history_and_cache_by_last_update(runs_cache_dir) -> None:
    server = make_server()
    runs = fetch_runs("wandb:ent/proj", api=server)
    assert [r.scans for r in server.runs_list] == [1, 1]
    df = get_runs_data(runs, ["loss"])
    alpha = df[df["_run_name"] == "alpha"]
    assert alpha["_step"].tolist() == list(range(50))  # every row, table rows have no loss
    assert math.isnan(alpha["loss"].iloc[7])  # a logged NaN keeps its row
    assert alpha["loss"].iloc[3] == 0.25
    assert alpha["cfg.model.init"].iloc[0] == 0.01
    # a second session: same last update → no history request
    server2 = make_server()
    runs2 = fetch_runs("wandb:ent/proj", api=server2)
    assert [r.scans for r in server2.runs_list] == [0, 0]
    pd.testing.assert_frame_equal(runs2[0].history(), runs[0].history())
    # the run moved on → fetched again
    server3 = make_server()
    server3.runs_list[0]._attrs["heartbeatAt"] = "2025-01-02T05:00:00"
    fetch_runs("wandb:ent/proj", api=server3)
    assert [r.scans for r in server3.runs_list] == [1, 0]


def test_rate_limit_backs_off_then_succeeds() -> None:
    server = make_server()
    server.runs_list[0].fail_first = 2
    import interplab.runs.cloud as cloud

    delays: list[float] = []
    original = cloud.with_backoff
    cloud.with_backoff = lambda call, what, **kw: original(call, what, sleep=delays.append, **kw)  # type: ignore[assignment]
    try:
        runs = fetch_runs("wandb:ent/proj", api=server)
    finally:
        cloud.with_backoff = original  # type: ignore[assignment]
    assert server.runs_list[0].scans == 3
    assert delays == [1.0, 2.0]
    assert len(runs[0].history()) == 53


def test_with_backoff_limits() -> None:
    delays: list[float] = []
    calls = {"n": 0}

    def always_429() -> None:
        calls["n"] += 1
        raise HTTPError(429)

    with pytest.raises(HTTPError):
        with_backoff(always_429, "x", retries=3, sleep=delays.append)
    assert calls["n"] == 4 and delays == [1.0, 2.0, 4.0]

    def not_found() -> None:
        raise HTTPError(404)

    delays.clear()
    with pytest.raises(HTTPError):
        with_backoff(not_found, "x", sleep=delays.append)
    assert delays == []  # only rate limits and server errors are retried


def test_table_from_artifact_version() -> None:
    assert table_versions(pd.DataFrame(), ["a", "a", "b", "b", "c"]) == [0, 0, 1, 1, 2]
    assert table_versions(pd.DataFrame(), [None, None]) == [0, 1]
    server = make_server()
    (r1, _) = fetch_runs("wandb:ent/proj", api=server)
    t60 = get_table(r1, "val_attention_weights", step=60)  # same content as step 50 → v0
    assert server.calls[-1] == ("artifact", "ent/proj/run-r1-val_attention_weights:v0")
    assert t60.values.tolist() == [[0, 1, 0, 0.5]]
    last = get_table(r1)
    assert server.calls[-1] == ("artifact", "ent/proj/run-r1-val_attention_weights:v1")
    assert last.columns.tolist() == ["head", "query_idx", "key_idx", "weight"]
    with pytest.raises(InterplabError, match=r"steps: 50, 60, 70"):
        get_table(r1, step=55)
