"""``interplab sae …`` — parse arguments and call the sae functions."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Sparse autoencoders: quick checks, full corpus analysis, training, browsing.", no_args_is_help=True
)


# ---- sae browse (feature browser; owner: sae-browser) -------------------------------------------
@app.command("browse")
def browse_command(
    analysis_dir: str = typer.Argument(..., help="Output folder of `interplab sae analyze`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on (0 = any free port)."),
    export: str | None = typer.Option(None, "--export", help="Write a static HTML copy here; no server."),
    features: str | None = typer.Option(None, "--features", help="With --export: feature ids, e.g. 1,2,3."),
    n_random: int = typer.Option(50, "--n-random", help="With --export: random extra features."),
    seed: int = typer.Option(0, "--seed", help="With --export: seed of the random sample."),
) -> None:
    """Browse an analysis folder's features in a local web app, or export a static copy."""
    from interplab.common.errors import InterplabError
    from interplab.sae.browser import export_browser, serve_browser

    ids = None
    if features is not None:
        try:
            ids = [int(x) for x in features.replace(" ", "").split(",") if x]
        except ValueError:
            raise InterplabError(f"--features: expected comma-separated integers, got {features!r}") from None
    if export is not None:
        result = export_browser(analysis_dir, export, features=ids, n_random=n_random, seed=seed)
        typer.echo(f"{result.path / 'index.html'} ({len(result.features)} features)")
        return
    if ids is not None:
        raise InterplabError("--features: only used with --export")
    serve_browser(analysis_dir, host=host, port=port)
