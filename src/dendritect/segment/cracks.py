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
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.filters import apply_hysteresis_threshold

from dendritect.errors import InputError

# Whole-volume numba filter when the step fits the memory budget of the active compute context,
# chunk by chunk (dask map_overlap, same result) or on the GPU otherwise.
from dendritect.parallel.chunked import sheetness_auto as sheetness
from dendritect.preprocess.cell import CellGeometry

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
    change_grow: float = 0.15
    background_sigma_vox: float = 6.0
    smooth_sigma_vox: float = 0.7
    seed_margin_vox: float = 1.0
    wall_margin_vox: float = 2.0
    pore_darkness: float = 0.35
    pore_opening_vox: int = 1
    pore_min_vox: int = 4
    pore_max_planarity: float = 0.55
    thin_fraction: float = 0.5
    min_planarity: float = 0.55
    min_size_vox: int = 12
    large_size_vox: int = 100
    lithium_min_snr: float = 2.5
    lithium_min_resolved: float = 0.3
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


def _bbox(geometry: CellGeometry, shape, pad: int) -> tuple[slice, slice, slice]:
    nz, ny, nx = shape
    lo, hi = geometry.z_range_vox
    ys, xs = np.nonzero(geometry.footprint)
    if ys.size == 0:
        raise InputError("segment: the cell's footprint is empty")
    return (slice(max(0, int(np.floor(lo)) - pad), min(nz, int(np.ceil(hi)) + pad + 1)),
            slice(max(0, ys.min() - pad), min(ny, ys.max() + pad + 1)),
            slice(max(0, xs.min() - pad), min(nx, xs.max() + pad + 1)))


def component_shapes(labels: np.ndarray, n: int | None = None) -> dict[str, np.ndarray]:
    """Size and inertia-tensor shape of each labelled component.

    Returns
    -------
    dict
        ``size`` (voxels), ``planarity`` = 1 − sqrt(λ3 / λ2) of the coordinate covariance
        (1 for a plane, 0 for a sphere or a line), ``normal_z`` = |z component| of the
        direction of least extent, ``thickness`` = 2·sqrt(λ3) voxels; arrays indexed by
        label − 1.
    """
    if n is None:
        n = int(labels.max())
    out = {k: np.zeros(n) for k in ("size", "planarity", "normal_z", "thickness")}
    if n == 0:
        return out
    idx = np.flatnonzero(labels)
    lab = labels.ravel()[idx] - 1
    zyx = np.unravel_index(idx, labels.shape)
    size = np.bincount(lab, minlength=n).astype(np.float64)
    mean = [np.bincount(lab, weights=c, minlength=n) / np.maximum(size, 1) for c in zyx]
    cen = [c - m[lab] for c, m in zip(zyx, mean, strict=True)]
    cov = np.zeros((n, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            s = np.bincount(lab, weights=cen[i] * cen[j], minlength=n) / np.maximum(size, 1)
            cov[:, i, j] = s
            cov[:, j, i] = s
    # a single voxel has extent 1/12 voxel² along each axis (a unit cube), not zero
    cov += np.eye(3)[None] / 12.0
    w, v = np.linalg.eigh(cov)  # ascending
    out["size"] = size
    out["planarity"] = 1.0 - np.sqrt(np.clip(w[:, 0], 0, None) / np.maximum(w[:, 1], 1e-12))
    out["normal_z"] = np.abs(v[:, 0, 0])
    out["thickness"] = 2.0 * np.sqrt(np.clip(w[:, 0], 0, None))
    return out


def _background(vs: np.ndarray, inside: np.ndarray, footprint: np.ndarray, level: float,
                contrast: float, sigma: float) -> np.ndarray:
    """Expected grey level of crack-free electrolyte at each voxel.

    The sum of a z profile (median over the footprint of each slice: it follows the blur of
    the interfaces, where partial volume with the electrodes darkens the first slices) and a
    lateral map (beam-hardening cupping, slow texture), both robust to the few dark voxels.
    """
    nz = vs.shape[0]
    fp = footprint if footprint.sum() >= 16 else None
    prof = np.full(nz, level, np.float32)
    if fp is not None:
        for z in range(nz):
            if inside[z].any():
                prof[z] = np.median(vs[z][fp])
    rel = vs - prof[:, None, None]
    w = (inside & (rel > -0.3 * contrast)).astype(np.float32)
    num = ndimage.gaussian_filter((rel * w).sum(axis=0), sigma)
    den = ndimage.gaussian_filter(w.sum(axis=0), sigma)
    lat = np.where(den > 0.05, num / np.maximum(den, 1e-6), 0.0).astype(np.float32)
    return prof[:, None, None] + lat[None]


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
    hyy = ndimage.gaussian_filter(v, sig, order=(0, 2, 0)) * k
    hxx = ndimage.gaussian_filter(v, sig, order=(0, 0, 2)) * k
    hxy = ndimage.gaussian_filter(v, sig, order=(0, 1, 1)) * k
    half = np.float32(0.5) * (hxx + hyy)
    dev = np.sqrt(np.float32(0.25) * (hxx - hyy) ** 2 + hxy * hxy)
    mu1 = half + dev
    mu2 = half - dev  # smaller in-slice eigenvalue; large and positive at a dark dot
    dot = (mu2 >= np.float32(min_curvature)) & (mu2 >= np.float32(min_ratio) * mu1)
    n = int(min_length_vox)
    if n > 1:
        dot = ndimage.binary_opening(dot, structure=np.ones((n, 1, 1), bool))
    if dot.any():
        dot = ndimage.binary_dilation(dot, structure=np.ones((1, 3, 3), bool))
    return dot


def _find_pores(dark: np.ndarray, inside: np.ndarray, p: SegmentParams) -> np.ndarray:
    """Compact dark blobs: pores, not cracks.

    A dark component that is compact (low planarity) is a pore. A large planar one is a crack,
    possibly through pores: an opening that erases thin sheets leaves the pores on it, which
    are kept when compact.
    """
    blob = dark & inside
    lab, n = ndimage.label(blob)
    if n == 0:
        return blob
    shp = component_shapes(lab, n)
    compact = np.zeros(n + 1, bool)
    compact[1:] = (shp["planarity"] < p.pore_max_planarity) & (shp["size"] >= p.pore_min_vox)
    pores = compact[lab]
    r = int(p.pore_opening_vox)
    st = ndimage.generate_binary_structure(3, 1)
    if r > 0 and pores.any():
        # a crack root that meets a pore makes one dark blob with it, compact overall when
        # the crack is short; the pore is the part that survives the opening (plus the rim the
        # opening shaved), the thin sheet leaving it is not. Blobs too small to survive the
        # opening at all stay pores whole.
        core = ndimage.binary_opening(pores, structure=st, iterations=r)
        has_core = np.zeros(n + 1, bool)
        has_core[np.unique(lab[core])] = True
        has_core[0] = False
        pores = (pores & ~has_core[lab]) | (
            ndimage.binary_dilation(core, iterations=r) & has_core[lab])
    rest = blob & ~pores & (lab > 0)
    if r > 0 and rest.any():
        opened = ndimage.binary_opening(rest, structure=st, iterations=r)
        lab2, n2 = ndimage.label(opened)
        if n2:
            shp2 = component_shapes(lab2, n2)
            keep = np.zeros(n2 + 1, bool)
            keep[1:] = shp2["planarity"] < p.pore_max_planarity
            # back to the full blob (the opening shaved its rim), without following the crack
            pores |= ndimage.binary_dilation(keep[lab2], iterations=r) & rest
    return pores


def _lithium(v: np.ndarray, crack: np.ndarray, lv: dict, noise: float,
             p: SegmentParams) -> np.ndarray | None:
    """Crack voxels holding lithium, or ``None`` when the scan cannot tell.

    Lithium attenuates about a tenth as much as the ceramic, so a lithium-filled crack is only
    slightly brighter than an empty one, and only where the crack is resolved (wider than the
    blur) does a voxel show the content's own grey level; a thin crack's voxels mix crack and
    ceramic (partial volume) and their grey level says nothing about the filling. Voxels are
    classified only when lithium and void levels are ``lithium_min_snr`` noise deviations apart
    and at least ``lithium_min_resolved`` of the crack voxels are resolved; unresolved crack
    voxels take the class of the nearest resolved voxel.
    """
    li_gap = float(lv["lithium"] - lv["void"])
    noise = noise if np.isfinite(noise) else 0.0
    n = int(crack.sum())
    if n == 0 or li_gap <= 0 or li_gap < p.lithium_min_snr * noise:
        return None
    e = float(lv["electrolyte"])
    li_level = float(lv["lithium"])
    resolved = crack & (v <= li_level + 0.25 * (e - li_level))
    if resolved.sum() < p.lithium_min_resolved * n:
        return None
    is_li = resolved & (v > float(lv["void"]) + 0.5 * li_gap)
    # spread the resolved classes over the rest of the crack
    _, idx = ndimage.distance_transform_edt(~resolved, return_indices=True)
    spread = is_li[tuple(idx)]
    return (crack & spread).astype(np.uint8)


def segment_step(volume: np.ndarray, geometry: CellGeometry, *,
                 reference: np.ndarray | None = None, previous: np.ndarray | None = None,
                 params: SegmentParams | None = None) -> StepSegmentation:
    """Segment the cracks of one registered, intensity-normalised step.

    Parameters
    ----------
    volume : numpy.ndarray
        3D (z, y, x) float32 step in the frame (and grey levels) of step 0.
    geometry : CellGeometry
        From :func:`dendritect.preprocess.cell.find_cell` on step 0.
    reference : numpy.ndarray, optional
        Step 0 likewise (``None`` when ``volume`` is step 0).
    previous : numpy.ndarray, optional
        Crack mask of the previous step.
    params : SegmentParams, optional
        Thresholds; defaults when not given.

    Returns
    -------
    StepSegmentation
        ``crack`` and ``pores`` uint8 masks of the volume's shape; ``lithium`` the crack voxels
        holding lithium, or ``None`` when the scan cannot tell lithium from void in the cracks
        (levels too close for the noise, or cracks thinner than the blur; see ``_lithium``).
    """
    p = params or SegmentParams()
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise InputError(f"segment: expected a 3D (z, y, x) volume, got shape {vol.shape}")
    if vol.shape[1:] != geometry.footprint.shape:
        raise InputError(f"segment: volume shape {vol.shape} does not match the cell geometry "
                         f"{geometry.footprint.shape}")
    for name, arr in (("reference", reference), ("previous", previous)):
        if arr is not None and np.shape(arr) != vol.shape:
            raise InputError(f"segment: {name} shape {np.shape(arr)} differs from {vol.shape}")

    lv = geometry.levels
    contrast = float(lv["electrolyte"] - lv["void"])
    if not np.isfinite(contrast) or contrast <= 0:
        raise InputError("segment: the electrolyte is not brighter than voids in this scan")
    pad = int(np.ceil(3 * max(p.sigmas_vox))) + 2
    box = _bbox(geometry, vol.shape, pad)
    v = np.ascontiguousarray(vol[box], dtype=np.float32)
    full_inside = geometry.electrolyte_mask(vol.shape)
    inside = full_inside[box]

    # seeds stay clear of the interfaces and the pellet wall, where partial volume darkens
    lo, hi = geometry.z_range_vox
    z = np.arange(box[0].start, box[0].stop)
    zin = (z > lo + p.seed_margin_vox) & (z < hi - p.seed_margin_vox)
    fp_in = ndimage.binary_erosion(geometry.footprint, iterations=int(p.wall_margin_vox))
    seed_zone = zin[:, None, None] & fp_in[box[1:]][None] & inside

    vs = ndimage.gaussian_filter(v, p.smooth_sigma_vox) if p.smooth_sigma_vox > 0 else v
    bg = _background(vs, inside, geometry.footprint[box[1:]], float(lv["electrolyte"]),
                     contrast, p.background_sigma_vox)
    dark = (bg - vs) / np.float32(contrast)
    sheet = sheetness(v, p.sigmas_vox, dark=True, contrast=contrast, alpha=p.alpha)

    # pores: from the first step (they exist there with the same shape)
    if reference is not None:
        r = np.ascontiguousarray(np.asarray(reference)[box], dtype=np.float32)
        rs = ndimage.gaussian_filter(r, p.smooth_sigma_vox) if p.smooth_sigma_vox > 0 else r
        rdark = (bg - rs) / np.float32(contrast)
        change = (rs - vs) / np.float32(contrast)
    else:
        rdark = dark
        change = None
    pores = _find_pores(rdark > p.pore_darkness, inside, p)
    not_pore = ~ndimage.binary_dilation(pores, iterations=1)
    if p.axial_line_length_vox > 0:
        # the reconstruction's rotation-axis line is neither crack nor a path for cracks
        not_pore &= ~axial_lines(v, contrast, sigma_vox=p.axial_line_sigma_vox,
                                 min_curvature=p.axial_line_curvature,
                                 min_ratio=p.axial_line_ratio,
                                 min_length_vox=p.axial_line_length_vox)

    # keep the crack thin: a voxel must be about as dark as the darkest of its neighbours
    # (the blur of the scan and of the filters spreads darkness a voxel or two to each side)
    # (the electrodes beyond the interfaces are darker still and must not count as neighbours)
    dark_in = np.where(inside, dark, np.float32(0))
    thin = dark >= np.float32(p.thin_fraction) * ndimage.maximum_filter(dark_in, size=3)
    weak = inside & not_pore & thin & (sheet >= p.grow_sheetness) & (dark >= p.grow_darkness)
    # where a crack meets an electrode the sheet response fades (the electrode is dark too):
    # dark thin voxels next to the interfaces may still extend a crack
    iz = p.interface_zone_vox
    near = ((z > lo) & (z < lo + iz)) | ((z < hi) & (z > hi - iz))
    weak |= (near[:, None, None] & inside & not_pore & thin & (dark >= p.interface_darkness))
    seeds = seed_zone & weak & (sheet >= p.seed_sheetness) & (dark >= p.seed_darkness)
    if change is not None:
        # a new dark sheet since the first step
        seeds |= seed_zone & weak & (change >= p.change_seed)
        # crack tips are narrow tongues with a weak sheet response: new darkening that is
        # connected to a crack extends it
        weak |= inside & not_pore & thin & (change >= p.change_grow) & (dark >= p.change_grow)
    if previous is not None:
        # a crack persists: still darker than the electrolyte where it was, it stays a crack
        # even where its sheet response faded (filled with lithium, partly closed)
        prev = np.asarray(previous)[box] > 0
        kept = prev & inside & not_pore & thin & (dark >= p.grow_darkness)
        weak |= kept
        seeds |= kept
    score = weak.astype(np.float32) + seeds.astype(np.float32)
    crack = apply_hysteresis_threshold(score, 0.5, 1.5)

    # crack by crack: drop small or compact pieces unless they continue a known crack
    lab, n = ndimage.label(crack, structure=np.ones((3, 3, 3), bool))
    if n:
        shp = component_shapes(lab, n)
        keep = np.zeros(n + 1, bool)
        # small pieces must be flat; large ones may be curved, kinked or branched cracks
        # (their global inertia tensor is not flat), which noise and pores do not mimic
        ok = (shp["size"] >= p.min_size_vox) & (
            (shp["planarity"] >= p.min_planarity) | (shp["size"] >= p.large_size_vox))
        if previous is not None:
            hit = np.bincount(lab[prev].ravel(), minlength=n + 1)[1:] > 0
            ok |= hit & (shp["size"] >= 2)
        keep[1:] = ok
        crack = keep[lab]

    lithium = _lithium(v, crack, lv, geometry.noise, p)
    if lithium is not None:
        li_full = np.zeros(vol.shape, np.uint8)
        li_full[box] = lithium
        lithium = li_full

    out = np.zeros(vol.shape, np.uint8)
    out[box] = crack
    pore_out = np.zeros(vol.shape, np.uint8)
    pore_out[box] = pores
    return StepSegmentation(crack=out, lithium=lithium, pores=pore_out)
