"""Static, self-contained HTML export of the feature browser (opens from disk, no server).

Layout of ``OUT``: ``index.html`` (overview + filterable list of the exported features, data embedded
as JSON), ``features/<id>.html`` (one page per exported feature), ``plots/*.png`` (copied),
``static/style.css`` + ``static/browser.js``, ``export.json`` (what was exported from where). All
links are relative; links to features that were not exported are shown as plain text. The folder is
written under a temporary name beside ``OUT`` and renamed into place when complete.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from interplab.common.atomic import replace_folder, umask_mode, write_json, write_text
from interplab.common.errors import InterplabError, require
from interplab.common.progress import track
from interplab.sae.browser.app import STATIC_FILES, feature_scale
from interplab.sae.browser.data import AnalysisData
from interplab.sae.browser.render import make_env

log = logging.getLogger(__name__)

EXPORT_MARKER = "export.json"


@dataclasses.dataclass
class ExportResult:
    """Where the export went and which features it holds."""

    path: Path
    features: list[int]
    selection: str


def choose_features(
    data: AnalysisData,
    features: list[int] | None = None,
    n_densest: int = 200,
    n_random: int = 50,
    seed: int = 0,
) -> tuple[list[int], str]:
    """The features to export: ``features`` as given (all must exist), else the ``n_densest`` densest
    plus ``n_random`` others drawn uniformly without replacement with ``seed``. Returns (ids, description)."""
    if features is not None:
        require(len(features) > 0, "--features: expected at least one feature id")
        ids = sorted({int(f) for f in features})
        known = set(data.feature_ids().tolist())
        unknown = [f for f in ids if f not in known]
        require(
            not unknown,
            f"--features: unknown feature id(s) {', '.join(map(str, unknown[:10]))}; the analysis has features "
            f"{min(known) if known else '-'}..{max(known) if known else '-'} ({len(known)} in all)",
        )
        return ids, "the features asked for"
    require(n_densest >= 0, f"n_densest: expected ≥ 0, got {n_densest}")
    require(n_random >= 0, f"--n-random: expected ≥ 0, got {n_random}")
    densest = data.densest(n_densest)
    rest = np.setdiff1d(data.feature_ids(), np.array(densest, dtype=np.int64))
    rng = np.random.default_rng(seed)
    sample = rng.choice(rest, size=min(n_random, rest.size), replace=False).tolist() if rest.size else []
    return sorted(
        {*densest, *map(int, sample)}
    ), f"the {len(densest)} densest and {len(sample)} random others (seed {seed})"


def export_browser(
    analysis_dir: str | Path,
    out: str | Path,
    features: list[int] | None = None,
    n_densest: int = 200,
    n_random: int = 50,
    seed: int = 0,
) -> ExportResult:
    """Write the static feature browser for ``analysis_dir`` into ``out`` (see the module docstring)."""
    out = Path(out).expanduser().resolve()
    data = AnalysisData(analysis_dir)
    try:
        if out.exists():
            require(out.is_dir(), f"{out}: --export target exists and is not a folder")
            require(
                not any(out.iterdir()) or (out / EXPORT_MARKER).is_file(),
                f"{out}: --export target is a non-empty folder that is not an earlier export; choose another path",
            )
        ids, selection = choose_features(data, features, n_densest, n_random, seed)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        tmp.chmod(umask_mode(directory=True))  # mkdtemp makes it private; exports are shared
        try:
            _write_export(data, tmp, ids, selection)
            replace_folder(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        data.close()
    log.info("static feature browser with %d features written to %s", len(ids), out)
    return ExportResult(out, ids, selection)


#: overview link sort names → the static list's sort keys
EXPORT_SORTS = {"density": "density", "max": "max_activation", "mean": "mean_activation"}


def _write_export(data: AnalysisData, root: Path, ids: list[int], selection: str) -> None:
    env = make_env()
    exported = set(ids)
    summary = data.summary()
    footer = f"interplab sae browse --export · {data.files.root.name} · {len(ids)} features"

    # assets
    (root / "static").mkdir()
    static_src = resources.files("interplab.sae.browser") / "static"
    for name in STATIC_FILES:
        (root / "static" / name).write_bytes((static_src / name).read_bytes())
    if data.files.plots:
        (root / "plots").mkdir()
        for p in data.files.plots:
            shutil.copyfile(p, root / "plots" / p.name)

    # index
    rows = data.list_features(sort="density", per_page=max(1, len(ids)), ids=ids).features if ids else []
    index_nav = {
        "overview": "index.html",
        "features": "index.html#features",
        "search": None,
        "list_url": lambda sort: f"index.html?sort={EXPORT_SORTS.get(sort, 'density')}#features",
        "dead_url": None,
    }
    write_text(
        root / "index.html",
        env.get_template("export_index.html").render(
            s=summary,
            top=rows[:30],
            features=rows,
            selection=selection,
            nav=index_nav,
            root="",
            feature_url=lambda f: f"features/{int(f)}.html" if int(f) in exported else None,
            plot_url=lambda name: f"plots/{name}",
            footer=footer,
        ),
    )

    # one page per feature
    (root / "features").mkdir()
    page_nav = {"overview": "../index.html", "features": "../index.html#features", "search": None}
    template = env.get_template("feature.html")
    sorted_ids = sorted(ids)
    for i, fid in enumerate(track(sorted_ids, "exporting feature pages", total=len(sorted_ids))):
        rec = data.feature(fid)
        if rec is None:  # cannot happen: ids come from the index
            raise InterplabError(f"feature {fid} vanished from {data.files.summaries}")
        html = template.render(
            f=rec,
            scale=feature_scale(rec),
            nav=page_nav,
            root="../",
            footer=footer,
            prev_id=sorted_ids[i - 1] if i > 0 else None,
            next_id=sorted_ids[i + 1] if i + 1 < len(sorted_ids) else None,
            feature_url=lambda f: f"{int(f)}.html" if int(f) in exported else None,
        )
        (root / "features" / f"{fid}.html").write_text(html, encoding="utf-8")

    manifest: dict[str, Any] = {
        "command": "sae browse --export",
        "source": data.files.root.name,
        "summaries": data.files.summaries.name,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "selection": selection,
        "features": ids,
    }
    write_json(root / EXPORT_MARKER, manifest)
