"""Pieces shared by the format readers: the raw result, chunking, units, sorting."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from natsort import natsorted

from dendritect.errors import InputError
from dendritect.units import ureg

__all__ = [
    "CHUNK_BYTES",
    "TIFF_SUFFIXES",
    "RawSeries",
    "as_4d",
    "chunk_nz",
    "file_end_check",
    "is_tiff_name",
    "length_um",
    "list_dir",
    "time_s",
]

# A dask chunk of about this many bytes: large enough that the scheduler's overhead is
# small, small enough that a few chunks per worker fit in memory next to the analysis.
CHUNK_BYTES = 64 * 2**20

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")


@dataclass
class RawSeries:
    """What a format reader found, before the user's options are applied."""

    data: da.Array
    format: str
    voxel_size_um: tuple[float, float, float] | None = None
    times_s: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def chunk_nz(shape_zyx: tuple[int, ...], itemsize: int, *, multiple_of: int = 1) -> int:
    """Number of z slices per dask chunk, for chunks of about :data:`CHUNK_BYTES`.

    ``multiple_of`` keeps chunk edges on the storage's own chunk edges along z.
    """
    nz = int(shape_zyx[0])
    slice_bytes = max(1, int(np.prod(shape_zyx[1:], dtype=np.int64)) * int(itemsize))
    n = max(1, CHUNK_BYTES // slice_bytes)
    if multiple_of > 1:
        n = max(multiple_of, (n // multiple_of) * multiple_of)
    return int(max(1, min(nz, n)))


def require_volume(shape: tuple[int, ...], where: str, what: str) -> None:
    """InputError unless ``shape`` is a volume (z, y, x) or a series (t, z, y, x)."""
    if len(shape) == 2:
        raise InputError(f"{where}: {what} is a 2D image of shape {shape}; "
                         "a volume (z, y, x) is needed")
    if len(shape) not in (3, 4):
        raise InputError(f"{where}: {what} has shape {shape}; expected "
                         "(z, y, x) or (t, z, y, x)")


def as_4d(arr: da.Array, where: str) -> da.Array:
    """Make a (z, y, x) or (t, z, y, x) dask array 4D; anything else is an InputError."""
    if arr.ndim == 3:
        return arr[None]
    if arr.ndim == 4:
        return arr
    if arr.ndim == 2:
        raise InputError(
            f"{where}: a 2D image of shape {tuple(arr.shape)}; a volume (z, y, x) is needed"
        )
    raise InputError(
        f"{where}: {arr.ndim}D data of shape {tuple(arr.shape)}; expected (z, y, x) or (t, z, y, x)"
    )


def list_dir(folder: Path) -> list[Path]:
    """Entries of ``folder`` in natural order (``scan_2`` before ``scan_10``), not hidden ones."""
    try:
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError as exc:
        raise InputError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
    return natsorted(entries, key=lambda p: p.name)


def is_tiff_name(p: Path) -> bool:
    name = p.name.lower()
    return name.endswith(TIFF_SUFFIXES)


def _unit_text(unit: str | None) -> str | None:
    if unit is None:
        return None
    u = str(unit).strip()
    if not u or u.lower() in ("pixel", "pixels", "px", "none", "a.u.", "au"):
        return None
    return u.replace("\\u00B5", "u").replace("µ", "u").replace("μ", "u")


def length_um(value: Any, unit: str | None) -> float | None:
    """``value`` in ``unit`` converted to µm; None when there is no usable unit or value."""
    u = _unit_text(unit)
    if u is None:
        return None
    try:
        v = float(value)
        out = float(ureg.Quantity(v, u).to("um").magnitude)
    except Exception:  # unknown unit names, non-numbers, wrong dimension
        return None
    if not math.isfinite(out) or out <= 0:
        return None
    return out


def time_s(value: Any, unit: str | None = "s") -> float | None:
    """``value`` in ``unit`` (a time unit) converted to seconds; None when unusable."""
    u = _unit_text(unit) or "s"
    try:
        out = float(ureg.Quantity(float(value), u).to("s").magnitude)
    except Exception:
        return None
    return out if math.isfinite(out) else None


def file_end_check(path: Path, end: int, what: str) -> None:
    """Refuse a file whose header declares data past its end (truncated or corrupt)."""
    size = os.path.getsize(path)
    if end > size:
        raise InputError(
            f"{path}: {what} declares data up to byte {end:,} but the file has only "
            f"{size:,} bytes (truncated or corrupt file)"
        )
