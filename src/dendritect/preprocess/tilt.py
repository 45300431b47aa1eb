"""Tilted cells: the same segmentation on a view in which the interfaces are flat.

A pellet whose axis is tilted from the scanner's z axis by a few degrees (normal in practice)
has interface planes that move by several voxels across the field of view. The segmentation
assumes flat layers (its background profile, interface zones and seed margins are along z), so
a tilted step is segmented on a *sheared* view: every column ``(y, x)`` moved along z by the
rounded offset of the interface planes there (:func:`~dendritect.preprocess.cell.shear_columns`),
with ``pad`` extra planes on each side so that no voxel is lost. Shearing moves whole voxels,
so the masks written back through :class:`UnshearedWriter` are exactly in the step's frame;
measurement then uses the exact planes (:meth:`CellGeometry.depth_vox`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dendritect.preprocess.cell import CellGeometry

__all__ = ["Flattened", "ShearedView", "UnshearedWriter", "flat_geometry", "shear_of"]


def shear_of(geometry: CellGeometry) -> tuple[np.ndarray, int]:
    """Integer z shift of every column of a tilted cell, and the padding that keeps all voxels."""
    shift = np.rint(geometry.offset_map()).astype(np.int64)
    pad = int(np.abs(shift).max()) if shift.size else 0
    return shift, pad


def flat_geometry(geometry: CellGeometry, pad: int, shift: np.ndarray) -> CellGeometry:
    """The geometry of the sheared view: untilted, interfaces ``pad`` planes further down.

    The interfaces at the reference column move by the rounded offset there (zero when the
    reference column is the one of the plane fit, as :func:`find_cell` sets it).
    """
    ay, ax = geometry.axis_yx
    ny, nx = shift.shape
    k0 = float(shift[int(np.clip(round(ay), 0, ny - 1)), int(np.clip(round(ax), 0, nx - 1))])
    # a column's interface lands at its offset less its whole-voxel shift (plus k0)
    residual = (geometry.offset_map() - shift + k0).astype(np.float32)
    return dataclasses.replace(
        geometry, z_anode_vox=geometry.z_anode_vox + pad - k0,
        z_cathode_vox=geometry.z_cathode_vox + pad - k0, tilt_vox=(0.0, 0.0), cos_tilt=1.0,
        column_offset_vox=residual)


def _key3(key: Any, shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    key = key if isinstance(key, tuple) else (key,)
    key = key + (slice(None),) * (3 - len(key))
    out = []
    for k, n in zip(key, shape, strict=True):
        if isinstance(k, (int, np.integer)):
            k = slice(int(k), int(k) + 1)
        if not isinstance(k, slice) or k.step not in (None, 1):
            raise IndexError("a sheared view is read by contiguous slices")
        out.append(slice(*k.indices(n)[:2]))
    return tuple(out)  # type: ignore[return-value]


class ShearedView:
    """Read-only sheared view of a 3D array (numpy, zarr, a lazy step), read by slices.

    ``view[z0:z1, ys, xs]`` reads only the planes of the original that those voxels come from.
    """

    def __init__(self, arr: Any, shift: np.ndarray, pad: int) -> None:
        self.arr, self.shift, self.pad = arr, shift, int(pad)
        nz, ny, nx = (int(s) for s in arr.shape)
        self._nz = nz
        self.shape = (nz + 2 * self.pad, ny, nx)
        self.dtype = getattr(arr, "dtype", np.float32)
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        sz, sy, sx = _key3(key, self.shape)
        k = self.shift[sy, sx]
        if sz.stop <= sz.start or k.size == 0:
            return np.zeros((max(sz.stop - sz.start, 0), *k.shape), dtype=self.dtype)
        lo = int(np.clip(sz.start - self.pad + k.min(), 0, self._nz - 1))
        hi = int(np.clip(sz.stop - self.pad + k.max(), 0, self._nz - 1)) + 1
        part = self.arr[lo:hi, sy, sx]
        if hasattr(part, "dask"):
            part = part.compute(scheduler="sync")
        part = np.asarray(part)
        z = np.arange(sz.start, sz.stop)[:, None, None] - self.pad + k[None]
        idx = np.clip(z, 0, self._nz - 1) - lo
        return np.take_along_axis(part, idx, axis=0)

    def __array__(self, dtype=None, copy=None):
        out = self[:, :, :]
        return out if dtype is None else out.astype(dtype)


class UnshearedWriter:
    """Takes writes in the sheared frame and puts them into the step-frame array ``out``."""

    def __init__(self, out: Any, shift: np.ndarray, pad: int, nz: int) -> None:
        self.out, self.shift, self.pad, self._nz = out, shift, int(pad), int(nz)
        self.shape = (self._nz + 2 * self.pad, *shift.shape)

    def __setitem__(self, key: Any, values: Any) -> None:
        if not hasattr(self.out, "__getitem__"):
            return  # a sink that keeps nothing
        sz, sy, sx = _key3(key, self.shape)
        k = self.shift[sy, sx]
        vals = np.broadcast_to(np.asarray(values), (sz.stop - sz.start, *k.shape))
        z = np.arange(sz.start, sz.stop)[:, None, None] - self.pad + k[None]
        ok = (z >= 0) & (z < self._nz)
        if not ok.any():
            return
        lo, hi = int(z[ok].min()), int(z[ok].max()) + 1
        region = np.array(self.out[lo:hi, sy, sx])
        _, yy, xx = np.nonzero(ok)
        region[z[ok] - lo, yy, xx] = vals[ok]
        self.out[lo:hi, sy, sx] = region


class Flattened:
    """A tilted cell's sheared frame: its geometry, and views and writers into it.

    ``Flattened(geometry).geometry`` is untilted; ``view(a)`` is ``a`` in the sheared frame
    (``None`` stays ``None``); ``writer(out)`` takes writes in the sheared frame into ``out``.
    """

    def __init__(self, geometry: CellGeometry) -> None:
        self.shift, self.pad = shear_of(geometry)
        self.geometry = flat_geometry(geometry, self.pad, self.shift)

    def view(self, arr: Any) -> ShearedView | None:
        return None if arr is None else ShearedView(arr, self.shift, self.pad)

    def writer(self, out: Any, nz: int) -> UnshearedWriter:
        return UnshearedWriter(out, self.shift, self.pad, nz)
