"""Run summaries: derived from the history where the log holds none, and metric-name hints.

W&B's summary of a key is, unless set explicitly, its last logged value. Logs of runs that crashed
under older SDKs (e.g. wandb 0.17) can hold no summary record at all; for those we derive the
summary the same way from the history: per key the value of the last row that logged it (a
logged NaN included), nested by splitting dotted keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from interplab.runs.records import logged_mask, set_path

#: ``Run.summary_source`` values
SUMMARY_LOGGED = "logged"
SUMMARY_DERIVED = "derived from history (the log holds no summary)"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def derive_summary(history: pd.DataFrame) -> dict[str, Any]:
    """Per history key, its last logged value (nested dicts for dotted keys)."""
    summary: dict[str, Any] = {}
    for col in history.columns:
        mask = logged_mask(history, col)
        rows = np.flatnonzero(mask)
        if len(rows):
            set_path(summary, str(col).split("."), _plain(history[col].to_numpy()[rows[-1]]))
    return summary


def closest_keys(name: str, keys: Iterable[str], n: int = 5) -> list[str]:
    """The few keys nearest to ``name`` by ``difflib`` similarity (best first)."""
    pool = sorted(set(keys))
    close = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    if close:
        return close
    low = name.lower()
    return [k for k in pool if low in k.lower() or k.lower() in low][:n]


def unknown_key_message(what: str, name: str, keys: Iterable[str], n: int = 5) -> str:
    """``unknown <what> 'name'; closest: a, b (of N keys)`` — never the whole list of a wide run."""
    pool = sorted(set(keys))
    if not pool:
        return f"unknown {what} {name!r}; there are none"
    if len(pool) <= n:
        return f"unknown {what} {name!r}; known: {', '.join(pool)}"
    close = closest_keys(name, pool, n)
    hint = f"closest: {', '.join(close)}" if close else f"e.g. {', '.join(pool[:n])}"
    return f"unknown {what} {name!r}; {hint} (of {len(pool)} keys)"
