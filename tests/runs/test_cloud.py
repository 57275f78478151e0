"""The cloud source against the REAL ``wandb.Api`` client (and the ``wandb-core`` service it
drives), talking HTTP to a small W&B server on 127.0.0.1 (``tests/runs/graphql_server.py``).

The GraphQL queries the client sends are pinned in ``wandb_queries.json`` (recorded with the
installed wandb); a wandb upgrade that changes them fails here. Re-record after checking the new
queries with ``INTERPLAB_RECORD_WANDB_QUERIES=1``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from interplab.common.errors import InterplabError
from interplab.runs import fetch_runs, get_runs_data, get_table
from interplab.runs.cloud import http_status, with_backoff
from tests.runs.graphql_server import FakeRun, Throttle, WandbServer

QUERIES_FILE = Path(__file__).with_name("wandb_queries.json")
ATTN = "eval/attn weights"  # W&B sanitises such keys in artifact names; the row names the file


def _table_row(
    step: int, key: str, path: str, kind: str = "table-file", inc: int | None = None
) -> dict[str, Any]:
    value: dict[str, Any] = {"_type": kind, "path": path, "sha256": f"{step:064x}", "ncols": 2}
    if inc is not None:
        value["increment_num"] = inc
    node: dict[str, Any] = {"_step": step}
    parts = key.split(".")
    target = node
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return node


def _table_json(rows: list[list[Any]]) -> bytes:
    return json.dumps({"columns": ["head", "weight"], "data": rows}).encode()


def make_runs(n_extra: int = 0) -> list[FakeRun]:
    rows = [{"_step": s, "loss": 1.0 / (s + 1), "_runtime": 0.1 * s} for s in range(2500)]
    rows[7]["flag"] = True
    alpha = FakeRun(
        name="r1",
        display_name="alpha",
        tags=["icl", "seed0"],
        config={
            "lr": {"value": 0.1, "desc": None},
            "model": {"value": {"init": 0.01}, "desc": None},
            "wrapper": {"value": {"value": 3}, "desc": None},  # a user value that is itself {"value": …}
            "_wandb": {"value": {"cli_version": "0.31.0"}, "desc": None},
        },
        summary={"loss": 0.0004, "_step": 2499},
        rows=rows,
        notes="first try",
    )
    beta = FakeRun(
        name="r2",
        display_name="beta",
        tags=["icl"],
        state="crashed",
        config={"lr": {"value": 0.2, "desc": None}},
        summary={},
        rows=[{"_step": 0, "loss": 3.0}],
        created_at="2025-01-03T00:00:00",
    )
    attn = [f"media/table/eval/attn weights_{s}_{s:04x}.table.json" for s in (10, 20)]
    heads = "media/table/probe/heads_20_beef.table.json"
    preds = [f"media/table/preds_{s}_{s:04x}.table.json" for s in (10, 20)]
    gamma = FakeRun(
        name="r3",
        display_name="gamma",
        tags=["tables"],
        config={"lr": {"value": 0.3, "desc": None}},
        rows=[
            {"_step": 0, "loss": 1.0},
            {
                **_table_row(10, ATTN, attn[0]),
                **_table_row(10, "preds", preds[0], "incremental-table-file", 0),
            },
            {
                **_table_row(20, ATTN, attn[1]),
                **_table_row(20, "probe.heads", heads),
                **_table_row(20, "preds", preds[1], "incremental-table-file", 1),
            },
        ],
        files={
            attn[0]: _table_json([[0, 0.5]]),
            attn[1]: _table_json([[1, 0.25]]),
            heads: _table_json([[7, 0.75]]),
            preds[0]: _table_json([[0, 1.0], [1, 2.0]]),
            preds[1]: _table_json([[2, 3.0]]),
        },
        created_at="2025-01-04T00:00:00",
    )
    extra = [
        FakeRun(
            name=f"x{i:02d}",
            display_name=f"extra{i}",
            tags=["bulk"],
            rows=[{"_step": 0, "loss": float(i)}],
            created_at=f"2025-02-{i % 28 + 1:02d}T00:00:00",
        )
        for i in range(n_extra)
    ]
    return [alpha, beta, gamma, *extra]


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The test server with its runs; the wandb client pointed at it with a dummy API key."""
    with WandbServer(make_runs()) as srv:
        monkeypatch.setenv("WANDB_BASE_URL", srv.url)
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
        monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
        monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
        monkeypatch.setenv("WANDB_SILENT", "true")
        yield srv
        assert srv.unknown == [], f"the client sent queries the test server does not know: {srv.unknown}"


def _api() -> Any:
    import wandb

    return wandb.Api(timeout=20)


def test_listing_filters_go_to_the_server_with_full_runs(server: WandbServer) -> None:
    runs = fetch_runs("wandb:ent/proj", tags_any=["icl"], extra_filters={"config.lr": {"$lt": 0.15}})
    (listing,) = server.queries("Runs")
    variables = listing["variables"]
    assert json.loads(variables["filters"]) == {
        "$and": [{"tags": {"$in": ["icl"]}}, {"config.lr": {"$lt": 0.15}}]
    }
    assert (variables["entity"], variables["project"]) == ("ent", "proj")
    # full runs in the listing: config and summary come with it, no request per run afterwards
    assert "...RunFragment" in listing["query"] and "LightweightRunFragment" not in listing["query"]
    assert "Run" not in server.ops()
    (r1,) = runs
    assert (r1.id, r1.name, r1.tags, r1.state, r1.notes) == (
        "r1",
        "alpha",
        ["icl", "seed0"],
        "finished",
        "first try",
    )
    # the client takes "value" out once; a user value that is itself {"value": 3} stays
    assert r1.config == {"lr": 0.1, "model": {"init": 0.01}, "wrapper": {"value": 3}}
    assert r1.summary == {"loss": 0.0004, "_step": 2499}
    assert (r1.entity, r1.project, r1.source) == ("ent", "proj", "wandb:ent/proj")
    assert r1.created_at is not None and r1.created_at.year == 2025
    with pytest.raises(InterplabError, match="expected wandb:ENTITY/PROJECT"):
        fetch_runs("wandb:just-an-entity")


def test_pagination_and_full_history_pages(server: WandbServer, runs_cache_dir: Path) -> None:
    server.runs.extend(make_runs(n_extra=55)[3:])  # 58 runs: two pages of 50
    runs = fetch_runs("wandb:ent/proj")
    assert len(runs) == 58
    cursors = [q["variables"]["cursor"] for q in server.queries("Runs")]
    assert cursors == [None, "49"]
    alpha = next(r for r in runs if r.id == "r1")
    pages = [q["variables"] for q in server.queries("HistoryPage") if q["variables"]["run"] == "r1"]
    assert [(p["minStep"], p["maxStep"]) for p in pages] == [(0, 1000), (1000, 2000), (2000, 2500)]
    df = get_runs_data([alpha], ["loss"])
    assert df["_step"].tolist() == list(range(2500))  # every row, no sampling
    assert df["loss"].tolist() == [1.0 / (s + 1) for s in range(2500)]
    assert df["cfg.model.init"].iloc[0] == 0.01
    # a second session with the run unchanged reads the Parquet cache: no history request
    n_pages = len(server.queries("HistoryPage"))
    again = fetch_runs("wandb:ent/proj", tags_any=["seed0"])
    pd.testing.assert_frame_equal(again[0].history(), alpha.history())
    assert len(server.queries("HistoryPage")) == n_pages
    # the run moved on → fetched again
    server.run("r1").heartbeat_at = "2025-01-02T05:00:00"
    fetch_runs("wandb:ent/proj", tags_any=["seed0"])
    assert len(server.queries("HistoryPage")) == n_pages + 3


def test_tables_come_from_the_file_the_history_row_names(server: WandbServer) -> None:
    (r3,) = fetch_runs("wandb:ent/proj", tags_any=["tables"])
    assert get_table(r3, ATTN, step=10).values.tolist() == [[0, 0.5]]
    assert get_table(r3, ATTN).values.tolist() == [[1, 0.25]]
    assert get_table(r3, "probe.heads").values.tolist() == [[7, 0.75]]  # a table inside a nested dict
    assert get_table(r3, "preds", step=10).values.tolist() == [[0, 1.0], [1, 2.0]]
    assert get_table(r3, "preds").values.tolist() == [[0, 1.0], [1, 2.0], [2, 3.0]]  # increments joined
    asked = [name for q in server.queries("RunFiles") for name in q["variables"]["fileNames"]]
    assert "media/table/eval/attn weights_10_000a.table.json" in asked
    assert "media/table/probe/heads_20_beef.table.json" in asked
    assert not [op for op in server.ops() if "rtifact" in op]
    with pytest.raises(InterplabError, match="steps: 10, 20"):
        get_table(r3, ATTN, step=15)


def test_rate_limit_with_retry_after_is_waited_out(server: WandbServer) -> None:
    server.throttles += [Throttle("Runs", 2, retry_after="1"), Throttle("HistoryPage", 1, retry_after="1")]
    t0 = time.monotonic()
    runs = fetch_runs("wandb:ent/proj", tags_any=["seed0"])
    elapsed = time.monotonic() - t0
    assert [r.id for r in runs] == ["r1"] and len(runs[0].history()) == 2500
    assert len(server.queries("Runs")) == 3  # two 429s, then the answer
    assert elapsed >= 2.5  # Retry-After: 1 s honoured three times


def test_reused_api_gives_a_fresh_listing(server: WandbServer) -> None:
    api = _api()
    first = fetch_runs("wandb:ent/proj", tags_any=["icl"], api=api)
    assert sorted(r.id for r in first) == ["r1", "r2"]
    server.run("r2").state = "finished"
    server.runs.append(
        FakeRun(name="r9", display_name="late", tags=["icl"], rows=[{"_step": 0, "loss": 1.0}])
    )
    second = fetch_runs("wandb:ent/proj", tags_any=["icl"], api=api)
    assert sorted(r.id for r in second) == ["r1", "r2", "r9"]
    assert next(r for r in second if r.id == "r2").state == "finished"


def test_only_retryable_http_statuses_are_retried(server: WandbServer) -> None:
    # a 404 whose message mentions 500 is not retried (the status decides, not the text)
    server.status_errors["Runs"] = [404]
    delays: list[float] = []
    api = _api()
    with pytest.raises(Exception) as err:
        with_backoff(lambda: list(api.runs("ent/proj", lazy=False)), "runs", sleep=delays.append)
    assert http_status(err.value) == 404 and "500" in str(err.value)
    assert delays == [] and len(server.queries("Runs")) == 1

    def http_error(code: int, retry_after: str | None = None) -> requests.HTTPError:
        response = requests.Response()
        response.status_code = code
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return requests.HTTPError(f"HTTP {code}", response=response)

    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise http_error(503 if calls["n"] == 1 else 429, retry_after="7")
        return "ok"

    assert with_backoff(flaky, "x", sleep=delays.append) == "ok"
    assert delays == [7.0, 7.0]  # Retry-After wins over 1 s, 2 s
    delays.clear()

    def always_429() -> None:
        raise http_error(429)

    with pytest.raises(requests.HTTPError):
        with_backoff(always_429, "x", retries=3, sleep=delays.append)
    assert delays == [1.0, 2.0, 4.0]
    delays.clear()

    def text_only() -> None:
        raise RuntimeError("HTTP 500 somewhere in a message")

    with pytest.raises(RuntimeError):
        with_backoff(text_only, "x", sleep=delays.append)
    assert delays == []


def _normalize(query: str) -> str:
    return re.sub(r"\s+", " ", query).strip()


def test_the_queries_the_client_sends_are_the_recorded_ones(server: WandbServer) -> None:
    import wandb

    runs = fetch_runs("wandb:ent/proj", tags_any=["tables"])
    get_table(runs[0], ATTN)
    sent: dict[str, str] = {}
    for q in server.requests:
        if q.get("op"):
            sent.setdefault(q["op"], _normalize(q["query"]))
    if os.environ.get("INTERPLAB_RECORD_WANDB_QUERIES"):
        QUERIES_FILE.write_text(json.dumps({"wandb": wandb.__version__, "queries": sent}, indent=1) + "\n")
    recorded = json.loads(QUERIES_FILE.read_text())
    assert set(sent) == set(recorded["queries"]), (
        f"wandb {wandb.__version__} sends other queries than wandb {recorded['wandb']} did: "
        f"{sorted(set(sent) ^ set(recorded['queries']))}"
    )
    for op, text in sent.items():
        assert text == recorded["queries"][op], f"query {op} changed since wandb {recorded['wandb']}"
