"""Tables logged in a run (``wandb.Table``), e.g. ``val_attention_weights`` → DataFrame.

A logged table appears in the history row that logged it as nested keys ``<key>._type`` =
``"table-file"`` and ``<key>.path`` = ``media/table/<key>_<step>_<hash>.table.json``. Offline we
read that file under the run's ``files/`` folder (found through the history row, never by parsing
the file name); online a run's handle downloads the same run file through the client
(:meth:`interplab.runs.cloud.CloudHandle.table`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.run import Run

TABLE_TYPES = ("table-file", "table", "incremental-table-file")
#: ``wandb.Table(log_mode="INCREMENTAL")``: each logged row holds only the rows added since the last
INCREMENTAL_TYPE = "incremental-table-file"


def table_keys(run: Run) -> list[str]:
    """History keys under which tables were logged."""
    hist = run.history()
    keys = []
    for col in hist.columns:
        if col.endswith("._type"):
            values = set(hist[col].dropna().tolist())
            if values & set(TABLE_TYPES):
                keys.append(col[: -len("._type")])
    return sorted(keys)


def table_steps(run: Run, key: str, step_key: str = "_step") -> pd.DataFrame:
    """The rows that logged table ``key``: columns ``step``, ``path`` (history order)."""
    hist = run.history()
    type_col, path_col = f"{key}._type", f"{key}.path"
    if type_col not in hist.columns or path_col not in hist.columns:
        known = table_keys(run)
        raise InterplabError(
            f"no table {key!r} logged in run {run.label}; tables logged: {', '.join(known) or '(none)'}"
        )
    rows = hist.loc[hist[type_col].isin(TABLE_TYPES)]
    inc_col = f"{key}.increment_num"
    increments = rows[inc_col].to_numpy() if inc_col in rows.columns else [None] * len(rows)
    return pd.DataFrame(
        {
            "step": rows[step_key].to_numpy(),
            "path": rows[path_col].to_numpy(),
            "type": rows[type_col].to_numpy(),
            "increment": increments,
        }
    )


def increment_span(steps: pd.DataFrame, i: int) -> list[int]:
    """Positions in ``steps`` whose files make up the table at position ``i``: ``[i]`` for a
    whole table; for an incremental one every increment of the same table up to ``i`` (back to the
    last ``increment_num`` 0, or to the last whole table logged under the key)."""
    types = steps["type"].tolist()
    if types[i] != INCREMENTAL_TYPE:
        return [i]
    incs = steps["increment"].tolist()
    start = i
    while start > 0 and types[start - 1] == INCREMENTAL_TYPE:
        inc = incs[start]
        if inc is not None and inc == inc and int(inc) == 0:
            break
        start -= 1
    return list(range(start, i + 1))


def concat_tables(frames: list[pd.DataFrame], where: str) -> pd.DataFrame:
    """Increments one after the other; their columns must agree."""
    cols = list(frames[0].columns)
    for f in frames[1:]:
        if list(f.columns) != cols:
            raise InterplabError(f"{where}: increments have different columns ({cols} vs {list(f.columns)})")
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def pick_step(steps: pd.DataFrame, run: Run, key: str, step: int | None) -> int:
    """Index (row position in ``steps``) of the table at ``step`` (None → the last one)."""
    if len(steps) == 0:
        raise InterplabError(f"no table {key!r} logged in run {run.label}")
    if step is None:
        return len(steps) - 1
    hits = [i for i, s in enumerate(steps["step"].tolist()) if s == step]
    if not hits:
        listed = ", ".join(str(int(s)) for s in steps["step"].tolist())
        raise InterplabError(
            f"table {key!r} of run {run.label} was not logged at step {step}; steps: {listed}"
        )
    return hits[-1]


def table_json_to_frame(payload: dict[str, Any], where: str) -> pd.DataFrame:
    """A W&B table JSON (``{"columns": […], "data": [[…]]}``) → DataFrame."""
    if not isinstance(payload, dict) or "columns" not in payload or "data" not in payload:
        raise InterplabError(f"{where} is not a W&B table (expected JSON with 'columns' and 'data')")
    return pd.DataFrame(payload["data"], columns=payload["columns"])


def read_table_file(path: Path) -> pd.DataFrame:
    """Read one ``*.table.json`` file."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InterplabError(f"table file {path} is missing (the history row names it)") from exc
    except json.JSONDecodeError as exc:
        raise InterplabError(f"table file {path} is not valid JSON: {exc}") from exc
    return table_json_to_frame(payload, str(path))


def get_table(run: Run, key: str = "val_attention_weights", step: int | None = None) -> pd.DataFrame:
    """The table ``key`` logged at ``step`` (None → the last logged) as a DataFrame."""
    if run.handle is not None:  # a server run: its handle fetches the table
        return run.handle.table(run, key, step)
    steps = table_steps(run, key)
    i = pick_step(steps, run, key, step)
    if run.files_dir is None:
        raise InterplabError(f"run {run.label} has no files folder to read table {key!r} from")
    parts = [read_table_file(run_file(run, str(steps["path"].iloc[j]))) for j in increment_span(steps, i)]
    return concat_tables(parts, f"table {key!r} of run {run.label}")


def run_file(run: Run, relpath: str) -> Path:
    """``files/<relpath>`` of an offline run; for a resumed run, of whichever folder holds it."""
    assert run.files_dir is not None
    first = run.files_dir / relpath
    if first.is_file():
        return first
    for seg in reversed(run.segments):
        candidate = seg.parent / "files" / relpath
        if candidate.is_file():
            return candidate
    return first


def run_tables(
    run: Run, steps: Sequence[int] | None, key: str = "val_attention_weights"
) -> dict[int, pd.DataFrame]:
    """The tables ``key`` of ``run`` at ``steps`` (None: the last logged) as {step: DataFrame}."""
    if not steps:
        logged = table_steps(run, key)["step"].tolist()
        if not logged:
            raise InterplabError(f"no table {key!r} logged in run {run.label}")
        steps = [int(logged[-1])]
    return {int(s): get_table(run, key, int(s)) for s in steps}
