"""Feature browser without a browser: queries against brute force, the JSON API, errors and security."""

from __future__ import annotations

import http.client
import json
import math
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser_support import IMG, SCRIPT, read_database, read_summaries, running_server, shared_analysis

from interplab.common.errors import InterplabError
from interplab.sae.browser import AnalysisData, choose_features, export_browser
from interplab.sae.browser import data as data_mod
from interplab.sae.browser.render import json_for_script


@pytest.fixture(scope="module")
def analysis(tiny_models, tmp_path_factory) -> Path:
    return shared_analysis(tmp_path_factory, tiny_models)


@pytest.fixture(scope="module")
def summaries(analysis) -> dict[int, dict]:
    return {int(r["feature"]): r for r in read_summaries(analysis)}


@pytest.fixture(scope="module")
def data(analysis):
    d = AnalysisData(analysis)
    yield d
    d.close()


@pytest.fixture(scope="module")
def base_url(analysis):
    with running_server(analysis) as url:
        yield url


def _get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _raw(base_url: str, method: str, path: str) -> tuple[int, dict, bytes]:
    """Send ``path`` byte for byte (no client-side normalisation of ``..``)."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.endheaders()
    r = conn.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    conn.close()
    return out


def _density(r: dict) -> float:
    return float(r.get("density") or 0.0)


def _key(name: str):
    return {"density": "density", "max": "max_activation", "mean": "mean_activation"}[name]


def _tokens_of(r: dict) -> list[str]:
    out = []
    for t in r.get("top_tokens") or []:
        out.append(str(t["token"] if isinstance(t, dict) else t[0] if isinstance(t, list) else t))
    return out


# ---- queries against brute force ------------------------------------------------------------------


def test_index_has_every_feature(data, summaries):
    assert data.n_features == len(summaries)
    assert data.feature_ids().tolist() == sorted(summaries)


@pytest.mark.parametrize("sort", ["density", "max", "mean"])
def test_sorting_matches_brute_force(data, summaries, sort):
    key = _key(sort)
    expected = sorted(summaries.values(), key=lambda r: (-(r.get(key) or -math.inf), r["feature"]))
    page = data.list_features(sort=sort, per_page=len(summaries))
    assert [f["feature"] for f in page.features] == [r["feature"] for r in expected]
    asc = data.list_features(sort=sort, order="asc", per_page=len(summaries))
    values = [f[key] for f in asc.features]
    assert values == sorted(values)


def test_filters_match_brute_force(data, summaries):
    dead = sorted(f for f, r in summaries.items() if _density(r) == 0)
    dense = sorted(f for f, r in summaries.items() if _density(r) > 0.1)
    alive = sorted(f for f, r in summaries.items() if _density(r) > 0)
    n = len(summaries)
    assert sorted(f["feature"] for f in data.list_features(filter="dead", per_page=n).features) == dead
    assert sorted(f["feature"] for f in data.list_features(filter="dense", per_page=n).features) == dense
    assert sorted(f["feature"] for f in data.list_features(filter="alive", per_page=n).features) == alive
    assert data.summary()["index"]["n_dead"] == len(dead)


def test_search_by_id_and_token(data, summaries):
    n = len(summaries)
    some = sorted(summaries)[len(summaries) // 2]
    hits = data.list_features(q=str(some), per_page=n).features
    assert some in [f["feature"] for f in hits]
    # token search: case-insensitive substring of any top token
    token = next(t for r in summaries.values() for t in _tokens_of(r))
    expected = sorted(
        f for f, r in summaries.items() if any(token.lower() in t.lower() for t in _tokens_of(r))
    )
    got = sorted(f["feature"] for f in data.list_features(q=token, sort="feature", per_page=n).features)
    # an all-digit token would also match a feature id; our corpus tokens are not all digits
    assert got == expected and got
    assert data.list_features(q="no-such-token-anywhere").total == 0


def test_pagination_covers_the_list_once(data, summaries):
    full = [f["feature"] for f in data.list_features(sort="mean", per_page=len(summaries)).features]
    pages, p = [], 1
    while True:
        page = data.list_features(sort="mean", per_page=7, page=p)
        pages += [f["feature"] for f in page.features]
        if p >= page.pages:
            break
        p += 1
    assert pages == full
    assert page.pages == math.ceil(len(summaries) / 7)


def test_bad_list_arguments(data):
    with pytest.raises(InterplabError, match="sort"):
        data.list_features(sort="nope")
    with pytest.raises(InterplabError, match="filter"):
        data.list_features(filter="nope")
    with pytest.raises(InterplabError, match="page"):
        data.list_features(page=0)


def test_example_contexts_equal_database(analysis, data, summaries):
    """Per-token activations shown around each example = brute-force lookup in the Parquet files."""
    tokens, acts = read_database(analysis)
    radius = data_mod.CONTEXT_RADIUS
    checked = 0
    for fid in sorted(summaries, key=lambda f: -_density(summaries[f]))[:6]:
        rec = data.feature(fid)
        for ex in rec["top_examples"]:
            tx, pos = ex["text_idx"], ex["position"]
            expected = []
            for p in range(pos - radius, pos + radius + 1):
                if (tx, p) in tokens:
                    ti, s = tokens[(tx, p)]
                    expected.append((p, ti, s, float(acts.get((ti, fid), 0.0)), p == pos))
            got = [
                (t["position"], t["token_idx"], t["token"], t["activation"], t["is_target"])
                for t in ex["tokens"]
            ]
            assert [g[:3] for g in got] == [e[:3] for e in expected]
            assert [g[4] for g in got] == [e[4] for e in expected]
            assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], rel=1e-6, abs=1e-7)
            target = next(t for t in ex["tokens"] if t["is_target"])
            assert target["activation"] == pytest.approx(ex["activation"], rel=1e-4, abs=1e-6)
            assert target["activation"] > 0
            checked += 1
    assert checked > 0


def test_unknown_feature_is_none(data, summaries):
    assert data.feature(max(summaries) + 1000) is None


def test_index_cache_is_reused(analysis, monkeypatch, summaries):
    cache = list((analysis / "browser_cache").glob("feature_index_*.parquet"))
    assert len(cache) == 1

    def boom(*a, **k):
        raise AssertionError("index rebuilt although a cache exists")

    monkeypatch.setattr(data_mod, "build_feature_index", boom)
    d = AnalysisData(analysis)
    try:
        assert d.n_features == len(summaries)
    finally:
        d.close()


def test_fast_index_equals_line_by_line_parse(data):
    fast = data_mod.build_feature_index(data.files.summaries, fast=True)
    slow = data_mod.build_feature_index(data.files.summaries, fast=False)
    assert fast.equals(slow)


def test_summary_lines_follow_the_layout_contract(analysis, tmp_path, summaries):
    """A line that is not an ``sae analyze`` feature summary (e.g. other key spellings) is refused
    with one line naming the file, the line and the missing keys; nothing is guessed."""
    folder = tmp_path / "other"
    (folder / "results").mkdir(parents=True)
    lines = []
    for _, r in sorted(summaries.items()):
        rec = {k: v for k, v in r.items() if k != "density"}
        rec["frequency"] = r["density"]
        lines.append(json.dumps(rec))
    path = folder / "results" / "feature_summaries_20000101_000000.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    with pytest.raises(
        InterplabError, match=r"feature_summaries_20000101_000000.jsonl: line 1: .*missing keys: density"
    ):
        AnalysisData(folder, use_cache=False)
    from interplab.sae.layout import SUMMARY_KEYS

    assert set(SUMMARY_KEYS) == set(next(iter(summaries.values())))  # the writer follows the contract


def test_not_an_analysis_folder(tmp_path):
    with pytest.raises(InterplabError, match="feature_summaries"):
        AnalysisData(tmp_path)
    with pytest.raises(InterplabError, match="not found"):
        AnalysisData(tmp_path / "missing")


# ---- HTTP: API, errors, read-only, traversal ------------------------------------------------------


def test_api_summary(base_url, summaries):
    status, headers, body = _get(base_url + "/api/summary")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    s = json.loads(body)
    assert s["index"]["n_features"] == len(summaries)
    assert {"summary", "results", "plots", "matrices", "files"} <= set(s)


def test_api_features_query(base_url, summaries):
    status, _, body = _get(base_url + "/api/features?sort=max&filter=alive&page=1&per_page=5")
    assert status == 200
    page = json.loads(body)
    alive = [r for r in summaries.values() if _density(r) > 0]
    top = sorted(alive, key=lambda r: (-r["max_activation"], r["feature"]))[:5]
    assert page["total"] == len(alive)
    assert [f["feature"] for f in page["features"]] == [r["feature"] for r in top]
    assert set(page["features"][0]) == {
        "feature",
        "density",
        "mean_activation",
        "max_activation",
        "top_tokens",
        "explanation",  # null until `sae explain` has run
        "explanation_score",
    }
    assert page["features"][0]["explanation"] is None
    status, _, body = _get(base_url + "/api/features?min_score=abc")
    assert status == 400 and "min_score" in json.loads(body)["error"]
    status, _, body = _get(base_url + "/api/features?sort=bogus")
    assert status == 400 and "sort" in json.loads(body)["error"]
    status, _, body = _get(base_url + "/api/features?page=abc")
    assert status == 400


def test_api_feature(base_url, summaries):
    fid = max(summaries, key=lambda f: _density(summaries[f]))
    status, _, body = _get(base_url + f"/api/feature/{fid}")
    assert status == 200
    rec = json.loads(body)
    raw = summaries[fid]
    assert rec["feature"] == fid
    assert rec["density"] == pytest.approx(raw["density"])
    assert rec["max_activation"] == pytest.approx(raw["max_activation"])
    assert [e["activation"] for e in rec["top_examples"]] == pytest.approx(
        [e["activation"] for e in raw["top_examples"]]
    )
    assert all(e["tokens"] for e in rec["top_examples"])


def test_unknown_routes_and_features_404(base_url, summaries):
    unknown = max(summaries) + 1
    for path in [
        f"/feature/{unknown}",
        "/feature/abc",
        "/nope",
        "/features/x/y",
        "/static/nope.js",
        "/plots/nope.png",
    ]:
        assert _get(base_url + path)[0] == 404, path
    status, headers, body = _get(base_url + f"/api/feature/{unknown}")
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    assert str(unknown) in json.loads(body)["error"]
    assert _get(base_url + "/api/nope")[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_read_only(base_url, method):
    for path in ("/", "/api/summary", "/feature/1"):
        status, headers, _ = _raw(base_url, method, path)
        assert status == 405, (method, path)
        assert headers.get("Allow") == "GET, HEAD"


def test_head_has_no_body(base_url):
    status, headers, body = _raw(base_url, "HEAD", "/")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize(
    "path",
    [
        "/plots/../../etc/passwd",
        "/plots/../../../../../../etc/passwd",
        "/plots/%2e%2e/%2e%2e/etc/passwd",
        "/plots/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/plots/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/plots/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "/plots/..%5c..%5cetc%5cpasswd",
        "/plots//etc/passwd",
        "/plots/%2fetc%2fpasswd",
        "/static/../../../../etc/passwd",
        "/static/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/plots/../results/analysis_results.json",
        "/plots/..%2factivation_database%2fmanifest.json",
        "/../../etc/passwd",
    ],
)
def test_path_traversal_refused(base_url, path):
    status, _, body = _raw(base_url, "GET", path)
    assert status == 404
    assert b"root:" not in body


def test_plots_served(base_url, analysis):
    png = sorted((analysis / "plots").glob("*.png"))[0]
    status, headers, body = _get(base_url + f"/plots/{png.name}")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == png.read_bytes()


def test_security_headers(base_url):
    _, headers, _ = _get(base_url + "/")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_server_binds_loopback_by_default(analysis):
    import inspect

    from interplab.sae.browser import make_server, serve_browser

    assert inspect.signature(serve_browser).parameters["host"].default == "127.0.0.1"
    d = AnalysisData(analysis)
    server = make_server(d, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
        d.close()


# ---- escaping ----------------------------------------------------------------------------------


def _payload_feature(summaries: dict[int, dict]) -> int:
    for f, r in sorted(summaries.items()):
        if any(
            SCRIPT in (e.get("context") or "") or e.get("token") in (SCRIPT, IMG)
            for e in r.get("top_examples") or []
        ):
            return f
    raise AssertionError("no feature has a payload in its top examples")


def test_payloads_are_escaped_in_html(base_url, summaries):
    fid = _payload_feature(summaries)
    status, _, body = _get(base_url + f"/feature/{fid}")
    html = body.decode()
    assert status == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert html.count("<script") == 1  # only our own browser.js
    # the API hands the text back verbatim (it is data)
    rec = json.loads(_get(base_url + f"/api/feature/{fid}")[2])
    shown = {t["token"] for e in rec["top_examples"] for t in e["tokens"]}
    assert SCRIPT in shown or IMG in shown


def test_search_page_escapes_query(base_url):
    status, _, body = _get(base_url + "/features?q=%3Cscript%3Ealert(1)%3C/script%3E")
    html = body.decode()
    assert status == 200
    assert "<script>alert" not in html and 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in html


def test_json_for_script_cannot_close_the_element():
    data = {"t": "</script><!-- <script>alert(1)</script> & \u2028"}
    text = str(json_for_script(data))
    assert "</" not in text and "<!--" not in text and "<" not in text
    assert json.loads(text) == data


# ---- static export -------------------------------------------------------------------------------


def test_choose_features_densest_plus_seeded_sample(data, summaries):
    ids, _ = choose_features(data, n_densest=5, n_random=4, seed=3)
    densest = [
        r["feature"] for r in sorted(summaries.values(), key=lambda r: (-_density(r), r["feature"]))[:5]
    ]
    assert set(densest) <= set(ids) and len(ids) == 9
    assert choose_features(data, n_densest=5, n_random=4, seed=3)[0] == ids
    assert choose_features(data, n_densest=5, n_random=4, seed=4)[0] != ids or len(summaries) <= 10
    all_ids, _ = choose_features(data)  # fewer than 200 features: all of them
    assert all_ids == sorted(summaries)
    with pytest.raises(InterplabError, match="unknown feature"):
        choose_features(data, features=[max(summaries) + 5])


def test_export_writes_linked_pages(analysis, summaries, tmp_path):
    fid = _payload_feature(summaries)
    res = export_browser(analysis, tmp_path / "export", features=[fid, 1, 2])
    out = tmp_path / "export"
    assert res.path == out and res.features == sorted({fid, 1, 2})
    assert {p.name for p in (out / "features").iterdir()} == {f"{f}.html" for f in res.features}
    assert (out / "static" / "browser.js").is_file() and (out / "index.html").is_file()
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(
        p.name for p in (analysis / "plots").glob("*.png")
    )
    html = (out / "features" / f"{fid}.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert 'href="/' not in html and "http://" not in html  # relative links only
    exported = set(res.features)
    for n in summaries[fid].get("similar_features") or []:
        nid = int(n["feature"] if isinstance(n, dict) else n[0])
        if nid in exported:
            assert f'href="{nid}.html"' in html
        else:
            assert f'href="{nid}.html"' not in html and f"#{nid}</span>" in html
    index = (out / "index.html").read_text()
    embedded = index.split('<script type="application/json" id="feature-data">')[1].split("</script>")[0]
    assert "<" not in embedded
    assert [f["feature"] for f in json.loads(embedded)] == [
        r["feature"]
        for r in sorted((summaries[f] for f in exported), key=lambda r: (-_density(r), r["feature"]))
    ]
    assert json.loads((out / "export.json").read_text())["features"] == res.features


def test_export_is_atomic(analysis, tmp_path):
    out = tmp_path / "exp"
    export_browser(analysis, out, features=[1])
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(InterplabError):
        export_browser(analysis, out, features=[10**9])
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    export_browser(analysis, out, features=[2])  # replaces an earlier export
    assert [p.name for p in (out / "features").iterdir()] == ["2.html"]
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]  # no temp folders left behind
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(InterplabError, match="not an earlier export"):
        export_browser(analysis, other, features=[1])
    assert (other / "keep.txt").read_text() == "x"


def test_cli_export_and_errors(analysis, tmp_path):
    exe = [str(Path(sys.executable).parent / "interplab")]
    ok = subprocess.run(
        [*exe, "sae", "browse", str(analysis), "--export", str(tmp_path / "e"), "--features", "1,2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "e" / "features").iterdir()) == ["1.html", "2.html"]
    bad = subprocess.run(
        [*exe, "sae", "browse", str(analysis), "--export", str(tmp_path / "f"), "--features", "1,x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--features" in bad.stderr and not (tmp_path / "f").exists()
