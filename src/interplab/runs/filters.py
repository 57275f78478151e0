"""W&B's Mongo-style run filters: validation, ``tags_any`` combination, and offline evaluation.

Online the filter dict goes to the server unchanged (``api.runs(path, filters=…)``); offline we
evaluate the same dict on :class:`Run` objects with the same meaning:

* fields: ``tags``, ``state``, ``displayName`` / ``display_name``, ``name`` / ``id`` (run id),
  ``group``, ``jobType``, ``project``, ``config.<path>`` (an optional ``.value`` segment after the
  key, as the server stores configs, is accepted), ``summary_metrics.<path>``;
* operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists $regex`` (``$options`` with ``$regex``)
  and the combinators ``$and $or`` (and ``$nor``); a bare value means equality;
* array fields (tags, list values) match when any element matches; ``$ne``/``$nin`` need that no
  element matches; a missing field fails every comparison except ``$ne``, ``$nin`` and
  ``$exists: false``; numbers and strings never compare to each other (no coercion).
"""

from __future__ import annotations

import math
import re
from typing import Any

from interplab.common.errors import InterplabError
from interplab.runs.run import Run

COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$regex", "$options")
LOGICAL = ("$and", "$or", "$nor")
TOP_FIELDS = ("tags", "state", "displayName", "display_name", "name", "id", "group", "jobType", "project")
_MISSING = object()


def combine_filters(tags_any: list[str] | None, extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"tags": {"$in": tags_any}}`` and ``extra`` joined with ``$and`` (None when both empty)."""
    parts: list[dict[str, Any]] = []
    if tags_any:
        parts.append({"tags": {"$in": list(tags_any)}})
    if extra:
        validate_filter(extra)
        parts.append(extra)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def validate_filter(flt: Any, where: str = "filter") -> None:
    """Raise :class:`InterplabError` naming the first malformed part or unknown operator."""
    if not isinstance(flt, dict):
        raise InterplabError(f"malformed {where}: expected a JSON object, got {type(flt).__name__} {flt!r}")
    for key, value in flt.items():
        if not isinstance(key, str):
            raise InterplabError(f"malformed {where}: key {key!r} is not a string")
        if key.startswith("$"):
            if key not in LOGICAL:
                raise InterplabError(
                    f"unknown filter operator {key!r} at top level of {where}; expected one of: {', '.join(LOGICAL)} "
                    "(or a field name)"
                )
            if not isinstance(value, list) or not value:
                raise InterplabError(
                    f"malformed {where}: {key} needs a non-empty list of filters, got {value!r}"
                )
            for i, sub in enumerate(value):
                validate_filter(sub, f"{where}.{key}[{i}]")
        else:
            _check_field(key, where)
            _validate_condition(key, value, where)


def _check_field(key: str, where: str) -> None:
    head = key.split(".", 1)[0]
    if head in ("config", "summary_metrics"):
        if "." not in key:
            raise InterplabError(f"malformed {where}: field {key!r} needs a key, e.g. {head}.lr")
        return
    if key not in TOP_FIELDS:
        raise InterplabError(
            f"unknown filter field {key!r} in {where}; expected config.<key>, summary_metrics.<key> "
            f"or one of: {', '.join(TOP_FIELDS)}"
        )


def _is_operator_dict(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    )


def _validate_condition(field: str, cond: Any, where: str) -> None:
    if not _is_operator_dict(cond):
        if isinstance(cond, dict) and any(isinstance(k, str) and k.startswith("$") for k in cond):
            raise InterplabError(f"malformed {where}: {field!r} mixes operators and plain keys: {cond!r}")
        return
    for op, arg in cond.items():
        if op not in COMPARISONS:
            raise InterplabError(
                f"unknown filter operator {op!r} for field {field!r}; expected one of: {', '.join(COMPARISONS)}"
            )
        if op in ("$in", "$nin") and not isinstance(arg, list):
            raise InterplabError(f"malformed filter: {op} for field {field!r} needs a list, got {arg!r}")
        if op == "$exists" and not isinstance(arg, bool):
            raise InterplabError(
                f"malformed filter: $exists for field {field!r} needs true/false, got {arg!r}"
            )
        if op == "$regex":
            if not isinstance(arg, str):
                raise InterplabError(
                    f"malformed filter: $regex for field {field!r} needs a string, got {arg!r}"
                )
            try:
                re.compile(arg)
            except re.error as exc:
                raise InterplabError(f"malformed filter: $regex {arg!r} for field {field!r}: {exc}") from exc
        if op == "$options" and "$regex" not in cond:
            raise InterplabError(f"malformed filter: $options for field {field!r} without $regex")


def _lookup(tree: Any, parts: list[str]) -> Any:
    node = tree
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif part == "value" and i > 0:  # server-side form config.<key>.value[.sub]
            continue
        else:
            return _MISSING
    return node


def field_value(run: Run, field: str) -> Any:
    """The value a filter field names on ``run`` (``_MISSING`` when absent)."""
    head, _, rest = field.partition(".")
    if head == "config":
        return _lookup(run.config, rest.split("."))
    if head == "summary_metrics":
        return _lookup(run.summary, rest.split("."))
    return {
        "tags": run.tags,
        "state": run.state,
        "displayName": run.name,
        "display_name": run.name,
        "name": run.id,
        "id": run.id,
        "group": run.group,
        "jobType": run.job_type,
        "project": run.project,
    }.get(field, _MISSING)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _equal(a: Any, b: Any) -> bool:
    if _num(a) and _num(b):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return a == b
    if type(a) is not type(b) and not (_num(a) and _num(b)):
        return False
    return a == b


def _order(op: str, a: Any, b: Any) -> bool:
    comparable = (_num(a) and _num(b)) or (isinstance(a, str) and isinstance(b, str))
    if not comparable:
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _candidates(value: Any) -> list[Any]:
    """A value and, for lists, each element (Mongo's array matching)."""
    if isinstance(value, list):
        return [value, *value]
    return [value]


def _match_op(op: str, arg: Any, value: Any, cond: dict[str, Any]) -> bool:
    present = value is not _MISSING
    if op == "$exists":
        return present == arg
    if op == "$options":
        return True
    if op in ("$ne", "$nin"):
        positive = "$eq" if op == "$ne" else "$in"
        return not (present and _match_op(positive, arg, value, cond))
    if not present:
        return False
    cands = _candidates(value)
    if op == "$eq":
        return any(_equal(c, arg) for c in cands)
    if op == "$in":
        return any(_equal(c, a) for c in cands for a in arg)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return any(_order(op, c, arg) for c in cands)
    if op == "$regex":
        flags = re.IGNORECASE if "i" in str(cond.get("$options", "")) else 0
        pattern = re.compile(arg, flags)
        return any(isinstance(c, str) and pattern.search(c) is not None for c in cands)
    raise InterplabError(f"unknown filter operator {op!r}")


def _match_field(run: Run, field: str, cond: Any) -> bool:
    value = field_value(run, field)
    if _is_operator_dict(cond):
        return all(_match_op(op, arg, value, cond) for op, arg in cond.items())
    return _match_op("$eq", cond, value, {})


def matches(run: Run, flt: dict[str, Any] | None) -> bool:
    """Whether ``run`` satisfies the filter (an empty/None filter matches everything)."""
    if not flt:
        return True
    for key, value in flt.items():
        if key == "$and":
            ok = all(matches(run, sub) for sub in value)
        elif key == "$or":
            ok = any(matches(run, sub) for sub in value)
        elif key == "$nor":
            ok = not any(matches(run, sub) for sub in value)
        else:
            ok = _match_field(run, key, value)
        if not ok:
            return False
    return True


def filter_runs(runs: list[Run], flt: dict[str, Any] | None) -> list[Run]:
    """The runs that match ``flt`` (validated first)."""
    if flt:
        validate_filter(flt)
    return [r for r in runs if matches(r, flt)]
