"""Preprocessing of steps too large to hold in memory as float32, with bounded memory.

A 512 x 1024 x 1024 uint16 step is 1 GB on disk and 2 GB as float32; the analysis must run in a
few GB, so no function here holds a whole step as float32. Every function takes a
"volume-like": anything 3D with ``.shape``, ``.dtype`` and numpy slicing (a numpy array, a
``zarr.Array``, an ``h5py.Dataset``, a ``dask.array.Array``), read in z-slabs of whole (y, x)
planes.

Steps of at most ``max_voxels`` voxels (default
:data:`~dendritect.parallel.memory.MAX_WHOLE_VOXELS`, 2**22) are handled whole, by the
functions of :mod:`dendritect.preprocess` themselves. Larger steps:

* the cell (:func:`find_cell_bounded`) and the anode side (:func:`decide_anode_bounded`) are found
  on a block-mean binned copy that fits ``max_voxels`` and brought back to full resolution (the
  noise and electrode footprints measured again on a few full-resolution slices);
* the drift (:func:`estimate_shift_bounded`) is estimated coarsely on binned copies, then refined
  at full resolution on a z column and a (y, x) slab of at most ``max_voxels`` voxels each;
* registration and grey-level matching (:func:`align_step`) run slab by slab and give the same
  values as the in-memory functions (bit for bit in the tests).

``max_voxels`` is an algorithm parameter, the same whatever the memory budget, so results do
not depend on the budget. Peak memory of registration, the largest of these stages: about 64
bytes per work voxel (0.27 GB with the default), whatever the step's size; alignment follows its
slab size (``slab_vox``, chosen by :class:`~dendritect.parallel.memory.Plan`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.parallel.memory import MAX_WHOLE_VOXELS
from dendritect.preprocess import cell as _cell
from dendritect.preprocess import normalise as _normalise
from dendritect.preprocess.cell import (
    CellGeometry,
    anode_evidence,
    anode_from_evidence,
    find_cell,
)
from dendritect.preprocess.register import estimate_shift

__all__ = [
    "MAX_WHOLE_VOXELS",
    "align_step",
    "anode_evidence_bounded",
    "bin_factor",
    "binned",
    "decide_anode_bounded",
    "estimate_shift_bounded",
    "find_cell_bounded",
    "read_float32",
]

# Steps of up to MAX_WHOLE_VOXELS voxels (2**22, 16 MB as float32) are handled whole; the
# value, and why it does not follow the memory budget: dendritect.parallel.memory.

_MIN_BINNED_LATERAL = 16  # a binned cross-section narrower than this cannot show a footprint
# scipy's Gaussian kernel radius: int(truncate * sigma + 0.5), truncate 4 (the default)
_SMOOTH_RADIUS = int(4.0 * _normalise.SMOOTH_VOX + 0.5)


# ---------------------------------------------------------------------------------------------
# checks and reading
# ---------------------------------------------------------------------------------------------

def _check_volume(volume: Any, name: str) -> tuple[int, int, int]:
    """Shape of a 3D real-valued volume-like, or InputError."""
    shape = getattr(volume, "shape", None)
    dtype = getattr(volume, "dtype", None)
    if shape is None or dtype is None or not hasattr(volume, "__getitem__"):
        raise InputError(f"{name}: expected a 3D array (numpy, zarr, h5py or dask), "
                         f"got {type(volume).__name__}")
    if len(shape) != 3:
        raise InputError(f"{name}: expected a 3D (z, y, x) volume, got shape {tuple(shape)}")
    if min(int(s) for s in shape) < 1:
        raise InputError(f"{name}: empty volume of shape {tuple(shape)}")
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.number) or np.issubdtype(dt, np.complexfloating):
        raise InputError(f"{name}: expected real numbers, got dtype {dt}")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def _check_max_voxels(max_voxels: int) -> int:
    if isinstance(max_voxels, bool) or int(max_voxels) != max_voxels or max_voxels < 1:
        raise InputError(f"max_voxels must be a positive integer, got {max_voxels!r}")
    return int(max_voxels)


def _check_slab(slab_vox: int, name: str = "slab_vox") -> int:
    if isinstance(slab_vox, bool) or int(slab_vox) != slab_vox or slab_vox < 1:
        raise InputError(f"{name} must be a positive integer number of slices, got {slab_vox!r}")
    return int(slab_vox)


def _read(volume: Any, z0: int, z1: int) -> np.ndarray:
    """Slices ``z0:z1`` (whole y, x) as a numpy array in the volume's own dtype."""
    return np.asarray(volume[z0:z1])


def _read_f32(volume: Any, z0: int, z1: int) -> np.ndarray:
    return _read(volume, z0, z1).astype(np.float32, copy=False)


def read_float32(volume: Any, *, max_voxels: int = MAX_WHOLE_VOXELS) -> np.ndarray:
    """Read a whole step as float32, refusing steps larger than ``max_voxels``.

    Parameters
    ----------
    volume : array-like
        3D (z, y, x) numpy array, ``zarr.Array``, ``h5py.Dataset`` or ``dask.array.Array``.
    max_voxels : int
        Largest step read whole.

    Returns
    -------
    numpy.ndarray
        float32 (z, y, x). A float32 numpy input is returned as is (not copied): do not modify.

    Raises
    ------
    InputError
        Not a 3D real-valued volume, or more than ``max_voxels`` voxels.
    """
    shape = _check_volume(volume, "read_float32")
    limit = _check_max_voxels(max_voxels)
    n = math.prod(shape)
    if n > limit:
        raise InputError(f"read_float32: a step of shape {shape} ({n} voxels) is larger than "
                         f"the {limit} voxels read whole; process it in slabs")
    return np.asarray(volume[...], dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# binning
# ---------------------------------------------------------------------------------------------

def _check_factor(factor: Sequence[int]) -> tuple[int, int, int]:
    try:
        f = tuple(int(k) for k in factor)
        ok = len(f) == 3 and all(k >= 1 and k == kk for k, kk in zip(f, factor, strict=True))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"binned: factor must be three positive integers (z, y, x), "
                         f"got {factor!r}")
    return f  # type: ignore[return-value]


def _block_sum_yx(a: np.ndarray, ky: int, kx: int) -> np.ndarray:
    """float32 sums over (ky, kx) blocks of the last two axes; partial trailing blocks kept."""
    out = a.astype(np.float32, copy=False)
    if kx > 1:
        out = np.add.reduceat(out, np.arange(0, a.shape[-1], kx), axis=-1, dtype=np.float32)
    if ky > 1:
        out = np.add.reduceat(out, np.arange(0, a.shape[-2], ky), axis=-2, dtype=np.float32)
    return out


def _counts(n: int, k: int) -> np.ndarray:
    """Number of cells in each block of ``k`` along an axis of ``n`` (the last may be short)."""
    c = np.full(-(-n // k), k, np.float32)
    c[-1] = n - k * (c.size - 1)
    return c


def binned(volume: Any, factor: tuple[int, int, int], *, slab_vox: int = 64) -> np.ndarray:
    """Block means of a volume, read slab by slab.

    Parameters
    ----------
    volume : array-like
        3D (z, y, x) volume-like (numpy, zarr, h5py, dask); read ``slab_vox`` slices at a time
        (rounded to whole blocks along z, at least one block).
    factor : tuple of int
        Block size ``(kz, ky, kx)``.
    slab_vox : int
        Most slices read at once (a block of more than ``slab_vox`` slices is read in pieces).

    Returns
    -------
    numpy.ndarray
        float32, shape ``ceil(shape / factor)``. Trailing partial blocks are averaged over the
        voxels that exist.
    """
    nz, ny, nx = _check_volume(volume, "binned")
    kz, ky, kx = _check_factor(factor)
    slab = _check_slab(slab_vox)
    out = np.empty((-(-nz // kz), -(-ny // ky), -(-nx // kx)), np.float32)
    area = _counts(ny, ky)[:, None] * _counts(nx, kx)[None, :]
    # whole blocks per read when a block fits in a slab; else a block's slices in pieces
    blocks_per_read = max(1, slab // kz)
    piece = min(kz, slab)
    for b0 in range(0, out.shape[0], blocks_per_read):
        b1 = min(out.shape[0], b0 + blocks_per_read)
        z0, z1 = b0 * kz, min(nz, b1 * kz)
        if kz <= slab:
            s = _block_sum_yx(_read(volume, z0, z1), ky, kx)
            if kz > 1:
                s = np.add.reduceat(s, np.arange(0, z1 - z0, kz), axis=0, dtype=np.float32)
        else:  # one block per read, summed piece by piece
            s = np.zeros((1, *out.shape[1:]), np.float32)
            for p0 in range(z0, z1, piece):
                s += _block_sum_yx(_read(volume, p0, min(z1, p0 + piece)), ky, kx).sum(
                    axis=0, keepdims=True, dtype=np.float32)
        depth = _counts(z1 - z0, kz)[:, None, None]
        out[b0:b1] = s / (depth * area[None])
    return out


def bin_factor(shape: Sequence[int], max_voxels: int = MAX_WHOLE_VOXELS) -> tuple[int, int, int]:
    """Smallest binning that brings a step down to ``max_voxels`` voxels.

    z is kept (``(1, k, k)``): interfaces and crack fronts are measured along z. When even that
    cannot fit, or would leave fewer than 16 pixels across (too few to show the pellet's
    footprint), all three axes are binned (``(k, k, k)``).

    Parameters
    ----------
    shape : sequence of int
        ``(nz, ny, nx)``.
    max_voxels : int
        Most voxels of the binned volume.

    Returns
    -------
    tuple of int
        ``(1, 1, 1)`` when the step fits as it is.
    """
    try:
        nz, ny, nx = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise InputError(f"bin_factor: expected a 3D shape (z, y, x), got {shape!r}") from None
    if min(nz, ny, nx) < 1:
        raise InputError(f"bin_factor: empty shape {tuple(shape)}")
    limit = _check_max_voxels(max_voxels)
    if nz * ny * nx <= limit:
        return (1, 1, 1)

    def cdiv(n: int, k: int) -> int:
        return -(-n // k)

    if nz <= limit:
        # ceil(n / k) >= n / k: no k below sqrt(nz ny nx / limit) can fit
        k = max(2, math.isqrt(nz * ny * nx // limit))
        while nz * cdiv(ny, k) * cdiv(nx, k) > limit:
            k += 1
        if min(cdiv(ny, k), cdiv(nx, k)) >= min(_MIN_BINNED_LATERAL, ny, nx):
            return (1, k, k)
    k = max(2, int((nz * ny * nx / limit) ** (1 / 3)))
    while cdiv(nz, k) * cdiv(ny, k) * cdiv(nx, k) > limit:
        k += 1
    return (k, k, k)


# ---------------------------------------------------------------------------------------------
# the cell and the anode side
# ---------------------------------------------------------------------------------------------

def _scaled_voxel_size(voxel_size_um: Any, factor: tuple[int, int, int]) -> Any:
    if voxel_size_um is None:
        return None
    vs = np.atleast_1d(np.asarray(voxel_size_um, dtype=np.float64))
    if vs.size == 1:
        vs = np.repeat(vs, 3)
    if vs.size != 3:
        return voxel_size_um  # find_cell reports the bad value
    return tuple(float(v) * k for v, k in zip(vs, factor, strict=True))


def _upsampled(fp: np.ndarray | None, ky: int, kx: int, ny: int, nx: int) -> np.ndarray | None:
    """Nearest-neighbour upsampling of a binned (y, x) mask, cropped to the full (ny, nx)."""
    if fp is None:
        return None
    return np.repeat(np.repeat(np.asarray(fp, bool), ky, axis=0), kx, axis=1)[:ny, :nx]


def _downsampled(fp: np.ndarray | None, ky: int, kx: int) -> np.ndarray | None:
    """A full-resolution (y, x) mask on the binned grid: blocks at least half inside."""
    if fp is None:
        return None
    m = np.asarray(fp, bool)
    area = _counts(m.shape[0], ky)[:, None] * _counts(m.shape[1], kx)[None, :]
    return _block_sum_yx(m, ky, kx) >= 0.5 * area


def _z_to_full(z: float, kz: int) -> float:
    # binned slice j is the mean of full slices j*kz .. j*kz + kz - 1, centred at j*kz + (kz-1)/2
    return float(z) * kz + 0.5 * (kz - 1)


def _z_to_binned(z: float, kz: int) -> float:
    return (float(z) - 0.5 * (kz - 1)) / kz


def find_cell_bounded(volume: Any, voxel_size_um: Any = None, *, anode: str = "auto",
                      where: str = "step 0",
                      max_voxels: int = MAX_WHOLE_VOXELS) -> CellGeometry:
    """:func:`~dendritect.preprocess.cell.find_cell` on a step of any size, in bounded memory.

    Parameters
    ----------
    volume : array-like
        3D (z, y, x) step 0 (numpy, zarr, h5py, dask).
    voxel_size_um : float or sequence of float, optional
        ``(dz, dy, dx)``, as for ``find_cell``.
    anode : {"auto", "top", "bottom"}
        As for ``find_cell``.
    where : str
        Name of the input, for error messages.
    max_voxels : int
        Steps up to this size are read whole and give exactly ``find_cell``'s answer.

    Returns
    -------
    CellGeometry
        In full-resolution voxel coordinates. For larger steps the cell is found on the block
        means of :func:`bin_factor` blocks: interfaces are mapped from binned slice centres to
        full ones (``z * kz + (kz - 1) / 2``), the pellet footprint is upsampled (nearest) and
        cropped to ``(ny, nx)``, the electrolyte level is kept. The noise, the electrode
        footprints and the lithium and void levels are then measured again by ``find_cell``'s
        own rules on a few full-resolution slices (at most 8 mid-layer slices, and the slices
        2.5 to 5.5 voxels beyond each interface): block means of correlated noise (the
        point-spread function) keep more than ``1 / sqrt(n)`` of its spread, and the thin gas
        gap beside a smaller electrode blurs away in the binned copy.
    """
    if anode not in ("auto", "top", "bottom"):
        raise InputError(f"--anode: must be top, bottom or auto, got {anode!r}")
    shape = _check_volume(volume, where)
    limit = _check_max_voxels(max_voxels)
    if math.prod(shape) <= limit:
        return find_cell(read_float32(volume, max_voxels=limit), voxel_size_um, anode=anode,
                         where=where)
    f = bin_factor(shape, limit)
    kz, ky, kx = f
    geo = find_cell(binned(volume, f), _scaled_voxel_size(voxel_size_um, f), anode=anode,
                    where=where)
    _, ny, nx = shape
    z_top, z_bot = _z_to_full(geo.z_anode_vox, kz), _z_to_full(geo.z_cathode_vox, kz)
    if z_top > z_bot:
        z_top, z_bot = z_bot, z_top
    footprint = _full_footprint(volume, z_top, z_bot, float(geo.levels["electrolyte"]))
    if footprint is None:
        footprint = _upsampled(geo.footprint, ky, kx, ny, nx)
    # Block means of correlated noise (the point-spread function, reconstruction) keep more
    # than 1/sqrt(n) of its spread, and thin gaps beside the electrodes blur away: the noise
    # and the electrode footprints are measured again at full resolution, on a few slices.
    noise = _full_noise(volume, footprint, z_top, z_bot, limit)
    if not np.isfinite(noise):
        noise = float(geo.noise) * math.sqrt(kz * ky * kx)
    fp_top = fp_bot = None
    voids, sides = [], []
    for z_edge, step in ((z_top, -1), (z_bot, 1)):
        # find_cell's rule: a bright collector covers the pellet and holds no lithium level
        got = ((footprint.copy(), np.nan, np.nan)
               if f"collector-{'top' if step < 0 else 'bottom'}" in geo.flags else
               _full_electrode(volume, footprint, z_edge, step, geo.levels["electrolyte"],
                               noise, limit, max(ky, kx)))
        if got is None:
            break
        fp, li_e, void_e = got
        if step < 0:
            fp_top = fp
        else:
            fp_bot = fp
        sides.append(li_e)
        voids += [void_e] if np.isfinite(void_e) else []
    levels = dict(geo.levels)
    by_anode = geo.levels_by_anode
    if fp_top is None or fp_bot is None:  # too wide to read: the binned footprints
        top_b, bot_b = ((geo.electrode_footprint, geo.counter_electrode_footprint)
                        if geo.z_anode_vox <= geo.z_cathode_vox
                        else (geo.counter_electrode_footprint, geo.electrode_footprint))
        fp_top = _upsampled(top_b, ky, kx, ny, nx)
        fp_bot = _upsampled(bot_b, ky, kx, ny, nx)
    else:
        # find_cell's rule, on the full-resolution levels
        binned_levels = geo.levels
        by_anode = tuple(_cell.cell_levels(binned_levels["electrolyte"], sides, voids,
                                           lambda: binned_levels["void"],
                                           lithium_fallback=binned_levels["lithium"],
                                           anode=side) for side in (0, 1))
        levels = by_anode[0]
    full = CellGeometry(anode="top", z_anode_vox=z_top, z_cathode_vox=z_bot,
                        footprint=footprint, electrode_footprint=fp_top, levels=levels,
                        noise=float(noise), counter_electrode_footprint=fp_bot, flags=geo.flags,
                        tilt_vox=(geo.tilt_vox[0] * kz / ky, geo.tilt_vox[1] * kz / kx),
                        axis_yx=(geo.axis_yx[0] * ky + (ky - 1) / 2,
                                 geo.axis_yx[1] * kx + (kx - 1) / 2),
                        cos_tilt=geo.cos_tilt,
                        axis_shift_yx=(geo.axis_shift_yx[0] * ky / kz,
                                       geo.axis_shift_yx[1] * kx / kz),
                        voxel_size_um=None if geo.voxel_size_um is None else tuple(
                            v / k for v, k in zip(geo.voxel_size_um, f, strict=True)),
                        levels_by_anode=by_anode)
    # __post_init__ puts interfaces and electrode footprints on the anode's side
    return dataclasses.replace(full, anode=geo.anode)


def _full_footprint(volume: Any, z_top: float, z_bot: float, level_e: float,
                    slab_vox: int = 16) -> np.ndarray | None:
    """The pellet footprint at full resolution, by ``find_cell``'s rule.

    The mean of the middle half of the layer, smoothed, thresholded between the pellet and
    what surrounds it. An upsampled binned footprint is up to a block too wide at the pellet
    wall, and the dark die or gap it then takes in reads as a crack along the wall.
    """

    _, ny, nx = (int(n) for n in volume.shape)
    z0, z1 = int(np.ceil(z_top)), int(np.floor(z_bot)) + 1
    q = max(1, (z1 - z0) // 4)
    a, b = z0 + q, z1 - q
    if b <= a:
        return None
    acc = np.zeros((ny, nx))
    for lo in range(a, b, slab_vox):
        acc += _read_f32(volume, lo, min(b, lo + slab_vox)).sum(axis=0, dtype=np.float64)
    mid = ndimage.gaussian_filter((acc / (b - a)).astype(np.float32), 1.0)
    fp = _cell.pellet_footprint(mid, level_e)
    return fp if fp is not None and fp.any() else None


def _full_noise(volume: Any, footprint: np.ndarray, z_top: float, z_bot: float,
                limit: int) -> float:
    """find_cell's voxel-noise estimate, on a few full-resolution slices mid-layer."""
    z0, z1 = int(np.ceil(z_top)) + 1, int(np.floor(z_bot))
    ny, nx = footprint.shape
    n = min(z1 - z0, 8, max(2, limit // (ny * nx)))
    if n < 2:
        return float("nan")
    mid = (z0 + z1) // 2 - n // 2
    inner = ndimage.binary_erosion(footprint, iterations=2)
    if inner.sum() < 16:
        inner = footprint
    return float(_cell.voxel_noise(_read_f32(volume, mid, mid + n), 0, n, inner))


def _full_electrode(volume: Any, footprint: np.ndarray, z_edge: float, step: int,
                    level_e: float, noise: float, limit: int, k: int):
    """find_cell's electrode footprint and levels beyond one interface, at full resolution.

    The upsampled pellet footprint's staircase edge reaches up to ``k - 1`` pixels into the
    die, which is brighter than lithium: the electrode is looked for inside the footprint
    eroded by ``k // 2``, and "no separate electrode" still answers the whole footprint.
    """
    nz = volume.shape[0]
    ny, nx = footprint.shape
    inner = ndimage.binary_erosion(footprint, iterations=k // 2) if k > 1 else footprint
    if inner.sum() < 16:
        inner = footprint
    # the planes find_cell averages, from the footprint-averaged profile near the interface
    p0, p1 = max(0, int(np.floor(z_edge)) - 9), min(nz, int(np.ceil(z_edge)) + 10)
    prof = np.full(nz, np.inf)
    for z in range(p0, p1):
        prof[z] = float(_read_f32(volume, z, z + 1)[0][inner].mean())
    lo, hi = _cell.electrode_planes(prof, z_edge, step)
    if hi - lo < 1:
        return footprint.copy(), float("nan"), float("nan")
    if (hi - lo) * ny * nx > limit:
        return None
    sub = _read_f32(volume, lo, hi)
    fp, li, void = _cell.electrode_levels(sub, inner, z_edge - lo, step, level_e, noise,
                                    (0, hi - lo))
    return (footprint.copy() if np.array_equal(fp, inner) else fp), li, void


def _binned_geometry(geometry: CellGeometry, factor: tuple[int, int, int]) -> CellGeometry:
    """The geometry of a full-resolution step on the grid of its :func:`binned` copy."""
    kz, ky, kx = factor
    return dataclasses.replace(
        geometry,
        z_anode_vox=_z_to_binned(geometry.z_anode_vox, kz),
        z_cathode_vox=_z_to_binned(geometry.z_cathode_vox, kz),
        footprint=_downsampled(geometry.footprint, ky, kx),
        electrode_footprint=_downsampled(geometry.electrode_footprint, ky, kx),
        counter_electrode_footprint=_downsampled(geometry.counter_electrode_footprint, ky, kx),
        levels=dict(geometry.levels),
        noise=float(geometry.noise) / math.sqrt(kz * ky * kx),
        tilt_vox=(geometry.tilt_vox[0] * ky / kz, geometry.tilt_vox[1] * kx / kz),
        axis_yx=((geometry.axis_yx[0] - (ky - 1) / 2) / ky,
                 (geometry.axis_yx[1] - (kx - 1) / 2) / kx),
        axis_shift_yx=(geometry.axis_shift_yx[0] * kz / ky, geometry.axis_shift_yx[1] * kz / kx),
    )


def anode_evidence_bounded(first: Any, later: Any, geometry: CellGeometry, *,
                           max_voxels: int = MAX_WHOLE_VOXELS, sheets: bool = True) -> dict:
    """:func:`~dendritect.preprocess.cell.anode_evidence` on steps of any size.

    Parameters
    ----------
    first, later : array-like
        The first step and a later one registered onto it (numpy, zarr, h5py, dask).
    geometry : CellGeometry
        From :func:`find_cell_bounded` on the first step.
    max_voxels : int
        Steps up to this size give exactly ``anode_evidence``'s answer; larger ones are judged
        on block-mean binned copies (:func:`bin_factor`) with the geometry brought to the
        binned grid.
    sheets : bool
        As in :func:`~dendritect.preprocess.cell.anode_evidence`.

    Returns
    -------
    dict
        As :func:`~dendritect.preprocess.cell.anode_evidence`.
    """
    shape = _check_volume(first, "decide_anode: first step")
    shape_later = _check_volume(later, "decide_anode: later step")
    if shape != shape_later:
        raise InputError(f"decide_anode: steps must be of the same shape, got {shape} and "
                         f"{shape_later}")
    if tuple(geometry.footprint.shape) != shape[1:]:
        raise InputError(f"decide_anode: the cell's footprint {geometry.footprint.shape} does "
                         f"not match the steps' (y, x) {shape[1:]}")
    limit = _check_max_voxels(max_voxels)
    if math.prod(shape) <= limit:
        return anode_evidence(read_float32(first, max_voxels=limit),
                              read_float32(later, max_voxels=limit), geometry, sheets=sheets)
    f = bin_factor(shape, limit)
    return anode_evidence(binned(first, f), binned(later, f), _binned_geometry(geometry, f),
                          sheets=sheets)


def decide_anode_bounded(first: Any, last: Any, geometry: CellGeometry, *,
                         max_voxels: int = MAX_WHOLE_VOXELS) -> str:
    """:func:`~dendritect.preprocess.cell.decide_anode` on steps of any size.

    Parameters
    ----------
    first, last : array-like
        The first and the last step, registered onto the first (numpy, zarr, h5py, dask).
    geometry : CellGeometry
        From :func:`find_cell_bounded` on the first step.
    max_voxels : int
        As in :func:`anode_evidence_bounded`.

    Returns
    -------
    str
        ``"top"`` or ``"bottom"``.
    """
    return anode_from_evidence([anode_evidence_bounded(first, last, geometry,
                                                       max_voxels=max_voxels)])


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------

def _central(avail: np.ndarray, size: Sequence[int]) -> tuple[int, ...]:
    """Box shape ``size`` clipped to ``avail``."""
    return tuple(int(min(a, max(1, c))) for a, c in zip(avail, size, strict=True))


def _refine_boxes(avail: np.ndarray, work: int) -> list[tuple[int, ...]]:
    """Crop shapes for the full-resolution refinement: one for dz, one for (dy, dx).

    A cell's strongest features are the electrode interfaces across z and the pellet, die and
    electrode edges across (y, x); a central box of a large step holds neither (a featureless
    pellet interior, where weak texture and fixed-pattern artefacts bias the estimate). So dz
    is refined on a column through the whole z range (central in y, x) and (dy, dx) on a slab
    of whole (y, x) planes (central in z), each of at most ``work`` voxels.
    """
    az, ay, ax = (int(a) for a in avail)
    if az <= work:
        side = math.isqrt(work // az)
        col = _central(avail, (az, side, side))
    else:
        side = round(work ** (1 / 3))
        col = _central(avail, (side, side, side))
    hz = min(az, work // (ay * ax))
    if hz >= min(az, 4):
        slab = (hz, ay, ax)
    else:  # planes too large: a central (y, x) crop of 4 slices
        side = math.isqrt(work // min(az, 4))
        slab = _central(avail, (min(az, 4), side, side))
    return [col, slab]


def estimate_shift_bounded(reference: Any, moving: Any, *, max_voxels: int = MAX_WHOLE_VOXELS,
                           upsample: int = 10, work_voxels: int | None = None,
                           reference_cache: dict | None = None) -> np.ndarray:
    """:func:`~dendritect.preprocess.register.estimate_shift` on steps of any size.

    Parameters
    ----------
    reference, moving : array-like
        3D (z, y, x) steps of the same shape (numpy, zarr, h5py, dask).
    max_voxels : int
        Steps up to this size give exactly ``estimate_shift``'s answer (the phase correlation
        holds about 52 bytes per voxel at its peak: 0.22 GB for 2**22 voxels).
    upsample : int
        Sub-voxel precision is ``1 / upsample`` voxel.
    work_voxels : int, optional
        Larger steps: most voxels of the binned copies and of the full-resolution crop.
        Default ``max_voxels`` (about 0.27 GB at the peak with the default ``max_voxels``);
        at most ``max_voxels``.
    reference_cache : dict, optional
        A dict the caller keeps for one ``reference``: what is computed from the reference
        alone (its binned copy, the spectra of its crops) is kept in it and reused at the
        next call, so that registering every step onto step 0 reads and transforms step 0
        once. At most one binned copy and three spectra of at most ``work_voxels`` voxels
        each (8 B a voxel) are kept. The same result as without.

    Returns
    -------
    numpy.ndarray
        ``(dz, dy, dx)`` float64 that aligns ``moving`` onto ``reference``. For larger steps: a
        coarse shift from binned copies of at most ``work_voxels`` voxels (:func:`bin_factor`),
        rounded to whole voxels, plus the shift refined at full resolution between crops of at
        most ``work_voxels`` voxels of the reference and the same crops of ``moving`` displaced
        by the rounded coarse shift: dz from a column through the whole z range (the
        electrode interfaces), (dy, dx) from a slab of whole (y, x) planes mid-step (the pellet,
        die and electrode edges); a central box of a large step would hold neither.
    """
    shape = _check_volume(reference, "reference")
    shape_m = _check_volume(moving, "moving")
    if shape != shape_m:
        raise InputError(f"registration: step shapes differ ({shape_m} vs reference {shape}); "
                         "every step of a series must have the same shape")
    limit = _check_max_voxels(max_voxels)
    if int(upsample) < 1:
        raise InputError(f"registration: upsample must be >= 1, got {upsample}")
    cache = reference_cache

    def spectra(role: str, box: Any) -> dict | None:
        # the spectrum of one crop of the reference, kept while the crop stays the same
        if cache is None:
            return None
        if cache.get(role, (None,))[0] != box:
            cache[role] = (box, {})
        return cache[role][1]

    if math.prod(shape) <= limit:
        kept = spectra("whole", shape)
        # with the spectrum kept, the reference is not read (an untouched placeholder)
        ref_whole = (np.empty(shape, np.float32) if kept
                     else read_float32(reference, max_voxels=limit))
        return estimate_shift(ref_whole, read_float32(moving, max_voxels=limit),
                              upsample=upsample, reference_cache=kept)
    work = limit if work_voxels is None else _check_max_voxels(work_voxels)
    limit = min(work, limit)
    f = bin_factor(shape, limit)
    if cache is not None and cache.get("binned", (None,))[0] == f:
        ref_small = cache["binned"][1]
    else:
        ref_small = binned(reference, f)
        if cache is not None:
            cache["binned"] = (f, ref_small)
    coarse = estimate_shift(ref_small, binned(moving, f), upsample=upsample,
                            reference_cache=spectra("binned-spectrum", f))
    whole = np.round(coarse * np.asarray(f, np.float64)).astype(np.int64)
    n = np.asarray(shape, np.int64)
    # reference box [a, a + c), moving box [a - r, a - r + c): both inside the step
    avail = n - np.abs(whole)
    if (avail < 8).any():
        return whole.astype(np.float64)  # drift of nearly the field of view: nothing to refine
    lo = np.maximum(0, whole)
    fine = np.zeros(3)
    for axes, size in zip(((0,), (1, 2)), _refine_boxes(avail, limit), strict=True):
        start = lo + (avail - np.asarray(size)) // 2
        ref_box = tuple(slice(int(a), int(a + c)) for a, c in zip(start, size, strict=True))
        mov_box = tuple(slice(int(a - r), int(a - r + c))
                        for a, r, c in zip(start, whole, size, strict=True))
        kept = spectra(f"crop{axes}", ref_box)
        ref_crop = (np.empty(size, np.float32) if kept
                    else np.asarray(reference[ref_box], dtype=np.float32))
        est = estimate_shift(ref_crop, np.asarray(moving[mov_box], dtype=np.float32),
                             upsample=upsample, reference_cache=kept)
        fine[list(axes)] = est[list(axes)]
    return whole.astype(np.float64) + fine


# ---------------------------------------------------------------------------------------------
# shift and grey-level matching, slab by slab
# ---------------------------------------------------------------------------------------------

class _Shifter:
    """Rows ``z0:z1`` of ``apply_shift(moving, shift)``, computed from a slab plus its halo."""

    def __init__(self, moving: Any, shift: np.ndarray, nz: int) -> None:
        self.moving, self.nz = moving, nz
        s = np.asarray(shift, dtype=np.float64)
        self.none = not s.any()
        # the same branches as apply_shift: whole voxels are copied (order 0), else linear
        self.whole = bool(np.allclose(s, np.round(s), atol=1e-6))
        self.shift = np.round(s) if self.whole else s
        # linear interpolation at z - dz reads slices floor(z - dz) and floor(z - dz) + 1
        self.halo = math.ceil(abs(self.shift[0])) + 1

    def rows(self, z0: int, z1: int) -> np.ndarray:
        if self.none:
            return _read_f32(self.moving, z0, z1)
        a, b = max(0, z0 - self.halo), min(self.nz, z1 + self.halo)
        v = _read_f32(self.moving, a, b)
        if self.whole:
            out = ndimage.shift(v, self.shift, order=0, mode="nearest")
        else:
            out = ndimage.shift(v, self.shift, order=1, mode="nearest", prefilter=False)
        # the slab's own edges are clamped like the step's; rows within the halo of an inner
        # edge are wrong and dropped here
        return out[z0 - a:z1 - a]


def _smoothed(rows: Callable[[int, int], np.ndarray], z0: int, z1: int, nz: int,
              yx: tuple[slice, slice] = (slice(None), slice(None))) -> np.ndarray:
    """Rows ``z0:z1`` of ``gaussian_filter(volume, 1.5)``, as fit_gain_offset smooths, on the
    (y, x) crop ``yx`` of the planes.

    With a halo of the kernel's radius the voxels kept see exactly the neighbours (and, at the
    step's own ends, the same reflection) they see in the whole step, so the values are
    identical: along z here, and across (y, x) when ``yx`` reaches the radius beyond the voxels
    kept (or the plane's edge), as :func:`_sample_box` makes it.
    """
    a, b = max(0, z0 - _SMOOTH_RADIUS), min(nz, z1 + _SMOOTH_RADIUS)
    sm = ndimage.gaussian_filter(rows(a, b)[(slice(None), *yx)], _normalise.SMOOTH_VOX)
    return sm[z0 - a:z1 - a]


def _sample_box(m: np.ndarray) -> tuple[slice, slice, slice, tuple[slice, slice]]:
    """Where a slab's mask ``m`` is set: its z range (relative to the slab), and the (y, x)
    crop that holds it plus the smoothing's radius (cut at the planes' edges).

    Smoothing only that box and sampling ``m`` there gives the whole slab's samples in the
    same order (C order within a box is C order of the slab, restricted), at the cost of the
    box: the electrolyte and the electrodes' first planes inside the die, a fraction of a
    step.
    """
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    ys = np.flatnonzero(m.any(axis=(0, 2)))
    xs = np.flatnonzero(m.any(axis=(0, 1)))
    r = _SMOOTH_RADIUS
    crop = (slice(max(0, int(ys[0]) - r), min(m.shape[1], int(ys[-1]) + 1 + r)),
            slice(max(0, int(xs[0]) - r), min(m.shape[2], int(xs[-1]) + 1 + r)))
    return slice(int(zs[0]), int(zs[-1]) + 1), *crop, crop


def _slabs(nz: int, slab: int) -> list[tuple[int, int]]:
    return [(z, min(nz, z + slab)) for z in range(0, nz, slab)]


def align_step(moving: Any, reference: Any, shift: Any, out: Any, *,
               mask_fn: Callable[[int, int], np.ndarray] | None = None, slab_vox: int = 32,
               max_voxels: int = MAX_WHOLE_VOXELS,
               reference_samples: dict | None = None) -> tuple[float, float]:
    """Register a step and match its grey levels to the reference, slab by slab, into ``out``.

    Writes what ``match_intensity(apply_shift(moving, shift), reference, mask=mask)`` gives
    (same values to float32 rounding, on any size) without holding a whole step in float32.

    Parameters
    ----------
    moving, reference : array-like
        3D (z, y, x) steps of the same shape (numpy, zarr, h5py, dask); not modified.
    shift : sequence of float
        ``(dz, dy, dx)`` from :func:`estimate_shift_bounded`.
    out : zarr.Array or numpy.ndarray
        float32 array of the step's shape, written slab by slab (must not be an input).
    mask_fn : callable, optional
        ``mask_fn(z0, z1)`` returns the bool mask of the voxels to fit on in slices
        ``z0:z1``, shape ``(z1 - z0, ny, nx)`` (e.g. the electrolyte mask of those slices), so
        that no whole-step mask exists. None fits on every voxel.
    slab_vox : int
        Slices per slab (each slab is read with a halo of up to 6 + ceil(|dz|) + 1 slices on
        each side).
    max_voxels : int
        Unused by the computation (every size takes the same slab path, whose result does not
        depend on the slab size); kept so that every bounded function takes the same options.
    reference_samples : dict, optional
        A dict kept by the caller for one reference and one mask: the reference's smoothed
        samples are stored in it at the first call and reused at the next ones (they are the
        same for every step), which saves reading and smoothing the reference again.

    Returns
    -------
    tuple of float
        ``(gain, offset)`` with ``gain * shifted + offset`` written to ``out``.

    Notes
    -----
    Two passes over the step. The first writes the shifted step into ``out`` and samples the
    smoothed shifted and reference values exactly as ``fit_gain_offset`` does: it takes every
    ``step``-th masked voxel in C order, ``step = max(1, n_masked // 2_000_000)``, so the masked
    voxels are counted per slab first and each slab keeps those whose global index is a
    multiple of ``step``. The gain and offset are fitted on those pairs by the same function
    (:func:`~dendritect.preprocess.normalise.fit_samples`); the second pass rescales ``out``
    in place.
    """
    shape = _check_volume(moving, "moving")
    shape_r = _check_volume(reference, "reference")
    if shape != shape_r:
        raise InputError(f"match_intensity: shapes differ ({shape} vs {shape_r})")
    if tuple(getattr(out, "shape", ())) != shape:
        raise InputError(f"align_step: out must have the step's shape {shape}, got "
                         f"{getattr(out, 'shape', None)}")
    if out is moving or out is reference:
        raise InputError("align_step: out must not be one of the inputs")
    s = np.asarray(shift, dtype=np.float64).ravel()
    if s.shape != (3,) or not np.isfinite(s).all():
        raise InputError(f"apply_shift: need three finite shifts (dz, dy, dx), got {shift!r}")
    slab = _check_slab(slab_vox)
    _check_max_voxels(max_voxels)
    nz, ny, nx = shape
    slabs = _slabs(nz, slab)

    def mask_of(z0: int, z1: int) -> np.ndarray | None:
        if mask_fn is None:
            return None
        m = np.asarray(mask_fn(z0, z1))
        if m.shape != (z1 - z0, ny, nx):
            raise InputError(f"align_step: mask_fn({z0}, {z1}) gave shape {m.shape}, expected "
                             f"{(z1 - z0, ny, nx)}")
        return m.astype(bool, copy=False)

    # a step in one slab: its mask is made once, not once to count and once to sample
    one = {} if len(slabs) == 1 else None

    def mask_once(z0: int, z1: int) -> np.ndarray | None:
        if one is None:
            return mask_of(z0, z1)
        if "m" not in one:
            one["m"] = mask_of(z0, z1)
        return one["m"]

    # masked voxels before each slab, in C order, for the global sampling stride
    counts = [ny * nx * (z1 - z0) if mask_fn is None
              else int(np.count_nonzero(mask_once(z0, z1))) for z0, z1 in slabs]
    total = int(sum(counts))
    if mask_fn is not None and total < 100:
        raise InputError("match_intensity: mask selects fewer than 100 voxels")
    step = max(1, total // _normalise.MAX_SAMPLES)

    shifter = _Shifter(moving, s, nz)
    key = (shape, tuple(slabs), tuple(counts), step)
    cached = None if reference_samples is None else reference_samples.get(key)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    before = 0
    for (z0, z1), n_in in zip(slabs, counts, strict=True):
        rows = shifter.rows(z0, z1)
        out[z0:z1] = rows
        if n_in:
            m = mask_once(z0, z1)
            first = (-before) % step  # first masked voxel of this slab with index % step == 0

            # smoothed and sampled only where the mask is (plus the kernel's reach)
            if m is not None:
                kz, ky, kx, yx = _sample_box(m)
                m = m[kz, ky, kx]
                s0, s1 = z0 + kz.start, z0 + kz.stop
            else:
                yx, s0, s1 = (slice(None), slice(None)), z0, z1

            def rows_of(a: int, b: int, z0: int = z0, z1: int = z1,
                        rows: np.ndarray = rows) -> np.ndarray:
                # planes of the slab just shifted are not shifted a second time (the shift
                # of a voxel reads the same neighbours whatever the rows around it)
                return rows[a - z0:b - z0] if z0 <= a and b <= z1 else shifter.rows(a, b)

            sx = _smoothed(rows_of, s0, s1, nz, yx)
            vx = sx[m] if m is not None else sx.ravel()
            xs.append(vx[first::step].astype(np.float64))
            if cached is None:
                sy = _smoothed(lambda a, b: _read_f32(reference, a, b), s0, s1, nz, yx)
                vy = sy[m] if m is not None else sy.ravel()
                ys.append(vy[first::step].astype(np.float64))
        del rows
        before += n_in
    one = None
    if cached is None:
        cached = np.concatenate(ys)
        if reference_samples is not None:
            reference_samples[key] = cached
    gain, offset = _normalise.fit_samples(np.concatenate(xs), cached)
    g32, o32 = np.float32(gain), np.float32(offset)
    for z0, z1 in slabs:
        # the same float32 operations as match_intensity (in place when out is in memory:
        # no temporary of the slab)
        if isinstance(out, np.ndarray) and out.dtype == np.float32:
            part = out[z0:z1]
            part *= g32
            part += o32
            continue
        v = np.asarray(out[z0:z1], dtype=np.float32) * g32
        v += o32
        out[z0:z1] = v
    return gain, offset
