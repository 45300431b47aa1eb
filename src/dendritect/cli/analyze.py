"""``dendritect analyze INPUT --out DIR``: segment, track and measure cracks."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Any

import typer

from dendritect.cli.main import app
from dendritect.errors import InputError


def _convert(text: str, default: Any, key: str) -> Any:
    """Read ``text`` as the type of the setting's default value."""
    try:
        if isinstance(default, bool):
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, (tuple, list)):
            items = [p for p in text.split(",") if p.strip()]
            kind = type(default[0]) if default else float
            return type(default)(kind(p) for p in items)
        if default is None:
            try:
                return float(text)
            except ValueError:
                return text
        return type(default)(text)
    except (TypeError, ValueError):
        raise InputError(f"--param {key}: cannot read {text!r} as "
                         f"{type(default).__name__}") from None


def segment_params(pairs: list[str] | None) -> Any:
    """SegmentParams with ``KEY=VALUE`` overrides (``--param``)."""
    from dendritect.segment.cracks import SegmentParams

    base = SegmentParams()
    if not pairs:
        return base
    fields = {f.name for f in dataclasses.fields(base)}
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InputError(f"--param: expected KEY=VALUE, got {pair!r}")
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise InputError(f"--param: unknown setting {key!r}; known: {known}")
        changes[key] = _convert(value, getattr(base, key), key)
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as exc:
        raise InputError(f"--param: {exc}") from None


def analysis_options(*, voxel_size: str | None, anode: str, echem: Path | None,
                     times_s: str | None, interval: str | None, dataset: str | None,
                     force_units: bool, param: list[str] | None, min_overlap: int,
                     span_tolerance: float, memory_limit: str | None, workers: int | None,
                     scheduler: str | None, device: str,
                     ring_correction: bool = False) -> dict[str, Any]:
    """The keyword arguments of :func:`dendritect.pipeline.analyze` for the command line's
    analysis options (``analyze`` and ``watch`` share them); bad values are an InputError."""
    from dendritect.units import parse_duration_s, parse_times_s, parse_voxel_size_um

    if anode not in ("auto", "top", "bottom"):
        raise InputError(f"--anode must be top, bottom or auto, got {anode!r}")
    if times_s is not None and interval is not None:
        raise InputError("give --times-s or --interval, not both")
    return {
        "voxel_size": None if voxel_size is None else parse_voxel_size_um(voxel_size),
        "dataset": dataset,
        "times_s": None if times_s is None else parse_times_s(times_s),
        "interval": None if interval is None else parse_duration_s(interval, name="--interval"),
        "anode": anode, "echem": echem, "params": segment_params(param),
        "min_overlap_vox": min_overlap, "span_tolerance_vox": span_tolerance,
        "memory_limit": memory_limit, "workers": workers, "scheduler": scheduler,
        "device": device, "force_units": force_units, "ring_correction": ring_correction,
    }


@app.command()
def analyze(
    input: Path = typer.Argument(..., help="CT series: TIFF(s), folder, HDF5/NeXus, Zarr, or a "
                                 "dataset folder written by `dendritect simulate`."),
    out: Path = typer.Option(..., "--out", "-o", help="Results folder to write."),
    voxel_size: str | None = typer.Option(
        None, "--voxel-size", help="One length (0.65um, 650nm) or three z,y,x (1,0.65,0.65um); "
        "overrides the metadata."),
    anode: str = typer.Option("auto", "--anode", help="Plated electrode: top (low z), bottom "
                              "(high z) or auto (decided from the data)."),
    echem: Path | None = typer.Option(
        None, "--echem", help="Cycler data: EC-Lab .mpr/.mpt, Neware .nda/.ndax, Maccor text "
        "export, BDF (.bdf/.csv) or CSV with time, voltage and current columns and units "
        "(time/s,Ewe/V,I/mA). A decimated copy goes into the results (echem.csv)."),
    times_s: str | None = typer.Option(None, "--times-s", help="Acquisition time of each step, "
                                       "comma-separated (0,600,1200 or 0,10min,20min)."),
    interval: str | None = typer.Option(None, "--interval", help="Time between steps (10min)."),
    dataset: str | None = typer.Option(None, "--dataset", help="Array inside an HDF5/NeXus or "
                                       "Zarr file."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out "
                                "(or finish one stopped while writing its report)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in --out; only "
                                   "the files dendritect wrote there are removed."),
    force_units: bool = typer.Option(False, "--force-units", help="Accept a voxel size outside "
                                     "10 nm - 1 mm, times that do not increase or a cell "
                                     "thicker than 10 cm (with a warning) instead of refusing."),
    param: list[str] | None = typer.Option(
        None, "--param", help="Segmentation setting KEY=VALUE (repeatable); see "
        "docs/analysis.md for the settings."),
    min_overlap: int = typer.Option(1, "--min-overlap", min=1,
                                    help="Voxels a crack must share with an earlier one to keep "
                                    "its id."),
    span_tolerance: float = typer.Option(2.5, "--span-tolerance", min=0.0,
                                         help="Voxels from an interface within which a crack's "
                                         "face touches it (spanning: touches both)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    memory_limit: str | None = typer.Option(
        None, "--memory-limit", help="Memory budget for the filters (4GB); above it they run "
        "chunk by chunk with the same result."),
    workers: int | None = typer.Option(None, "--workers", min=1,
                                       help="Start a local dask cluster of N worker processes."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Address of a running dask.distributed scheduler "
        "(tcp://host:8786) or its scheduler file."),
    device: str = typer.Option("cpu", "--device", help="cpu, gpu (CuPy + CUDA) or auto."),
    ring_correction: bool = typer.Option(
        False, "--ring-correction", help="Remove ring artefacts from each slice (about the "
        "slice centre) before registration; see docs/segmentation.md."),
) -> None:
    """Segment, track and measure dendrite cracks; write the results folder (and report.html)."""
    from dendritect.pipeline import analyze as run

    opts = analysis_options(voxel_size=voxel_size, anode=anode, echem=echem, times_s=times_s,
                            interval=interval, dataset=dataset, force_units=force_units,
                            param=param, min_overlap=min_overlap,
                            span_tolerance=span_tolerance, memory_limit=memory_limit,
                            workers=workers, scheduler=scheduler, device=device,
                            ring_correction=ring_correction)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        summary = run(input, out, resume=resume, overwrite=overwrite,
                      progress=not quiet and sys.stderr.isatty(), **opts)
    seen = set()
    for w in caught:
        msg = str(w.message)
        if issubclass(w.category, UserWarning) and msg not in seen:
            seen.add(msg)
            print(f"warning: {msg}", file=sys.stderr)
    span = summary.get("span_index")
    sc = summary.get("short_circuit", {})
    typer.echo(f"analysed {summary.get('n_steps')} steps of {input} -> {out}")
    fc = sc.get("forecast_time_s")
    typer.echo(f"anode: {summary.get('anode')}; span step: "
               f"{'none' if span is None else span}; forecast span time: "
               f"{'none' if fc is None else f'{fc:.6g} s'}")
