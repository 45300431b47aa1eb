"""Find the cell in a scan: the electrolyte layer, its interfaces, footprints and grey levels.

A Li | solid electrolyte | Li cell in a die, seen by CT, is a stack along z: plunger (current
collector), lithium foil, ceramic pellet, lithium foil, plunger. The ceramic is the thick layer of
one uniform grey level bounded on both sides by much darker lithium (lithium attenuates X-rays
about ten times less than a sulfide or oxide electrolyte). The interfaces are located with
sub-voxel precision at the half-level crossings of the footprint-averaged z profile (the
position of a blurred step edge does not depend on the blur when the point-spread function is
symmetric).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from dendritect.errors import InputError

__all__ = ["LITHIUM_MAX_SHARE", "CellGeometry", "anode_evidence", "anode_from_evidence",
           "cell_levels", "decide_anode", "electrode_levels", "electrode_planes", "find_cell",
           "pellet_footprint", "pore_void_level", "shear_columns", "voxel_noise"]

_MIN_LAYER_VOX = 4  # a thinner bright band is a foil or a sheet, not a pellet
_MIN_FOOTPRINT_FRAC = 0.05  # of the slice area
_MAX_LAYER_SPREAD = 0.25  # robust spread inside the layer, as a fraction of its contrast
#: a tenth of the footprint this far below the electrolyte (as a fraction of the contrast to
#: the darkest percent) is a die ring, not pellet
_DIE_RING_FRAC = 0.3
#: Lithium's grey level lies at most this share of the electrolyte-to-void contrast above the
#: void level. Lithium (0.53 g/cm3) has 0.23 mol of electrons per cm3, a fully dense
#: argyrodite Li6PS5Cl 0.80 and an 80 % dense one 0.64, garnet LLZO about 2.2: in the Compton
#: (high-energy) and phase-retrieved limits lithium reads at most ~0.37 of the lightest
#: pellet's level, and photoabsorption by S, Cl, P, La or Zr at lower energies lowers that.
LITHIUM_MAX_SHARE = 0.4
#: Two electrode sides whose levels differ by more than this share of the brighter one's
#: height above the void level are a lithium foil and an empty gap (before a collector), not
#: two foils: two foils of one cell read alike, up to blur and noise (tuning cells 9, 11, 16,
#: 19, 25, 26: a gap read 0.55-0.97 of the way down from the foil to the void; the Li|Li
#: cells 5, 6, 10, 17, 22, 29 within 0.05)
GAP_SIDE_SHARE = 0.35


@dataclass(frozen=True)
class CellGeometry:
    """Where the electrolyte is, in voxel coordinates of the step-0 frame.

    Attributes
    ----------
    anode : str
        ``"top"`` (anode at low z) or ``"bottom"``. Changing it (``with_anode`` or
        ``dataclasses.replace``) swaps the interfaces and electrode footprints to match.
    z_anode_vox, z_cathode_vox : float
        z positions of the anode|electrolyte and electrolyte|cathode interfaces (voxel centres
        at integer z; an interface between slices ``k - 1`` and ``k`` lies at ``k - 0.5``).
    footprint : numpy.ndarray of bool, (y, x)
        Cross-section of the electrolyte pellet.
    electrode_footprint : numpy.ndarray of bool, (y, x)
        Cross-section of the anode electrode (smaller than the pellet).
    levels : dict of str to float
        Typical grey level of ``"electrolyte"``, ``"lithium"`` and ``"void"``; ``"lithium"``
        is NaN where no electrode level could be lithium's (:func:`cell_levels`).
    noise : float
        Standard deviation of the grey-level noise in the electrolyte.
    counter_electrode_footprint : numpy.ndarray of bool or None
        Cross-section of the electrode on the cathode side (used by :meth:`with_anode`).
    flags : tuple of str
        Notes on how the geometry was decided (e.g. ``"anode-undecided"``).
    tilt_vox : (float, float)
        Slope of the (parallel) interface planes: their z shift, in voxels, per voxel along y
        and along x. ``(0, 0)`` for a cell whose axis is the scanner's z axis.
    axis_yx : (float, float)
        The column (y, x) at which ``z_anode_vox`` and ``z_cathode_vox`` are given; the planes
        pass through them there.
    cos_tilt : float
        Cosine of the angle between the cell's normal and z, in micrometre space: depths and
        the thickness are measured along the normal.
    levels_by_anode : (dict, dict) or None
        ``levels`` with the anode on top and on the bottom (:func:`cell_levels`'s ``anode``):
        where set, ``levels`` follows the anode's side, also after ``with_anode``.
    axis_shift_yx : (float, float)
        Lateral move (voxels along y and x) of the pellet's cross-section per z plane: a
        tilted pellet's wall is inclined too. ``footprint`` is the cross-section at mid-layer.
    voxel_size_um : (float, float, float) or None
        Voxel size (z, y, x) when known: shapes (how flat, how long a piece is) are judged in
        micrometres, so a round pore in voxels twice as tall as wide is not taken for a flat
        crack.
    column_offset_vox : numpy.ndarray of float, (y, x), or None
        In the flattened view of a tilted cell (:func:`dendritect.preprocess.tilt.flat_geometry`),
        where whole-voxel shifts of the columns level the interfaces: what is left of each
        column's interface offset (within half a voxel). The interfaces' partial volume in
        the first planes follows it.
    """

    anode: str
    z_anode_vox: float
    z_cathode_vox: float
    footprint: np.ndarray
    electrode_footprint: np.ndarray
    levels: dict[str, float]
    noise: float = float("nan")
    counter_electrode_footprint: np.ndarray | None = field(default=None, repr=False)
    flags: tuple[str, ...] = ()
    tilt_vox: tuple[float, float] = (0.0, 0.0)
    axis_yx: tuple[float, float] = (0.0, 0.0)
    cos_tilt: float = 1.0
    axis_shift_yx: tuple[float, float] = (0.0, 0.0)
    voxel_size_um: tuple[float, float, float] | None = None
    column_offset_vox: np.ndarray | None = field(default=None, repr=False)
    levels_by_anode: tuple[dict[str, float], dict[str, float]] | None = field(
        default=None, repr=False)

    def __post_init__(self) -> None:
        if self.anode not in ("top", "bottom"):
            raise InputError(f"--anode: must be top or bottom, got {self.anode!r}")
        if self.levels_by_anode is not None:
            # lithium's level is read beside the anode where the two sides disagree
            object.__setattr__(self, "levels",
                               dict(self.levels_by_anode[0 if self.anode == "top" else 1]))
        # z_anode_vox always lies on the anode's side, also after dataclasses.replace(anode=...)
        if (self.z_anode_vox > self.z_cathode_vox) == (self.anode == "top"):
            za, zc = self.z_cathode_vox, self.z_anode_vox
            object.__setattr__(self, "z_anode_vox", za)
            object.__setattr__(self, "z_cathode_vox", zc)
            if self.counter_electrode_footprint is not None:
                fp, other = self.counter_electrode_footprint, self.electrode_footprint
                object.__setattr__(self, "electrode_footprint", fp)
                object.__setattr__(self, "counter_electrode_footprint", other)

    @property
    def tilted(self) -> bool:
        """Whether the interfaces are planes inclined to the scanner's (y, x) plane."""
        return bool(self.tilt_vox[0] or self.tilt_vox[1])

    @property
    def thickness_vox(self) -> float:
        """Electrolyte thickness along the cell's normal, in units of the z voxel size."""
        return abs(self.z_cathode_vox - self.z_anode_vox) * float(self.cos_tilt)

    @property
    def z_range_vox(self) -> tuple[float, float]:
        """``(low z, high z)`` interface positions at the reference column ``axis_yx``."""
        return (min(self.z_anode_vox, self.z_cathode_vox),
                max(self.z_anode_vox, self.z_cathode_vox))

    def z_offset(self, y, x) -> np.ndarray:
        """z shift of the interface planes at columns ``(y, x)`` from ``axis_yx``, voxels."""
        return _plane_offset(y, x, self.tilt_vox, self.axis_yx)

    def offset_map(self) -> np.ndarray:
        """:meth:`z_offset` of every column of the footprint's (y, x) grid, float64."""
        ny, nx = self.footprint.shape
        if not self.tilted:
            return np.zeros((ny, nx))
        return self.z_offset(np.arange(ny)[:, None], np.arange(nx)[None, :])

    def z_mask(self, nz: int) -> np.ndarray:
        """Slices whose centres lie between the interfaces (at the reference column)."""
        z = np.arange(nz)
        lo, hi = self.z_range_vox
        return (z > lo) & (z < hi)

    def footprint_planes(self, z0: int, z1: int, yx: tuple[slice, slice] | None = None,
                         footprint: np.ndarray | None = None) -> np.ndarray:
        """The pellet's cross-section in planes ``z0..z1`` (columns ``yx``), (z, y, x) bool.

        The mid-layer ``footprint`` (or the one given, e.g. eroded) moved by
        ``axis_shift_yx`` per plane, rounded to whole voxels; the same in every plane for an
        untilted cell.
        """
        yx = yx or (slice(None), slice(None))
        fp = self.footprint if footprint is None else footprint
        ay, ax = self.axis_shift_yx
        if not (ay or ax):
            return np.broadcast_to(fp[yx][None], (z1 - z0, *fp[yx].shape))
        zm = 0.5 * (self.z_anode_vox + self.z_cathode_vox)
        out = np.zeros((z1 - z0, *fp[yx].shape), bool)
        for k, z in enumerate(range(z0, z1)):
            out[k] = _moved(fp, round((z - zm) * ay), round((z - zm) * ax))[yx]
        return out

    def inside(self, z0: int, z1: int, yx: tuple[slice, slice] | None = None, *,
               margin_vox: float = 0.0) -> np.ndarray:
        """Electrolyte voxels of planes ``z0..z1`` (of the columns ``yx``): between the
        interface planes and within the pellet's cross-section; ``margin_vox`` widens the
        layer by that many planes beyond each interface (into the electrodes)."""
        yx = yx or (slice(None), slice(None))
        lo, hi = self.z_range_vox
        lo, hi = lo - margin_vox, hi + margin_vox
        z = np.arange(z0, z1, dtype=np.float64)[:, None, None]
        if self.tilted:
            z = z - self.offset_map()[yx][None]
        return (z > lo) & (z < hi) & self.footprint_planes(z0, z1, yx)

    def electrolyte_mask(self, shape_zyx) -> np.ndarray:
        """3D bool mask of the electrolyte: between the interfaces, within the footprint."""
        nz, ny, nx = (int(s) for s in shape_zyx)
        if (ny, nx) != self.footprint.shape:
            raise InputError(f"electrolyte_mask: shape {tuple(shape_zyx)} does not match the "
                             f"footprint's {self.footprint.shape}")
        return self.inside(0, nz)

    def depth_vox(self, z, y=None, x=None) -> np.ndarray:
        """Distance of ``z`` (at columns ``y, x``) from the anode interface toward the
        cathode, along the cell's normal, in units of the z voxel size. Without ``y, x`` the
        reference column's."""
        z = np.asarray(z, dtype=np.float64)
        if self.tilted and y is not None and x is not None:
            z = z - self.z_offset(y, x)
        d = z - self.z_anode_vox if self.anode == "top" else self.z_anode_vox - z
        return d * float(self.cos_tilt) if self.tilted else d

    def tilt_deg(self) -> float:
        """Angle between the cell's normal and z, degrees."""
        return float(np.degrees(np.arccos(np.clip(self.cos_tilt, -1.0, 1.0))))

    def with_anode(self, anode: str, *, flag: str | None = None) -> CellGeometry:
        """The same cell with the anode on ``anode`` ("top" or "bottom")."""
        if anode not in ("top", "bottom"):
            raise InputError(f"--anode: must be top, bottom or auto, got {anode!r}")
        flags = tuple(f for f in self.flags if f != "anode-undecided")
        if flag:
            flags = (*flags, flag)
        # __post_init__ swaps the interfaces and electrode footprints when the side changes
        return dataclasses.replace(self, anode=anode, flags=flags)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``(start, stop)`` runs of True in a 1D bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def _crossing(profile: np.ndarray, level: float, start: int, step: int, stop: int) -> float:
    """First sub-voxel position from ``start`` going by ``step`` where profile drops below level."""
    i = start
    while i != stop and 0 <= i + step < profile.size:
        a, b = profile[i], profile[i + step]
        if a >= level > b or a > level >= b:
            frac = (a - level) / (a - b)
            return i + step * float(frac)
        i += step
    return float(start)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(lab == int(np.argmax(sizes)))


def _no_layer(where: str, why: str) -> InputError:
    return InputError(f"no electrolyte layer found in {where}: {why}")


def find_cell(volume: np.ndarray, voxel_size_um=None, *, anode: str = "auto",
              where: str = "the first scan") -> CellGeometry:
    """Locate the electrolyte layer of a stacked solid-state cell.

    Parameters
    ----------
    volume : numpy.ndarray
        3D (z, y, x) scan (step 0, any real dtype), z through the electrolyte's thickness.
    voxel_size_um : float or sequence of float, optional
        ``(dz, dy, dx)``, checked for sense only: every position is returned in voxels.
    anode : {"auto", "top", "bottom"}
        Side of the plated electrode. ``"auto"`` returns ``"top"`` with the flag
        ``"anode-undecided"``: call :func:`decide_anode` with a later step to settle it.
    where : str
        Name of the input, for error messages.

    Returns
    -------
    CellGeometry

    Raises
    ------
    InputError
        ``"no electrolyte layer found in ..."`` when no thick uniform layer bounded by darker
        electrodes on both sides exists (e.g. a Li-ion cell or an empty field of view).
    """
    if anode not in ("auto", "top", "bottom"):
        raise InputError(f"--anode: must be top, bottom or auto, got {anode!r}")
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise InputError(f"{where}: expected a 3D (z, y, x) volume, got shape {vol.shape}")
    if voxel_size_um is not None:
        vs_um = np.atleast_1d(np.asarray(voxel_size_um, dtype=np.float64))
        if vs_um.size not in (1, 3) or not np.all(np.isfinite(vs_um) & (vs_um > 0)):
            raise InputError(f"{where}: voxel size must be one or three positive lengths, "
                             f"got {voxel_size_um!r}")
    nz, ny, nx = vol.shape
    if nz < 3 * _MIN_LAYER_VOX or min(ny, nx) < 8:
        raise _no_layer(where, f"the volume {vol.shape} is too small to hold a cell")
    v = vol.astype(np.float32, copy=False)
    if not np.isfinite(v).all():
        raise InputError(f"{where}: the volume holds NaN or infinite values")

    # 1. Rough layer from the central column's profile (inside any electrode footprint).
    cy, cx = ny // 2, nx // 2
    hy, hx = max(2, ny // 8), max(2, nx // 8)
    centre = v[:, cy - hy:cy + hy, cx - hx:cx + hx]
    prof_c = np.median(centre.reshape(nz, -1), axis=1)
    prof_c = ndimage.median_filter(prof_c, size=3, mode="nearest")
    layer = _pick_layer(prof_c)
    on_collector = _pick_layer_on_collector(prof_c)
    if on_collector is not None and (layer is None or on_collector[1] - on_collector[0]
                                     > 1.2 * (layer[1] - layer[0])):
        layer = on_collector
    if layer is None:
        raise _no_layer(where, "no thick uniform band bounded by darker layers (or a bright "
                        "collector on one side) along z")
    z0, z1, level_e = layer

    # 2. Pellet footprint: bright in the middle of the layer.
    q = max(1, (z1 - z0) // 4)
    mid = ndimage.gaussian_filter(v[z0 + q:z1 - q].mean(axis=0), 1.0)
    footprint = pellet_footprint(mid, level_e)
    if footprint is None:
        raise _no_layer(where, "the layer has a single grey level")
    if footprint.sum() < _MIN_FOOTPRINT_FRAC * ny * nx:
        raise _no_layer(where, "the bright band covers too little of the field of view")

    # 3. Sub-voxel interfaces from the footprint-averaged profile.
    inner = ndimage.binary_erosion(footprint, iterations=2)
    if inner.sum() < 16:
        inner = footprint
    prof = v[:, inner].mean(axis=1)
    core = prof[z0 + q:z1 - q] if z1 - z0 > 2 * q else prof[z0:z1]
    level_in = float(np.median(core))
    zs = []
    beyond = []
    for step in (-1, 1):
        # the plateau beyond the edge: within a few voxels outside the rough edge
        edge = z0 if step < 0 else z1 - 1
        lo_i, hi_i = sorted((edge, edge + step * 8))
        seg = prof[max(lo_i, 0):min(hi_i + 1, nz)]
        beyond.append((float(seg.min()), float(seg.max())))
    bright = bright_sides(level_in, beyond)
    # a darker neighbour's level, or a bright collector's: the interface is the half-level
    # crossing either way
    dark_levels = [hi if b else lo for (lo, hi), b in zip(beyond, bright, strict=True)]
    for (start, step, lim), b, d in zip(((z0 + q, -1, -1), (z1 - 1 - q, 1, nz)), bright,
                                        dark_levels, strict=True):
        sign = -1.0 if b else 1.0
        zs.append(_crossing(sign * prof, sign * 0.5 * (level_in + d), start, step, lim))
    z_top, z_bot = zs
    contrast = level_in - max(d for d, b in zip(dark_levels, bright, strict=True) if not b)

    # 3b. A tilted cell: interface planes fitted to the interfaces of column blocks. The
    # checks and levels below then look at the cell with each column shifted along z by the
    # planes' (rounded) offset, so that its layers are flat.
    tilt = _fit_tilt(v, inner, z_top, z_bot, level_in, dark_levels, voxel_size_um)
    sy = sx = 0.0
    axis = (0.0, 0.0)
    cos_tilt = 1.0
    axis_shift = (0.0, 0.0)
    if tilt is not None:
        v_in = v
        for refit in (False, True):
            sy, sx, axis, z_top, z_bot = tilt
            off = _plane_offset(np.arange(ny)[:, None], np.arange(nx)[None, :], (sy, sx), axis)
            v = shear_columns(v_in, np.rint(off).astype(np.int64))
            # the neighbours' levels again on the flattened layers: the footprint average of
            # a tilted cell smears a thin foil's darkness over the planes around it, and the
            # half levels of the planes' fit move with them (then fitted once more)
            prof_f = v[:, inner].mean(axis=1)
            old = list(dark_levels)
            for i, (edge, step) in enumerate(((z_top, -1), (z_bot, 1))):
                lo_i, hi_i = sorted((round(edge), round(edge) + step * 8))
                seg = prof_f[max(lo_i, 0):min(hi_i + 1, nz)]
                if seg.size:
                    dark_levels[i] = (max(dark_levels[i], float(seg.max())) if bright[i]
                                      else min(dark_levels[i], float(seg.min())))
            moved = max(abs(x - y) for x, y in zip(dark_levels, old, strict=True))
            again = None if refit or moved <= 0.5 * contrast else _fit_tilt(
                v_in, inner, z_top, z_bot, level_in, dark_levels, voxel_size_um)
            contrast = level_in - max(d for d, b in zip(dark_levels, bright, strict=True)
                                      if not b)
            if again is None:
                break
            tilt = again
        dz_, dy_, dx_ = _spacing3(voxel_size_um)
        cos_tilt = float(1.0 / np.sqrt(1.0 + (dz_ * sy / dy_) ** 2 + (dz_ * sx / dx_) ** 2))
        # the pellet's axis is the planes' normal: one z plane moves it by -s (dz/d)² voxels
        axis_shift = (-sy * (dz_ / dy_) ** 2, -sx * (dz_ / dx_) ** 2)

    # 4. The layer must be uniform, flat and clearly brighter than both neighbours.
    el = v[int(np.ceil(z_top)) + 1:int(np.floor(z_bot))][:, inner]
    step_s = max(1, el.size // 2_000_000)
    sample = el.ravel()[::step_s]
    if sample.size < 8 or z_bot - z_top < _MIN_LAYER_VOX:
        raise _no_layer(where, f"the brightest band is only {z_bot - z_top:.1f} voxels thick")
    med = float(np.median(sample))
    spread = float(np.percentile(sample, 75) - np.percentile(sample, 25)) / 1.349
    noise = voxel_noise(v, int(np.ceil(z_top)) + 1, int(np.floor(z_bot)), inner)
    if z_bot - z_top < _MIN_LAYER_VOX:
        raise _no_layer(where, f"the brightest band is only {z_bot - z_top:.1f} voxels thick")
    if contrast <= 0 or spread > _MAX_LAYER_SPREAD * contrast:
        raise _no_layer(where, "the candidate band is not uniform (not a ceramic pellet)")
    if contrast < 5 * max(noise, 1e-12) / np.sqrt(max(inner.sum(), 1)) or contrast < 3 * spread:
        raise _no_layer(where, "the candidate band is not clearly brighter than its neighbours")
    flat = _flatness(v, footprint, z_top, z_bot,
                     [0.5 * (level_in + d) for d in dark_levels], bright)
    if flat < 0.6:
        raise _no_layer(where, "the candidate band is not a flat layer across its footprint")

    # 5. Electrode footprints and grey levels.
    prof_e = v[:, inner].mean(axis=1) if tilt is not None else prof
    # a bright collector (an anode-free cell's bare current collector) covers the pellet and
    # holds no lithium level
    fp_top, li_top, void_top = ((footprint.copy(), np.nan, np.nan) if bright[0] else
                                electrode_levels(v, footprint, z_top, -1, level_in, noise,
                                                 electrode_planes(prof_e, z_top, -1)))
    fp_bot, li_bot, void_bot = ((footprint.copy(), np.nan, np.nan) if bright[1] else
                                electrode_levels(v, footprint, z_bot, +1, level_in, noise,
                                                 electrode_planes(prof_e, z_bot, +1)))
    # the cores of large pores are void too: where what was read beside a thin foil is the
    # foil, or nothing beside the cell is empty, they are the darkest void
    @functools.cache
    def fallback() -> float:   # only where no gap was read
        return float(np.percentile(ndimage.uniform_filter(v[:: max(1, nz // 64)], 3), 0.5))

    pore_void = pore_void_level(v, inner, z_top, z_bot, med, noise)
    by_anode = tuple(cell_levels(med, (li_top, li_bot), (void_top, void_bot), fallback,
                                 lithium_fallback=float(min(dark_levels)),
                                 pore_void=pore_void, anode=side) for side in (0, 1))
    levels = by_anode[0]

    geo = CellGeometry(anode="top", z_anode_vox=float(z_top), z_cathode_vox=float(z_bot),
                       footprint=footprint, electrode_footprint=fp_top, levels=levels,
                       noise=float(noise), counter_electrode_footprint=fp_bot,
                       flags=(("anode-undecided",) if anode == "auto" else ())
                       + tuple(f"collector-{side}" for side, b in zip(("top", "bottom"), bright,
                                                                      strict=True) if b),
                       tilt_vox=(float(sy), float(sx)), axis_yx=axis, cos_tilt=cos_tilt,
                       axis_shift_yx=(float(axis_shift[0]), float(axis_shift[1])),
                       voxel_size_um=None if voxel_size_um is None else _spacing3(voxel_size_um),
                       levels_by_anode=by_anode)
    if anode == "bottom":
        geo = geo.with_anode("bottom")
    elif anode == "top":
        geo = geo.with_anode("top")
    return geo


def pellet_footprint(mid: np.ndarray, level_e: float) -> np.ndarray | None:
    """The pellet's cross-section in ``mid``, the smoothed mean of the layer's middle half.

    Pixels brighter than a threshold between the pellet and what surrounds it (Otsu's, at
    least half way from the darkest percent to the electrolyte level), and not much brighter
    than the electrolyte: a steel die around the pellet is brighter still and is not pellet.
    The largest such region, holes filled. Where a tenth of it reads far below the electrolyte
    (a die ring at about half the pellet's attenuation), the threshold moves half way between
    the ring and the electrolyte. ``None`` when ``mid`` has one grey level.
    """
    ny, nx = mid.shape
    sub = mid[:: max(1, ny // 256), :: max(1, nx // 256)]
    dark = float(np.percentile(sub, 1))
    # what is far brighter than the electrolyte (a steel die) takes no part in the threshold
    upper = level_e + max(level_e - dark, 0.0)
    low = sub[sub < upper]
    try:
        t_fp = threshold_otsu(low if low.size >= 16 else sub)
    except ValueError:
        return None
    t_fp = min(max(t_fp, 0.5 * (level_e + dark)), level_e)
    fp = _largest_component((mid > t_fp) & (mid < upper))
    # a die attenuating over half as much as the pellet (PEEK at high energy) passes that
    # threshold and rings the pellet at its own level: the pellet is what reads near the
    # electrolyte's level, split from the ring half way between the two
    vals = mid[fp]
    if vals.size:
        ring = float(np.percentile(vals, 10))
        if level_e - ring > _DIE_RING_FRAC * (level_e - dark):
            inner = _largest_component((mid > 0.5 * (level_e + ring)) & (mid < upper))
            if inner.sum() >= _MIN_FOOTPRINT_FRAC * ny * nx:
                fp = inner
    return fp


def _plane_offset(y, x, tilt_vox: tuple[float, float], axis_yx: tuple[float, float]):
    """z shift of planes of slope ``tilt_vox`` at columns ``(y, x)`` from ``axis_yx``."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    return tilt_vox[0] * (y - axis_yx[0]) + tilt_vox[1] * (x - axis_yx[1])


def _moved(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by whole voxels ``(dy, dx)``, False where nothing moves in."""
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    ys, yd = (slice(0, ny - dy), slice(dy, ny)) if dy >= 0 else (slice(-dy, ny), slice(0, ny + dy))
    xs, xd = (slice(0, nx - dx), slice(dx, nx)) if dx >= 0 else (slice(-dx, nx), slice(0, nx + dx))
    if abs(dy) < ny and abs(dx) < nx:
        out[yd, xd] = mask[ys, xs]
    return out


def _spacing3(voxel_size_um) -> tuple[float, float, float]:
    if voxel_size_um is None:
        return 1.0, 1.0, 1.0
    vs = np.broadcast_to(np.atleast_1d(np.asarray(voxel_size_um, dtype=np.float64)), (3,))
    return float(vs[0]), float(vs[1]), float(vs[2])


def shear_columns(volume: np.ndarray, shift: np.ndarray, pad: int = 0) -> np.ndarray:
    """Each column ``(y, x)`` moved along z by ``-shift[y, x]`` voxels (integers).

    ``out[z, y, x] = volume[z - pad + shift[y, x], y, x]``, indices clipped to the volume
    (``pad`` extra planes on each side keep every voxel). With the rounded offsets of a tilted
    cell's interface planes this makes its layers flat; the shift back is exact.
    """
    v = np.asarray(volume)
    nz = v.shape[0]
    z = np.arange(nz + 2 * pad)[:, None, None] - pad + shift[None]
    return np.take_along_axis(v, np.clip(z, 0, nz - 1), axis=0)


#: A tilt that moves the interfaces by less than this over the pellet (voxels) is ignored.
_MIN_TILT_SHIFT_VOX = 0.5


#: Steepest tilt looked for (degrees): the interfaces are searched within the reach it gives.
_MAX_TILT_DEG = 8.0


def _fit_tilt(v: np.ndarray, inner: np.ndarray, z_top: float, z_bot: float, level_in: float,
              dark_levels: list[float], voxel_size_um=None):
    """Interface planes of a tilted cell: ``(sy, sx, axis_yx, z_top, z_bot)`` or ``None``.

    The layer's footprint is cut into blocks of columns; in each, the median profile along z
    gives both interfaces: the half-level crossing nearest the electrode, searched from the
    electrode side inward within the reach of an ``_MAX_TILT_DEG`` tilt of the
    footprint-averaged interfaces (pores, cracks and phase fringes inside the layer are never
    reached). Parallel planes are fitted to them by least squares with outliers rejected;
    ``None`` when they move the interfaces by less than half a voxel over the pellet (the
    footprint-averaged interfaces are then exact).
    """
    nz, ny, nx = v.shape
    b = int(max(4, round(min(ny, nx) / 20)))
    yy, xx = np.nonzero(inner)
    if yy.size == 0:
        return None
    dz, dy, dx = _spacing3(voxel_size_um)
    radius = float(np.hypot(yy - yy.mean(), xx - xx.mean()).max())
    reach = int(np.ceil(np.tan(np.radians(_MAX_TILT_DEG)) * radius * min(dy, dx) / dz)) + 2
    reach = min(reach, max(1, int((z_bot - z_top) / 2) - 1))
    half = (0.5 * (level_in + dark_levels[0]), 0.5 * (level_in + dark_levels[1]))
    # a side brighter than the layer (a collector) crosses its half level rising
    sgn = [-1.0 if d > level_in else 1.0 for d in dark_levels]
    t0 = max(int(np.floor(z_top)) - reach, 0)
    b0 = min(int(np.ceil(z_bot)) + reach, nz - 1)
    rows = []
    for y0 in range(0, ny - b + 1, b):
        for x0 in range(0, nx - b + 1, b):
            blk = inner[y0:y0 + b, x0:x0 + b]
            if blk.mean() < 0.75:
                continue
            ys, xs = np.nonzero(blk)
            med = np.median(v[:, y0 + ys, x0 + xs], axis=1)
            # inward from the electrode: where the profile first passes the half level
            zt = _crossing(-sgn[0] * med, -sgn[0] * half[0], t0, 1, int(np.ceil(z_top)) + reach)
            zb = _crossing(-sgn[1] * med, -sgn[1] * half[1], b0, -1,
                           int(np.floor(z_bot)) - reach)
            if zt == t0 or zb == b0:
                continue
            rows.append((y0 + (b - 1) / 2, x0 + (b - 1) / 2, zt, zb))
    if len(rows) < 6:
        return None
    r = np.asarray(rows)
    ay, ax = float(r[:, 0].mean()), float(r[:, 1].mean())
    n = r.shape[0]
    a = np.zeros((2 * n, 4))
    a[:n, 0] = 1.0
    a[n:, 1] = 1.0
    a[:, 2] = np.tile(r[:, 0] - ay, 2)
    a[:, 3] = np.tile(r[:, 1] - ax, 2)
    z = np.concatenate([r[:, 2], r[:, 3]])
    keep = np.ones(2 * n, bool)
    coef = np.zeros(4)
    for _ in range(3):
        coef = np.linalg.lstsq(a[keep], z[keep], rcond=None)[0]
        res = np.abs(z - a @ coef)
        mad = 1.4826 * float(np.median(res[keep]))
        keep = res <= max(3.0 * mad, 0.75)
        if keep.sum() < 8:
            return None
    sy, sx = float(coef[2]), float(coef[3])
    if float(np.max(np.abs(sy * (yy - ay) + sx * (xx - ax)))) < _MIN_TILT_SHIFT_VOX:
        return None
    return sy, sx, (ay, ax), float(coef[0]), float(coef[1])


def bright_sides(level: float, beyond: list[tuple[float, float]]) -> tuple[bool, bool]:
    """Which side of the layer (top, bottom) is a bright collector rather than a darker layer.

    An anode-free cell presses the electrolyte on a bare steel current collector, which
    attenuates far more than the ceramic: nothing beyond that interface is darker than the
    layer. A side is taken as such a collector when, within a few voxels beyond it, nothing is
    darker than the layer by a quarter of the other side's contrast and something is brighter
    than the layer by half of it. The other side must be darker.

    Parameters
    ----------
    level : float
        The layer's grey level.
    beyond : list of (float, float)
        Darkest and brightest value of the footprint-averaged profile beyond each interface
        (top, bottom).

    Returns
    -------
    (bool, bool)
        Top and bottom: a bright collector. Both False when neither or both would be.
    """
    out = []
    for i in (0, 1):
        lo, hi = beyond[i]
        other = level - beyond[1 - i][0]
        out.append(bool(other > 0 and level - lo < 0.25 * other and hi - level > 0.5 * other))
    return (False, False) if all(out) else (out[0], out[1])


def _pick_layer(prof: np.ndarray) -> tuple[int, int, float] | None:
    """The thickest band that is brighter than the bands on both of its sides."""
    nz = prof.size
    lo, hi = float(prof.min()), float(prof.max())
    if hi <= lo:
        return None
    best = None
    for t in np.linspace(hi, lo, 66)[1:-1]:
        for a, b in _runs(prof > t):
            if a == 0 or b == nz or b - a < _MIN_LAYER_VOX:
                continue  # a band must have a darker neighbour on both sides
            level = float(np.median(prof[a:b]))
            # darker neighbours: the profile must fall well below the band on each side
            left = prof[max(0, a - 12):a]
            right = prof[b:b + 12]
            d = max(float(left.min()), float(right.min()))
            if level - d <= 0 or t > level or t < d + 0.3 * (level - d):
                continue
            score = (b - a) * (level - d)
            if best is None or score > best[0]:
                best = (score, a, b, level)
    if best is None:
        return None
    return best[1], best[2], best[3]


def _pick_layer_on_collector(prof: np.ndarray) -> tuple[int, int, float] | None:
    """The thickest band darker than a bright collector on one side and brighter than a
    darker layer on the other (an anode-free cell), or ``None``.

    The profile is folded about a cap (values above it mirrored below it), so that a
    collector far brighter than the band reads as a dark neighbour to :func:`_pick_layer`; of
    the bands found, those next to a folded collector and with a darker layer on their other
    side count.
    """
    nz = prof.size
    lo, hi = float(prof.min()), float(prof.max())
    if hi <= lo:
        return None
    best = None
    for cap in np.linspace(lo, hi, 42)[1:-1]:
        folded = np.where(prof > cap, 2 * cap - prof, prof)
        band = _pick_layer(folded)
        if band is None:
            continue
        a, b, level = band
        if float(prof[a:b].max()) > cap:
            continue
        sides = []
        for part in (prof[max(0, a - 4):a], prof[b:b + 4]):
            sides.append(part.size > 0 and float(part.max()) > cap
                         and float(part.max()) - level > 2 * (cap - level))
        dark_beyond = [float(prof[max(0, a - 12):a].min()) if a > 0 else level,
                       float(prof[b:b + 12].min()) if b < nz else level]
        for i in (0, 1):
            d = dark_beyond[1 - i]
            # a band holding a darker layer (a foil folded in with the plunger beyond it) is
            # not one layer
            uniform = float(np.percentile(prof[a:b], 5)) >= level - 0.3 * (level - d)
            if sides[i] and not sides[1 - i] and level - d > 0 and uniform:
                score = (b - a) * (level - d)
                if best is None or score > best[0]:
                    best = (score, a, b, level)
    return None if best is None else (best[1], best[2], best[3])


def voxel_noise(v: np.ndarray, z0: int, z1: int, inner: np.ndarray) -> float:
    """Voxel noise from differences of neighbouring voxels (texture varies slowly)."""
    if z1 - z0 < 2:
        return float("nan")
    block = v[z0:z1]
    d = np.diff(block, axis=2)[:, inner[:, 1:] & inner[:, :-1]]
    d = d.ravel()[:: max(1, d.size // 2_000_000)]
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / np.sqrt(2.0)


def _flatness(v, footprint, z_top, z_bot, levels, bright=(False, False)) -> float:
    """Share of footprint columns whose own profile crosses its side's half level (``levels``,
    top and bottom) near both interfaces; rising into a ``bright`` side (a collector)."""
    ys, xs = np.nonzero(ndimage.binary_erosion(footprint, iterations=2))
    if ys.size == 0:
        return 0.0
    sel = np.linspace(0, ys.size - 1, min(ys.size, 400)).astype(int)
    nz = v.shape[0]
    zm = round(0.5 * (z_top + z_bot))
    # the darkest of the three planes beyond each interface: a thin electrode beside a bright
    # plunger is dark over a plane or two only, blurred by the plunger next to it
    zt = np.clip(np.floor(z_top) - np.arange(3), 0, nz - 1).astype(int)
    zb = np.clip(np.ceil(z_bot) + np.arange(3), 0, nz - 1).astype(int)
    sm = ndimage.uniform_filter(v[[*zt, zm, *zb]], size=(1, 3, 3))[:, ys[sel], xs[sel]]
    lt, lb = levels

    def _beyond(planes: np.ndarray, level: float, is_bright: bool) -> np.ndarray:
        return planes.max(axis=0) > level if is_bright else planes.min(axis=0) < level

    ok = ((sm[3] > max(lt, lb) if not any(bright) else sm[3] > min(lt, lb))
          & _beyond(sm[:3], lt, bright[0]) & _beyond(sm[4:], lb, bright[1]))
    return float(ok.mean())


def electrode_planes(profile: np.ndarray, z_edge: float, step: int) -> tuple[int, int]:
    """Planes ``lo..hi`` (half-open) of the electrode beyond an interface.

    Three planes around the darkest point of the footprint-averaged ``profile`` between 1.5
    and 8 voxels beyond the interface: a thick lithium foil's middle, or the one or two dark
    planes of a thin foil pressed on a bright plunger (whose blur would brighten planes
    further out).
    """
    nz = profile.size
    a, b = sorted((int(np.ceil(z_edge + step * 1.5)) if step > 0 else
                   int(np.floor(z_edge + step * 1.5)), round(z_edge + step * 8)))
    a, b = max(a, 0), min(b + 1, nz)
    if b - a < 1:
        lo, hi = sorted((round(z_edge + step * 2.5), round(z_edge + step * 5.5)))
        return max(lo, 0), min(hi + 1, nz)
    zc = a + int(np.argmin(profile[a:b]))
    return max(zc - 1, 0), min(zc + 2, nz)


def pore_void_level(v: np.ndarray, footprint: np.ndarray, z_top: float, z_bot: float,
                    electrolyte: float, noise: float, *, n_pores: int = 3) -> float:
    """The void level read in the cores of the pellet's largest pores.

    Pores are empty (gas), and the core of a pore several voxels wide is void: neither the
    blur nor a phase-contrast fringe (both at its rim) reaches it. Where a view has no gap or
    air (the field of view inside the pellet, a die without a gap), or where what is read as a
    gap beside a thin foil is the foil itself, this is the one void in the scan.

    Dark blobs are the voxels of the step smoothed by a Gaussian of one voxel that lie below
    half way between the electrolyte and the darkest such voxel, at least 4 voxels from the
    wall; each blob's core is what survives an erosion by 2 voxels. The level is the median,
    over the ``n_pores`` blobs with the largest cores, of the median grey level of the core.

    Parameters
    ----------
    v : ndarray
        The (flattened) step, z first.
    footprint : ndarray of bool
        The pellet's cross-section inside its wall.
    z_top, z_bot : float
        The electrolyte's interfaces (voxels).
    electrolyte, noise : float
        The electrolyte's grey level and the voxel noise (standard deviation).
    n_pores : int
        How many of the largest cores to take the median of.

    Returns
    -------
    float
        The level, or ``+inf`` when fewer than ``n_pores`` blobs have a core (a dense pellet,
        or pores too small to hold a void voxel).
    """
    a, b = int(np.ceil(z_top)) + 2, int(np.floor(z_bot)) - 1
    fp = ndimage.binary_erosion(footprint, iterations=4)
    if b - a < 5 or not fp.any():
        return float("inf")
    ys, xs = np.nonzero(fp)
    box = (slice(a, b), slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    sm = ndimage.gaussian_filter(np.asarray(v[box], np.float32), 1.0)
    inside = np.broadcast_to(fp[box[1:]], sm.shape)
    darkest = float(sm[inside].min())
    # a blob must be clearly darker than the electrolyte's noise (6.7: the smoothing's gain)
    if electrolyte - darkest < 20.0 * max(float(noise), 1e-12) / 6.7:
        return float("inf")
    core = ndimage.binary_erosion((sm < 0.5 * (electrolyte + darkest)) & inside, iterations=2)
    lab, n = ndimage.label(core)
    if n < n_pores:
        return float("inf")
    size = np.bincount(lab.ravel())[1:]
    largest = np.argsort(size)[::-1][:n_pores] + 1
    vals = np.asarray(v[box], np.float32)
    return float(np.median([np.median(vals[lab == k]) for k in largest]))


def cell_levels(electrolyte: float, lithium_sides: Iterable[float],
                void_sides: Iterable[float], void_fallback: Callable[[], float], *,
                lithium_fallback: float = float("nan"),
                pore_void: float = float("inf"), anode: int | None = None
                ) -> dict[str, float]:
    """The cell's grey levels from what was read beyond each interface.

    The void level is the darkest gap read beside an electrode, else ``void_fallback()``;
    ``pore_void`` (the cores of large pores, :func:`pore_void_level`) where it is darker.
    The lithium level is the median of the sides' electrode levels that can be lithium's:
    no more than :data:`LITHIUM_MAX_SHARE` of the electrolyte-to-void contrast above the void
    level (``lithium_fallback``, under the same test, where no side gave a level); the
    anode's side alone (or, not given, the brighter) where two sides differ by more than
    :data:`GAP_SIDE_SHARE` of the brighter one's height above the void: a foil and an empty
    gap before a collector, or a side that blur, tilt or fringes lift or darken, and lithium
    is plated at the anode. A level above that is a bare collector, a cathode, or a thin
    foil's planes averaged with its bright plunger: the lithium level is then NaN (not
    measured), and lithium in cracks is not classified.

    Parameters
    ----------
    electrolyte : float
        The electrolyte's grey level.
    lithium_sides, void_sides : iterable of float
        Electrode and gap levels read beyond each interface (NaN where none).
    void_fallback : callable
        Gives the void level where no gap was read (called only then).
    lithium_fallback : float
        The lithium level to take where no side gave one.
    pore_void : float
        The void level read in the pores (``inf``: none).
    anode : int, optional
        Index in ``lithium_sides`` of the anode's side, where known.

    Returns
    -------
    dict
        ``"electrolyte"``, ``"lithium"`` (NaN when not measured) and ``"void"`` (at most the
        lithium level).
    """
    voids = [float(x) for x in void_sides if np.isfinite(x)]
    void = min(min(voids) if voids else float(void_fallback()), float(pore_void))
    top = void + LITHIUM_MAX_SHARE * (float(electrolyte) - void)
    sides = [float(x) for x in lithium_sides]
    read = [x for x in sides if np.isfinite(x)]
    if not read and np.isfinite(lithium_fallback):
        read = [float(lithium_fallback)]
    lis = sorted(x for x in read if x <= top)
    if len(lis) == 2 and lis[1] - lis[0] > GAP_SIDE_SHARE * (lis[1] - void):
        # two sides far apart are not two foils alike: the anode's is the foil lithium is
        # plated from (the other may be the empty gap before a collector), else the brighter
        at = sides[anode] if anode is not None and 0 <= anode < len(sides) else np.nan
        lis = [at] if at in lis else lis[1:]
    lithium = float(np.median(lis)) if lis else float("nan")
    return {"electrolyte": float(electrolyte), "lithium": lithium,
            "void": min(void, lithium) if lis else void}


def electrode_levels(v: np.ndarray, footprint: np.ndarray, z_edge: float, step: int,
                     level_e: float, noise: float,
                     planes: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """Electrode footprint beyond an interface, its lithium level and the level of voids,
    measured on the planes ``planes`` (:func:`electrode_planes`)."""
    lo, hi = planes
    if hi - lo < 1:
        return footprint.copy(), float("nan"), float("nan")
    img = ndimage.gaussian_filter(v[lo:hi].mean(axis=0), 2.0)
    vals = img[footprint]
    try:
        t = threshold_otsu(vals)
    except ValueError:
        return footprint.copy(), float(np.median(vals)), float("nan")
    hi_cls = footprint & (img > t)
    lo_cls = footprint & (img <= t)
    if hi_cls.sum() < 16 or lo_cls.sum() < 16:
        return footprint.copy(), float(np.median(vals)), float("nan")
    m_hi = float(np.median(img[hi_cls]))
    m_lo = float(np.median(img[lo_cls]))
    # smoothed over ~(hi - lo) slices and a 2-voxel Gaussian: noise drops by ~sqrt(n * 4π σ²)
    n_eff = (hi - lo) * 4 * np.pi * 4.0
    sep = (m_hi - m_lo) / max(noise / np.sqrt(n_eff), 1e-12)
    if sep < 4 or m_hi > level_e - 0.3 * (level_e - m_lo):
        # one phase only (electrode as wide as the pellet), or a bright collector
        return footprint.copy(), float(np.median(vals)), float("nan")
    # lithium attenuates more than the gas beside the foil: the electrode is the brighter class
    elec = _largest_component(hi_cls)
    raw = v[lo:hi]
    core = ndimage.binary_erosion(elec, iterations=2)
    li = float(np.median(raw[:, core if core.sum() >= 8 else elec]))
    gap = ndimage.binary_erosion(lo_cls, iterations=2)
    void = float(np.median(raw[:, gap])) if gap.sum() >= 8 else float("nan")
    return elec, li, void


#: One step's (or several steps' summed) change since the first step decides the anode side
#: alone when one side has this many times the other's; below it, the next step is added
#: (tuning cell 11: the last, spanned step darkened the cathode's quarter 2.7 times more)
ANODE_SURE_MARGIN = 3.0
#: The most later steps whose change is summed before deciding on what they give
ANODE_MAX_STEPS = 3


def _margin(a: int, b: int) -> float:
    return max(a, b) / max(min(a, b), 1)


def anode_evidence(first: np.ndarray, last: np.ndarray, geometry: CellGeometry, *,
                   sheets: bool = True) -> dict:
    """Evidence for the anode side: where the darkening between two steps starts.

    The change since the first step decides: plating and cracking darken the electrolyte
    from the anode. The thin dark sheets of the later step only break a tie: they include
    what the scan shows at every step alike, such as the dark undershoot of filtered
    back-projection beside a bright steel collector and phase fringes along an interface
    (tuning cells 29 and 33: up to five times more sheets at the cathode, where the change
    was four to six times larger at the anode).

    Parameters
    ----------
    first, last : numpy.ndarray
        The first step and a later one registered onto it.
    geometry : CellGeometry
        From :func:`find_cell` on the first step.
    sheets : bool
        Count the later step's thin dark sheets where the change alone is not sure
        (:func:`anode_from_evidence` reads them only for the latest step given).

    Returns
    -------
    dict
        ``change_top``/``change_bottom`` (voxels darkened since the first step in the
        electrolyte quarter next to each interface), ``changed`` (their sum), ``min_count``
        (the fewest changed voxels that can decide), ``sheet_top``/``sheet_bottom`` (thin
        dark sheet voxels of the later step there; 0 when not counted: without ``sheets``, or
        where the change alone is past :data:`ANODE_SURE_MARGIN`), ``top``/``bottom`` (change
        plus sheets), ``side`` ("top"/"bottom": the change's, or the sheets' where the change does
        not decide), ``confident`` (the change decides with a margin of at least 1.5x) and
        ``weak`` (a margin of 1.1-1.5x).
    """
    a = np.asarray(first, dtype=np.float32)
    b = np.asarray(last, dtype=np.float32)
    if a.shape != b.shape or a.ndim != 3:
        raise InputError(f"decide_anode: steps must be 3D and of the same shape, got "
                         f"{a.shape} and {b.shape}")
    nz = a.shape[0]
    lo, hi = geometry.z_range_vox
    contrast = geometry.levels["electrolyte"] - geometry.levels["void"]
    noise = geometry.noise if np.isfinite(geometry.noise) else 0.0
    # cracks and lithium darken the electrolyte; smoothing keeps thin ones above the noise
    diff = ndimage.gaussian_filter(a - b, 0.7)
    thr = max(0.15 * contrast, 4.0 * noise * 0.3)
    z = np.arange(nz)
    inside = (z > lo + 1.0) & (z < hi - 1.0)
    changed = (diff > thr) & inside[:, None, None] & geometry.footprint[None]
    # drop isolated noise voxels; a one-voxel sheet fills 9 of its 27 neighbours
    changed &= ndimage.uniform_filter(changed.astype(np.float32), 3) > 0.2
    # compare the outer quarters: a crack that spans adds to both, its origin side has more
    # (spalls, branches and the wide mouth are at the plated electrode)
    quarter = 0.25 * (hi - lo)
    near_top = z < lo + quarter
    near_bot = z > hi - quarter
    per_z = changed.sum(axis=(1, 2))
    c_top = int(per_z[near_top].sum())
    c_bot = int(per_z[near_bot].sum())
    total = c_top + c_bot
    min_count = max(20, int(1e-4 * geometry.footprint.sum() * (hi - lo)))
    enough = total >= min_count
    m = _margin(c_top, c_bot) if enough else 0.0
    # cracks already open at the first step change little: the thin dark sheets of the
    # later step (wide crack mouths and spalls at the anode) break a tie. Where the change is
    # sure alone they are never needed (anode_from_evidence), and are not computed
    count = sheets and m < ANODE_SURE_MARGIN
    s_top, s_bot = (_sheet_counts(b, geometry, near_top, near_bot, contrast) if count
                    else (0, 0))
    confident = m >= 1.5
    weak = 1.1 <= m < 1.5
    if enough and m >= 1.1:
        side = "top" if c_top > c_bot else "bottom"
    else:
        side = "bottom" if s_bot > s_top else "top"
    return {"side": side, "confident": bool(confident), "weak": bool(weak),
            "change_top": c_top, "change_bottom": c_bot, "changed": total,
            "min_count": int(min_count), "sheet_top": s_top, "sheet_bottom": s_bot,
            "top": c_top + s_top, "bottom": c_bot + s_bot}


def _sheet_counts(vol, geometry, near_top, near_bot, contrast) -> tuple[int, int]:
    """Thin dark sheet voxels (sheetness >= 0.3, 20 % darker) near each interface."""
    from dendritect.segment.hessian import sheetness  # segment depends on preprocess

    lo, hi = geometry.z_range_vox
    nz = vol.shape[0]
    ys, xs = np.nonzero(geometry.footprint)
    z0, z1 = max(0, int(lo) - 4), min(nz, int(np.ceil(hi)) + 5)
    box = (slice(z0, z1), slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    v = vol[box]
    s = sheetness(v, (1.0, 1.5), contrast=contrast)
    dark = (geometry.levels["electrolyte"] - ndimage.gaussian_filter(v, 0.7)) / contrast
    z = np.arange(z0, z1)
    inside = (z > lo + 1.0) & (z < hi - 1.0)
    m = (s >= 0.3) & (dark >= 0.2) & geometry.footprint[box[1:]][None] & inside[:, None, None]
    per_z = m.sum(axis=(1, 2))
    return int(per_z[near_top[z0:z1]].sum()), int(per_z[near_bot[z0:z1]].sum())


def decide_anode(first: np.ndarray, last: np.ndarray, geometry: CellGeometry) -> str:
    """``"top"`` or ``"bottom"``: the interface from which changes in the electrolyte grow.

    Dendrite cracks start at the plated electrode and grow toward the other; between the first
    and the last step the electrolyte quarter next to the anode darkens most. When nothing changes
    the answer falls back to ``"top"`` with a warning (see :func:`anode_evidence` for the flag).
    """
    return anode_from_evidence([anode_evidence(first, last, geometry)])


def anode_from_evidence(evidence: Iterable[dict]) -> str:
    """The anode side from :func:`anode_evidence` of one or more later steps against the first.

    The steps' changes since the first step are summed, latest step first: as soon as one side
    has :data:`ANODE_SURE_MARGIN` times the other's, it is the anode (one step, unless a
    spanned crack darkens both sides alike). After :data:`ANODE_MAX_STEPS` steps a margin of
    1.5x decides; 1.1-1.5x decides with a warning; below that, the thin dark sheets of the
    latest step decide with a warning; else ``"top"``, with a warning.

    Parameters
    ----------
    evidence : iterable of dict
        :func:`anode_evidence` results; consumed lazily, so a generator that registers each
        step only when asked costs no more than the steps needed.

    Returns
    -------
    str
        ``"top"`` or ``"bottom"``.
    """
    top = bottom = 0
    latest = None
    for i, ev in enumerate(evidence):
        if latest is None:
            latest = ev
        top += int(ev["change_top"])
        bottom += int(ev["change_bottom"])
        if top + bottom >= ev["min_count"] and _margin(top, bottom) >= ANODE_SURE_MARGIN:
            return "top" if top > bottom else "bottom"
        if i + 1 >= ANODE_MAX_STEPS:
            break
    if latest is not None:
        m = _margin(top, bottom) if top + bottom >= latest["min_count"] else 0.0
        side = "top" if top > bottom else "bottom"
        if m >= 1.5:
            return side
        if m >= 1.1:
            warnings.warn(f"anode side decided on weak evidence ({top} voxels changed near "
                          f"the top, {bottom} near the bottom): {side} (set --anode to be "
                          "sure)", stacklevel=2)
            return side
        s_top, s_bot = int(latest["sheet_top"]), int(latest["sheet_bottom"])
        if max(s_top, s_bot) >= latest["min_count"] and _margin(s_top, s_bot) >= 1.1:
            side = "top" if s_top > s_bot else "bottom"
            warnings.warn(f"anode side decided on weak evidence (too few changes between the "
                          f"first and later steps; thin dark sheets: {s_top} near the top, "
                          f"{s_bot} near the bottom): {side} (set --anode to be sure)",
                          stacklevel=2)
            return side
    warnings.warn("anode side could not be decided from the data (too few changes "
                  "between the first and later steps); assuming the top (low z)",
                  stacklevel=2)
    return "top"
