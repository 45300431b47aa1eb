"""``dendritect export DIR --format F --out PATH``: results for other tools."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import typer

from dendritect.cli.main import app


@app.command()
def export(
    results: Path = typer.Argument(..., metavar="DIR",
                                   help="Results folder written by `dendritect analyze`."),
    fmt: str = typer.Option(..., "--format", "-f", metavar="FORMAT",
                            help="ome-zarr (image and label images), tiff (ImageJ hyperstacks), "
                                 "stl or vtk (crack surface meshes in µm)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="PATH",
                             help="New path (a store or folder) to write; never inside DIR."),
    scans: bool = typer.Option(False, "--scans",
                               help="ome-zarr, tiff: add the input scans registered onto step "
                                    "0 (the input must still be where the analysis read it)."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace an earlier export at PATH."),
) -> None:
    """Write the results of DIR for Fiji, Avizo/Amira/Dragonfly, napari and OME-Zarr viewers,
    ParaView and finite-element meshing (docs/formats.md, "Exports")."""
    from dendritect.errors import InputError
    from dendritect.export import FORMATS
    from dendritect.export import export as run_export
    from dendritect.lock import read_lock, results_lock
    from dendritect.reading import open_results

    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    open_results(results)   # not a results folder: refused before the lock is taken
    if scans and fmt in ("stl", "vtk"):
        raise InputError("--scans applies to ome-zarr and tiff exports only")
    if os.access(results, os.W_OK):
        lock = results_lock(results, "export", create=False)
    else:
        # A read-only results folder (shared storage): no lock can be taken there, and no run
        # can be writing it unless its lock says so.
        held = read_lock(results)
        if held is not None:
            raise InputError(f"{results} is in use by another run (pid {held.get('pid', '?')})")
        lock = contextlib.nullcontext()
    with lock:
        info = run_export(results, fmt, out, overwrite=overwrite, scans=scans)
    typer.echo(f"export ({fmt}): {out} ({len(info.get('files', []))} file(s))")
