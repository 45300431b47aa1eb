"""Open any supported CT input lazily as a :class:`~dendritect.io.series.Series`.

Inputs (see ``docs/formats.md``):

1. a folder of per-step folders, each holding one 2D TIFF per z slice;
2. a folder of 3D TIFF files, one per step (a folder of 2D TIFFs is one step's slices);
3. one 3D (one step) or 4D (t, z, y, x) TIFF: BigTIFF, ImageJ hyperstack, OME-TIFF;
4. an HDF5 / NeXus file: a 4D dataset, or a group with one 3D dataset per step;
5. a Zarr (v2 or v3) or OME-Zarr store;
6. the dataset folder written by ``dendritect simulate``.

Nothing is read until a chunk of ``Series.data`` is computed; headers are checked on opening
so that a truncated file, a header declaring more data than the file holds, or steps of
different shapes are refused before any pixel is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dendritect.errors import InputError
from dendritect.io._common import RawSeries, is_tiff_name, list_dir
from dendritect.io._dataset import is_dataset_folder, read_dataset_folder
from dendritect.io._hdf5 import read_hdf5
from dendritect.io._tiff import is_tiff_file, read_slice_folders, read_tiff_file, read_tiff_files
from dendritect.io._zarr import is_zarr_store, read_zarr
from dendritect.io.series import Series
from dendritect.units import parse_duration_s, parse_times_s, parse_voxel_size_um

__all__ = ["check_volume", "open_series"]

_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5", ".nx", ".h5nx")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(path: Path) -> bool:
    # The signature sits at byte 0, or 512, 1024, 2048... after a user block.
    try:
        with open(path, "rb") as fh:
            offset = 0
            size = path.stat().st_size
            while offset + 8 <= size:
                fh.seek(offset)
                if fh.read(8) == _HDF5_MAGIC:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def _read_raw(path: Path, dataset: str | None) -> RawSeries:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        if path.name in ("zarr.json", ".zarray", ".zgroup", "dataset.json"):
            return _read_raw(path.parent, dataset)
        if is_tiff_name(path) or is_tiff_file(path):
            if dataset is not None:
                raise InputError(f"--dataset {dataset}: only for HDF5/NeXus or Zarr input, "
                                 f"not the TIFF {path}")
            return read_tiff_file(path)
        if path.suffix.lower() in _HDF5_SUFFIXES or _is_hdf5(path):
            if not _is_hdf5(path):
                raise InputError(f"{path}: not an HDF5 file (no HDF5 signature)")
            return read_hdf5(path, dataset)
        raise InputError(
            f"{path}: unknown input format (expected TIFF, HDF5/NeXus, a Zarr store or a folder)"
        )
    if not path.is_dir():
        raise InputError(f"{path}: not a file or folder")
    if is_dataset_folder(path):
        return read_dataset_folder(path, dataset)
    if is_zarr_store(path):
        return read_zarr(path, dataset)
    entries = list_dir(path)
    if not entries:
        raise InputError(f"{path}: empty folder")
    if dataset is not None:
        raise InputError(f"--dataset {dataset}: only for HDF5/NeXus or Zarr input, "
                         f"not the folder {path}")
    tiffs = [p for p in entries if p.is_file() and is_tiff_name(p)]
    if tiffs:
        return read_tiff_files(path, tiffs)
    steps: list[tuple[Path, list[Path]]] = []
    for d in entries:
        if d.is_dir():
            files = [p for p in list_dir(d) if p.is_file() and is_tiff_name(p)]
            if files:
                steps.append((d, files))
    if steps:
        return read_slice_folders(path, steps)
    others = [p.name for p in entries if p.is_file()]
    inner = [p.name for p in entries if p.is_dir() and is_zarr_store(p)]
    hint = f" (it holds {', '.join(others[:3])}{'...' if len(others) > 3 else ''})" \
        if others else ""
    if inner:
        hint = f" (give the Zarr store itself, e.g. {path / inner[0]})"
    raise InputError(f"{path}: no images in this folder: expected TIFF files, or one folder "
                     f"of TIFF slices per step{hint}")


def _voxel(raw: RawSeries, voxel_size: Any) -> tuple[tuple[float, float, float], str]:
    if voxel_size is not None:
        return parse_voxel_size_um(voxel_size), "user"
    if raw.voxel_size_um is not None:
        return tuple(float(v) for v in raw.voxel_size_um), "metadata"  # type: ignore[return-value]
    return (1.0, 1.0, 1.0), "default"


def _times(raw: RawSeries, n: int, times_s: Any, interval: Any,
           notes: list[str]) -> tuple[np.ndarray, str]:
    if times_s is not None and interval is not None:
        raise InputError("--times-s and --interval: give one of them, not both")
    if times_s is not None:
        if isinstance(times_s, np.ndarray):
            times_s = times_s.tolist()
        if isinstance(times_s, Sequence) and not isinstance(times_s, str):
            times_s = [float(t) if isinstance(t, (int, float, np.number)) else t
                       for t in times_s]
            vals = np.asarray(parse_times_s(list(times_s)), dtype=np.float64)
        else:
            vals = np.asarray(parse_times_s(times_s), dtype=np.float64)
        if vals.size != n:
            raise InputError(f"--times-s: {vals.size} times given but the input has {n} steps")
        if n > 1 and np.any(np.diff(vals) <= 0):
            raise InputError("--times-s: times must increase from step to step")
        return vals, "user"
    if interval is not None:
        step = parse_duration_s(interval, name="--interval")
        if step <= 0:
            raise InputError(f"--interval: must be a positive duration, got {interval!r}")
        return np.arange(n, dtype=np.float64) * step, "user"
    if raw.times_s is not None:
        t = np.asarray(raw.times_s, dtype=np.float64).reshape(-1)
        if t.size == n and np.all(np.isfinite(t)):
            return t, "metadata"
        notes.append(f"times in the metadata ({t.size}) do not match the {n} steps; ignored")
    return np.arange(n, dtype=np.float64), "index"


def open_series(
    path: str | Path,
    *,
    dataset: str | None = None,
    voxel_size: str | float | Sequence[float] | None = None,
    times_s: str | Sequence[float] | None = None,
    interval: str | float | None = None,
) -> Series:
    """Open a CT time series lazily.

    Parameters
    ----------
    path : str or Path
        A TIFF file, an HDF5/NeXus file, a Zarr/OME-Zarr store, a folder of TIFF files, a
        folder of per-step slice folders, or a ``dendritect simulate`` dataset folder.
    dataset : str, optional
        The array inside an HDF5/NeXus file or Zarr store (a 4D array, a 3D array for one
        step, or a group of 3D arrays, one per step). Found automatically when unambiguous.
    voxel_size : str, float or sequence of 3, optional
        ``"0.65um"``, ``"1,0.65,0.65um"`` (z, y, x) or numbers in µm. Overrides the metadata.
    times_s : str or sequence, optional
        Time of each step (``"0,600,1200"`` or a list, seconds unless a unit is given).
        Must have one entry per step. Overrides the metadata.
    interval : str or float, optional
        Time between steps (``"10min"``); step ``i`` is at ``i * interval``.

    Returns
    -------
    Series
        ``data`` is a dask array (t, z, y, x) in the file's own dtype; ``meta`` holds
        ``voxel_size_source`` and ``times_source`` (``"metadata"``, ``"user"``, ``"default"``
        or ``"index"``) and what the reader found (dataset path, anode side, ...).

    Raises
    ------
    InputError
        When the input is missing, unreadable, truncated, ambiguous or not a volume series,
        or an option is malformed.
    """
    p = Path(path).expanduser()
    raw = _read_raw(p, dataset)
    data = raw.data
    if data.ndim != 4 or min(data.shape) == 0:
        raise InputError(f"{p}: no data (shape {tuple(data.shape)})")
    meta = dict(raw.meta)
    notes = list(meta.pop("notes", []))
    voxel, vsource = _voxel(raw, voxel_size)
    times, tsource = _times(raw, int(data.shape[0]), times_s, interval, notes)
    meta["voxel_size_source"] = vsource
    meta["times_source"] = tsource
    if vsource != "metadata" and raw.voxel_size_um is not None:
        meta["voxel_size_um_metadata"] = [float(v) for v in raw.voxel_size_um]
    if notes:
        meta["notes"] = notes
    return Series(data=data, voxel_size_um=voxel, times_s=times, source=str(p),
                  format=raw.format, meta=meta)


def check_volume(volume: np.ndarray, where: str) -> None:
    """Refuse a step that cannot be analysed: not 3D, empty, or entirely NaN.

    Parameters
    ----------
    volume : numpy.ndarray
        One step (z, y, x).
    where : str
        What it is (``"input.tif step 3"``), for the message.

    Raises
    ------
    InputError
        When ``volume`` is not 3D, has no voxels, or holds only NaN.
    """
    # a lazy (dask) step stays lazy: only what the checks need is read
    vol = volume if hasattr(volume, "ndim") and hasattr(volume, "dtype") else np.asarray(volume)
    shape = tuple(vol.shape)
    if len(shape) != 3:
        raise InputError(f"{where}: expected a 3D volume (z, y, x), got shape {shape}")
    if 0 in shape:
        raise InputError(f"{where}: empty volume (shape {shape})")
    if np.dtype(vol.dtype).kind in "fc":
        # A finite first voxel settles it without scanning the whole volume.
        if not np.isnan(np.asarray(vol[0, 0, 0])):
            return
        if bool(np.isnan(vol).all()):
            raise InputError(f"{where}: every voxel is NaN (no data in this step)")
