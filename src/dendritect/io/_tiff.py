"""TIFF inputs: one 3D/4D file, a folder of 3D files, a folder of per-step slice folders.

Metadata read: ImageJ hyperstacks (pixel size from the resolution tags with ``unit``,
``spacing`` along z, ``finterval``/``tunit``), OME-TIFF (``PhysicalSizeX/Y/Z`` with their
units, ``TimeIncrement`` or the planes' ``DeltaT``) and tifffile's own JSON description
(``voxel_size_um``, ``times_s`` keys when a writer put them there).
"""

from __future__ import annotations

import logging
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import tifffile
import zarr

from dendritect.errors import InputError
from dendritect.io._common import (
    RawSeries,
    as_4d,
    chunk_nz,
    file_end_check,
    length_um,
    time_s,
)

__all__ = ["is_tiff_file", "read_slice_folders", "read_tiff_file", "read_tiff_files"]

_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# tifffile logs (rather than raises) when a page chain points outside the file or a
# series cannot be shaped; those mean a truncated or corrupt file here.
_FATAL_LOG = ("invalid page offset", "corrupted", "failed to reshape", "invalid value offset",
              "truncated")


def is_tiff_file(path: Path) -> bool:
    """True when the file starts with a classic or BigTIFF header."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) in _MAGIC
    except OSError:
        return False


# tifffile reports damaged files through logging; without a handler Python would print
# those records on stderr next to our own one-line error.
logging.getLogger("tifffile").addHandler(logging.NullHandler())


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _tifffile_log() -> Iterator[list[str]]:
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@dataclass
class _TiffInfo:
    """One TIFF file's first series, as (z, y, x) or (t, z, y, x) after axis reordering."""

    shape: tuple[int, ...]  # series shape as stored
    axes: str
    perm: tuple[int, ...]  # transpose from stored order to (t,) z, y, x
    dtype: np.dtype
    flavour: str
    voxel_size_um: tuple[float, float, float] | None = None
    times_s: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    compression: str = "none"

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[i] for i in self.perm)


def _open(path: Path) -> tifffile.TiffFile:
    if not is_tiff_file(path):
        raise InputError(f"{path}: not a TIFF file (it does not start with a TIFF header)")
    with _tifffile_log() as messages:
        try:
            tf = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, OSError, ValueError, struct.error) as exc:
            raise InputError(f"{path}: cannot read TIFF ({exc})") from None
    fatal = [m for m in messages if any(k in m for k in _FATAL_LOG)]
    if fatal:
        tf.close()
        raise InputError(f"{path}: truncated or corrupt TIFF ({fatal[0].split('> ', 1)[-1]})")
    return tf


def _axes_perm(shape: Sequence[int], axes: str, path: Path) -> tuple[int, ...]:
    """Permutation that brings a series to (z, y, x) or (t, z, y, x)."""
    if "S" in axes and shape[axes.index("S")] > 1:
        raise InputError(f"{path}: a colour (RGB) image; a greyscale volume is needed")
    if "C" in axes and shape[axes.index("C")] > 1:
        raise InputError(
            f"{path}: {shape[axes.index('C')]} channels (axes {axes}); one channel is needed"
        )
    ndim = len(shape)
    if ndim == 4 and "T" in axes and "Z" in axes and "Y" in axes and "X" in axes:
        return tuple(axes.index(a) for a in "TZYX")
    if ndim in (3, 4):
        return tuple(range(ndim))
    if ndim == 2:
        raise InputError(
            f"{path}: a 2D image of shape {tuple(shape)}; a volume (z, y, x) is needed "
            "(put one 2D TIFF per z slice in a folder, one folder per step)"
        )
    raise InputError(
        f"{path}: {ndim}D image of shape {tuple(shape)} (axes {axes}); "
        "expected (z, y, x) or (t, z, y, x)"
    )


def _assemble_voxel(dz: float | None, dy: float | None, dx: float | None,
                    notes: list[str]) -> tuple[float, float, float] | None:
    if dx is None and dy is None:
        return None
    dx = dx if dx is not None else dy
    dy = dy if dy is not None else dx
    if dz is None:
        notes.append("z spacing not in the metadata: taken equal to the x pixel size")
        dz = dx
    return (float(dz), float(dy), float(dx))  # type: ignore[arg-type]


def _imagej_meta(tf: tifffile.TiffFile, info: _TiffInfo) -> None:
    ij = tf.imagej_metadata or {}
    page = tf.pages.first
    unit = ij.get("unit")
    try:
        xres, yres = page.get_resolution()
    except Exception:
        xres = yres = None
    dx = length_um(1.0 / xres, unit) if xres else None
    dy = length_um(1.0 / yres, unit) if yres else None
    dz = length_um(ij["spacing"], unit) if "spacing" in ij else None
    if dx is not None or dy is not None:
        info.voxel_size_um = _assemble_voxel(dz, dy, dx, info.notes)
    finterval = ij.get("finterval")
    nt = info.out_shape[0] if len(info.out_shape) == 4 else 1
    if finterval:
        tunit = str(ij.get("tunit", "s"))
        step = time_s(finterval, {"sec": "s"}.get(tunit, tunit))
        if step is not None and step > 0:
            info.times_s = np.arange(nt, dtype=np.float64) * step


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome_meta(tf: tifffile.TiffFile, info: _TiffInfo) -> None:
    try:
        root = ET.fromstring(tf.ome_metadata or "")
    except ET.ParseError as exc:
        info.notes.append(f"OME-XML not readable ({exc}); metadata ignored")
        return
    pixels = next((el for el in root.iter() if _local(el.tag) == "Pixels"), None)
    if pixels is None:
        return
    a = pixels.attrib

    def size(axis: str) -> float | None:
        if f"PhysicalSize{axis}" not in a:
            return None
        return length_um(a[f"PhysicalSize{axis}"], a.get(f"PhysicalSize{axis}Unit", "um"))

    info.voxel_size_um = _assemble_voxel(size("Z"), size("Y"), size("X"), info.notes)
    nt = info.out_shape[0] if len(info.out_shape) == 4 else 1
    # Plane DeltaT is the measured time of each plane: the first plane of a step is its time.
    first: dict[int, float] = {}
    for el in pixels:
        if _local(el.tag) != "Plane" or "DeltaT" not in el.attrib:
            continue
        t = int(el.attrib.get("TheT", 0))
        v = time_s(el.attrib["DeltaT"], el.attrib.get("DeltaTUnit", "s"))
        if v is not None:
            first[t] = min(v, first.get(t, v))
    if len(first) >= nt and all(t in first for t in range(nt)):
        info.times_s = np.array([first[t] for t in range(nt)], dtype=np.float64)
    elif "TimeIncrement" in a:
        step = time_s(a["TimeIncrement"], a.get("TimeIncrementUnit", "s"))
        if step is not None and step > 0:
            info.times_s = np.arange(nt, dtype=np.float64) * step


def _shaped_meta(tf: tifffile.TiffFile, info: _TiffInfo) -> None:
    meta = (tf.shaped_metadata or ({},))[0] or {}
    vs = meta.get("voxel_size_um")
    if vs is not None:
        try:
            v = [float(x) for x in (vs if isinstance(vs, (list, tuple)) else [vs] * 3)]
            if len(v) == 3 and all(np.isfinite(v)) and min(v) > 0:
                info.voxel_size_um = (v[0], v[1], v[2])
        except (TypeError, ValueError):
            info.notes.append("voxel_size_um in the TIFF description is not a number; ignored")
    ts = meta.get("times_s")
    if ts is not None:
        try:
            info.times_s = np.asarray(ts, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            info.notes.append("times_s in the TIFF description is not a list of numbers; ignored")


def _check_extent(tf: tifffile.TiffFile, series: Any, path: Path) -> None:
    """Refuse before reading when the declared data extends past the end of the file."""
    if series.dataoffset is not None:  # contiguous, uncompressed
        file_end_check(path, int(series.dataoffset) + int(series.nbytes), "the TIFF header")
        return
    end = 0
    for page in series.pages:
        if page is None:
            continue
        for off, n in zip(page.dataoffsets, page.databytecounts, strict=False):
            end = max(end, int(off) + int(n))
    file_end_check(path, end, "the TIFF header")


def _inspect(tf: tifffile.TiffFile, path: Path) -> _TiffInfo:
    with _tifffile_log() as messages:
        try:
            if not tf.series:
                raise InputError(f"{path}: the TIFF holds no image")
            series = tf.series[0]
            shape, axes = tuple(int(s) for s in series.shape), str(series.axes)
            dtype = np.dtype(series.dtype)
            _check_extent(tf, series, path)
        except InputError:
            raise
        except Exception as exc:  # tifffile raises many types on broken files
            raise InputError(f"{path}: cannot read TIFF ({exc})") from None
    fatal = [m for m in messages if any(k in m for k in _FATAL_LOG)]
    if fatal:
        raise InputError(f"{path}: truncated or corrupt TIFF ({fatal[0].split('> ', 1)[-1]})")
    perm = _axes_perm(shape, axes, path)
    flavour = "ome" if tf.is_ome else "imagej" if tf.is_imagej else "plain"
    comp = tf.pages.first.compression
    info = _TiffInfo(shape, axes, perm, dtype, flavour,
                     compression=getattr(comp, "name", str(comp)).lower())
    if dtype.kind not in "uif" or dtype.itemsize > 8:
        raise InputError(f"{path}: pixel type {dtype} is not a plain number type")
    if tf.is_ome:
        _ome_meta(tf, info)
    elif tf.is_imagej:
        _imagej_meta(tf, info)
    elif tf.is_shaped:
        _shaped_meta(tf, info)
    if len(tf.series) > 1:
        info.notes.append(f"the file holds {len(tf.series)} image series; the first is used")
    return info


def _as_dask(tf: tifffile.TiffFile, info: _TiffInfo) -> da.Array:
    store = tf.aszarr(series=0, chunkmode="page")
    z = zarr.open(store, mode="r")
    if isinstance(z, zarr.Group):  # a pyramid: level 0 is full resolution
        z = z["0"]
    out_zyx = info.out_shape[-3:]
    nz = chunk_nz(out_zyx, info.dtype.itemsize)
    arr = da.from_zarr(z)
    if tuple(arr.shape) != info.shape:
        arr = arr.reshape(info.shape)
    arr = arr.transpose(info.perm)
    chunks = ((1,) * info.out_shape[0], nz, -1, -1) if arr.ndim == 4 else (nz, -1, -1)
    return arr.rechunk(chunks)


def read_tiff_file(path: Path) -> RawSeries:
    """One 3D (one step) or 4D (t, z, y, x) TIFF file, opened lazily."""
    tf = _open(path)
    try:
        info = _inspect(tf, path)
        arr = as_4d(_as_dask(tf, info), str(path))
    except BaseException:
        tf.close()
        raise
    kind = "tiff-4d" if len(info.out_shape) == 4 else "tiff-3d"
    meta: dict[str, Any] = {"tiff_flavour": info.flavour, "axes": info.axes,
                            "compression": info.compression}
    if info.notes:
        meta["notes"] = info.notes
    return RawSeries(arr, kind, info.voxel_size_um, info.times_s, meta)


def _inspect_path(path: Path) -> _TiffInfo:
    tf = _open(path)
    try:
        return _inspect(tf, path)
    finally:
        tf.close()


def _read_block(path: str, z0: int, z1: int, shape_zyx: tuple[int, int, int],
                dtype: np.dtype) -> np.ndarray:
    """Slices ``z0:z1`` of a 3D TIFF file (opened anew: the graph holds no open files)."""
    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tf:
            series = tf.series[0]
            z = zarr.open(tf.aszarr(series=0, chunkmode="page"), mode="r")
            if isinstance(z, zarr.Group):
                z = z["0"]
            if tuple(series.shape) != tuple(shape_zyx):
                raise InputError(f"{p}: shape {tuple(series.shape)} differs from the other "
                                 f"steps' {tuple(shape_zyx)}")
            out = np.asarray(z[z0:z1])
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{p}: cannot read slices {z0}-{z1 - 1} ({exc})") from None
    return out.astype(dtype, copy=False)


def _read_slices(paths: Sequence[str], shape_yx: tuple[int, int], dtype: np.dtype) -> np.ndarray:
    """2D TIFF files stacked along z; a wrong file is an InputError naming it."""
    out = np.empty((len(paths), *shape_yx), dtype=dtype)
    for i, p in enumerate(paths):
        try:
            img = tifffile.imread(p, key=0)
        except Exception as exc:
            raise InputError(f"{p}: cannot read slice ({exc})") from None
        img = np.squeeze(img)
        if img.shape != tuple(shape_yx):
            raise InputError(f"{p}: slice of shape {img.shape} differs from the others' "
                             f"{tuple(shape_yx)}")
        out[i] = img
    return out


def _volume_from_files(paths: Sequence[Path], shape_zyx: tuple[int, int, int],
                       dtype: np.dtype) -> da.Array:
    nz = chunk_nz(shape_zyx, dtype.itemsize)
    blocks = []
    for p in paths:
        parts = []
        for z0 in range(0, shape_zyx[0], nz):
            z1 = min(shape_zyx[0], z0 + nz)
            d = dask.delayed(_read_block, pure=True)(str(p), z0, z1, shape_zyx, dtype)
            parts.append(da.from_delayed(d, (z1 - z0, *shape_zyx[1:]), dtype=dtype))
        blocks.append(da.concatenate(parts, axis=0) if len(parts) > 1 else parts[0])
    return da.stack(blocks, axis=0)


def _volume_from_slices(steps: Sequence[Sequence[Path]], shape_yx: tuple[int, int],
                        dtype: np.dtype) -> da.Array:
    nz_total = len(steps[0])
    nz = chunk_nz((nz_total, *shape_yx), dtype.itemsize)
    vols = []
    for files in steps:
        parts = []
        for z0 in range(0, nz_total, nz):
            chunk = [str(f) for f in files[z0:z0 + nz]]
            d = dask.delayed(_read_slices, pure=True)(chunk, shape_yx, dtype)
            parts.append(da.from_delayed(d, (len(chunk), *shape_yx), dtype=dtype))
        vols.append(da.concatenate(parts, axis=0) if len(parts) > 1 else parts[0])
    return da.stack(vols, axis=0)


def _slice_info(path: Path) -> _TiffInfo:
    """Header of one 2D slice file (its metadata gives the pixel size)."""
    tf = _open(path)
    try:
        with _tifffile_log():
            try:
                series = tf.series[0]
                shape = tuple(int(s) for s in series.shape)
                _check_extent(tf, series, path)
            except InputError:
                raise
            except Exception as exc:
                raise InputError(f"{path}: cannot read TIFF ({exc})") from None
        if len(shape) != 2:
            raise InputError(f"{path}: a slice must be a 2D image, got shape {shape}")
        info = _TiffInfo(shape, str(series.axes), (0, 1), np.dtype(series.dtype),
                         "ome" if tf.is_ome else "imagej" if tf.is_imagej else "plain")
        if tf.is_imagej:
            _imagej_meta(tf, info)
        elif tf.is_ome:
            _ome_meta(tf, info)
        return info
    finally:
        tf.close()


def read_tiff_files(folder: Path, files: Sequence[Path]) -> RawSeries:
    """A folder of TIFF files: 3D files are one step each; 2D files are the z slices of one step."""
    first = _open(files[0])
    try:
        with _tifffile_log():
            ndim = len(first.series[0].shape) if first.series else 0
    except Exception as exc:
        raise InputError(f"{files[0]}: cannot read TIFF ({exc})") from None
    finally:
        first.close()
    if ndim == 2:
        sl = _slice_info(files[0])
        if sl.dtype.kind not in "uif":
            raise InputError(f"{files[0]}: pixel type {sl.dtype} is not a plain number type")
        arr = _volume_from_slices([files], sl.shape, sl.dtype)  # type: ignore[arg-type]
        meta = {"n_files": len(files), "tiff_flavour": sl.flavour}
        return RawSeries(arr, "tiff-slices", sl.voxel_size_um, None, meta)
    infos = []
    for f in files:
        info = _inspect_path(f)
        if len(info.out_shape) != 3:
            raise InputError(f"{f}: a folder of TIFF files needs one 3D volume per file, "
                             f"got shape {info.out_shape}")
        infos.append(info)
    ref = infos[0]
    for f, info in zip(files, infos, strict=True):
        if info.out_shape != ref.out_shape or info.dtype != ref.dtype:
            raise InputError(
                f"{folder}: steps of different shapes or types: {files[0].name} is "
                f"{ref.out_shape} {ref.dtype}, {f.name} is {info.out_shape} {info.dtype}"
            )
        if info.perm != tuple(range(3)):
            raise InputError(f"{f}: unexpected axis order {info.axes}")
    arr = _volume_from_files(files, ref.out_shape, ref.dtype)  # type: ignore[arg-type]
    meta: dict[str, Any] = {"tiff_flavour": ref.flavour, "compression": ref.compression,
                            "files": [f.name for f in files]}
    if ref.notes:
        meta["notes"] = ref.notes
    return RawSeries(arr, "tiff-folder", ref.voxel_size_um, None, meta)


def read_slice_folders(folder: Path, steps: Sequence[tuple[Path, list[Path]]]) -> RawSeries:
    """A folder of per-step folders, each holding one 2D TIFF per z slice."""
    infos = [(d, files, _slice_info(files[0])) for d, files in steps]
    d0, files0, ref = infos[0]
    for d, files, info in infos:
        if len(files) != len(files0) or info.shape != ref.shape or info.dtype != ref.dtype:
            raise InputError(
                f"{folder}: steps of different shapes or types: {d0.name} has "
                f"{len(files0)} slices of {ref.shape} {ref.dtype}, {d.name} has "
                f"{len(files)} slices of {info.shape} {info.dtype}"
            )
    if ref.dtype.kind not in "uif":
        raise InputError(f"{files0[0]}: pixel type {ref.dtype} is not a plain number type")
    arr = _volume_from_slices([f for _, f, _ in infos], ref.shape, ref.dtype)  # type: ignore
    meta = {"tiff_flavour": ref.flavour, "steps": [d.name for d, _, _ in infos],
            "slices_per_step": len(files0)}
    return RawSeries(arr, "tiff-slice-folders", ref.voxel_size_um, None, meta)
