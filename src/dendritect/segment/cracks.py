"""Segment dendrite cracks (empty or lithium-filled) in the electrolyte of one registered step.

Evidence combined, voxel by voxel and then crack by crack:

* **shape**: multiscale Hessian sheetness (:func:`dendritect.segment.hessian.sheetness`) — a
  crack is a thin dark sheet, so cracks already present in the first scan are found too;
* **darkness**: the voxel is darker than the local electrolyte background by a fraction of the
  electrolyte–void contrast (empty cracks are near vacuum, lithium-filled ones less dark);
* **time**: a crack appears and persists — darkening since the first step seeds new cracks,
  and the previous step's mask seeds cracks that persist (lithium-filled, stalled or partly
  closed ones have low contrast);
* **pores vs cracks**: pre-existing pores are dark compact blobs present from the first step;
  they survive a morphological opening that erases thin sheets, and the inertia tensor of each
  connected component tells a sheet (one small principal moment) from a blob;
* **reconstruction artefacts**: the rotation axis of a slice-by-slice reconstruction, where
  ring artefacts converge, is a thin dark line along z; in each slice it is a dark dot (two
  large in-slice Hessian eigenvalues), not a curve, and it is excluded (:func:`axial_lines`).

Voxels are grown from strong seeds into weaker sheet evidence by hysteresis thresholding
(:func:`skimage.filters.apply_hysteresis_threshold`), which keeps thin, low-contrast crack
tips attached to their crack without admitting isolated noise.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from dendritect.errors import InputError

# Whole-volume numba filter when the step fits the memory budget of the active compute context,
# chunk by chunk (dask map_overlap, same result) or on the GPU otherwise.
from dendritect.parallel.chunked import sheetness_auto as sheetness
from dendritect.parallel.chunked import sheetness_depth
from dendritect.preprocess.cell import CellGeometry
from dendritect.segment.slabs import Slabs, plan_slabs, slab_budget, slab_parallelism

__all__ = ["SegmentParams", "StepSegmentation", "axial_lines", "component_shapes",
           "segment_step"]


@dataclass(frozen=True)
class SegmentParams:
    """Every tunable of :func:`segment_step` (``dataclasses.asdict`` goes into summary.json).

    Darkness and change thresholds are fractions of the electrolyte–void contrast; sheetness
    thresholds are on the [0, 1] scale of :func:`~dendritect.segment.hessian.sheetness`.
    """

    sigmas_vox: tuple[float, ...] = (1.0, 1.5, 2.0)
    alpha: float = 0.5
    seed_sheetness: float = 0.3
    grow_sheetness: float = 0.1
    seed_darkness: float = 0.25
    grow_darkness: float = 0.08
    change_seed: float = 0.2
    change_grow: float = 0.10
    background_sigma_vox: float = 6.0
    smooth_sigma_vox: float = 0.7
    seed_margin_vox: float = 1.0
    wall_margin_vox: float = 2.0
    pore_darkness: float = 0.35
    pore_opening_vox: int = 1
    pore_min_vox: int = 4
    pore_max_planarity: float = 0.55
    #: a blob whose largest inscribed ball is thinner than this fraction of its extent
    #: (sqrt of its largest inertia eigenvalue) is a sheet: a curved or kinked crack, not a pore
    pore_min_roundness: float = 0.35
    thin_fraction: float = 0.5
    min_planarity: float = 0.55
    min_size_vox: int = 12
    large_size_vox: int = 100
    #: lithium and void levels at least this many voxel-noise deviations apart. The measured
    #: noise (neighbour differences) holds the ceramic's texture too, 1.1-1.6x the white
    #: noise of the tuning twins, and the cores are read smoothed (a 0.7-voxel Gaussian
    #: passes about a quarter of white noise). Tuning seeds 0-39: lithium reported in 17
    #: cells, not 12, F1 >= 0.85 in 3 of 12 resolvable cells, not 1
    lithium_min_snr: float = 2.0
    lithium_min_resolved: float = 0.05
    #: or at least this many resolved voxels, whatever the share (a few wide cracks among many
    #: thin ones still tell their content)
    lithium_min_resolved_vox: int = 200
    lithium_min_depth_vox: float = 2.0
    #: a crack's resolved cores step down by at least this (void 0, lithium 1) where its
    #: lithium ends (lithium_front_split)
    lithium_min_drop: float = 0.3
    #: side (voxels) of the tiles of the plane over which those profiles are taken
    lithium_tile_vox: int = 16
    #: and the drop stands this many standard errors out of the bins' scatter
    lithium_min_t: float = 5.0
    interface_zone_vox: float = 2.5
    interface_darkness: float = 0.12
    # dark lines along z (the reconstruction's rotation axis): see axial_lines; length 0: off
    axial_line_sigma_vox: float = 1.5
    axial_line_curvature: float = 0.04
    axial_line_ratio: float = 0.5
    axial_line_length_vox: int = 9

    def __post_init__(self) -> None:
        try:
            sig = tuple(float(s) for s in np.atleast_1d(np.asarray(self.sigmas_vox, float)))
        except (TypeError, ValueError):
            raise InputError(f"sigmas_vox: expected numbers, got {self.sigmas_vox!r}") from None
        if not sig or not all(np.isfinite(s) and s > 0 for s in sig):
            raise InputError(f"sigmas_vox: must be positive, got {self.sigmas_vox!r}")
        object.__setattr__(self, "sigmas_vox", sig)
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            if f.name != "sigmas_vox" and (not np.isfinite(val) or val < 0):
                raise InputError(f"{f.name}: must be a non-negative number, got {val!r}")
        if self.axial_line_sigma_vox <= 0:
            raise InputError("axial_line_sigma_vox: must be positive, got "
                             f"{self.axial_line_sigma_vox!r}")


@dataclass
class StepSegmentation:
    """Masks of one step, in the step-0 frame (uint8, 1 = yes)."""

    crack: np.ndarray
    lithium: np.ndarray | None
    pores: np.ndarray
    #: why ``lithium`` is None: the levels too close for the noise, or cracks not resolved
    #: (a step without cracks has an empty ``lithium`` where the levels allow it)
    lithium_reason: str | None = None


def _bbox(geometry: CellGeometry, shape, pad: int) -> tuple[slice, slice, slice]:
    nz, ny, nx = shape
    lo, hi = geometry.z_range_vox
    ys, xs = np.nonzero(geometry.footprint)
    if ys.size == 0:
        raise InputError("segment: the cell's footprint is empty")
    # an inclined pellet wall moves its cross-section from plane to plane
    shift = geometry.axis_shift_yx
    pad = pad + int(np.ceil(max(abs(shift[0]), abs(shift[1])) * (hi - lo) / 2))
    return (slice(max(0, int(np.floor(lo)) - pad), min(nz, int(np.ceil(hi)) + pad + 1)),
            slice(max(0, ys.min() - pad), min(ny, ys.max() + pad + 1)),
            slice(max(0, xs.min() - pad), min(nx, xs.max() + pad + 1)))


def component_shapes(labels: np.ndarray, n: int | None = None, *,
                     voxel_size_um: Any = None) -> dict[str, np.ndarray]:
    """Size and inertia-tensor shape of each labelled component.

    With ``voxel_size_um`` (z, y, x) the coordinates are taken in micrometres, in units of the
    x voxel size (a voxel ``dz`` tall counts ``dz / dx`` along z); without it, in voxels.

    Returns
    -------
    dict
        ``size`` (voxels), ``planarity`` = 1 − sqrt(λ3 / λ2) of the coordinate covariance
        (1 for a plane, 0 for a sphere or a line), ``normal_z`` = |z component| of the
        direction of least extent, ``thickness`` = 2·sqrt(λ3) voxels, ``width`` = sqrt(λ2)
        voxels, ``elongation`` = sqrt(λ1 / λ2) (large for a line), ``axis_z`` = |z
        component| of the direction of most extent, ``extent`` = sqrt(λ1) voxels; arrays
        indexed by label − 1.
    """
    if n is None:
        n = int(labels.max())
    return _shapes(*Slabs(labels.shape, [(0, labels.shape[0])]).shape_moments(labels, n),
                   aspect=_aspect(voxel_size_um))


def lines_along_z(shapes: dict[str, np.ndarray]) -> np.ndarray:
    """Which components of :func:`component_shapes` are lines along z, not cracks.

    No wider than ``NEEDLE_WIDTH_VOX``, ``NEEDLE_ELONGATION`` times longer than wide, the
    direction of most extent within about 37° of z. A shallow crack seen as a line in the
    plane (a sheet one voxel deep) is not one.
    """
    return ((shapes["width"] <= NEEDLE_WIDTH_VOX) & (shapes["elongation"] >= NEEDLE_ELONGATION)
            & (shapes["axis_z"] >= NEEDLE_AXIS_Z))


def _aspect(voxel_size_um: Any) -> np.ndarray:
    """Voxel size (z, y, x) in units of its x size; ones when not known."""
    if voxel_size_um is None:
        return np.ones(3)
    vs = np.broadcast_to(np.asarray(voxel_size_um, dtype=np.float64), (3,))
    return vs / vs[2]


def _shapes(size: np.ndarray, cov: np.ndarray,
            aspect: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """:func:`component_shapes` from the counts and coordinate covariances (voxels), the
    coordinates scaled by ``aspect`` (z, y, x) first."""
    n = size.size
    out = {k: np.zeros(n) for k in ("size", "planarity", "normal_z", "thickness", "width",
                                    "elongation", "axis_z", "extent")}
    if n == 0:
        return out
    a = np.ones(3) if aspect is None else np.asarray(aspect, dtype=np.float64)
    # a single voxel has extent 1/12 voxel² along each axis (a box), not zero
    cov = (cov + np.eye(3)[None] / 12.0) * np.outer(a, a)[None]
    w, v = np.linalg.eigh(cov)  # ascending
    out["size"] = size
    out["planarity"] = 1.0 - np.sqrt(np.clip(w[:, 0], 0, None) / np.maximum(w[:, 1], 1e-12))
    out["normal_z"] = np.abs(v[:, 0, 0])
    out["thickness"] = 2.0 * np.sqrt(np.clip(w[:, 0], 0, None))
    out["width"] = np.sqrt(np.clip(w[:, 1], 0, None))
    out["elongation"] = np.sqrt(w[:, 2] / np.maximum(w[:, 1], 1e-12))
    out["axis_z"] = np.abs(v[:, 0, 2])
    out["extent"] = np.sqrt(np.clip(w[:, 2], 0, None))
    return out


#: Planes of halo for the inscribed radius of blobs: pores wider than this are rare, and a
#: radius cut there still marks the blob as round.
_INSCRIBED_HALO = 8


def _inscribed_radius(slabs: Slabs, labels, n: int, aspect: np.ndarray | None,
                      need: np.ndarray | None = None) -> np.ndarray:
    """Radius (x voxels) of the largest ball inside each component, indexed by label − 1.

    The maximum, over the component's voxels of each slab, of the Euclidean distance
    transform of the slab's foreground (``labels > 0``, halo of ``_INSCRIBED_HALO`` planes
    included). Only the components flagged in ``need`` (bool, indexed by label − 1; default:
    all) are measured, the others are 0.

    The transform is computed on the component's bounding box in the slab grown by one voxel
    (:func:`_edt_boxes`), and the distances there are those of the whole slab: the voxels nearer
    to a voxel ``v`` of the component than its nearest background voxel ``b`` (distance D) are
    foreground and face-connected to ``v`` (from any of them a step of one coordinate towards
    ``v`` comes nearer to ``v``), so they belong to the component (labelled 6-connected: other
    components never touch it by a face) and lie in its box; one step from ``b`` towards ``v``
    is such a voxel, so ``b`` lies within one voxel of the box. The transform is computed on
    the whole slab where the boxes would hold as many voxels as it.
    """
    sampling = None if aspect is None else tuple(float(a) for a in aspect)
    want = np.ones(n, bool) if need is None else np.asarray(need, bool)

    def _part(lo: int, hi: int, z0: int, z1: int) -> np.ndarray:
        block = np.asarray(labels[lo:hi])
        out = np.zeros(n + 1)
        if not want.any():
            return out
        ids, boxes = _edt_boxes(block, n, want, z0 - lo, z1 - lo)
        k = slice(z0 - lo, z1 - lo)
        if sum(int(np.prod([s.stop - s.start for s in b])) for b in boxes) >= block.size:
            d = ndimage.distance_transform_edt(block > 0, sampling=sampling)
            np.maximum.at(out, block[k].ravel(), d[k].ravel())
            out[1:][~want] = 0.0
            return out
        # each box holds background (a face of the component's bounding box not on the
        # slab's face has a background voxel beside it; a box on every face is the slab's)
        for lab, box in zip(ids, boxes, strict=True):
            crop = block[box]
            # only the voxels of the slab's own planes count
            a = max(k.start - box[0].start, 0)
            b = min(k.stop - box[0].start, crop.shape[0])
            sel = crop[a:b] == lab
            if sel.any():
                d = ndimage.distance_transform_edt(crop > 0, sampling=sampling)
                out[lab] = max(0.0, float(d[a:b][sel].max()))
        return out

    best = np.zeros(n + 1)
    for part in slabs.run(_part, _INSCRIBED_HALO):
        np.maximum(best, part, out=best)
    return best[1:]


def _edt_boxes(block: np.ndarray, n: int, want: np.ndarray, k0: int,
               k1: int) -> tuple[list[int], list[tuple[slice, slice, slice]]]:
    """Labels of ``want`` (indexed by label − 1) with voxels in planes ``k0..k1`` of
    ``block``, and their bounding boxes in the block grown by one voxel (clipped)."""
    ids, boxes = [], []
    for i, sl in enumerate(ndimage.find_objects(block, max_label=n)):
        if sl is None or not want[i] or sl[0].stop <= k0 or sl[0].start >= k1:
            continue
        ids.append(i + 1)
        boxes.append(tuple(slice(max(s.start - 1, 0), min(s.stop + 1, m))
                           for s, m in zip(sl, block.shape, strict=True)))
    return ids, boxes


# Bits of the per-voxel flags of the first pass (uint16 scratch volume).
_BLOB, _AXIAL, _WEAK, _SEED, _CH_SEED, _CH_WEAK, _KEPT, _LI_RES, _LI_IS, _NEXT = (
    np.uint16(1 << k) for k in range(10))
_CROSS = ndimage.generate_binary_structure(3, 1)


def _erode6(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``ndimage.binary_erosion(mask, _CROSS, iterations)`` (outside the array is background),
    by ANDs of the array shifted by one voxel along each axis: the same voxels, a fraction of
    the time."""
    a = np.asarray(mask, dtype=bool)
    if a.size == 0:
        return a.copy()
    for _ in range(int(iterations)):
        out = a.copy()
        for ax in range(a.ndim):
            lo = (slice(None),) * ax + (slice(1, None),)
            hi = (slice(None),) * ax + (slice(None, -1),)
            out[lo] &= a[hi]
            out[hi] &= a[lo]
            out[(slice(None),) * ax + (0,)] = False
            out[(slice(None),) * ax + (-1,)] = False
        a = out
    return a


def _dilate6(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``ndimage.binary_dilation(mask, _CROSS, iterations)`` (nothing dilates in from outside
    the array), by ORs of the array shifted by one voxel along each axis."""
    a = np.asarray(mask, dtype=bool)
    for _ in range(int(iterations)):
        out = a.copy()
        for ax in range(a.ndim):
            lo = (slice(None),) * ax + (slice(1, None),)
            hi = (slice(None),) * ax + (slice(None, -1),)
            out[lo] |= a[hi]
            out[hi] |= a[lo]
        a = out
    return a


def _open6(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``ndimage.binary_opening(mask, _CROSS, iterations)``."""
    return _dilate6(_erode6(mask, iterations), iterations)


def _extremum3(a: np.ndarray, maximum: bool = False) -> np.ndarray:
    """``ndimage.minimum_filter(a, size=3)`` (``maximum_filter`` with ``maximum``), SciPy's
    default ``mode="reflect"``, by the minimum of the array shifted by one voxel along each
    axis in turn: at a face the reflected neighbour is the voxel itself, so it is left out.
    Minima are exact, so the result is SciPy's; arrays holding NaN go to SciPy."""
    if a.dtype.kind == "f" and a.size and np.isnan(a.min()):
        f = ndimage.maximum_filter if maximum else ndimage.minimum_filter
        return f(a, size=3)
    fn = np.maximum if maximum else np.minimum
    out = a.copy()
    src = a
    for ax in range(a.ndim):
        if ax == 1:
            src = np.empty_like(a)
        if ax:
            np.copyto(src, out)
        lo = (slice(None),) * ax + (slice(1, None),)
        hi = (slice(None),) * ax + (slice(None, -1),)
        fn(out[lo], src[hi], out=out[lo])
        fn(out[hi], src[lo], out=out[hi])
    return out


def _smooth(v: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(v, sigma) if sigma > 0 else v


def _smooth_reach(sigma: float) -> int:
    """Planes a Gaussian reaches (scipy's default truncation at 4 sigma)."""
    return int(4.0 * float(sigma) + 0.5) if sigma > 0 else 0


class _Box:
    """The region of a step that is segmented (the cell's electrolyte and a margin), read by
    planes of the box: a NumPy array, a store or a lazy array is never read whole."""

    def __init__(self, geometry: CellGeometry, shape: tuple[int, int, int], pad: int) -> None:
        self.sl = _bbox(geometry, shape, pad)
        self.z0 = self.sl[0].start
        self.shape = tuple(s.stop - s.start for s in self.sl)
        nz = shape[0]
        self.geometry = geometry
        self.zmask = geometry.z_mask(nz)[self.sl[0]]
        self.z = np.arange(self.sl[0].start, self.sl[0].stop)
        self.footprint = geometry.footprint[self.sl[1:]]
        self.inclined = any(geometry.axis_shift_yx)
        self.aspect = _aspect(geometry.voxel_size_um)
        # columns grouped by the sub-voxel offset of their interfaces (a flattened tilted
        # cell): each group has its own z profile of the background
        res = geometry.column_offset_vox
        self.n_offset_bins = OFFSET_BINS if res is not None else 1
        self.offset_bin = (None if res is None else np.clip(
            np.floor((np.asarray(res)[self.sl[1:]] + 0.5) * OFFSET_BINS), 0,
            OFFSET_BINS - 1).astype(np.intp))

    def profile(self, prof: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """The background z profile of planes ``lo..hi`` at every column (broadcastable)."""
        if self.offset_bin is None:
            return prof[lo:hi, 0][:, None, None]
        return prof[lo:hi][:, self.offset_bin]

    def read(self, arr, lo: int, hi: int, dtype=np.float32) -> np.ndarray:
        """Planes ``lo..hi`` of the box from a full-step array."""
        part = arr[self.z0 + lo:self.z0 + hi, self.sl[1], self.sl[2]]
        if hasattr(part, "dask"):
            # read inside a slab's task: no nested use of the cluster's scheduler
            part = part.compute(scheduler="sync")
        return np.ascontiguousarray(np.asarray(part), dtype=dtype)

    def write(self, arr, lo: int, hi: int, values: np.ndarray) -> None:
        arr[self.z0 + lo:self.z0 + hi, self.sl[1], self.sl[2]] = values

    def inside(self, lo: int, hi: int) -> np.ndarray:
        """Electrolyte voxels of planes ``lo..hi``."""
        if self.inclined:
            return self.geometry.inside(self.z0 + lo, self.z0 + hi, self.sl[1:])
        return self.zmask[lo:hi, None, None] & self.footprint[None]

    def wall_bins(self, lo: int, hi: int) -> np.ndarray:
        """Bin (of ``WALL_BIN_VOX``) of each voxel's in-plane distance to the pellet wall, in
        planes ``lo..hi``; ``len(wall)`` beyond ``WALL_REACH_VOX`` (no wall term there)."""
        if not hasattr(self, "_wall"):
            d = ndimage.distance_transform_edt(self.geometry.footprint)
            nb = int(WALL_REACH_VOX / WALL_BIN_VOX)
            bins = np.minimum(((d - 0.5) / WALL_BIN_VOX).astype(np.int64), nb)
            self._wall = np.where(self.geometry.footprint, np.maximum(bins, 0), nb)
            self._wall_n = nb
        if self.inclined:
            zm = 0.5 * (self.geometry.z_anode_vox + self.geometry.z_cathode_vox)
            ay, ax = self.geometry.axis_shift_yx
            out = np.empty((hi - lo, *self.shape[1:]), np.int64)
            for k, z in enumerate(range(self.z0 + lo, self.z0 + hi)):
                dy, dx = round((z - zm) * ay), round((z - zm) * ax)
                moved = np.full_like(self._wall, self._wall_n)
                ny, nx = moved.shape
                ys = slice(max(dy, 0), ny + min(dy, 0))
                xs = slice(max(dx, 0), nx + min(dx, 0))
                yd = slice(max(-dy, 0), ny + min(-dy, 0))
                xd = slice(max(-dx, 0), nx + min(-dx, 0))
                moved[ys, xs] = self._wall[yd, xd]
                out[k] = moved[self.sl[1:]]
            return out
        return np.broadcast_to(self._wall[self.sl[1:]][None], (hi - lo, *self.shape[1:]))

    def footprint_planes(self, lo: int, hi: int, footprint: np.ndarray) -> np.ndarray:
        """A (full-step) footprint such as an eroded one, in planes ``lo..hi`` of the box."""
        if self.inclined:
            return self.geometry.footprint_planes(self.z0 + lo, self.z0 + hi, self.sl[1:],
                                                  footprint=footprint)
        return footprint[self.sl[1:]][None]


#: The wall term of the background: bins of in-plane distance to the pellet wall (voxels).
WALL_BIN_VOX = 0.5
#: Groups of columns, by the sub-voxel offset of their interfaces, with a z profile each.
OFFSET_BINS = 5
#: A group needs this many footprint columns for its own profile (else the plane's median).
OFFSET_BIN_MIN_COLUMNS = 16
WALL_REACH_VOX = 6.0
#: Change seeds keep this much farther from the wall than other seeds (voxels).
WALL_CHANGE_VOX = 2
#: In each plane a piece of crack that stays within this of the pellet wall (voxels) and runs
#: along it (at least RIM_ARC_VOX long, RIM_ARC_RATIO times longer than deep) is dropped.
RIM_ONLY_VOX = 5.0
#: A crack must reach farther than this from the cathode interface somewhere (voxels).
CATHODE_ZONE_VOX = 3.0
#: A sheet lying along the cathode interface (its normal within CATHODE_SHEET_MAX_ANGLE_DEG of
#: z) with at most CATHODE_SHEET_MAX_FAR_SHARE of its voxels farther than CATHODE_SHEET_VOX
#: from it is the reconstruction's, not a crack: filtered back-projection leaves a dark
#: undershoot two or three voxels inside a bright collector, in every scan (tuning cell 33:
#: 10,700 voxels in the first scan, 3 % of them deeper, where rings and the field's rim join
#: it). Cracks start at the anode; one that reached the cathode runs across the pellet, not
#: along the interface. Voxels within RIM_ONLY_VOX of the pellet wall count as near it.
CATHODE_SHEET_VOX = 8.0
CATHODE_SHEET_MAX_ANGLE_DEG = 30.0
CATHODE_SHEET_MAX_FAR_SHARE = 0.1
#: A sheet along the anode interface (normal within CATHODE_SHEET_MAX_ANGLE_DEG of z) with at
#: least ANODE_SKIN_SHARE of its voxels centred within ANODE_SKIN_VOX of the interface is the
#: interface's partial volume: a tilted interface crosses the planes in steps, and a phase
#: fringe darkens the plane beside it (tuning cell 27, a 1° tilt, strong fringes: an
#: 847-voxel sheet in a crack-free first scan, 828 of its voxels in the last plane). A
#: spallation crack dips into the pellet; one lying within a voxel and a half of the
#: electrode is not resolved from it.
ANODE_SKIN_VOX = 1.5
ANODE_SKIN_SHARE = 0.9
RIM_ARC_VOX = 6.0
RIM_ARC_RATIO = 2.5
#: A trace of at most this many voxels within RIM_ONLY_VOX of the wall, not reaching farther
#: in, is dropped too: a crack at the wall meets it along a line of its plane, not in a dot.
RIM_DOT_VOX = 4
#: A piece no wider than NEEDLE_WIDTH_VOX (sqrt of its second inertia eigenvalue) and
#: NEEDLE_ELONGATION times longer than wide, running along z (the direction of most extent
#: within 37 degrees of it), is a line, not a crack: a crack is a sheet whose trace in a plane
#: is as long as the crack is wide, while the pellet's wall, the die and the reconstruction
#: make lines along z that a sub-voxel registration turns into change.
NEEDLE_WIDTH_VOX = 1.2
NEEDLE_ELONGATION = 8.0
NEEDLE_AXIS_Z = 0.8


def _background_profile(box: _Box, slabs: Slabs, volume, level: float, contrast: float,
                        p: SegmentParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected grey level of crack-free electrolyte: a z profile and a lateral map.

    The profile is the median over the footprint of each smoothed slice (it follows the blur
    of the interfaces, where partial volume with the electrodes darkens the first slices); in
    a flattened tilted cell, whose columns' interfaces lie up to half a voxel off the plane's,
    one per group of columns of about the same offset (``OFFSET_BINS``: (z, group));
    the lateral map (beam-hardening cupping, slow texture) the Gaussian-smoothed mean over z
    of what remains, without the dark voxels; the wall term a function of the in-plane
    distance to the pellet wall (bins of ``WALL_BIN_VOX`` up to ``WALL_REACH_VOX``): the median,
    over the whole circumference and every plane, of what the profile and the lateral map
    leave there. It takes in the dark rim that partial volume with the die or gap, the
    undershoot of filtered back-projection and phase-contrast fringes draw along the wall (a
    crack reaching the wall covers a small part of the circumference and stays darker than
    it). The background at a voxel is the sum of the three; the wall term is returned as an
    array indexed by :meth:`_Box.wall_bins`.
    """
    reach = _smooth_reach(p.smooth_sigma_vox)

    def _pass(lo: int, hi: int, z0: int, z1: int):
        vs = _smooth(box.read(volume, lo, hi), p.smooth_sigma_vox)[z0 - lo:z1 - lo]
        return _profile_part(box, vs, z0, z1, level, contrast)

    return _profile_combine(box, slabs.run(_pass, reach), p)


def _profile_part(box: _Box, vs: np.ndarray, z0: int, z1: int, level: float,
                  contrast: float) -> tuple:
    """:func:`_background_profile`'s sums over planes ``z0..z1`` of the box, ``vs`` their
    smoothed grey levels."""
    fp = box.footprint if box.footprint.sum() >= 16 else None
    nb = int(WALL_REACH_VOX / WALL_BIN_VOX)
    inside = box.inside(z0, z1)
    nbin = box.n_offset_bins
    groups = ([] if box.offset_bin is None or fp is None else
              [fp & (box.offset_bin == j) for j in range(nbin)])
    prof = np.full((z1 - z0, nbin), level, np.float32)
    if fp is not None:
        for k in range(z1 - z0):
            if inside[k].any():
                prof[k] = np.median(vs[k][fp])
                for j, g in enumerate(groups):
                    if g.sum() >= OFFSET_BIN_MIN_COLUMNS:
                        prof[k, j] = np.median(vs[k][g])
    rel = vs - box.profile(prof, 0, z1 - z0)
    w = inside & (rel > -0.3 * contrast)
    bins = box.wall_bins(z0, z1)
    rim = inside & (bins < nb)
    b, r = bins[rim], rel[rim]
    wall = np.array([np.median(r[b == i]) if (b == i).any() else 0.0 for i in range(nb)])
    count = np.bincount(b, minlength=nb)[:nb]
    return (prof, (rel * w).sum(axis=0, dtype=np.float64), w.sum(axis=0, dtype=np.float64),
            wall, count)


def _profile_combine(box: _Box, parts: list, p: SegmentParams
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The profile, lateral map and wall term of :func:`_background_profile` from the slabs'
    :func:`_profile_part`."""
    nb = int(WALL_REACH_VOX / WALL_BIN_VOX)
    prof = np.concatenate([q[0] for q in parts])
    num = ndimage.gaussian_filter(sum(q[1] for q in parts).astype(np.float32),
                                  p.background_sigma_vox)
    den = ndimage.gaussian_filter(sum(q[2] for q in parts).astype(np.float32),
                                  p.background_sigma_vox)
    lat = np.where(den > 0.05, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)
    # the slabs' medians, weighted by their voxels (one slab: the median itself), less what the
    # smooth lateral map already takes in at that distance from the wall
    counts = np.stack([q[4] for q in parts]).astype(np.float64)
    medians = np.stack([q[3] for q in parts])
    total = counts.sum(axis=0)
    wall = np.zeros(nb + 1, np.float32)
    bins2d = box.wall_bins(0, 1)[0]
    for i in range(nb):
        if total[i] > 0:
            lat_i = float(lat[bins2d == i].mean()) if (bins2d == i).any() else 0.0
            wall[i] = float((medians[:, i] * counts[:, i]).sum() / total[i]) - lat_i
    return prof, lat, wall
def axial_lines(volume: np.ndarray, contrast: float, *, sigma_vox: float = 1.5,
                min_curvature: float = 0.04, min_ratio: float = 0.5,
                min_length_vox: int = 9) -> np.ndarray:
    """Dark lines along z: the rotation axis of a slice-by-slice reconstruction.

    Filtered back-projection reconstructs each z slice on its own, so detector defects that
    persist over the detector rows (a bad column, uncorrected gain) give artefacts invariant
    along z: ring artefacts (cylindrical shells) and, where all rings converge, a thin line on
    the rotation axis. In a slice that line is a dark *dot*: both in-slice eigenvalues of the
    Hessian are large (a crack crossing the slice is a dark *curve*: one large eigenvalue). It
    is fixed in the scanner frame, so once the sample has drifted by a voxel or two the
    registered scans show it where the first scan was bright, and it reads as a new dark
    feature. Voxels are marked where the smaller in-slice eigenvalue of the σ²-normalised
    Hessian is at least ``min_curvature`` (in units of an empty one-voxel crack's response,
    as :func:`~dendritect.segment.hessian.sheetness`) and ``min_ratio`` times the larger one,
    in straight runs along z of at least ``min_length_vox`` slices; the run is widened by one
    voxel in the slice (the line's partial-volume rim).

    Parameters
    ----------
    volume : numpy.ndarray
        3D (z, y, x) volume.
    contrast : float
        Electrolyte minus void grey level.
    sigma_vox : float
        In-slice Gaussian scale (voxels).
    min_curvature, min_ratio : float
        Thresholds on the smaller in-slice eigenvalue, absolute and relative to the larger.
    min_length_vox : int
        Shortest run along z.

    Returns
    -------
    numpy.ndarray
        bool mask of the volume's shape.
    """
    v = np.asarray(volume, dtype=np.float32)
    if v.ndim != 3:
        raise InputError(f"axial_lines: expected a 3D (z, y, x) volume, got shape {v.shape}")
    if not (sigma_vox > 0 and contrast > 0):
        raise InputError("axial_lines: sigma_vox and contrast must be positive")
    k = np.float32(sigma_vox * sigma_vox / (0.4 * contrast))
    sig = (0.0, sigma_vox, sigma_vox)  # in-slice only: the line is the same in every slice
    # float32 throughout, in place: the operations (and roundings) of
    # half = (hxx + hyy) / 2, dev = sqrt((hxx - hyy)² / 4 + hxy²), mu = half ± dev
    hyy = ndimage.gaussian_filter(v, sig, order=(0, 2, 0))
    hyy *= k
    hxx = ndimage.gaussian_filter(v, sig, order=(0, 0, 2))
    hxx *= k
    hxy = ndimage.gaussian_filter(v, sig, order=(0, 1, 1))
    hxy *= k
    half = hxx + hyy
    half *= np.float32(0.5)
    dev = np.subtract(hxx, hyy, out=hxx)
    del hyy
    dev **= 2
    dev *= np.float32(0.25)
    hxy *= hxy
    dev += hxy
    np.sqrt(dev, out=dev)
    mu2 = np.subtract(half, dev, out=hxy)  # smaller in-slice eigenvalue; > 0 at a dark dot
    mu1 = np.add(half, dev, out=half)
    del dev
    mu1 *= np.float32(min_ratio)
    dot = mu2 >= np.float32(min_curvature)
    dot &= mu2 >= mu1
    n = int(min_length_vox)
    if n > 1:
        dot = (_open_z(dot, n) if n % 2 else
               ndimage.binary_opening(dot, structure=np.ones((n, 1, 1), bool)))
    if dot.any():
        dot = _dilate_yx(dot)
    return dot


def _open_z(mask: np.ndarray, n: int) -> np.ndarray:
    """``ndimage.binary_opening(mask, np.ones((n, 1, 1)))`` for odd ``n``: the runs along z
    of at least ``n`` voxels, by ANDs and ORs of the array shifted along z."""
    nz, h = mask.shape[0], n // 2
    eroded = np.zeros_like(mask)
    m = nz - 2 * h  # planes whose window of n lies within the array
    if m > 0:
        run = mask[:m].copy()
        for j in range(1, n):
            run &= mask[j:j + m]
        eroded[h:h + m] = run
    out = eroded.copy()
    for j in range(1, h + 1):
        out[j:] |= eroded[:-j]
        out[:-j] |= eroded[j:]
    return out


def _dilate_yx(mask: np.ndarray) -> np.ndarray:
    """``ndimage.binary_dilation(mask, np.ones((1, 3, 3)))``: a 3 × 3 square in each plane is
    a segment along y then one along x."""
    out = mask.copy()
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    row = out.copy()
    out[:, :, 1:] |= row[:, :, :-1]
    out[:, :, :-1] |= row[:, :, 1:]
    return out




def lithium_contrast_reason(lv: dict, noise: float, p: SegmentParams) -> str | None:
    """Why a scan cannot tell lithium from void inside cracks by grey level, or ``None``."""
    if not np.isfinite(lv["lithium"]):
        return ("no electrode beside the pellet reads as lithium (a bare collector, a cathode, "
                "or a foil too thin to read beside its plunger): lithium's grey level is not "
                "known")
    li_gap = float(lv["lithium"] - lv["void"])
    noise = noise if np.isfinite(noise) else 0.0
    if li_gap <= 0 and lv["lithium"] <= 0:
        # clipped at the scan's floor: the dark fringes of phase contrast, or an offset that
        # puts lithium and void below zero
        return (f"the electrode beside the pellet reads at the scan's floor "
                f"({lv['lithium']:.4g}, as dark as the void): its grey levels are clipped "
                f"(phase-contrast fringes or the reconstruction's offset), so lithium's "
                f"level is not known")
    if li_gap <= 0 or li_gap < p.lithium_min_snr * noise:
        return (f"lithium and empty crack differ by {li_gap:.4g} grey levels, "
                f"{li_gap / noise if noise > 0 else 0.0:.2g} noise deviations (need "
                f"{p.lithium_min_snr:g}): contrast too low for the noise")
    return None


def lithium_front_split(depth_vox: np.ndarray, u: np.ndarray, min_drop: float,
                        min_t: float = 5.0, window: int = 4) -> float | None:
    """Depth (voxels) where a crack's lithium ends, from its thick cores, or ``None``.

    ``depth_vox`` and ``u`` are the depth along the cell's normal and the core's grey level
    (void 0, lithium 1) of a crack's thick voxels. Partial volume with the ceramic lifts both
    contents by an amount that grows as the crack narrows, so a fixed threshold calls the
    empty part of a tapering crack lithium. Along the normal, though, lithium fills a crack
    from its mouth and the dry tip runs ahead of it: the profile of the cores (the median of
    each voxel-deep bin) steps down where the lithium ends, by about the lithium-void gap
    times the share of the core the crack fills. The split is the largest drop between the
    medians of the ``window`` bins before and after it that is at least ``min_drop`` and
    ``min_t`` standard errors of the bins' scatter about the two levels (with at least two
    bins on each side); the lithium ends where the profile crosses half way between the two
    levels there (interpolated between bins). A profile that rises or stays level (all
    lithium, all empty, or narrowing throughout) has no split: ``None``.
    """
    depth_vox = np.asarray(depth_vox, np.float64)
    u = np.asarray(u, np.float64)
    if depth_vox.size < 2:
        return None
    b = np.round(depth_vox).astype(np.int64)
    keys, inv, cnt = np.unique(b, return_inverse=True, return_counts=True)
    if keys.size < 2:
        return None
    order = np.argsort(inv, kind="stable")
    starts = np.concatenate(([0], np.cumsum(cnt)[:-1]))
    med = np.array([np.median(u[order[s:s + c]]) for s, c in zip(starts, cnt, strict=True)])
    # the bins just before and just after each candidate split: the crack narrows toward its
    # tip, so levels far from the split say little about the step there
    best, j, levels = -np.inf, -1, (0.0, 0.0)
    for i in range(keys.size - 1):
        ba, bb = med[max(0, i + 1 - window):i + 1], med[i + 1:i + 1 + window]
        if ba.size < 2 or bb.size < 2:
            continue
        la, lb = float(np.median(ba)), float(np.median(bb))
        drop = la - lb
        # the drop must stand out of the scatter of the bins about the two levels (a
        # t-statistic on the bins): a few thick voxels of a thin crack, where the aperture
        # varies from voxel to voxel, do not make a front
        res = np.concatenate((ba - la, bb - lb))
        sd = float(np.sqrt(np.mean(res * res))) + 1e-3 * max(min_drop, 1e-9)
        t = drop / (sd * np.sqrt(1.0 / ba.size + 1.0 / bb.size))
        if drop >= min_drop and t >= min_t and drop > best:
            best, j, levels = drop, i, (la, lb)
    if j < 0:
        return None
    # the blur of the scan spreads the step over a few bins: the lithium ends where the
    # profile crosses half way between the two levels (nearest the split, interpolated)
    mid = 0.5 * (levels[0] + levels[1])
    cut, near = 0.5 * float(keys[j] + keys[j + 1]), np.inf
    for i in range(max(0, j + 1 - window), min(keys.size - 1, j + window)):
        if med[i] >= mid > med[i + 1]:
            at = keys[i] + (med[i] - mid) / (med[i] - med[i + 1]) * (keys[i + 1] - keys[i])
            if abs(at - 0.5 * (keys[j] + keys[j + 1])) < near:
                cut, near = float(at), abs(at - 0.5 * (keys[j] + keys[j + 1]))
    return cut


def _lithium_levels(lv: dict, noise: float, p: SegmentParams) -> tuple[float, float] | None:
    """Grey levels that mark resolved and lithium-filled crack voxels, or ``None`` when the
    scan cannot tell lithium from void (levels closer than ``lithium_min_snr`` noise sd)."""
    if lithium_contrast_reason(lv, noise, p) is not None:
        return None
    li_gap = float(lv["lithium"] - lv["void"])
    # resolved: the core reads (nearly) pure content. Lithium and void differ by about a tenth
    # of the ceramic's contrast, so a face voxel mixing a tenth of ceramic into void looks like
    # lithium: only cores within half the gap above the lithium level are classified
    li_level = float(lv["lithium"])
    return li_level + 0.5 * li_gap, float(lv["void"]) + 0.5 * li_gap


def _flags_pass(box: _Box, slabs: Slabs, flags, volume, reference, previous,
                background: tuple[np.ndarray, np.ndarray, np.ndarray] | float,
                geometry: CellGeometry, contrast: float,
                li: tuple[float, float] | None, p: SegmentParams, device: str,
                following=None) -> None:
    """Every per-voxel test of the segmentation, as bits of ``flags``.

    Evidence per voxel (see the module docstring): sheetness, darkness against the background,
    thinness, change since the first step, the previous (or, for the first step, the next)
    step's crack, dark blobs of the first step (pore candidates) and the reconstruction's
    axial line.

    ``background`` is :func:`_background_profile`'s (profile, lateral map, wall term), or, for
    a box in one slab, the electrolyte's grey level: the background is then found here from
    the step smoothed once for both (the same values as :func:`_background_profile`'s, which
    smooths the same planes), after the filters that hold the most temporaries.
    """
    from dendritect.parallel.chunked import sheetness_block

    c32 = np.float32(contrast)
    lo_i, hi_i = geometry.z_range_vox
    fp_in_full = ndimage.binary_erosion(geometry.footprint, iterations=int(p.wall_margin_vox))
    # change since the first step is not evidence next to the wall: the steep grey-level rim
    # there (partial volume, phase fringes) changes with every sub-voxel registration
    fp_change = ndimage.binary_erosion(geometry.footprint,
                                       iterations=int(p.wall_margin_vox + WALL_CHANGE_VOX))
    iz = p.interface_zone_vox
    one = len(slabs.slabs) == 1
    if not one and not isinstance(background, tuple):
        raise ValueError("_flags_pass: several slabs need _background_profile's result")

    def _pass(lo: int, hi: int, z0: int, z1: int) -> None:
        # the filters with the most temporaries first, while little else is held
        v = box.read(volume, lo, hi)
        if one:
            sheet = sheetness(v, p.sigmas_vox, dark=True, contrast=contrast, alpha=p.alpha)
        else:
            sheet = sheetness_block(v, sigmas=list(p.sigmas_vox), dark=True,
                                     contrast=contrast, alpha=p.alpha, threads=None,
                                     device=device)
        axial = None
        if p.axial_line_length_vox > 0:
            axial = axial_lines(v, contrast, sigma_vox=p.axial_line_sigma_vox,
                                min_curvature=p.axial_line_curvature,
                                min_ratio=p.axial_line_ratio,
                                min_length_vox=p.axial_line_length_vox)
        vs = _smooth(v, p.smooth_sigma_vox)
        if isinstance(background, tuple):
            prof, lat, wall = background
        else:  # one slab: lo, hi = z0, z1 = 0, nz
            prof, lat, wall = _profile_combine(
                box, [_profile_part(box, vs, lo, hi, background, contrast)], p)
        bg = box.profile(prof, lo, hi) + lat[None] + wall[box.wall_bins(lo, hi)]
        dark = (bg - vs) / c32
        inside = box.inside(lo, hi)
        if reference is not None:
            rs = _smooth(box.read(reference, lo, hi), p.smooth_sigma_vox)
            rdark = (bg - rs) / c32
            change = (rs - vs) / c32
            del rs
        else:
            rdark, change = dark, None
        # the content of a crack is read at its core: the darkest smoothed value next to a
        # voxel (a voxel at a crack's face mixes void with ceramic and would read as lithium)
        core = _extremum3(vs) if li is not None else None
        del bg, vs
        # keep the crack thin: a voxel must be about as dark as the darkest of its neighbours
        # (the blur of the scan and of the filters spreads darkness a voxel or two to each
        # side; the electrodes beyond the interfaces are darker still and do not count)
        dark_in = np.where(inside, dark, np.float32(0))
        thin = dark >= np.float32(p.thin_fraction) * _extremum3(dark_in, maximum=True)
        del dark_in
        k = slice(z0 - lo, z1 - lo)
        v, dark, sheet, rdark, thin, inside = v[k], dark[k], sheet[k], rdark[k], thin[k], inside[k]
        z = box.z[z0:z1]
        # seeds stay clear of the interfaces and the pellet wall, where partial volume darkens
        zin = (z > lo_i + p.seed_margin_vox) & (z < hi_i - p.seed_margin_vox)
        seed_zone = zin[:, None, None] & box.footprint_planes(z0, z1, fp_in_full) & inside
        # where a crack meets an electrode the sheet response fades (the electrode is dark
        # too): dark thin voxels next to the interfaces may still extend a crack
        near = ((z > lo_i) & (z < lo_i + iz)) | ((z < hi_i) & (z > hi_i - iz))
        out = np.zeros(v.shape, np.uint16)
        # pores: dark blobs of the first step (they exist there with the same shape)
        out |= _BLOB * ((rdark > p.pore_darkness) & inside)
        if axial is not None:
            out |= _AXIAL * axial[k]
        sheet_weak = inside & thin & (sheet >= p.grow_sheetness) & (dark >= p.grow_darkness)
        weak = sheet_weak | (near[:, None, None] & inside & thin
                             & (dark >= p.interface_darkness))
        out |= _WEAK * weak
        out |= _SEED * (seed_zone & (sheet >= p.seed_sheetness) & (dark >= p.seed_darkness))
        if change is not None:
            change = change[k]
            # a new dark sheet since the first step
            out |= _CH_SEED * (seed_zone & box.footprint_planes(z0, z1, fp_change)
                               & (change >= p.change_seed))
            # crack tips are narrow tongues with a weak sheet response: new darkening that is
            # connected to a crack extends it
            out |= _CH_WEAK * (inside & thin & (change >= p.change_grow)
                               & (dark >= p.change_grow))
        if previous is not None:
            # a crack persists: still darker than the electrolyte where it was, it stays a
            # crack even where its sheet response faded (lithium-filled, partly closed)
            prev = box.read(previous, z0, z1, dtype=np.uint8) > 0
            out |= _KEPT * (prev & inside & thin & (dark >= p.grow_darkness))
        if following is not None:
            # a crack of the next step that is here already, fainter (thinner, or filled
            # with lithium): its weak sheet evidence here seeds it. Weak evidence, not mere
            # darkness: the next step's mask holds the rims of pores its crack runs past, and
            # the blobs of pores are dark but not sheets
            nxt = box.read(following, z0, z1, dtype=np.uint8) > 0
            out |= _NEXT * (nxt & sheet_weak)
        if li is not None:
            c = core[k]
            out |= _LI_RES * (c <= li[0])
            out |= _LI_IS * (c > li[1])
        flags[z0:z1] = out

    depth = max(_smooth_reach(p.smooth_sigma_vox) + 1, sheetness_depth(p.sigmas_vox),
                2 * (int(p.axial_line_length_vox) // 2))
    slabs.run(_pass, depth)


def _pores(slabs: Slabs, flags, p: SegmentParams, aspect: np.ndarray | None = None):
    """Compact dark blobs of the first step: pores, not cracks.

    A dark component that is compact (low planarity) is a pore. A crack root that meets a
    pore makes one dark blob with it, compact overall when the crack is short: the pore is
    the part that survives an opening that erases thin sheets (plus the rim the opening
    shaved); the thin sheet leaving it is not. A large planar blob is a crack, possibly
    through pores: the opening leaves the pores on it, which are kept when compact.

    Returns
    -------
    callable
        ``pores(lo, hi)``: the pore mask of planes ``lo..hi``, exact for the planes at least
        ``reach`` planes from a cut (the second return value).
    int
        That reach.
    """
    lab1, n1 = slabs.label(flags, "blobs", connectivity=1, bit=_BLOB)
    r = int(p.pore_opening_vox)
    compact = np.zeros(n1 + 1, bool)
    if n1:
        shp = _shapes(*slabs.shape_moments(lab1, n1), aspect=aspect)
        compact[1:] = (shp["planarity"] < p.pore_max_planarity) & (shp["size"] >= p.pore_min_vox)
        if compact.any() and p.pore_min_roundness > 0:
            # the inertia of a curved, kinked or branched crack is not flat, but the crack is
            # thin everywhere: a pore holds a ball as wide as itself
            r_in = _inscribed_radius(slabs, lab1, n1, aspect, need=compact[1:])
            compact[1:] &= r_in >= p.pore_min_roundness * shp["extent"]
    use_core = r > 0 and bool(compact.any())
    has_core = np.zeros(n1 + 1, bool)

    def _first(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Pore mask before the second look, and the blob labels, of planes lo..hi."""
        lab = np.asarray(lab1[lo:hi])
        pores = compact[lab]
        if use_core:
            core = _open6(pores, r)
            pores = (pores & ~has_core[lab]) | (
                _dilate6(core, r) & has_core[lab])
        return pores, lab

    if use_core:
        def _cores(lo: int, hi: int, z0: int, z1: int) -> np.ndarray:
            lab = np.asarray(lab1[lo:hi])
            core = _open6(compact[lab], r)
            k = slice(z0 - lo, z1 - lo)
            return np.unique(lab[k][core[k]])

        for hit in slabs.run(_cores, 2 * r):
            has_core[hit] = True
        has_core[0] = False
    if r <= 0 or n1 == 0:
        return (lambda lo, hi: _first(lo, hi)[0]), 0

    # the rest of each blob, opened: what survives and is compact is a pore too
    opened = slabs.new("opened", np.uint8)

    def _open(lo: int, hi: int, z0: int, z1: int) -> None:
        pores, lab = _first(lo, hi)
        rest = (lab > 0) & ~pores
        op = _open6(rest, r)
        opened[z0:z1] = op[z0 - lo:z1 - lo]

    slabs.run(_open, 5 * r)
    lab2, n2 = slabs.label(opened, "opened-labels", connectivity=1)
    keep = np.zeros(n2 + 1, bool)
    if n2:
        shp2 = _shapes(*slabs.shape_moments(lab2, n2), aspect=aspect)
        keep[1:] = shp2["planarity"] < p.pore_max_planarity
        if keep.any() and p.pore_min_roundness > 0:
            keep[1:] &= (_inscribed_radius(slabs, lab2, n2, aspect, need=keep[1:])
                         >= p.pore_min_roundness * shp2["extent"])

    def _final(lo: int, hi: int) -> np.ndarray:
        pores, lab = _first(lo, hi)
        if n2:
            rest = (lab > 0) & ~pores
            # back to the full blob (the opening shaved its rim), without following the crack
            pores = pores | (_dilate6(keep[np.asarray(lab2[lo:hi])], r) & rest)
        return pores

    return _final, 3 * r


def _cracks(box: _Box, slabs: Slabs, flags, previous, has_change: bool,
            p: SegmentParams, crack_out, pore_out, following=None) -> int:
    """Grow seeds into weak evidence (hysteresis), then keep crack-like components.

    Writes the crack and pore masks of the box; returns the number of crack voxels.
    """
    pores, reach = _pores(slabs, flags, p, box.aspect)
    score = slabs.new("score", np.uint8)

    def _score(lo: int, hi: int, z0: int, z1: int) -> None:
        pm = pores(lo, hi)
        k = slice(z0 - lo, z1 - lo)
        pore_out(z0, z1, pm[k])
        not_pore = ~_dilate6(pm, 1)[k]
        f = np.asarray(flags[z0:z1])
        # the reconstruction's rotation-axis line is neither crack nor a path for cracks
        not_pore &= (f & _AXIAL) == 0
        weak = ((f & _WEAK) != 0) & not_pore
        seeds = ((f & _SEED) != 0) & weak
        if has_change:
            seeds |= ((f & _CH_SEED) != 0) & weak
            weak = weak | (((f & _CH_WEAK) != 0) & not_pore)
        if previous is not None:
            kept = ((f & _KEPT) != 0) & not_pore
            weak |= kept
            seeds |= kept
        # 1 weak, 2 seed, 3 a seed of the next step's crack only
        sc = weak.astype(np.uint8) + seeds.astype(np.uint8)
        if following is not None:
            sc[((f & _NEXT) != 0) & weak & ~seeds] = 3
        score[z0:z1] = sc

    slabs.run(_score, reach + 1)
    # hysteresis (as skimage.filters.apply_hysteresis_threshold): weak voxels connected to a
    # seed
    labw, nw = slabs.label(score, "weak", connectivity=1)
    seeded = slabs.labels_where(labw, nw, score, value=2)
    if following is not None:
        seeded |= slabs.labels_where(labw, nw, score, value=3)
    grown = slabs.new("grown", np.uint8)

    def _grow(lo: int, hi: int, z0: int, z1: int) -> None:
        grown[z0:z1] = seeded[np.asarray(labw[z0:z1])]

    slabs.run(_grow, 0)

    # crack by crack: drop small or compact pieces unless they continue a known crack
    lab, n = slabs.label(grown, "cracks", connectivity=3)
    keep = np.zeros(n + 1, bool)
    if n:
        shp = _shapes(*slabs.shape_moments(lab, n), aspect=box.aspect)
        # small pieces must be flat; large ones may be curved, kinked or branched cracks
        # (their global inertia tensor is not flat), which noise and pores do not mimic
        ok = (shp["size"] >= p.min_size_vox) & (
            (shp["planarity"] >= p.min_planarity) | (shp["size"] >= p.large_size_vox))
        if previous is not None:
            hit = slabs.labels_where(lab, n, _Planes(box, previous))[1:]
            ok |= hit & (shp["size"] >= 2)
        # a piece that never leaves the cathode's interface zone is the interface's partial
        # volume (a plane fit a voxel off, a tilted interface's steps): cracks grow from the
        # anode, and one that reached the cathode comes from deeper in the pellet
        ok &= slabs.labels_where(lab, n, _AwayFromCathode(box, CATHODE_ZONE_VOX))[1:]
        along = shp["normal_z"] >= np.cos(np.radians(CATHODE_SHEET_MAX_ANGLE_DEG))
        if along.any():
            # what runs along the pellet wall does not count: the rim of an interior view's
            # field (a shell along z) joins the sheet to the rest of the cell
            away = _AwayFromCathode(box, CATHODE_SHEET_VOX, beyond_rim_vox=RIM_ONLY_VOX)
            far = slabs.labels_count(lab, n, away)[1:]
            ok &= ~along | (far > CATHODE_SHEET_MAX_FAR_SHARE * shp["size"])
        if following is not None:
            # a piece that only the next step's crack seeds must be large: small flat pieces
            # are what noise and the rims of pores its crack ran past give (tuning cells 8
            # and 14: 14 and 39 voxels in crack-free first scans)
            ok &= (slabs.labels_where(lab, n, score, value=2)[1:]
                   | (shp["size"] >= p.large_size_vox))
        # a line along z is not a crack even where it continues one (a persistent artefact)
        ok &= ~lines_along_z(shp)
        keep[1:] = ok

    kept = slabs.new("kept", np.uint8)

    def _keep(lo: int, hi: int, z0: int, z1: int) -> None:
        kept[z0:z1] = _beyond_rim(keep[np.asarray(lab[z0:z1])], box.wall_bins(z0, z1))

    slabs.run(_keep, 0)
    # once the rim's traces are gone: a sheet in the anode interface's skin is its partial
    # volume (a tilted interface's steps, a fringe), not a crack
    lab2, n2 = slabs.label(kept, "kept-labels", connectivity=3)
    drop = np.zeros(n2 + 1, bool)
    if n2:
        shp2 = _shapes(*slabs.shape_moments(lab2, n2), aspect=box.aspect)
        along2 = shp2["normal_z"] >= np.cos(np.radians(CATHODE_SHEET_MAX_ANGLE_DEG))
        if along2.any():
            skin = slabs.labels_count(lab2, n2, _NearAnode(box, ANODE_SKIN_VOX))[1:]
            drop[1:] = along2 & (skin >= ANODE_SKIN_SHARE * shp2["size"])
        # a small piece that never leaves the rim is the rim (a fringe, the gap to the die)
        # in a few planes, too short to run along it in any one of them
        inward = slabs.labels_where(lab2, n2, _BeyondRim(box, RIM_ONLY_VOX))[1:]
        drop[1:] |= ~inward & (shp2["size"] < p.large_size_vox)

    def _write(lo: int, hi: int, z0: int, z1: int) -> int:
        c = (np.asarray(kept[z0:z1]) > 0) & ~drop[np.asarray(lab2[z0:z1])]
        crack_out(z0, z1, c)
        return int(c.sum())

    return sum(slabs.run(_write, 0))


def _beyond_rim(crack: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Crack voxels without the traces that run along the pellet's rim, plane by plane.

    ``bins`` is :meth:`_Box.wall_bins` of the planes. A trace (8-connected piece of crack in a
    plane) that stays within ``RIM_ONLY_VOX`` of the wall and runs along it (at least
    ``RIM_ARC_VOX`` long tangentially and ``RIM_ARC_RATIO`` times longer than deep) is the rim
    itself: the gap to the die, a phase fringe, partial volume changed by a sub-voxel
    registration; so is a dot of at most ``RIM_DOT_VOX`` voxels there. A crack that reaches
    the wall crosses the rim instead, or runs in from it; it is kept, even where only its
    edge lies in the rim.
    """
    out = crack.copy()
    rim_bin = int(RIM_ONLY_VOX / WALL_BIN_VOX)
    eight = np.ones((3, 3), bool)
    for k in range(crack.shape[0]):
        plane = crack[k]
        if not plane.any():
            continue
        b = np.asarray(bins[k])
        near = plane & (b < rim_bin)
        if not near.any():
            continue
        lab, _ = ndimage.label(plane, eight)
        inner = set(np.unique(lab[plane & (b >= rim_bin)]).tolist())
        gy, gx = np.gradient(np.minimum(b, rim_bin).astype(np.float32))
        for cid in np.unique(lab[near]):
            if cid in inner:
                continue
            yy, xx = np.nonzero(lab == cid)
            if yy.size <= RIM_DOT_VOX:
                out[k][lab == cid] = False
                continue
            ny_, nx_ = float(gy[yy, xx].mean()), float(gx[yy, xx].mean())
            norm = np.hypot(ny_, nx_)
            if norm == 0:
                continue
            along = np.ptp(yy * (-nx_ / norm) + xx * (ny_ / norm))
            deep = np.ptp(b[yy, xx]) * WALL_BIN_VOX
            if along >= RIM_ARC_VOX and along >= RIM_ARC_RATIO * (deep + 1.0):
                out[k][lab == cid] = False
    return out


class _AwayFromCathode:
    """Voxels of the box's planes more than ``zone_vox`` from the cathode interface (and, with
    ``beyond_rim_vox``, at least that far from the pellet wall)."""

    def __init__(self, box: _Box, zone_vox: float, beyond_rim_vox: float = 0.0) -> None:
        g = box.geometry
        z = box.z.astype(np.float64)
        if g.z_cathode_vox > g.z_anode_vox:
            self.away = z < g.z_cathode_vox - zone_vox
        else:
            self.away = z > g.z_cathode_vox + zone_vox
        self.box = box
        self.min_bin = int(np.ceil(beyond_rim_vox / WALL_BIN_VOX))

    def __getitem__(self, key: slice) -> np.ndarray:
        a = self.away[key][:, None, None]
        a = np.broadcast_to(a, (a.shape[0], *self.box.shape[1:]))
        if self.min_bin <= 0:
            return a
        return a & (self.box.wall_bins(key.start, key.stop) >= self.min_bin)


class _NearAnode:
    """Voxels of the box's planes whose centres lie within ``skin_vox`` of the anode
    interface, on the electrolyte's side."""

    def __init__(self, box: _Box, skin_vox: float) -> None:
        g = box.geometry
        z = box.z.astype(np.float64)
        if g.z_cathode_vox > g.z_anode_vox:
            self.near = z < g.z_anode_vox + skin_vox
        else:
            self.near = z > g.z_anode_vox - skin_vox
        self.shape = box.shape

    def __getitem__(self, key: slice) -> np.ndarray:
        a = self.near[key][:, None, None]
        return np.broadcast_to(a, (a.shape[0], *self.shape[1:]))


class _BeyondRim:
    """Voxels of the box's planes at least ``rim_vox`` from the pellet wall."""

    def __init__(self, box: _Box, rim_vox: float) -> None:
        self.box = box
        self.min_bin = int(np.ceil(rim_vox / WALL_BIN_VOX))

    def __getitem__(self, key: slice) -> np.ndarray:
        return self.box.wall_bins(key.start, key.stop) >= self.min_bin


class _Planes:
    """Planes of the box of a full-step array, sliced like a box-sized array along z."""

    def __init__(self, box: _Box, arr) -> None:
        self.box, self.arr = box, arr

    def __getitem__(self, key: slice) -> np.ndarray:
        return self.box.read(self.arr, key.start, key.stop, dtype=np.uint8)


def _lithium(box: _Box, slabs: Slabs, flags, crack, n_crack: int, p: SegmentParams,
             lithium_out, volume=None, levels: tuple[float, float] | None = None) -> bool:
    """Crack voxels holding lithium; False (nothing written) when the scan cannot tell.

    Lithium attenuates about a tenth as much as the ceramic, so a lithium-filled crack is only
    slightly brighter than an empty one, and only where the crack is resolved (wider than the
    blur) does a voxel show the content's own grey level; a thin crack's voxels mix crack and
    ceramic (partial volume) and their grey level says nothing about the filling. Voxels are
    classified only when lithium and void levels are ``lithium_min_snr`` noise deviations apart
    and at least ``lithium_min_resolved`` of the crack voxels, or ``lithium_min_resolved_vox``
    voxels, are resolved. Unresolved crack voxels take the class of the nearest resolved
    voxel, except beyond the deepest resolved lithium voxel of their crack: lithium enters a
    crack at its mouth and the dry tip runs ahead of it (Ning et al., Nat. Mater. 2021), and
    a tapering tip is too thin to be resolved, so the nearest resolved voxel (lithium behind
    it) would fill it. A crack without resolved voxels is not called lithium-filled.

    Under blur the cores of an empty crack that narrows read above half the lithium-void gap
    (partial volume with the ceramic): where the profile of a crack's thick cores along the
    normal steps down (:func:`lithium_front_split`), per tile of ``lithium_tile_vox`` in the
    plane (cracks joined near the anode fill to different depths; each tile's front the median
    of its own and its crack's neighbouring tiles') or else over the whole crack, the crack's
    voxels down to the step are lithium and those beyond are empty,
    whatever their own grey level. A crack reaching the counter electrode is not cut. The
    share (or number) of voxels needed counts the thick voxels: where every thick core reads
    brighter than lithium, only such a step tells the content. The crack mask is not changed.
    """
    from scipy.spatial import cKDTree

    from dendritect.track.sparse import label_voxels

    if n_crack == 0:
        return True  # known: a step without cracks holds no lithium in them

    def _resolved(lo: int, hi: int, z0: int, z1: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        f = np.asarray(flags[z0:z1])
        ch = np.asarray(crack[lo:hi]) != 0
        c = ch[z0 - lo:z1 - lo]
        # only where the crack is thick enough for its core to hold pure content: a tapering
        # tip passes through openings whose partial-volume core reads like lithium. The mask
        # must hold the (2k+1)-cube around the voxel: for a depth of 2 exactly a Euclidean
        # distance to the background of at least 2, at the cost of a minimum filter
        k = max(int(np.ceil(p.lithium_min_depth_vox)) - 1, 0)
        if k == 1:
            thick = _extremum3(ch)[z0 - lo:z1 - lo]
        elif k:
            thick = ndimage.minimum_filter(ch.view(np.uint8), size=2 * k + 1)[z0 - lo:z1 - lo] > 0
        else:
            thick = ch[z0 - lo:z1 - lo]
        thick = c & thick
        res = thick & ((f & _LI_RES) != 0)
        idx = np.flatnonzero(res)
        plane = res.shape[1] * res.shape[2]
        if volume is None:
            return (idx + z0 * plane, (f.ravel()[idx] & _LI_IS) != 0, np.zeros(0, np.int64),
                    np.zeros(0))
        # every thick voxel's core as the flags pass read it (smoothed, darkest of the
        # 3-cube), for the profile along the normal (lithium_front_split)
        core = _extremum3(_smooth(box.read(volume, lo, hi), p.smooth_sigma_vox))[z0 - lo:z1 - lo]
        it = np.flatnonzero(thick)
        return (idx + z0 * plane, (f.ravel()[idx] & _LI_IS) != 0, it + z0 * plane,
                core.ravel()[it])

    parts = slabs.run(_resolved, max(int(np.ceil(p.lithium_min_depth_vox)) + 1,
                                     _smooth_reach(p.smooth_sigma_vox) + 2))
    res_flat = np.concatenate([q[0] for q in parts])
    is_li = np.concatenate([q[1] for q in parts])
    thick_flat = np.concatenate([q[2] for q in parts]).astype(np.int64, copy=False)
    # 0 at the void level, 1 at lithium's
    u_thick = np.concatenate([q[3] for q in parts]).astype(np.float64)
    if levels is not None:
        u_thick = (u_thick - levels[1]) / (levels[0] - levels[1])
    need = min(p.lithium_min_resolved * n_crack, p.lithium_min_resolved_vox)
    n_thick = thick_flat.shape[0] if volume is not None else res_flat.shape[0]
    if n_thick < need or n_thick == 0:
        return False

    shape = box.shape
    plane = shape[1] * shape[2]

    def _voxels(lo: int, hi: int, z0: int, z1: int) -> np.ndarray:
        return np.flatnonzero(np.asarray(crack[z0:z1])) + z0 * plane

    flat = np.concatenate(slabs.run(_voxels, 0)).astype(np.int64, copy=False)
    comp, n = label_voxels(flat, shape)
    z, y, x = np.unravel_index(flat, shape)
    depth = box.geometry.depth_vox(z + box.z0, y + box.sl[1].start, x + box.sl[2].start)
    at = np.searchsorted(flat, res_flat)
    # the deepest resolved lithium voxel of each crack (-inf: none); a crack that reaches the
    # counter electrode has no tapering tip there, its deep end is not cut
    deepest = np.full(n + 1, -np.inf)
    np.maximum.at(deepest, comp[at][is_li], depth[at][is_li])
    # where resolved empty voxels lie deeper, the lithium ends between the two: half way to the
    # shallowest of them
    d_res, c_res = depth[at], comp[at]
    beyond = ~is_li & (d_res > deepest[c_res])
    first_dry = np.full(n + 1, np.inf)
    np.minimum.at(first_dry, c_res[beyond], d_res[beyond])
    ends = np.isfinite(first_dry) & np.isfinite(deepest)
    margin = np.full(n + 1, 0.5)
    margin[ends] = np.maximum(0.5, 0.5 * (first_dry[ends] - deepest[ends]))
    reach = np.full(n + 1, -np.inf)
    np.maximum.at(reach, comp, depth)
    deepest[(reach >= box.geometry.thickness_vox - 1.5) & np.isfinite(deepest)] = np.inf
    # nearest resolved voxel by Euclidean distance in voxels, as the distance transform
    # would choose (up to ties between equally near voxels)
    if res_flat.size:
        res_zyx = np.stack(np.unravel_index(res_flat, shape), axis=1)
        _, near = cKDTree(res_zyx).query(np.stack((z, y, x), axis=1), k=1)
        # at least half a voxel: depths are voxel centres'
        li = is_li[near] & (depth <= deepest[comp] + margin[comp])
    else:  # every thick core reads brighter than lithium: only a drop along a crack tells
        li = np.zeros(flat.shape, bool)
    # partial volume lifts every core above its content's level, empty ones past the
    # threshold where the crack narrows toward its tip: where the profile of a crack's thick
    # cores along the normal drops from a lithium-filled mouth to an empty part, the lithium
    # ends at the drop (lithium_front_split). Cracks joined near the anode hold lithium to
    # different depths: the profile is taken per tile of the plane (one sheet in each, as a
    # rule), and a tile without a drop takes its crack's
    if levels is not None and thick_flat.size:
        ta = np.searchsorted(flat, thick_flat)
        t_comp, t_depth = comp[ta], depth[ta]
        tile = p.lithium_tile_vox
        ny_t = -(-shape[1] // tile)
        nx_t = -(-shape[2] // tile)
        n_tiles = ny_t * nx_t

        def _tile(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
            return (yy // tile) * nx_t + xx // tile

        _, ty, tx = np.unravel_index(thick_flat, shape)
        # a crack that reaches the counter electrode has no dry tip there (as above): it is
        # not cut
        spans = reach >= box.geometry.thickness_vox - 1.5

        def _cuts(key: np.ndarray, n_keys: int, of_comp: np.ndarray,
                  spanning_too: bool) -> np.ndarray:
            o = np.argsort(key, kind="stable")
            ks, starts = np.unique(key[o], return_index=True)
            ends = np.append(starts[1:], o.size)
            got = np.full(n_keys, np.nan)
            for kk, a, b in zip(ks, starts, ends, strict=True):
                if spans[of_comp[o[a]]] and not spanning_too:
                    continue
                c = lithium_front_split(t_depth[o[a:b]], u_thick[o[a:b]],
                                        p.lithium_min_drop, p.lithium_min_t)
                if c is not None:
                    got[kk] = c
            return got

        t_comp = t_comp.astype(np.int64)
        cut_comp = _cuts(t_comp, n + 1, t_comp, False)[comp]
        # a spanning piece is cut only in the tiles whose own profile drops: cracks joined at
        # the anode to the one that bridged the cell keep their own dry tips (and lose their
        # lithium when a strip half-cycle draws it back), while the bridging crack, filled
        # end to end, has no drop
        per_tile = _cuts(t_comp * n_tiles + _tile(ty, tx), (n + 1) * n_tiles, t_comp, True)
        # a tile's front is the median of its own and its crack's neighbouring tiles' (the
        # piece's front is its deepest tile's, and one noisy tile would set it)
        grid = per_tile.reshape(n + 1, ny_t, nx_t)
        smooth = np.full_like(per_tile, np.nan).reshape(n + 1, ny_t, nx_t)
        for k in np.flatnonzero(np.isfinite(grid).any(axis=(1, 2))):
            pad = np.pad(grid[k], 1, constant_values=np.nan)
            stack = np.stack([pad[1 + dy:1 + dy + ny_t, 1 + dx:1 + dx + nx_t]
                              for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neighbourhoods
                smooth[k] = np.where(np.isfinite(grid[k]), np.nanmedian(stack, axis=0), np.nan)
        cut_tile = smooth.reshape(-1)[comp.astype(np.int64) * n_tiles + _tile(y, x)]
        cut = np.where(np.isfinite(cut_tile), cut_tile, cut_comp)
        has = np.isfinite(cut)
        li[has] = depth[has] <= cut[has]

    def _write(lo: int, hi: int, z0: int, z1: int) -> None:
        a, b = np.searchsorted(flat, (z0 * plane, z1 * plane))
        out = np.zeros((z1 - z0, shape[1], shape[2]), bool)
        out.ravel()[flat[a:b] - z0 * plane] = li[a:b]
        lithium_out(z0, z1, out)

    slabs.run(_write, 0)
    return True


def segment_step(volume, geometry: CellGeometry, *, reference=None, previous=None,
                 params: SegmentParams | None = None, memory_limit: str | int | None = None,
                 out: dict | None = None, scratch=None, following=None) -> StepSegmentation:
    """Segment the cracks of one registered, intensity-normalised step.

    Parameters
    ----------
    volume : numpy.ndarray or array-like
        3D (z, y, x) step in the frame (and grey levels) of step 0: an array, or a store read
        by slicing (:class:`zarr.Array`, :class:`h5py.Dataset`, dask array).
    geometry : CellGeometry
        From :func:`dendritect.preprocess.cell.find_cell` on step 0.
    reference : array-like, optional
        Step 0 likewise (``None`` when ``volume`` is step 0).
    previous : array-like, optional
        Crack mask of the previous step.
    params : SegmentParams, optional
        Thresholds; defaults when not given.
    memory_limit : str or int, optional
        Budget for the segmentation's working memory (default: the active
        :func:`~dendritect.parallel.compute_context`'s; none: the whole step at once). Above
        it the step is segmented in z-slabs (:mod:`dendritect.segment.slabs`) with
        intermediate volumes on disk; the masks are the same.
    out : dict, optional
        Arrays of the volume's shape to write ``"crack"``, ``"lithium"`` and ``"pores"`` into
        (e.g. Zarr arrays; zero outside the electrolyte's box beforehand). Default: new NumPy
        arrays.
    scratch : path, optional
        Folder for the intermediate volumes of a step segmented in slabs (default: a
        temporary folder).
    following : array-like, optional
        Crack mask of the next step, for a second look at the first step: a crack already
        there but fainter (thinner, lithium-filled) is seeded where the next step's crack
        runs through its weak sheet evidence; the pieces it grows into must pass the shape
        tests of any crack.

    Returns
    -------
    StepSegmentation
        ``crack`` and ``pores`` uint8 masks of the volume's shape; ``lithium`` the crack voxels
        holding lithium, or ``None`` when the scan cannot tell lithium from void in the cracks
        (levels too close for the noise, or cracks thinner than the blur; see ``_lithium``).
    """
    from dendritect.parallel.chunked import resolve_budget

    p = params or SegmentParams()
    vol = volume if hasattr(volume, "shape") and hasattr(volume, "__getitem__") else (
        np.asarray(volume))
    shape = tuple(int(s) for s in vol.shape)
    if len(shape) != 3:
        raise InputError(f"segment: expected a 3D (z, y, x) volume, got shape {shape}")
    if shape[1:] != geometry.footprint.shape:
        raise InputError(f"segment: volume shape {shape} does not match the cell geometry "
                         f"{geometry.footprint.shape}")
    for name, arr in (("reference", reference), ("previous", previous),
                      ("following", following)):
        if arr is not None and tuple(np.shape(arr)) != shape:
            raise InputError(f"segment: {name} shape {np.shape(arr)} differs from {shape}")

    lv = geometry.levels
    contrast = float(lv["electrolyte"] - lv["void"])
    if not np.isfinite(contrast) or contrast <= 0:
        raise InputError("segment: the electrolyte is not brighter than voids in this scan")
    pad = int(np.ceil(3 * max(p.sigmas_vox))) + 2
    box = _Box(geometry, shape, pad)
    limit, device, n_par = resolve_budget(memory_limit, None)
    limit = slab_budget(limit)
    halo = max(_smooth_reach(p.smooth_sigma_vox) + 1, sheetness_depth(p.sigmas_vox),
               2 * (int(p.axial_line_length_vox) // 2))
    plane = box.shape[1] * box.shape[2]
    plan = plan_slabs(box.shape[0], plane, halo, limit, n_par)

    if out is None:
        out = {k: np.zeros(shape, np.uint8) for k in ("crack", "lithium", "pores")}
    li = _lithium_levels(lv, geometry.noise, p)

    with Slabs(box.shape, plan, scratch,
               slab_parallelism(plane, halo, limit, n_par)) as slabs:
        if len(slabs.slabs) == 1:  # found in the first pass, from its smoothed step
            background = float(lv["electrolyte"])
        else:
            background = _background_profile(box, slabs, vol, float(lv["electrolyte"]),
                                              contrast, p)
        flags = slabs.new("flags", np.uint16)
        _flags_pass(box, slabs, flags, vol, reference, previous, background, geometry,
                    contrast, li, p, device, following=following)
        # the slabs' tasks write scratch volumes chunked like the slabs; ``out`` (chunked
        # otherwise) is written here, one slab after the other
        masks = {k: slabs.new(k, np.uint8) for k in ("crack", "pores", "lithium")}

        def _writer(name: str):
            def write(z0: int, z1: int, mask: np.ndarray) -> None:
                masks[name][z0:z1] = mask

            return write

        n_crack = _cracks(box, slabs, flags, previous, reference is not None, p,
                          _writer("crack"), _writer("pores"), following=following)
        has_li = li is not None and _lithium(box, slabs, flags, masks["crack"], n_crack, p,
                                             _writer("lithium"), vol,
                                             (float(lv["lithium"]), float(lv["void"])))
        reason = None
        if li is None:
            reason = lithium_contrast_reason(lv, geometry.noise, p)
        elif not has_li:
            reason = (f"fewer than {p.lithium_min_resolved:.0%} of the crack voxels (and fewer "
                      f"than {p.lithium_min_resolved_vox}) are resolved (cracks thinner than the "
                      "blur of the scan): their grey level mixes the crack's content with the "
                      "ceramic around it")
        for name in ("crack", "pores", "lithium") if has_li else ("crack", "pores"):
            for z0, z1 in slabs.slabs:
                box.write(out[name], z0, z1, np.asarray(masks[name][z0:z1], dtype=np.uint8))
    return StepSegmentation(crack=out["crack"], lithium=out["lithium"] if has_li else None,
                            pores=out["pores"], lithium_reason=reason)
