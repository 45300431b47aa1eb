"""``dendritect report DIR``: (re)write ``DIR/report.html``, its figures and the movie."""

from __future__ import annotations

from pathlib import Path

import typer

from dendritect import results as R
from dendritect.cli.main import app


@app.command()
def report(
    results: Path = typer.Argument(..., metavar="DIR",
                                   help="Results folder written by `dendritect analyze`."),
    movie: bool = typer.Option(True, "--movie/--no-movie",
                               help=f"Also write {R.MOVIE_GIF} and {R.MOVIE_MP4} (one frame "
                                    "per step)."),
    max_triangles: int = typer.Option(40_000, "--max-triangles", min=100,
                                      help="Triangle budget of the interactive 3D view."),
) -> None:
    """(Re)write DIR/report.html, a self-contained page that opens offline, with the figures
    (PNG, SVG) in DIR/figures/ and, unless --no-movie, DIR/movie.gif and DIR/movie.mp4."""
    from dendritect.report import write_report

    path = write_report(results, movie=movie, max_triangles=max_triangles)
    typer.echo(f"report: {path}")
