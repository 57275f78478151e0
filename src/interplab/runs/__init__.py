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

# Figures, report and the built-in experiment (runs-figures) load on first use, so that importing
# the package (and starting the CLI) does not pull in matplotlib or torch.
_LAZY = {
    "curves_figure": "interplab.runs.curves",
    "plot_metric_curves": "interplab.runs.curves",
    "plot_kl_divergence": "interplab.runs.curves",
    "plot_kl_divergence_simple": "interplab.runs.curves",
    "plot_val_loss": "interplab.runs.curves",
    "plot_val_loss_simple": "interplab.runs.curves",
    "auto_phases": "interplab.runs.phases",
    "Phase": "interplab.runs.phases",
    "pivot_heads": "interplab.runs.heads",
    "plot_combined_heads": "interplab.runs.heads",
    "plot_combined_heads_individual": "interplab.runs.heads",
    "plot_separated_heads": "interplab.runs.heads",
    "runs_report": "interplab.runs.report",
    "run_experiment": "interplab.runs.experiment",
    "bootstrap_interval": "interplab.runs.bootstrap",
    "probability_of_improvement": "interplab.runs.bootstrap",
    "permutation_test": "interplab.runs.bootstrap",
    "seeds_needed": "interplab.runs.bootstrap",
    "compute_stats": "interplab.runs.stats_report",
    "runs_stats": "interplab.runs.stats_report",
    "StatsOptions": "interplab.runs.stats_report",
    "compute_sweep": "interplab.runs.sweep",
    "runs_sweep": "interplab.runs.sweep",
    "SweepOptions": "interplab.runs.sweep",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'interplab.runs' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
