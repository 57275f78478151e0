"""The feature-browser web server: read-only routes over one analysis folder (stdlib ``http.server``).

Routing is a plain function of (method, raw path) → :class:`Response`, so it is testable without
sockets; :func:`make_server` wraps it in a threading HTTP server bound to loopback by default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import mimetypes
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from interplab.common.atomic import to_jsonable
from interplab.common.errors import InterplabError
from interplab.sae.browser.data import AnalysisData
from interplab.sae.browser.render import make_env

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
STATIC_FILES = ("style.css", "browser.js")
FEATURE_ROUTE = re.compile(r"^/feature/(\d{1,12})/?$")
API_FEATURE_ROUTE = re.compile(r"^/api/feature/(\d{1,12})/?$")


@dataclasses.dataclass
class Response:
    """An HTTP response produced by :meth:`BrowserApp.handle`."""

    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class HttpError(Exception):
    """An error answered with ``status`` (HTML for pages, JSON under ``/api/``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def safe_child(folder: Path, name: str) -> Path | None:
    """``folder/name`` when ``name`` is one plain file name inside ``folder``; None otherwise."""
    if not SAFE_NAME.match(name) or ".." in name:
        return None
    base = folder.resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file():
        return None
    return path


def _int_param(params: dict[str, list[str]], key: str, default: int) -> int:
    raw = params.get(key, [str(default)])[-1].strip() or str(default)
    try:
        return int(raw)
    except ValueError:
        raise HttpError(400, f"{key}: expected an integer, got {raw!r}") from None


def _float_param(params: dict[str, list[str]], key: str) -> float | None:
    raw = params.get(key, [""])[-1].strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise HttpError(400, f"{key}: expected a number, got {raw!r}") from None


def _str_param(params: dict[str, list[str]], key: str, default: str) -> str:
    return params.get(key, [default])[-1].strip() or default


class BrowserApp:
    """Routes of the feature browser over one :class:`AnalysisData`."""

    def __init__(self, data: AnalysisData) -> None:
        self.data = data
        self.env = make_env()
        self.static_dir = Path(str(resources.files("interplab.sae.browser") / "static"))
        self.plots_dir = data.files.root / "plots"

    # ---- helpers
    def _nav(self) -> dict[str, Any]:
        return {
            "overview": "/",
            "features": "/features",
            "search": "/features",
            "list_url": lambda sort: "/features?" + urlencode({"sort": sort}),
            "dead_url": "/features?" + urlencode({"filter": "dead", "sort": "feature"}),
        }

    def _feature_url(self, fid: int) -> str:
        return f"/feature/{int(fid)}"

    def _page(self, template: str, **ctx: Any) -> bytes:
        ctx.setdefault("nav", self._nav())
        ctx.setdefault("root", "/")
        ctx.setdefault("feature_url", self._feature_url)
        ctx.setdefault("footer", f"interplab sae browse · {self.data.files.root.name}")
        return self.env.get_template(template).render(**ctx).encode("utf-8")

    @staticmethod
    def _json(data: Any, status: int = 200) -> Response:
        body = json.dumps(to_jsonable(data), ensure_ascii=False).encode("utf-8")
        return Response(status, body, "application/json; charset=utf-8")

    # ---- entry point
    def handle(self, method: str, raw_path: str) -> Response:
        """Answer one request; never raises (errors become 4xx/5xx responses)."""
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        is_api = path.startswith("/api/") or path == "/api"
        if method not in ("GET", "HEAD"):
            resp = self._error(405, f"method {method} not allowed: this server is read-only", is_api)
            resp.headers["Allow"] = "GET, HEAD"
            return resp
        try:
            return self._route(path, parse_qs(parts.query, keep_blank_values=True))
        except HttpError as exc:
            return self._error(exc.status, exc.message, is_api)
        except InterplabError as exc:
            return self._error(400, str(exc), is_api)
        except Exception:
            log.exception("error answering %s", raw_path)
            return self._error(500, "internal error (see the server log)", is_api)

    def _error(self, status: int, message: str, is_api: bool) -> Response:
        if is_api:
            return self._json({"error": message, "status": status}, status)
        reason = HTTPStatus(status).phrase
        return Response(status, self._page("error.html", status=status, reason=reason, message=message))

    def _route(self, path: str, params: dict[str, list[str]]) -> Response:
        if path in ("/", "/index.html"):
            return Response(200, self._overview())
        if path in ("/features", "/features/"):
            return Response(200, self._features_page(params))
        if m := FEATURE_ROUTE.match(path):
            return Response(200, self._feature_page(int(m.group(1))))
        if path == "/api/summary":
            return self._json(self.data.summary())
        if path in ("/api/features", "/api/features/"):
            return self._json(self._feature_list(params).to_dict())
        if m := API_FEATURE_ROUTE.match(path):
            return self._json(self._feature(int(m.group(1))))
        if path.startswith("/plots/"):
            return self._file(
                self.plots_dir, path[len("/plots/") :], allowed_suffixes=(".png", ".pdf", ".svg")
            )
        if path.startswith("/static/"):
            name = path[len("/static/") :]
            if name not in STATIC_FILES:
                raise HttpError(404, f"no static file {name!r}")
            return self._file(self.static_dir, name, allowed_suffixes=(".css", ".js"))
        if path == "/favicon.ico":
            return Response(204, b"", "image/x-icon")
        raise HttpError(404, f"no page at {path!r}")

    # ---- routes
    def _file(self, folder: Path, name: str, allowed_suffixes: tuple[str, ...]) -> Response:
        target = safe_child(folder, name)
        if target is None or target.suffix.lower() not in allowed_suffixes:
            raise HttpError(404, f"no file {name!r}")
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        return Response(200, target.read_bytes(), ctype, {"Cache-Control": "no-cache"})

    def _overview(self) -> bytes:
        return self._page(
            "overview.html",
            s=self.data.summary(),
            top=self.data.list_features(sort="density", per_page=30).features,
            plot_url=lambda name: f"/plots/{name}",
        )

    def _feature_list(self, params: dict[str, list[str]]):
        return self.data.list_features(
            q=_str_param(params, "q", ""),
            sort=_str_param(params, "sort", "density"),
            order=params.get("order", [""])[-1].strip() or None,
            filter=_str_param(params, "filter", "all"),
            page=_int_param(params, "page", 1),
            per_page=_int_param(params, "per_page", 50),
            min_score=_float_param(params, "min_score"),
        )

    def _features_page(self, params: dict[str, list[str]]) -> bytes:
        page = self._feature_list(params)
        min_score = _float_param(params, "min_score")

        def page_url(n: int) -> str:
            q = {"q": page.q, "sort": page.sort, "order": page.order, "filter": page.filter, "page": n}
            if min_score is not None:
                q["min_score"] = min_score
            if page.per_page != 50:
                q["per_page"] = page.per_page
            return "/features?" + urlencode(q)

        return self._page(
            "features.html",
            page=page,
            min_score=min_score,
            api_url="/api/features",
            feature_base="/feature/",
            prev_url=page_url(page.page - 1) if page.page > 1 else None,
            next_url=page_url(page.page + 1) if page.page < page.pages else None,
        )

    def _feature(self, fid: int) -> dict[str, Any]:
        rec = self.data.feature(fid)
        if rec is None:
            raise HttpError(404, f"unknown feature {fid} (the analysis has {self.data.n_features} features)")
        return rec

    def _feature_page(self, fid: int) -> bytes:
        rec = self._feature(fid)
        neighbours = self.data.adjacent(fid)
        return self._page(
            "feature.html", f=rec, scale=feature_scale(rec), prev_id=neighbours[0], next_id=neighbours[1]
        )


def feature_scale(rec: dict[str, Any]) -> float:
    """The activation mapped to full colour: the feature's max activation (else the largest shown)."""
    if rec.get("max_activation"):
        return float(rec["max_activation"])
    acts = [t["activation"] for e in rec["top_examples"] for t in (e.get("tokens") or [])]
    acts += [e["activation"] or 0.0 for e in rec["top_examples"]]
    return max(acts, default=1.0) or 1.0


class _Handler(BaseHTTPRequestHandler):
    server_version = "interplab-browser"
    sys_version = ""
    app: BrowserApp  # set on the subclass made by make_server

    def _send(self, method: str) -> None:
        resp = self.app.handle(method, self.path)
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", CSP)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(resp.body)

    def do_GET(self) -> None:
        self._send("GET")

    def do_HEAD(self) -> None:
        self._send("HEAD")

    def _refuse(self) -> None:
        self._send(self.command)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


def make_server(data: AnalysisData, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A threading HTTP server for the browser (port 0 picks a free port; see ``server_address``)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        log.warning("binding %s: the browser is reachable from other machines on the network", host)
    handler = type("BrowserHandler", (_Handler,), {"app": BrowserApp(data)})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise InterplabError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})"
        ) from exc
    server.daemon_threads = True
    return server


def serve_browser(analysis_dir: str | Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the feature browser over ``analysis_dir`` until interrupted (Ctrl-C)."""
    data = AnalysisData(analysis_dir)
    server = make_server(data, host, port)
    h, p = server.server_address[:2]
    shown = f"[{h}]" if ":" in str(h) else h
    log.info("feature browser for %s at http://%s:%s/ (Ctrl-C to stop)", data.files.root, shown, p)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()
        data.close()
