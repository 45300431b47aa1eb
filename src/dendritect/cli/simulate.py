"""``dendritect simulate``: write a synthetic operando dataset with ground truth."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from dendritect.cli.main import app
from dendritect.units import parse_quantity


@app.command()
def simulate(
    out: Path = typer.Argument(..., help="Dataset folder to write (must be new or empty)."),
    preset: str = typer.Option(
        "demo", "--preset", help="demo (small, quick), paper, hard or random (imaging and "
        "cell drawn from wide ranges per --seed)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same bytes."),
    ct: str = typer.Option(None, "--ct", help="fbp (projections + reconstruction) or fast "
                           "(image-space artifacts); default the preset's."),
    current_density: str = typer.Option(None, "--current-density",
                                        help="Plating current density, e.g. 1mA/cm2."),
    stack_pressure: str = typer.Option(None, "--stack-pressure", help="e.g. 5MPa."),
    electrolyte: str = typer.Option(None, "--electrolyte", help="Li6PS5Cl or LLZO."),
    steps: int = typer.Option(None, "--steps", help="Number of CT scans."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty OUT."),
) -> None:
    """Write a synthetic operando CT dataset of a cracking solid-state cell, with truth."""
    from dendritect.synthetic import simulate as _simulate

    overrides: dict = {"n_steps": steps, "electrolyte": electrolyte}
    if current_density is not None:
        overrides["current_density_mA_cm2"] = parse_quantity(
            current_density, "mA/cm2", name="--current-density")
    if stack_pressure is not None:
        overrides["stack_pressure_MPa"] = parse_quantity(stack_pressure, "MPa",
                                                         name="--stack-pressure")
    t0 = time.perf_counter()
    path = _simulate(out, preset, seed=seed, ct=ct, overwrite=overwrite, **overrides)
    took = time.perf_counter() - t0

    import json

    meta = json.loads((path / "dataset.json").read_text(encoding="utf-8"))
    truth = json.loads((path / "truth" / "truth.json").read_text(encoding="utf-8"))
    shape = "x".join(str(s) for s in meta["shape_zyx"])
    vox = ",".join(f"{v:g}" for v in meta["voxel_size_um"])
    span = truth["span_index"]
    short = truth["short_time_s"]
    typer.echo(f"wrote {path} in {took:.1f} s: preset {meta['preset']}, seed {meta['seed']}, "
               f"ct {meta['ct']}")
    typer.echo(f"  scans/        {meta['n_steps']} x uint16 {shape} (z,y,x), voxel {vox} um, "
               f"t = 0..{meta['times_s'][-1]:.0f} s")
    typer.echo("  echem.csv     time_s,voltage_V,current_mA")
    typer.echo("  truth/        labels.zarr, crack_ids.zarr (t,z,y,x) uint8, truth.json")
    if truth.get("conditions"):
        typer.echo(f"  conditions: {', '.join(truth['conditions'])}")
    typer.echo(f"  {meta['electrolyte']}, {meta['current_density_mA_cm2']:g} mA/cm2, "
               f"{meta['stack_pressure_MPa']:g} MPa; anode {meta['anode']}; "
               f"span at step {span if span is not None else 'none'}; short at "
               f"{f'{short:.0f} s' if short is not None else 'none'}")
