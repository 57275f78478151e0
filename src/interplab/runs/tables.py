"""Tables logged in a run (``wandb.Table``), e.g. ``val_attention_weights`` → DataFrame.

A logged table appears in the history row that logged it as nested keys ``<key>._type`` =
``"table-file"`` and ``<key>.path`` = ``media/table/<key>_<step>_<hash>.table.json``. Offline we
read that file under the run's ``files/`` folder (found through the history row, never by parsing
the file name); online the table lives in the run's artifact ``run-<id>-<key>`` whose versions
follow the logging order (see :mod:`interplab.runs.cloud`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from interplab.common.errors import InterplabError
from interplab.runs.run import Run

TABLE_TYPES = ("table-file", "table")


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
    rows = hist.loc[hist[type_col].isin(TABLE_TYPES), [step_key, path_col]]
    return pd.DataFrame({"step": rows[step_key].to_numpy(), "path": rows[path_col].to_numpy()})


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
    return read_table_file(run.files_dir / str(steps["path"].iloc[i]))


def run_tables(
    run: Run, steps: Sequence[int] | None, key: str = "val_attention_weights"
) -> dict[int, pd.DataFrame]:
    """The tables ``key`` of ``run`` at ``steps`` (None: the last logged) as {step: DataFrame}."""
    from interplab.runs.tables import get_table, table_steps

    if not steps:
        logged = table_steps(run, key)["step"].tolist()
        if not logged:
            raise InterplabError(f"no table {key!r} logged in run {run.label}")
        steps = [int(logged[-1])]
    return {int(s): get_table(run, key, int(s)) for s in steps}
