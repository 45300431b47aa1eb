"""HDF5 / NeXus inputs: a 4D dataset, or a group holding one 3D dataset per step.

Which array: ``dataset`` when given; else the ``signal`` of an ``NXdata`` group (NeXus);
else the only candidate (a 4D dataset, or a group of 3D datasets). Voxel size: the attributes
``voxel_size_um`` / ``element_size_um`` (z, y, x) on the array or a parent group, the NeXus
``NXdata`` axis coordinates (``axes`` attribute, coordinate datasets with ``units``), or
``x_pixel_size`` / ``y_pixel_size`` (/ ``z_pixel_size``) with ``units`` as attributes or
datasets of the array's groups or of the one ``NXdetector``. Times: a ``times_s``
attribute, or a NeXus time axis (``time`` or ``t``) with units.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import dask.array as da
import h5py
import numpy as np
from natsort import natsorted

from dendritect.errors import InputError
from dendritect.io._common import (
    RawSeries,
    as_4d,
    chunk_nz,
    file_end_check,
    length_um,
    require_volume,
    time_s,
)

__all__ = ["read_hdf5"]

# Chunk tables longer than this are not walked to check offsets (it would take seconds).
_MAX_CHUNKS_CHECKED = 200_000


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.dtype.kind in "SO":
        return [_decode(x) for x in v.tolist()]
    return v


def _nx_class(obj: h5py.HLObject) -> str:
    return str(_decode(obj.attrs.get("NX_class", "")))


def _numeric(ds: h5py.Dataset) -> bool:
    return ds.dtype.kind in "uif" and ds.dtype.itemsize <= 8


def _scan(f: h5py.File) -> tuple[list[str], list[str], list[str]]:
    """Candidates (4D datasets, groups of 3D datasets), NeXus signals, NXdetector groups."""
    four: list[str] = []
    three_by_group: dict[str, list[str]] = {}
    signals: list[str] = []
    detectors: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            if not _numeric(obj):
                return
            if obj.ndim == 4:
                four.append("/" + name)
            elif obj.ndim == 3:
                parent = "/" + name.rsplit("/", 1)[0] if "/" in name else "/"
                three_by_group.setdefault(parent, []).append("/" + name)
        elif isinstance(obj, h5py.Group):
            cls = _nx_class(obj)
            if cls == "NXdata":
                sig = _decode(obj.attrs.get("signal"))
                if isinstance(sig, str) and isinstance(obj.get(sig), h5py.Dataset):
                    ds = obj[sig]
                    if ds.ndim >= 3 and _numeric(ds):
                        signals.append(ds.name)
            elif cls == "NXdetector":
                detectors.append(obj.name)

    f.visititems(visit)
    cands = list(four)
    for group, names in three_by_group.items():
        cands.append(names[0] if len(names) == 1 else group)
    return natsorted(cands), signals, detectors


def _check_extent(ds: h5py.Dataset, path: Path) -> None:
    """Refuse a dataset whose stored data would lie past the end of the file."""
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.CONTIGUOUS:
        off = ds.id.get_offset()
        if off is not None:
            file_end_check(path, int(off) + int(ds.size) * ds.dtype.itemsize,
                           f"dataset {ds.name}")
    elif layout == h5py.h5d.CHUNKED:
        n = ds.id.get_num_chunks()
        if n == 0 or n > _MAX_CHUNKS_CHECKED:
            return
        end = 0

        def track(info: Any) -> None:
            nonlocal end
            end = max(end, int(info.byte_offset) + int(info.size))

        if hasattr(ds.id, "chunk_iter"):
            ds.id.chunk_iter(track)
        else:  # pragma: no cover - HDF5 < 1.12.3
            for i in range(n):
                track(ds.id.get_chunk_info(i))
        file_end_check(path, end, f"dataset {ds.name}")


def _vec3(v: Any) -> tuple[float, float, float] | None:
    try:
        a = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if a.size == 1:
        a = np.repeat(a, 3)
    if a.size != 3 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        return None
    return (float(a[0]), float(a[1]), float(a[2]))


def _pixel_size(group: h5py.Group | h5py.Dataset, axis: str) -> float | None:
    """``{axis}_pixel_size`` as an attribute (with units) or a dataset with a units attribute."""
    key = f"{axis}_pixel_size"
    if key in group.attrs:
        v = _decode(group.attrs[key])
        unit = _decode(group.attrs.get(f"{key}_units", group.attrs.get(f"{key}@units")))
        if isinstance(v, str):
            parts = v.strip().split(maxsplit=1)
            v, unit = parts[0], parts[1] if len(parts) > 1 else unit
        return length_um(np.asarray(v).reshape(-1)[0], unit)
    if isinstance(group, h5py.Group) and isinstance(group.get(key), h5py.Dataset):
        ds = group[key]
        return length_um(np.asarray(ds[()]).reshape(-1)[0], _decode(ds.attrs.get("units")))
    return None


def _nx_axes(group: h5py.Group, ndim: int) -> tuple[list[float | None], np.ndarray | None]:
    """Spacing (µm) of the z, y, x NXdata axes and the time axis values (s), where given."""
    names = _decode(group.attrs.get("axes"))
    if isinstance(names, str):
        names = [names]
    spacing: list[float | None] = [None, None, None]
    times = None
    if not isinstance(names, list) or len(names) != ndim:
        return spacing, times
    for i, name in enumerate(names):
        ds = group.get(name) if isinstance(name, str) and name != "." else None
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.shape[0] < 1:
            continue
        unit = _decode(ds.attrs.get("units"))
        vals = np.asarray(ds[()], dtype=np.float64)
        if ndim == 4 and i == 0:
            conv = [time_s(v, unit) for v in vals] if unit else []
            if conv and all(c is not None for c in conv):
                times = np.asarray(conv, dtype=np.float64)
        elif vals.size >= 2:
            spacing[i - (ndim - 3)] = length_um(float(np.median(np.abs(np.diff(vals)))), unit)
    return spacing, times


def _metadata(f: h5py.File, obj: h5py.HLObject, detectors: list[str], ndim: int,
              notes: list[str]) -> tuple[tuple[float, float, float] | None, np.ndarray | None]:
    voxel = None
    times = None
    chain: list[h5py.HLObject] = [obj]
    p = obj.parent
    while True:
        chain.append(p)
        if p.name == "/":
            break
        p = p.parent
    for o in chain:
        for key in ("voxel_size_um", "element_size_um"):
            if voxel is None and key in o.attrs:
                voxel = _vec3(o.attrs[key])
                if voxel is None:
                    notes.append(f"{o.name} attribute {key} is not 1 or 3 positive numbers")
        if times is None and "times_s" in o.attrs:
            try:
                times = np.asarray(o.attrs["times_s"], dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                notes.append(f"{o.name} attribute times_s is not a list of numbers")
    parent = obj.parent if isinstance(obj, h5py.Dataset) else obj
    if _nx_class(parent) == "NXdata" and isinstance(obj, h5py.Dataset):
        spacing, nx_times = _nx_axes(parent, obj.ndim)
        if times is None:
            times = nx_times
        if voxel is None and spacing[2] is not None:
            dz, dy, dx = spacing
            voxel = (dz or dx, dy or dx, dx)  # type: ignore[assignment]
            if dz is None:
                notes.append("z spacing not in the metadata: taken equal to the x pixel size")
    if voxel is None:
        groups: list[h5py.HLObject] = chain + ([f[detectors[0]]] if len(detectors) == 1 else [])
        for o in groups:
            dx, dy = _pixel_size(o, "x"), _pixel_size(o, "y")
            if dx is None and dy is None:
                continue
            dx = dx or dy
            dy = dy or dx
            dz = _pixel_size(o, "z")
            if dz is None:
                notes.append("z spacing not in the metadata: taken equal to the x pixel size")
            voxel = (dz or dx, dy, dx)  # type: ignore[assignment]
            break
    return voxel, times


def _wrap(ds: h5py.Dataset, lock: threading.Lock) -> da.Array:
    zyx = ds.shape[-3:]
    store_nz = ds.chunks[-3] if ds.chunks else 1
    nz = chunk_nz(zyx, ds.dtype.itemsize, multiple_of=store_nz)
    chunks = (1, nz, zyx[1], zyx[2]) if ds.ndim == 4 else (nz, zyx[1], zyx[2])
    # h5py serialises calls internally, but a lock keeps dask from interleaving reads.
    return da.from_array(ds, chunks=chunks, lock=lock, asarray=True,
                         name=f"hdf5-{ds.file.filename}-{ds.name}-{id(ds)}")


def read_hdf5(path: Path, dataset: str | None = None) -> RawSeries:
    """An HDF5 or NeXus file, opened lazily (the file stays open while the data are in use)."""
    import hdf5plugin  # noqa: F401  (registers the compression filters with HDF5)

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: cannot open HDF5 file ({exc})") from None
    try:
        return _read(f, path, dataset)
    except BaseException:
        f.close()
        raise


def _read(f: h5py.File, path: Path, dataset: str | None) -> RawSeries:
    cands, signals, detectors = _scan(f)
    listing = ", ".join(cands) if cands else "none"
    if dataset is not None:
        key = dataset if dataset.startswith("/") else "/" + dataset
        obj = f.get(key)
        if obj is None:
            raise InputError(f"--dataset {dataset}: not found in {path} (3D/4D datasets: "
                             f"{listing})")
    elif len(signals) == 1 or (signals and len(set(signals)) == 1):
        obj = f[signals[0]]
    elif not cands:
        raise InputError(f"{path}: no 3D or 4D numeric dataset in this HDF5 file")
    elif len(cands) > 1:
        raise InputError(f"{path}: several datasets could be the scans ({listing}); "
                         "choose one with --dataset")
    else:
        obj = f[cands[0]]

    notes: list[str] = []
    lock = threading.Lock()
    meta: dict[str, Any] = {"dataset": obj.name}
    if isinstance(obj, h5py.Group):
        members = natsorted(
            (k for k, v in obj.items() if isinstance(v, h5py.Dataset) and v.ndim == 3
             and _numeric(v)),
        )
        if not members:
            raise InputError(f"{path}: group {obj.name} holds no 3D numeric datasets "
                             f"(3D/4D datasets: {listing})")
        dsets = [obj[k] for k in members]
        ref = dsets[0]
        for d in dsets[1:]:
            if d.shape != ref.shape or d.dtype != ref.dtype:
                raise InputError(
                    f"{path}: steps of different shapes or types in {obj.name}: {ref.name} is "
                    f"{ref.shape} {ref.dtype}, {d.name} is {d.shape} {d.dtype}"
                )
        for d in dsets:
            _check_extent(d, path)
        arr = da.stack([_wrap(d, lock) for d in dsets], axis=0)
        meta["steps"] = members
        voxel, times = _metadata(f, obj, detectors, 4, notes)
    else:
        if not isinstance(obj, h5py.Dataset) or not _numeric(obj):
            raise InputError(f"{path}: {obj.name} is not a numeric dataset")
        require_volume(obj.shape, str(path), f"dataset {obj.name}")
        _check_extent(obj, path)
        arr = as_4d(_wrap(obj, lock), f"{path}:{obj.name}")
        voxel, times = _metadata(f, obj, detectors, obj.ndim, notes)
    if notes:
        meta["notes"] = notes
    meta["compression"] = _compression(obj if isinstance(obj, h5py.Dataset) else dsets[0])
    fmt = "nexus" if signals or _nx_class(f) == "NXroot" or detectors else "hdf5"
    # The dask graph holds the h5py datasets, which keep the file open while in use.
    return RawSeries(arr, fmt, voxel, times, meta)


def _compression(ds: h5py.Dataset) -> str:
    if ds.compression:
        return str(ds.compression)
    plist = ds.id.get_create_plist()
    nfilters = plist.get_nfilters()
    return ",".join(str(plist.get_filter(i)[3].decode()) for i in range(nfilters)) or "none"
