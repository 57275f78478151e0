"""The runs API researchers call: ``fetch_runs`` and ``fetch_run_data``, for any source.

A source is ``wandb:ENTITY/PROJECT`` (cloud), ``offline:PATH`` or a plain path (offline folder or
run folder or ``.wandb`` file); ``tb:PATH`` and ``mlflow:URI`` (or a plain path holding TensorBoard
event files or an MLflow store) read other trackers (:mod:`interplab.runs.sources`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interplab.common.errors import InterplabError
from interplab.runs.cache import HistoryCache
from interplab.runs.filters import combine_filters, filter_runs
from interplab.runs.frames import run_frame
from interplab.runs.run import Run
from interplab.runs.runlist import RunList


def is_cloud_source(source: str | Path) -> bool:
    """``wandb:…`` sources go to the cloud; everything else is a local path."""
    return isinstance(source, str) and source.startswith("wandb:")


def fetch_runs(
    source: str | Path,
    tags_any: list[str] | None = None,
    extra_filters: dict[str, Any] | None = None,
    *,
    cache: HistoryCache | None = None,
    api: Any = None,
) -> list[Run]:
    """Runs of ``source`` with any of ``tags_any`` that satisfy the Mongo-style ``extra_filters``.

    Online the combined filter is evaluated by the server; offline by :mod:`interplab.runs.filters`
    with the same meaning. ``api`` replaces ``wandb.Api()`` (cloud only).
    """
    if isinstance(tags_any, str):
        tags_any = [tags_any]
    flt = combine_filters(tags_any, extra_filters)
    if is_cloud_source(source):
        from interplab.runs.cloud import cloud_runs

        return cloud_runs(str(source), flt, api=api, cache=cache)
    from interplab.runs.sources import read_other_source

    other = read_other_source(source, cache=cache)
    if other is not None:  # TensorBoard or MLflow: same runs, same filters
        return filter_runs(other, flt)
    from interplab.runs.offline import offline_runs

    path = str(source).removeprefix("offline:") if isinstance(source, str) else source
    found = offline_runs(path, cache=cache)
    return RunList(filter_runs(found, flt), found.skipped)


def find_run(runs: list[Run], ident: str) -> Run:
    """The run whose id (or, failing that, unique name) is ``ident``."""
    for run in runs:
        if run.id == ident:
            return run
    named = [r for r in runs if r.name == ident]
    if len(named) == 1:
        return named[0]
    known = ", ".join(f"{r.id} ({r.name})" for r in runs) or "(none)"
    raise InterplabError(f"unknown run {ident!r}; runs: {known}")


def fetch_run(source: str | Path, ident: str, *, cache: HistoryCache | None = None, api: Any = None) -> Run:
    """One run of ``source`` by id (or unique display name)."""
    return find_run(fetch_runs(source, cache=cache, api=api), ident)


def fetch_run_data(run: Run, metrics: list[str] | str, step_key: str = "_step") -> dict[str, Any]:
    """``{"df": step + metrics per logged step, "config", "name", "id"}`` of one run."""
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(run, Run):
        raise InterplabError(f"fetch_run_data needs a Run from fetch_runs, got {type(run).__name__}")
    return {"df": run_frame(run, metrics, step_key), "config": run.config, "name": run.name, "id": run.id}


def history(run: Run, keys: list[str] | None = None) -> Any:
    """The run's full history (every logged key) or only ``keys`` (plus ``_step``)."""
    hist = run.history()
    if keys is None:
        return hist
    missing = [k for k in keys if k not in hist.columns]
    if missing:
        raise InterplabError(
            f"unknown key {missing[0]!r} in run {run.label}; logged keys: {', '.join(map(str, hist.columns))}"
        )
    cols = ["_step", *[k for k in keys if k != "_step"]] if "_step" in hist.columns else list(keys)
    return hist.loc[:, cols]


def split_values(values: Sequence[str] | None) -> list[str]:
    """Flatten repeated and comma-separated option values: ``["a,b", "c"]`` → ``["a", "b", "c"]``."""
    return [v.strip() for item in values or [] for v in str(item).split(",") if v.strip()]


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """``--filter`` JSON text → dict (W&B Mongo-style filter), with a one-line error."""
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InterplabError(f"--filter is not valid JSON ({exc.msg} at char {exc.pos}): {text}") from exc
    if not isinstance(value, dict):
        raise InterplabError(
            f'--filter must be a JSON object like {{"config.lr": {{"$gt": 0.001}}}}, got {text}'
        )
    return value


def load_runs(source: str, tags: Sequence[str] | None = None, filter_json: str | None = None) -> list[Run]:
    """:func:`interplab.runs.api.fetch_runs` with CLI-style tag and filter options; never empty."""
    tag_list = split_values(tags)
    runs = fetch_runs(source, tags_any=tag_list or None, extra_filters=parse_filter(filter_json))
    if not runs:
        what = []
        if tag_list:
            what.append(f"tags {tag_list}")
        if filter_json:
            what.append(f"filter {filter_json}")
        raise InterplabError(f"no runs in {source} match {' and '.join(what)}")
    return runs
