"""``dendritect fit DIR``: calibrate the crack-growth model to a results folder."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dendritect.cli.main import app


@app.command()
def fit(
    results: Path = typer.Argument(..., metavar="DIR",
                                   help="Results folder written by `dendritect analyze`."),
    model: str = typer.Option("cell", "--model",
                              help="Forward model: cell (the cell model) or growth (the "
                                   "first closure, which drives the synthetic twin)."),
    electrolyte: str | None = typer.Option(
        None, "--electrolyte", "-e", help="Electrolyte; default from the input's dataset.json."),
    current_density: str | None = typer.Option(
        None, "--current-density", help="Mean plating current density, e.g. 1mA/cm2; default "
                                        "from the input's dataset.json."),
    stack_pressure: str | None = typer.Option(
        None, "--stack-pressure", help="Stack pressure, e.g. 5MPa; default from the input's "
                                       "dataset.json."),
    temperature: str = typer.Option("25C", "--temperature", help="Cell temperature."),
    last_index: int | None = typer.Option(
        None, "--last-index", min=0, help="Fit only the scans up to this step index."),
    as_json: bool = typer.Option(False, "--json", help="Print fit.json to stdout as well."),
) -> None:
    """Fit the model's flaw size and current focusing to the measured crack fronts against
    the charge passed; write DIR/fit.json with σ, the span and short forecasts and a what-if
    table."""
    from dendritect.cli.model import (
        parse_current_density,
        parse_pressure_MPa,
        parse_temperature_C,
    )
    from dendritect.errors import InputError
    from dendritect.lock import results_lock
    from dendritect.physics.fit import fit as run_fit
    from dendritect.physics.fit import load_results, write_fit_json

    if model not in ("cell", "growth"):
        raise InputError(f"--model: use cell or growth, got {model!r}")
    if not results.is_dir():
        raise InputError(f"{results}: not a folder")
    i = None if current_density is None else parse_current_density(current_density)
    p = None if stack_pressure is None else parse_pressure_MPa(stack_pressure, "--stack-pressure")
    with results_lock(results, "fit"):
        data = load_results(results, electrolyte=electrolyte, current_density_mA_cm2=i,
                            stack_pressure_MPa=p, temperature_C=parse_temperature_C(temperature),
                            last_index=last_index)
        out = run_fit(data, model=model)
        path = write_fit_json(results, out)
    doc = out.to_dict()
    if as_json:
        typer.echo(json.dumps(json.loads(path.read_text(encoding="utf-8")), indent=2))
        return
    for name, v in doc["parameters"].items():
        sig = "?" if v["sigma"] is None else f"{v['sigma']:.3g}"
        typer.echo(f"{name}: {v['value']:.4g} ± {sig} {v['unit']}")

    def _t(x: float | None) -> str:
        return "not reached" if x is None else f"{x:.6g} s"

    sig = doc["forecast_span_time_sigma_s"]
    typer.echo(f"forecast span: {_t(doc['forecast_span_time_s'])}"
               + ("" if sig is None else f" ± {sig:.3g} s"))
    typer.echo(f"forecast short: {_t(doc['forecast_short_time_s'])}")
    for row in doc["what_if"]:
        s = row["short_time_s"]
        typer.echo(f"what if {row['change']}: "
                   + ("no short within the horizon" if s is None
                      else f"short after {s:.6g} s of plating"))
    for note in doc["notes"]:
        typer.echo(f"note: {note}")
    typer.echo(f"fit: {path}")
