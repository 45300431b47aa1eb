"""``dendritect info INPUT``: what a dataset is, without reading it all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import typer

from dendritect.cli.main import app
from dendritect.errors import InputError
from dendritect.io.readers import open_series
from dendritect.io.series import Series

__all__ = ["describe", "info"]


def _disk_bytes(path: Path) -> tuple[int, int]:
    """Apparent size and allocated size (sparse files allocate less) of a file or folder."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    size = alloc = 0
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        size += st.st_size
        alloc += getattr(st, "st_blocks", st.st_size // 512) * 512
    return size, alloc


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)


def _check_not_all_nan(series: Series) -> None:
    """Step 0 of a floating-point series must hold some data; read chunk by chunk."""
    step = series.data[0]
    z0 = 0
    for nz in step.chunks[0]:
        block = np.asarray(step[z0:z0 + nz].compute())
        if not np.isnan(block).all():
            return
        z0 += nz
    raise InputError(f"{series.source} step 0: every voxel is NaN (no data in this step)")


def describe(series: Series) -> dict[str, Any]:
    """Everything ``dendritect info`` reports about a series, as JSON-ready values."""
    data = series.data
    itemsize = np.dtype(data.dtype).itemsize
    per_step = int(np.prod(series.shape_zyx, dtype=np.int64)) * itemsize
    size, alloc = _disk_bytes(Path(series.source))
    meta = {k: v for k, v in series.meta.items() if not k.startswith("_")}
    out: dict[str, Any] = {
        "source": series.source,
        "format": series.format,
        "n_steps": series.n_steps,
        "shape": list(data.shape),
        "shape_zyx": list(series.shape_zyx),
        "dtype": str(data.dtype),
        "voxel_size_um": [float(v) for v in series.voxel_size_um],
        "voxel_size_source": meta.pop("voxel_size_source", "metadata"),
        "times_s": [float(t) for t in series.times_s],
        "times_source": meta.pop("times_source", "metadata"),
        "bytes_on_disk": size,
        "bytes_allocated_on_disk": alloc,
        "bytes_in_memory": per_step * series.n_steps,
        "bytes_per_step": per_step,
        "chunk_shape": [int(c) for c in data.chunksize],
        "n_chunks": int(data.npartitions),
    }
    for key in ("dataset", "anode", "electrolyte", "compression", "notes"):
        if key in meta:
            out[key] = meta.pop(key)
    out["meta"] = meta
    return _jsonable(out)


def _human(n: int) -> str:
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.2f} {unit}"
        v /= 1024
    return f"{n} B"  # pragma: no cover


def _times_text(times: list[float], source: str) -> str:
    shown = ", ".join(f"{t:g}" for t in times[:6])
    if len(times) > 6:
        shown += f", ... {times[-1]:g}"
    return f"{shown} s ({source})"


def _print_table(d: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dendritect info", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    vs = ", ".join(f"{v:g}" for v in d["voxel_size_um"])
    rows = [
        ("input", d["source"]),
        ("format", d["format"]),
        ("steps", str(d["n_steps"])),
        ("shape (z, y, x)", " x ".join(str(s) for s in d["shape_zyx"])),
        ("dtype", d["dtype"]),
        ("voxel size (z, y, x)", f"{vs} µm ({d['voxel_size_source']})"),
        ("times", _times_text(d["times_s"], d["times_source"])),
        ("on disk", f"{_human(d['bytes_on_disk'])} ({d['bytes_on_disk']:,} bytes)"),
        ("in memory", f"{_human(d['bytes_in_memory'])}; one step "
                      f"{_human(d['bytes_per_step'])}"),
        ("chunks", f"{d['n_chunks']} of {' x '.join(str(c) for c in d['chunk_shape'])}"),
    ]
    for key in ("dataset", "compression", "anode", "electrolyte"):
        if key in d:
            rows.append((key, str(d[key])))
    for note in d.get("notes", []):
        rows.append(("note", str(note)))
    for k, v in rows:
        table.add_row(k, v)
    Console(width=120).print(table)


@app.command()
def info(
    input_path: Path = typer.Argument(
        ..., metavar="INPUT", help="A TIFF, HDF5/NeXus, Zarr store or dataset folder."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
    voxel_size: str | None = typer.Option(
        None, "--voxel-size", help="Voxel size: one length (0.65um) or three z,y,x "
        "(1,0.65,0.65um). Overrides metadata."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="The array inside an HDF5/NeXus file or Zarr store."),
    times_s: str | None = typer.Option(
        None, "--times-s", help="Time of each step, comma-separated (0,600,1200 or 0,10min)."),
    interval: str | None = typer.Option(
        None, "--interval", help="Time between steps (e.g. 10min)."),
) -> None:
    """Show what a dataset is: format, steps, shape, dtype, voxel size, times, size on disk."""
    series = open_series(input_path, dataset=dataset, voxel_size=voxel_size, times_s=times_s,
                         interval=interval)
    if np.dtype(series.data.dtype).kind == "f":
        _check_not_all_nan(series)
    d = describe(series)
    if as_json:
        typer.echo(json.dumps(d, allow_nan=False))
    else:
        _print_table(d)
