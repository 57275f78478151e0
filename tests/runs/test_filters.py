"""Mongo-style filters evaluated offline, against hand-worked expectations."""

from __future__ import annotations

import math

import pytest

from interplab.common.errors import InterplabError
from interplab.runs import fetch_runs
from interplab.runs.filters import combine_filters, filter_runs
from interplab.runs.run import Run

from .conftest import WrittenRuns


def _run(id_: str, name: str, tags: list[str], state: str, config: dict, summary: dict) -> Run:
    return Run(id=id_, name=name, tags=tags, state=state, config=config, summary=summary, source="offline:x")


RUNS = [
    _run(
        "a",
        "alpha",
        ["x", "y"],
        "finished",
        {"lr": 0.1, "model": {"init": 0.01}, "layers": [1, 2]},
        {"loss": 0.5},
    ),
    _run("b", "beta", ["y"], "crashed", {"lr": 0.01, "model": {"init": 1.0}}, {"loss": 1.5, "acc": math.nan}),
    _run("c", "gamma-long", [], "running", {"lr": "0.1", "model": {}}, {}),
]


def ids(flt: dict | None) -> list[str]:
    return [r.id for r in filter_runs(RUNS, flt)]


@pytest.mark.parametrize(
    ("flt", "want"),
    [
        (None, ["a", "b", "c"]),
        ({}, ["a", "b", "c"]),
        ({"tags": "x"}, ["a"]),  # a bare value on an array: contains
        ({"tags": {"$in": ["x", "z"]}}, ["a"]),
        ({"tags": {"$in": ["y"]}}, ["a", "b"]),
        ({"tags": {"$nin": ["x"]}}, ["b", "c"]),
        ({"tags": {"$ne": "y"}}, ["c"]),
        ({"tags": {"$exists": True}}, ["a", "b", "c"]),
        ({"state": "finished"}, ["a"]),
        ({"state": {"$in": ["crashed", "running"]}}, ["b", "c"]),
        ({"displayName": {"$regex": "^g"}}, ["c"]),
        ({"display_name": {"$regex": "A", "$options": "i"}}, ["a", "b", "c"]),
        ({"displayName": {"$regex": "ALPHA"}}, []),
        ({"name": "b"}, ["b"]),
        ({"config.lr": 0.1}, ["a"]),  # the string "0.1" is not the number 0.1
        ({"config.lr": "0.1"}, ["c"]),
        ({"config.lr": {"$gt": 0.05}}, ["a"]),
        ({"config.lr": {"$gte": 0.01, "$lt": 0.1}}, ["b"]),
        ({"config.lr": {"$lte": 0.1}}, ["a", "b"]),
        ({"config.model.init": {"$eq": 1.0}}, ["b"]),
        ({"config.model.value.init": 1.0}, ["b"]),  # the server's config.<key>.value form
        ({"config.model.init": {"$exists": False}}, ["c"]),
        ({"config.model.init": {"$ne": 0.01}}, ["b", "c"]),  # missing counts for $ne
        ({"config.layers": 2}, ["a"]),  # array element match
        ({"config.layers": [1, 2]}, ["a"]),  # whole-array match
        ({"config.layers": {"$gt": 1}}, ["a"]),
        ({"summary_metrics.loss": {"$lt": 1}}, ["a"]),
        ({"summary_metrics.acc": {"$exists": True}}, ["b"]),
        ({"summary_metrics.acc": math.nan}, ["b"]),  # NaN equals NaN
        ({"$or": [{"tags": "x"}, {"state": "running"}]}, ["a", "c"]),
        ({"$and": [{"tags": "y"}, {"config.lr": {"$lt": 0.05}}]}, ["b"]),
        ({"$nor": [{"tags": "y"}]}, ["c"]),
        ({"tags": "y", "state": "crashed"}, ["b"]),  # implicit $and across fields
    ],
)
def test_filter_semantics(flt: dict | None, want: list[str]) -> None:
    assert ids(flt) == want


def test_tags_any_combines_with_and() -> None:
    assert combine_filters(None, None) is None
    assert combine_filters(["x"], None) == {"tags": {"$in": ["x"]}}
    both = combine_filters(["x", "y"], {"state": "crashed"})
    assert both == {"$and": [{"tags": {"$in": ["x", "y"]}}, {"state": "crashed"}]}
    assert ids(both) == ["b"]


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ({"config.lr": {"$foo": 1}}, r"unknown filter operator '\$foo' for field 'config.lr'"),
        ({"$xor": [{"state": "x"}]}, r"unknown filter operator '\$xor'"),
        ({"$or": {"state": "x"}}, r"\$or needs a non-empty list"),
        ({"tags": {"$in": "x"}}, r"\$in for field 'tags' needs a list"),
        ({"state": {"$exists": "yes"}}, r"\$exists for field 'state' needs true/false"),
        ({"displayName": {"$regex": "("}}, r"\$regex '\(' for field 'displayName'"),
        ({"colour": "red"}, r"unknown filter field 'colour'"),
        ({"config": 1}, r"field 'config' needs a key"),
        (["state"], r"expected a JSON object"),
    ],
)
def test_malformed_filters_name_the_problem(flt: object, message: str) -> None:
    with pytest.raises(InterplabError, match=message):
        filter_runs(RUNS, flt)  # type: ignore[arg-type]


def test_filters_on_sdk_runs(sdk_runs: WrittenRuns) -> None:
    names = lambda runs: sorted(r.name for r in runs)  # noqa: E731
    assert names(fetch_runs(sdk_runs.root, tags_any=["small"])) == ["alpha", "beta"]
    assert names(fetch_runs(sdk_runs.root, tags_any=["seed1", "nope"])) == ["beta", "delta"]
    assert names(fetch_runs(sdk_runs.root, extra_filters={"config.model.init_scale": 1.0})) == [
        "delta",
        "gamma",
    ]
    assert names(
        fetch_runs(sdk_runs.root, tags_any=["large"], extra_filters={"config.dataset_size": {"$gt": 150}})
    ) == ["delta"]
    assert names(fetch_runs(sdk_runs.root, extra_filters={"state": "failed"})) == ["delta"]
    assert names(fetch_runs(sdk_runs.root, extra_filters={"summary_metrics.best_val": {"$lt": 1}})) == [
        "alpha",
        "gamma",
    ]
    with pytest.raises(InterplabError, match=r"unknown filter operator '\$near'"):
        fetch_runs(sdk_runs.root, extra_filters={"config.lr": {"$near": 1}})
