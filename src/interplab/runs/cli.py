"""``interplab runs …`` — parse arguments and call the runs functions."""

from __future__ import annotations

from pathlib import Path

import typer

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


SOURCE_HELP = (
    "wandb:ENTITY/PROJECT, or a folder holding wandb/ or offline-run-*/run-* folders, or one run folder."
)
TAG = typer.Option(None, "--tag", "-t", help="Keep runs with any of these tags (repeatable).")
FILTER = typer.Option(
    None, "--filter", help='W&B Mongo-style filter as JSON, e.g. \'{"config.lr": {"$gt": 0.001}}\'.'
)


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


@app.command("list")
def list_command(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    tag: list[str] | None = TAG,
    filter: str | None = FILTER,
    metric: list[str] | None = typer.Option(
        None, "--metric", "-m", help="Summary metric to show (repeatable)."
    ),
) -> None:
    """Table of runs: id, name, state, tags, last step and chosen summary metrics."""
    from interplab.runs.commands import runs_list

    df = runs_list(source, tag, filter, metric)
    _print_frame(df, f"{len(df)} runs in {source}")
    if df.attrs.get("summary_derived"):
        typer.echo(
            "summary derived from the last logged values (no summary in the log): "
            + ", ".join(df.attrs["summary_derived"])
        )
    _echo_skipped(df)


@app.command("diff")
def diff_command(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    tag: list[str] | None = TAG,
    filter: str | None = FILTER,
    out: Path | None = typer.Option(None, "--out", help="Also write the table (.csv or .parquet)."),
) -> None:
    """Config keys whose values differ between the runs (one row per run)."""
    from interplab.runs.commands import runs_diff
    from interplab.runs.frames import write_frame

    df = runs_diff(source, tag, filter)
    if out is not None:
        write_frame(df, out)
    _print_frame(df, f"config keys that differ across {len(df)} runs")


@app.command("export")
def export_command(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    metrics: list[str] = typer.Option(
        ..., "--metrics", "--metric", "-m", help="Metrics (repeatable or a,b,c)."
    ),
    out: Path = typer.Option(..., "--out", help="Output file: .parquet or .csv."),
    tag: list[str] | None = TAG,
    filter: str | None = FILTER,
    step_key: str = typer.Option("_step", "--step-key", help="History column used as the step."),
) -> None:
    """Every logged step of the metrics (with flattened config) into one Parquet/CSV file."""
    from interplab.runs.commands import runs_export

    df = runs_export(source, metrics, out, tag, filter, step_key)
    typer.echo(f"wrote {out} ({len(df)} rows, {df['_run_id'].nunique()} runs)")
    _echo_skipped(df)


@app.command("plot")
def plot_command(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    metric: list[str] = typer.Option(..., "--metric", "-m", help="Metrics to plot (repeatable or a,b,c)."),
    out: Path = typer.Option(..., "--out", help="Figure path (.pdf or .png; both are written)."),
    group_by: str | None = typer.Option(
        None, "--group-by", help="Config column for groups (mean and band per value), e.g. cfg.init_scale."
    ),
    phases: str | None = typer.Option(
        None, "--phases", help="'auto' (argmin of KL metrics changes) or steps S1,S2,…"
    ),
    phase_metric: list[str] | None = typer.Option(
        None,
        "--phase-metric",
        help="KL metrics for --phases auto (default: the plotted metrics, or the prefix-teacher set).",
    ),
    max_step: float | None = typer.Option(None, "--max-step", help="Drop steps above this."),
    shift: float = typer.Option(0, "--shift", help="Add this to every step on the x axis."),
    tag: list[str] | None = TAG,
    filter: str | None = FILTER,
    title: str | None = typer.Option(None, "--title"),
    logy: bool = typer.Option(False, "--logy", help="Log-scale y axis."),
    band: str = typer.Option("ci", "--band", help="Band around the mean: ci (bootstrap) | se | std | none."),
    ci: float = typer.Option(0.95, "--ci", help="Confidence level of the ci band."),
) -> None:
    """Metric curves: mean and a bootstrap CI band across runs, grouped by a config key, phases shaded."""
    from interplab.runs.commands import runs_plot

    result = runs_plot(
        source,
        metric,
        out,
        group_by,
        phases,
        phase_metric,
        max_step,
        shift,
        tag,
        filter,
        title,
        logy,
        band,
        ci,
    )
    typer.echo("wrote " + ", ".join(map(str, result.files)))
    for line in result.skipped:
        typer.echo(f"skipped (no logged data): {line}")


@app.command("heads")
def heads_command(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    run: str = typer.Argument(..., help="Run id (or unique run name)."),
    out: Path = typer.Option(..., "--out", help="Figure path (.pdf or .png; both are written)."),
    steps: list[str] | None = typer.Option(
        None, "--steps", "-s", help="Steps (repeatable or a,b,c); default the last."
    ),
    key: str = typer.Option("val_attention_weights", "--key", help="Table key logged in the run."),
    mode: str = typer.Option(
        "combined", "--mode", help="combined (multiply blend) | individual (screen blend) | separated (grid)."
    ),
    staircase: list[str] | None = typer.Option(
        None, "--staircase", help="Outline cells key = query − offset (repeatable or a,b)."
    ),
    gamma: float = typer.Option(0.5, "--gamma", help="Gamma of the individual (screen) blend."),
    normalize: bool = typer.Option(False, "--normalize", help="Scale each head to its maximum weight."),
) -> None:
    """Attention heads of one run at several steps from its logged attention table."""
    from interplab.runs.commands import runs_heads

    result = runs_heads(source, run, out, steps, key, mode, staircase, gamma, normalize)
    typer.echo("wrote " + ", ".join(map(str, result.files)))


@app.command("report")
def report_command(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    tag: list[str] | None = TAG,
    filter: str | None = FILTER,
    key: str = typer.Option("val_attention_weights", "--key", help="Attention table key."),
    head_steps: int = typer.Option(4, "--head-steps", help="How many table steps per run to show."),
) -> None:
    """Every figure (KL curves with phases, val loss, grouped curves, attention heads) + index.html."""
    from interplab.runs.report import runs_report

    result = runs_report(source, out, tag, filter, key, head_steps)
    typer.echo(f"wrote {result.out / 'index.html'} ({len(result.figures)} figures, {result.n_runs} runs)")


@app.command("experiment")
def experiment_command(
    out: Path = typer.Option(..., "--out", help="Output folder (runs go to OUT/wandb/)."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per sweep point."),
    sweep: list[str] | None = typer.Option(
        None, "--sweep", help="KEY=V1,V2 (repeatable; default init_scale=0.01,1.0), e.g. dataset_size=0,2000."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Training steps per run (default 1000)."),
) -> None:
    """Train a tiny attention-only transformer on in-context Markov chains; log runs offline with wandb."""
    from interplab.runs.experiment import parse_sweep, run_experiment

    grid = parse_sweep(sweep) if sweep else None
    result = run_experiment(out, seeds=seeds, sweep=grid, steps=steps)
    typer.echo(
        f"wrote {len(result.runs)} runs to {result.out / 'wandb'} in {result.seconds:.1f}s; "
        f"next: interplab runs report {result.out} --out {result.out / 'report'}"
    )


@app.command("stats")
def stats_command(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    metric: str = typer.Option(..., "--metric", "-m", help="Logged metric to aggregate."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    group_by: str = typer.Option(
        "all-but-seed",
        "--group-by",
        help="Config keys (a,b) or all-but-seed (every differing key but seeds).",
    ),
    seed_keys: list[str] | None = typer.Option(
        None, "--seed-keys", help="Seed config keys (default: names seed, *_seed, seed_*)."
    ),
    align: str = typer.Option("exact", "--align", help="exact | interpolate (onto the union of steps)."),
    smooth: str = typer.Option("none", "--smooth", help="Per-run smoothing: none | ema:W | window:K."),
    ci: float = typer.Option(0.95, "--ci", help="Confidence level of the intervals."),
    n_boot: int = typer.Option(2000, "--n-boot", help="Bootstrap resamples."),
    interval: str = typer.Option("percentile", "--interval", help="percentile | bca."),
    statistic: str = typer.Option(
        "mean", "--statistic", help="Statistic drawn with its band: mean | iqm | median."
    ),
    final: str = typer.Option("last", "--final", help="Value per run for tables and tests: last | best."),
    goal: str = typer.Option("min", "--goal", help="min | max: which direction is better."),
    fdr: float = typer.Option(0.05, "--fdr", help="False discovery rate along the curve."),
    power: float = typer.Option(0.8, "--power", help="Power for the seeds-needed calculation."),
    difference: float | None = typer.Option(
        None, "--difference", help="Difference to detect (default: the observed one)."
    ),
    downsample: str = typer.Option("lttb", "--downsample", help="Plot downsampling: lttb | minmax | none."),
    max_points: int = typer.Option(1000, "--max-points", help="Most points per plotted curve."),
    tag: list[str] | None = TAG,
    filter: str | None = FILTER,
) -> None:
    """Statistics across seeds: bootstrap intervals, IQM, P(improvement), permutation tests, seeds needed."""
    from interplab.runs.api import split_values
    from interplab.runs.stats_report import StatsOptions, runs_stats

    opts = StatsOptions(
        group_by=group_by,
        seed_keys=split_values(seed_keys),
        align=align,
        smooth=smooth,
        ci=ci,
        n_boot=n_boot,
        interval=interval,
        statistic=statistic,
        final=final,
        goal=goal,
        fdr=fdr,
        power=power,
        difference=difference,
        downsample=downsample,
        max_points=max_points,
    )
    result = runs_stats(source, metric, out, opts, tag, filter)
    typer.echo(
        f"wrote {out / 'report.md'} ({len(result.groups)} groups, {len(result.comparisons)} comparisons)"
    )


@app.command("sweep")
def sweep_command(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    metric: str = typer.Option(..., "--metric", "-m", help="Logged metric to explain."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    goal: str = typer.Option("min", "--goal", help="min | max: which direction is better."),
    final: str = typer.Option("last", "--final", help="Value per run: last | best."),
    seed_keys: list[str] | None = typer.Option(
        None, "--seed-keys", help="Seed config keys left out (default: names seed, *_seed, seed_*)."
    ),
    tag: list[str] | None = TAG,
    filter: str | None = FILTER,
) -> None:
    """Sweep analysis: hyperparameter importance, partial dependence, best so far, parallel coordinates."""
    from interplab.runs.api import split_values
    from interplab.runs.sweep import SweepOptions, runs_sweep

    opts = SweepOptions(goal=goal, final=final, seed_keys=split_values(seed_keys))
    result = runs_sweep(source, metric, out, opts, tag, filter)
    typer.echo(
        f"wrote {out / 'index.html'} ({len(result.table)} runs, {len(result.hyperparameters)} hyperparameters)"
    )
