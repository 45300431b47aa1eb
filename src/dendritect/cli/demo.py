"""``dendritect demo [--out DIR]``: simulate a small cell, analyse it, write the report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from dendritect import results as R
from dendritect.cli.main import app
from dendritect.errors import InputError

__all__ = ["run_demo"]

#: Written into a demo folder so a later run knows it may replace it.
MARKER = "demo.json"


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if (out / MARKER).is_file() or overwrite:
        return
    raise InputError(f"--out {out} exists and is not a dendritect demo folder; choose another "
                     "folder or pass --overwrite")


def _dataset_echem(data: Path) -> Path | None:
    """The cycler record of a simulated dataset, where its ``dataset.json`` says it is (None
    when there is none)."""
    try:
        name = json.loads((data / "dataset.json").read_text(encoding="utf-8")).get("echem")
    except (OSError, ValueError, AttributeError):
        return None
    path = data / name if isinstance(name, str) and name else None
    return path if path is not None and path.is_file() else None


def run_demo(out: str | Path, *, overwrite: bool = False, seed: int = 0,
             progress: bool = False, echo=print) -> Path:
    """Simulate the demo cell into ``out/data``, analyse it into ``out/results``, write the report.

    Parameters
    ----------
    out : str or Path
        Folder to write. An existing folder is replaced only when it holds an earlier demo or
        ``overwrite`` is given.
    overwrite : bool
        Allow writing into an existing folder that is not a demo folder.
    seed : int
        Random seed of the synthetic cell.
    progress : bool
        Show the analysis progress bar.
    echo : callable
        Where to print one-line progress messages.

    Returns
    -------
    Path
        The report's path.
    """
    out = Path(out)
    _check_out(out, overwrite)  # before the heavy imports: refuse fast

    from dendritect.pipeline import analyze
    from dendritect.report import write_report
    from dendritect.synthetic import simulate

    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"dendritect_demo": True, "seed": seed}) + "\n",
                              encoding="utf-8")
    t0 = time.perf_counter()
    data = simulate(out / "data", preset="demo", seed=seed, overwrite=True)
    echo(f"simulated the demo cell into {data} ({time.perf_counter() - t0:.0f} s)")
    t1 = time.perf_counter()
    results = out / "results"
    analyze(data, results, echem=_dataset_echem(Path(data)), overwrite=True, progress=progress)
    report = results / R.REPORT_HTML
    if not report.is_file():  # the analysis writes it when it can; make sure
        report = write_report(results)
    echo(f"analysed it into {results} ({time.perf_counter() - t1:.0f} s)")
    return report


@app.command()
def demo(
    out: Path = typer.Option(Path("dendritect-demo"), "--out", "-o",
                             help="Folder to write (data/, results/ with report.html)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Write into an existing folder that is not a demo folder."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the synthetic cell."),
) -> None:
    """Simulate a small operando dataset, analyse it and write the report."""
    report = run_demo(out, overwrite=overwrite, seed=seed, progress=sys.stderr.isatty(),
                      echo=typer.echo)
    typer.echo(f"report: {report}")
    typer.echo(f"open it in a browser, e.g. file://{report.resolve()}")
