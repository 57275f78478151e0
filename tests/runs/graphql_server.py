"""A small W&B server on 127.0.0.1 for the cloud tests: it answers the GraphQL queries that the
REAL ``wandb.Api`` client (and the ``wandb-core`` service it drives) sends, from in-memory runs.

Every request is recorded (operation name, query text, variables), so the tests can pin the
queries the installed wandb sends: an upgrade that changes them fails loudly.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote

_OP = re.compile(r"\b(query|mutation)\s+(\w+)")


@dataclass
class FakeRun:
    """One run as the server stores it (config in the server's ``{"value": …}`` form)."""

    name: str
    display_name: str
    state: str = "finished"
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    created_at: str = "2025-01-02T03:04:05"
    heartbeat_at: str = "2025-01-02T04:00:00"
    notes: str = ""
    group: str = ""
    job_type: str = ""

    def node(self, lazy: bool) -> dict[str, Any]:
        node: dict[str, Any] = {
            "id": f"UnVuOnYx{self.name}",
            "projectId": "1",
            "tags": self.tags,
            "name": self.name,
            "displayName": self.display_name,
            "sweepName": None,
            "state": self.state,
            "group": self.group,
            "jobType": self.job_type,
            "commit": None,
            "readOnly": False,
            "createdAt": self.created_at,
            "heartbeatAt": self.heartbeat_at,
            "description": self.notes,
            "notes": self.notes,
            "historyLineCount": len(self.rows),
            "user": {"name": "tester", "username": "tester"},
        }
        if not lazy:
            node["config"] = json.dumps(self.config)
            node["summaryMetrics"] = json.dumps(self.summary)
            node["systemMetrics"] = "{}"
            node["historyKeys"] = self.history_keys()
        return node

    def history_keys(self) -> dict[str, Any]:
        last = max((int(r["_step"]) for r in self.rows), default=-1)
        return {"lastStep": last, "keys": {}}


@dataclass
class Throttle:
    """Answer the next ``times`` requests of operation ``op`` with HTTP 429 and Retry-After."""

    op: str
    times: int
    retry_after: str = "0"


class WandbServer:
    """``with WandbServer(runs) as srv:`` serves ``runs`` at ``srv.url`` until the block ends."""

    def __init__(self, runs: list[FakeRun], entity: str = "ent", project: str = "proj") -> None:
        self.runs = runs
        self.entity = entity
        self.project = project
        self.requests: list[dict[str, Any]] = []
        self.throttles: list[Throttle] = []
        self.unknown: list[str] = []
        self.status_errors: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                server.record({"method": "GET", "path": self.path, "op": None})
                for run in server.runs:
                    prefix = f"/files/{run.name}/"
                    if self.path.startswith(prefix):
                        name = unquote(self.path[len(prefix) :].split("?")[0])
                        if name in run.files:
                            return self._send(200, run.files[name])
                self._send(404, b"{}")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path != "/graphql":
                    server.record({"method": "POST", "path": self.path, "op": None})
                    return self._send(200, b"{}")
                body = json.loads(raw)
                query = body.get("query", "")
                match = _OP.search(query)
                op = match.group(2) if match else "?"
                server.record(
                    {
                        "method": "POST",
                        "path": self.path,
                        "op": op,
                        "query": query,
                        "variables": body.get("variables"),
                    }
                )
                code = server.take_throttle(op)
                if code is not None:
                    return self._send(
                        429, b'{"errors": [{"message": "rate limited"}]}', {"Retry-After": code}
                    )
                status = server.take_status_error(op)
                if status is not None:
                    return self._send(status, b'{"errors": [{"message": "no run 500 in this project"}]}')
                data = server.answer(op, body.get("variables") or {})
                self._send(200, json.dumps({"data": data}).encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def __enter__(self) -> WandbServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def take_throttle(self, op: str) -> str | None:
        with self._lock:
            for t in self.throttles:
                if t.op == op and t.times > 0:
                    t.times -= 1
                    return t.retry_after
        return None

    def take_status_error(self, op: str) -> int | None:
        with self._lock:
            codes = self.status_errors.get(op)
            if codes:
                return codes.pop(0)
        return None

    def ops(self) -> list[str]:
        """Operation names of the GraphQL requests so far, in order."""
        with self._lock:
            return [r["op"] for r in self.requests if r.get("op")]

    def queries(self, op: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r.get("op") == op]

    def run(self, name: str) -> FakeRun | None:
        return next((r for r in self.runs if r.name == name), None)

    # --- answers -------------------------------------------------------------------------------
    def answer(self, op: str, v: dict[str, Any]) -> Any:
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            with self._lock:
                self.unknown.append(op)
            return {}
        return handler(v)

    def _op_Viewer(self, v: dict[str, Any]) -> Any:
        return {
            "viewer": {
                "id": "VXNlcjox",
                "entity": self.entity,
                "username": "tester",
                "email": "t@example.com",
                "flags": "{}",
                "teams": {"edges": []},
            }
        }

    def _op_GetDefaultEntity(self, v: dict[str, Any]) -> Any:
        return {"viewer": {"id": "VXNlcjox", "entity": self.entity}}

    def _op_Runs(self, v: dict[str, Any]) -> Any:
        """The runs listing: the server evaluates ``filters`` (here: only what the tests use),
        pages by ``perPage`` with the cursor being the index of the last run returned."""
        lazy = "LightweightRunFragment" in self.requests[-1]["query"]
        matching = [r for r in self.runs if matches(r, json.loads(v.get("filters") or "{}"))]
        start = int(v["cursor"]) + 1 if v.get("cursor") else 0
        per_page = int(v.get("perPage") or 50)
        page = matching[start : start + per_page]
        edges = [{"node": r.node(lazy), "cursor": str(start + i)} for i, r in enumerate(page)]
        return {
            "project": {
                "internalId": "UHJvamVjdDox",
                "runCount": len(matching),
                "readOnly": False,
                "runs": {
                    "edges": edges,
                    "pageInfo": {
                        "endCursor": edges[-1]["cursor"] if edges else None,
                        "hasNextPage": start + per_page < len(matching),
                    },
                },
            }
        }

    def _op_RunHistoryKeys(self, v: dict[str, Any]) -> Any:
        run = self.run(v["name"])
        return {"project": {"run": {"historyKeys": run.history_keys() if run else None}}}

    def _op_RunParquetHistory(self, v: dict[str, Any]) -> Any:
        run = self.run(v["runName"])
        live = [dict(r) for r in run.rows] if run else []
        return {"project": {"run": {"parquetHistory": {"parquetUrls": [], "liveData": live}}}}

    def _op_HistoryPage(self, v: dict[str, Any]) -> Any:
        """Rows with ``minStep <= _step < maxStep``, at most ``pageSize``, as JSON strings."""
        run = self.run(v["run"])
        rows = [r for r in (run.rows if run else []) if v["minStep"] <= r["_step"] < v["maxStep"]]
        return {"project": {"run": {"history": [dumps_row(r) for r in rows[: v["pageSize"]]]}}}

    def _op_RunFiles(self, v: dict[str, Any]) -> Any:
        run = self.run(v["name"])
        names = v.get("fileNames") or sorted(run.files if run else [])
        present = [n for n in names if run and n in run.files]
        edges = [
            {
                "node": {
                    "id": f"RmlsZTo{i}",
                    "name": n,
                    "url": f"{self.url}/files/{run.name}/{quote(n)}",
                    "directUrl": f"{self.url}/files/{run.name}/{quote(n)}",
                    "sizeBytes": len(run.files[n]),
                    "mimetype": "application/json",
                    "updatedAt": "2025-01-02T04:00:00",
                    "md5": "",
                },
                "cursor": str(i),
            }
            for i, n in enumerate(present)
            if run is not None
        ]
        return {
            "project": {
                "internalId": "UHJvamVjdDox",
                "run": {
                    "fileCount": len(edges),
                    "files": {"edges": edges, "pageInfo": {"endCursor": None, "hasNextPage": False}},
                }
                if run
                else None,
            }
        }


def matches(run: FakeRun, flt: dict[str, Any]) -> bool:
    """The filter subset the tests send: ``$and``, ``tags`` with ``$in``, ``config.<k>`` with
    ``$lt``/``$gt`` against the ``value`` of the stored config."""
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(run, sub) for sub in cond):
                return False
        elif key == "tags":
            if not set(cond["$in"]) & set(run.tags):
                return False
        elif key.startswith("config."):
            entry = run.config.get(key.split(".", 1)[1].removesuffix(".value"))
            value = entry.get("value") if isinstance(entry, dict) else entry
            for op, ref in cond.items():
                if value is None or not {"$lt": value < ref, "$gt": value > ref}[op]:
                    return False
        else:
            raise AssertionError(f"filter field {key!r} not served by the test server")
    return True


def dumps_row(row: dict[str, Any]) -> str:
    """A history row as the server sends it: JSON with NaN/Infinity allowed."""
    return json.dumps(row, allow_nan=True)
