"""The runs area of interplab: W&B runs from the cloud or from offline folders, as DataFrames."""

from interplab.runs.api import fetch_run, fetch_run_data, fetch_runs, find_run, history
from interplab.runs.frames import aggregate, differing_config, get_runs_data, metric_keys
from interplab.runs.run import Run
from interplab.runs.tables import get_table, table_keys

__all__ = [
    "Run",
    "aggregate",
    "differing_config",
    "fetch_run",
    "fetch_run_data",
    "fetch_runs",
    "find_run",
    "get_runs_data",
    "get_table",
    "history",
    "metric_keys",
    "table_keys",
]
