"""``interplab runs …`` — parse arguments and call the runs functions."""

from __future__ import annotations

import dataclasses

import typer

from interplab.common.options import command
from interplab.runs.configs import (
    DiffConfig,
    ExperimentConfig,
    ExportConfig,
    HeadsConfig,
    ListConfig,
    PlotConfig,
    ReportConfig,
    StatsConfig,
    SweepConfig,
    options_of,
)

app = typer.Typer(
    help="W&B runs (cloud or offline folders): list, diff, export, plot, attention heads, report, experiment.",
    no_args_is_help=True,
)


@app.callback()
def runs_options(
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        help="Seconds to wait for the W&B server on each request (wandb: sources; default 20).",
    ),
) -> None:
    """W&B runs (cloud or offline folders): list, diff, export, plot, attention heads, report, experiment."""
    if timeout is not None:
        import os

        from interplab.runs.cloud_connect import TIMEOUT_ENV, resolve_timeout

        os.environ[TIMEOUT_ENV] = str(resolve_timeout(timeout))


def _print_frame(df, title: str) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    from interplab.common.console import no_truncation, output_console

    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), overflow="fold")
    for row in df.itertuples(index=False):
        table.add_row(
            *(
                ""
                if v is None or (isinstance(v, float) and v != v)
                else f"{v:.4g}"
                if isinstance(v, float)
                else str(v)
                for v in row
            )
        )
    output_console().print(no_truncation(table))  # piped: full width; terminal: cells wrap


def _echo_skipped(df) -> None:  # type: ignore[no-untyped-def]
    from interplab.runs.runlist import skipped_lines

    lines = skipped_lines(df)
    if lines:
        typer.echo(f"skipped {len(lines)} run(s) with no logged data:")
        for line in lines:
            typer.echo(f"  {line}")


def _in_order(cfg: object) -> list[object]:
    """A config's field values in declaration order (for functions taking them positionally)."""
    return [getattr(cfg, f.name) for f in dataclasses.fields(cfg)]  # type: ignore[arg-type]


@command(app, "list", ListConfig)
def list_command(cfg: ListConfig) -> None:
    """Table of runs: id, name, state, tags, last step and chosen summary metrics."""
    from interplab.runs.commands import runs_list

    df = runs_list(cfg.source, cfg.tag, cfg.filter, cfg.metric)
    _print_frame(df, f"{len(df)} runs in {cfg.source}")
    if df.attrs.get("summary_derived"):
        typer.echo(
            "summary derived from the last logged values (no summary in the log): "
            + ", ".join(df.attrs["summary_derived"])
        )
    _echo_skipped(df)


@command(app, "diff", DiffConfig)
def diff_command(cfg: DiffConfig) -> None:
    """Config keys whose values differ between the runs (one row per run)."""
    from interplab.runs.commands import runs_diff
    from interplab.runs.frames import write_frame

    df = runs_diff(cfg.source, cfg.tag, cfg.filter)
    if cfg.out is not None:
        write_frame(df, cfg.out)
    _print_frame(df, f"config keys that differ across {len(df)} runs")


@command(app, "export", ExportConfig)
def export_command(cfg: ExportConfig) -> None:
    """Every logged step of the metrics (with flattened config) into one Parquet/CSV file."""
    from interplab.runs.commands import runs_export

    df = runs_export(cfg.source, cfg.metrics, cfg.out, cfg.tag, cfg.filter, cfg.step_key)
    typer.echo(f"wrote {cfg.out} ({len(df)} rows, {df['_run_id'].nunique()} runs)")
    _echo_skipped(df)


@command(app, "plot", PlotConfig)
def plot_command(cfg: PlotConfig) -> None:
    """Metric curves: mean and a bootstrap CI band across runs, grouped by a config key, phases shaded."""
    from interplab.runs.commands import runs_plot

    result = runs_plot(*_in_order(cfg))  # the fields are runs_plot's parameters, in order
    typer.echo("wrote " + ", ".join(map(str, result.files)))
    for line in result.skipped:
        typer.echo(f"skipped (no logged data): {line}")


@command(app, "heads", HeadsConfig)
def heads_command(cfg: HeadsConfig) -> None:
    """Attention heads of one run at several steps from its logged attention table."""
    from interplab.runs.commands import runs_heads

    result = runs_heads(*_in_order(cfg))  # the fields are runs_heads's parameters, in order
    typer.echo("wrote " + ", ".join(map(str, result.files)))


@command(app, "report", ReportConfig)
def report_command(cfg: ReportConfig) -> None:
    """Every figure (KL curves with phases, val loss, grouped curves, attention heads) + index.html."""
    from interplab.runs.report import runs_report

    result = runs_report(cfg.source, cfg.out, cfg.tag, cfg.filter, cfg.key, cfg.head_steps)
    typer.echo(f"wrote {result.out / 'index.html'} ({len(result.figures)} figures, {result.n_runs} runs)")


@command(app, "experiment", ExperimentConfig)
def experiment_command(cfg: ExperimentConfig) -> None:
    """Train a tiny attention-only transformer on in-context Markov chains; log runs offline with wandb."""
    from interplab.runs.experiment import parse_sweep, run_experiment

    grid = parse_sweep(cfg.sweep) if cfg.sweep else None
    result = run_experiment(cfg.out, seeds=cfg.seeds, sweep=grid, steps=cfg.steps)
    typer.echo(
        f"wrote {len(result.runs)} runs to {result.out / 'wandb'} in {result.seconds:.1f}s; "
        f"next: interplab runs report {result.out} --out {result.out / 'report'}"
    )


@command(app, "stats", StatsConfig)
def stats_command(cfg: StatsConfig) -> None:
    """Statistics across seeds: bootstrap intervals, IQM, P(improvement), permutation tests, seeds needed."""
    from interplab.runs.stats_report import StatsOptions, runs_stats

    result = runs_stats(cfg.source, cfg.metric, cfg.out, options_of(cfg, StatsOptions), cfg.tag, cfg.filter)
    typer.echo(
        f"wrote {cfg.out / 'report.md'} ({len(result.groups)} groups, {len(result.comparisons)} comparisons)"
    )


@command(app, "sweep", SweepConfig)
def sweep_command(cfg: SweepConfig) -> None:
    """Sweep analysis: hyperparameter importance, partial dependence, best so far, parallel coordinates."""
    from interplab.runs.sweep import SweepOptions, runs_sweep

    result = runs_sweep(cfg.source, cfg.metric, cfg.out, options_of(cfg, SweepOptions), cfg.tag, cfg.filter)
    typer.echo(
        f"wrote {cfg.out / 'index.html'} ({len(result.table)} runs, {len(result.hyperparameters)} hyperparameters)"
    )
