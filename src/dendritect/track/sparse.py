"""Label and track cracks from their voxels' flat indices, not from whole-step arrays.

Dendrite cracks fill well under one per cent of a scan, yet a 512 x 1024 x 1024 step's int32
labels take 2 GB. Here a step's cracks are the sorted flat (C-order) indices of their voxels,
``flat``, with values (labels, arrival steps) in arrays aligned with it. Connected components
come from neighbour look-ups in ``flat`` (:func:`numpy.searchsorted`) joined with
:func:`scipy.sparse.csgraph.connected_components`; tracking keeps the last known id of every
voxel ever seen, sparsely. Memory is O(crack voxels) plus one z-slab when reading or writing
stores. The results equal those of :mod:`dendritect.track.link` on dense arrays: same
partition, same numbering, same ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dendritect.errors import InputError
from dendritect.track.link import link_ids

__all__ = [
    "arrival_voxels",
    "check_voxels",
    "label_voxels",
    "mask_voxels",
    "planes_per_read",
    "shape_zyx_of",
    "track_voxels",
    "write_voxels",
    "z_axis_of",
]

#: z-slab thickness (slices) for arrays that do not say how they are chunked.
DEFAULT_SLAB_VOX = 64


def _offsets(connectivity: int) -> list[tuple[int, int, int]]:
    """The forward half of the neighbourhood (first nonzero component positive).

    Every neighbour pair is found once, from its earlier voxel in raster order. The (0, 0, 1)
    neighbour comes first: it joins runs along x, which shrinks the graphs of later offsets.
    """
    out = []
    for dz in (0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                off = (dz, dy, dx)
                if off <= (0, 0, 0) or abs(dz) + abs(dy) + abs(dx) > connectivity:
                    continue
                out.append(off)
    out.sort(key=lambda o: (abs(o[0]) + abs(o[1]) + abs(o[2]), -abs(o[2]), -abs(o[1]), o))
    return out


def shape_zyx_of(shape: Any) -> tuple[int, int, int]:
    try:
        out = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise InputError(f"shape must be three sizes (z, y, x), got {shape!r}") from None
    if len(out) != 3 or min(out) < 1:
        raise InputError(f"shape must be three positive sizes (z, y, x), got {shape!r}")
    return out  # type: ignore[return-value]


def check_voxels(flat: Any, shape: tuple[int, int, int] | None = None, *,
                 where: str = "flat") -> np.ndarray:
    """Validate flat voxel indices: 1D, integer, strictly increasing, inside ``shape``.

    Parameters
    ----------
    flat : array_like of int
        Flat C-order indices into a step.
    shape : (z, y, x), optional
        The step's shape; without it only the lower bound (0) is checked.
    where : str
        Named in the error message.

    Returns
    -------
    ndarray of int64
        ``flat`` (a copy only when its dtype was not int64).

    Raises
    ------
    InputError
        Not a 1D integer array, not sorted and unique, or outside the step.
    """
    arr = np.asarray(flat)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise InputError(f"{where}: voxel indices must be a 1D integer array, got "
                         f"shape {arr.shape} dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        if arr.size > 1 and not bool(np.all(arr[1:] > arr[:-1])):
            raise InputError(f"{where}: voxel indices must be sorted and unique")
        if arr[0] < 0:
            raise InputError(f"{where}: negative voxel index {int(arr[0])}")
        if shape is not None and arr[-1] >= int(np.prod(shape, dtype=np.int64)):
            raise InputError(f"{where}: voxel index {int(arr[-1])} outside a step of shape "
                             f"{tuple(shape)}")
    return arr


def _lookup(table: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each ``query`` value in the sorted ``table``, and whether it is there."""
    pos = np.searchsorted(table, query)
    if not table.size:
        return pos, np.zeros(query.shape, dtype=bool)
    np.minimum(pos, table.size - 1, out=pos)
    return pos, table[pos] == query


def planes_per_read(arr: Any, slab_vox: int | None, axis: int) -> int:
    """Slices per read or write: the given number, else the store's chunk along z."""
    if slab_vox is not None:
        if int(slab_vox) < 1:
            raise InputError(f"slab_vox must be at least 1, got {slab_vox!r}")
        return int(slab_vox)
    chunks = getattr(arr, "chunksize", None)  # dask: a tuple of ints
    if chunks is None:
        # zarr: a shard is what is read and written as a whole; h5py: None when contiguous.
        chunks = getattr(arr, "shards", None) or getattr(arr, "chunks", None)
    try:
        return max(int(chunks[axis]), 1)
    except (TypeError, IndexError, ValueError):
        return DEFAULT_SLAB_VOX


def mask_voxels(mask: Any, *, slab_vox: int | None = None, t: int | None = None) -> np.ndarray:
    """Flat indices of the nonzero voxels of a 3D mask, read one z-slab at a time.

    Parameters
    ----------
    mask : array-like, shape (z, y, x), or (t, z, y, x) with ``t``
        numpy array, zarr.Array, h5py.Dataset or dask array; nonzero = crack.
    slab_vox : int, optional
        Slices read at a time. Default: the store's chunk (shard) along z, else 64.
    t : int, optional
        Step of a 4D array to read.

    Returns
    -------
    ndarray of int64
        Sorted C-order flat indices into the (z, y, x) step.

    Raises
    ------
    InputError
        Not 3D (4D with ``t``), ``t`` outside the series, or a bad ``slab_vox``.
    """
    if not hasattr(mask, "shape"):
        mask = np.asarray(mask)
    shape = tuple(int(s) for s in mask.shape)
    axis = z_axis_of(shape, t, "mask")
    nz, ny, nx = shape[axis:]
    slab = planes_per_read(mask, slab_vox, axis)
    plane = ny * nx
    parts = []
    for z0 in range(0, nz, slab):
        z1 = min(nz, z0 + slab)
        block = mask[z0:z1] if t is None else mask[int(t), z0:z1]
        if hasattr(block, "compute"):
            block = block.compute()
        idx = np.flatnonzero(np.asarray(block))
        parts.append(idx.astype(np.int64, copy=False) + z0 * plane)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def z_axis_of(shape: tuple[int, ...], t: int | None, name: str) -> int:
    """Index of the z axis: 0 for a (z, y, x) array, 1 for step ``t`` of a (t, z, y, x) one."""
    if t is None:
        if len(shape) != 3:
            raise InputError(f"{name} must be a 3D (z, y, x) array (or 4D with t), got shape "
                             f"{shape}")
        return 0
    if len(shape) != 4:
        raise InputError(f"{name} must be a 4D (t, z, y, x) array when t is given, got shape "
                         f"{shape}")
    if not 0 <= int(t) < shape[0]:
        raise InputError(f"step {t} outside {name} with {shape[0]} steps")
    return 1


def label_voxels(flat: Any, shape: Any, *, connectivity: int = 3) -> tuple[np.ndarray, int]:
    """Connected components of a step's crack voxels, given by their flat indices.

    Parameters
    ----------
    flat : array_like of int
        Sorted unique C-order flat indices of the crack voxels in a step of shape ``shape``.
    shape : (z, y, x)
        The step's shape (neighbours never wrap around its edges).
    connectivity : {1, 2, 3}
        Neighbours share a face (1, 6 of them), a face or an edge (2, 18) or any corner
        (3, 26), as :func:`scipy.ndimage.generate_binary_structure` ``(3, connectivity)``.

    Returns
    -------
    labels : ndarray of int32
        Component of every voxel of ``flat``, numbered 1..n as :func:`scipy.ndimage.label`
        numbers them (raster order of each component's first voxel).
    n : int
        Number of components.

    Notes
    -----
    For each forward neighbour offset, neighbours are looked up with
    :func:`numpy.searchsorted`; the components found so far are joined by
    :func:`scipy.sparse.csgraph.connected_components` on a graph of components, one offset at a
    time, so memory stays a few arrays the size of ``flat``.
    """
    shape = shape_zyx_of(shape)
    flat = check_voxels(flat, shape)
    if connectivity not in (1, 2, 3):
        raise InputError(f"connectivity must be 1, 2 or 3, got {connectivity!r}")
    return _label(flat, shape, connectivity)


def _label(flat: np.ndarray, shape: tuple[int, int, int],
           connectivity: int) -> tuple[np.ndarray, int]:
    """:func:`label_voxels` on indices already checked."""
    n = int(flat.size)
    if n == 0:
        return np.zeros(0, dtype=np.int32), 0
    nz, ny, nx = shape
    # Which voxels have a neighbour inside the array on each side (no wrap-around).
    x = flat % nx
    zy = flat // nx
    y = zy % ny
    z = zy // ny
    lo = (z > 0, y > 0, x > 0)
    hi = (z < nz - 1, y < ny - 1, x < nx - 1)
    del x, y, z, zy
    comp = np.arange(n, dtype=np.int32)
    ncomp = n
    for off in _offsets(connectivity):
        ok = np.ones(n, dtype=bool)
        for axis, d in enumerate(off):
            if d:
                ok &= hi[axis] if d > 0 else lo[axis]
        nb = flat + (off[0] * ny * nx + off[1] * nx + off[2])
        pos, found = _lookup(flat, nb)
        del nb
        i = np.flatnonzero(found & ok)
        a = comp[i]
        b = comp[pos[i]]
        del pos, found, ok, i
        join = a != b
        if not join.any():
            continue
        a, b = a[join], b[join]
        graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(ncomp, ncomp))
        ncomp, cc = connected_components(graph, directed=False)
        comp = cc.astype(np.int32, copy=False)[comp]
    # Number components in raster order of their first voxel, as ndimage.label does.
    _, first = np.unique(comp, return_index=True)
    rank = np.empty(ncomp, dtype=np.int32)
    rank[np.argsort(first, kind="stable")] = np.arange(1, ncomp + 1, dtype=np.int32)
    return rank[comp], int(ncomp)


def track_voxels(steps: Iterable[Any], shape: Any, *,
                 min_overlap_vox: int = 1) -> Iterator[np.ndarray]:
    """Tracked crack ids of every step's crack voxels, the same as :func:`track_cracks`.

    Parameters
    ----------
    steps : iterable of array_like of int
        Per step, the sorted unique flat indices of its crack voxels (a generator is fine).
    shape : (z, y, x)
        Shape of a step.
    min_overlap_vox : int
        Voxels a component must share with a crack seen before to inherit its id.

    Yields
    ------
    ndarray of int32
        Per step, the tracked id of each of its voxels (aligned with its flat indices): what
        :func:`dendritect.track.track_cracks` gives at those voxels (26-connected components,
        oldest id on merges, ids kept through closing and reopening, new ids in raster order).

    Notes
    -----
    Memory: the current step's voxels plus the last known id of every voxel ever crack.
    """
    if int(min_overlap_vox) < 1:
        raise InputError(f"min_overlap_vox must be at least 1, got {min_overlap_vox!r}")
    shape = shape_zyx_of(shape)
    seen = np.zeros(0, dtype=np.int64)       # every voxel ever crack, sorted
    last = np.zeros(0, dtype=np.int32)       # its last known id
    next_id = 1
    for t, flat in enumerate(steps):
        flat = check_voxels(flat, shape, where=f"crack voxels of step {t}")
        cc, n = _label(flat, shape, 3)
        pos, found = _lookup(seen, flat)
        lut, next_id = link_ids(n, cc[found], last[pos[found]], next_id,
                                 min_overlap_vox=min_overlap_vox)
        labels = lut[cc]
        # Remember the new ids; voxels not crack now keep their last id.
        keep = np.ones(seen.size, dtype=bool)
        keep[pos[found]] = False
        seen = np.concatenate([seen[keep], flat])
        last = np.concatenate([last[keep], labels])
        order = np.argsort(seen, kind="stable")
        seen, last = seen[order], last[order]
        yield labels


def arrival_voxels(steps: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """First step at which each voxel is crack, for the voxels that ever are.

    Parameters
    ----------
    steps : iterable of array_like of int
        Per step, the sorted unique flat indices of its crack voxels (streamed).

    Returns
    -------
    flat : ndarray of int64
        Sorted flat indices of every voxel that is crack at some step.
    first : ndarray of int16
        Aligned with ``flat``: index of the first step where it is crack (what
        :func:`dendritect.track.time_of_arrival` gives there; -1 everywhere else).
    """
    seen = np.zeros(0, dtype=np.int64)
    first = np.zeros(0, dtype=np.int16)
    t = -1
    for t, flat in enumerate(steps):
        if t > np.iinfo(np.int16).max:
            raise InputError(f"more than {np.iinfo(np.int16).max + 1} steps do not fit int16")
        flat = check_voxels(flat, where=f"crack voxels of step {t}")
        _, found = _lookup(seen, flat)
        new = flat[~found]
        if new.size:
            seen = np.concatenate([seen, new])
            first = np.concatenate([first, np.full(new.size, t, dtype=np.int16)])
            order = np.argsort(seen, kind="stable")
            seen, first = seen[order], first[order]
    if t < 0:
        raise InputError("arrival_voxels: no steps given")
    return seen, first


def _fits(value: np.ndarray, dtype: np.dtype, what: str) -> None:
    if value.size and dtype.kind in "iub" and value.dtype.kind in "iufb":
        info = np.iinfo(dtype) if dtype.kind in "iu" else None
        lo, hi = (info.min, info.max) if info is not None else (0, 1)
        vmin, vmax = value.min(), value.max()
        if vmin < lo or vmax > hi:
            raise InputError(f"{what} from {vmin} to {vmax} do not fit the output's {dtype}")


def write_voxels(out: Any, flat: Any, values: Any, *, t: int | None = None, fill: Any = 0,
                 slab_vox: int | None = None) -> None:
    """Scatter values given at a step's voxels into an array, one z-slab at a time.

    Every slab is written, with ``fill`` away from ``flat``, so a rerun overwrites whatever a
    previous run left there.

    Parameters
    ----------
    out : array-like, shape (z, y, x), or (t, z, y, x) with ``t``
        zarr.Array, numpy array or h5py.Dataset written in place.
    flat : array_like of int
        Sorted unique flat indices into the (z, y, x) step.
    values : array_like or scalar
        Aligned with ``flat`` (or one value for all), cast to ``out``'s dtype; it must fit.
    t : int, optional
        Step of a 4D ``out`` to write.
    fill : scalar
        Value everywhere else.
    slab_vox : int, optional
        Slices written at a time. Default: the store's chunk (shard) along z, else 64.

    Raises
    ------
    InputError
        Shapes that do not match, indices outside the step, values that do not fit the dtype.
    """
    shape = tuple(int(s) for s in out.shape)
    axis = z_axis_of(shape, t, "output array")
    nz, ny, nx = shape[axis:]
    flat = check_voxels(flat, (nz, ny, nx))
    values = np.asarray(values)
    if values.ndim and values.shape != flat.shape:
        raise InputError(f"values of shape {values.shape} are not aligned with {flat.size} "
                         "voxel indices")
    dtype = np.dtype(out.dtype)
    _fits(values, dtype, "values")
    _fits(np.asarray(fill), dtype, "fill")
    slab = planes_per_read(out, slab_vox, axis)
    plane = ny * nx
    for z0 in range(0, nz, slab):
        z1 = min(nz, z0 + slab)
        a, b = np.searchsorted(flat, [z0 * plane, z1 * plane])
        buf = np.full((z1 - z0) * plane, fill, dtype=dtype)
        buf[flat[a:b] - z0 * plane] = values[a:b] if values.ndim else values
        buf = buf.reshape(z1 - z0, ny, nx)
        if t is None:
            out[z0:z1] = buf
        else:
            out[int(t), z0:z1] = buf

