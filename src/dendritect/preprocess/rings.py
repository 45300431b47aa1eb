"""Ring artefacts: removed from each reconstructed slice before anything else looks at it.

A detector pixel whose gain is off by a fraction of a per cent (not flat-field corrected, or
drifting during the experiment) adds the same error to every projection; filtered
back-projection turns it into a thin ring around the rotation axis in every slice it
reaches, and a column of bad pixels into a cylinder through the whole stack. Such a
cylinder is a thin dark sheet running from one electrode to the other: exactly what a
transverse crack looks like, and registration (which moves each scan by the sample's drift,
not the rings) makes it appear between scans as a change. Left in, it is a false short.

A ring is a function of the radius alone, the same at every angle; a crack, a pore or a grain
is not. So, per slice (after Sijbers & Postnov, "Reduction of ring artefacts in high
resolution micro-CT reconstructions", Phys. Med. Biol. 49, N247, 2004): the grey level is
averaged over the angle at radial nodes half a voxel apart about the rotation axis, robustly (values
more than 2.5 standard deviations from the bin's mean are left out, which drops cracks and
pores); the ring profile is that average less its running median over ``size_vox`` voxels
of radius (which keeps steps such as the pellet wall or an electrode edge, and removes only
features a few voxels thin); the profile is subtracted. Everything here is per slice, so it
runs plane by plane on a lazy step and costs a few passes over each plane.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from dendritect.errors import InputError

__all__ = ["remove_rings", "remove_rings_lazy", "ring_profile"]

#: Radial bin width (voxels): a ring one voxel wide at any sub-voxel radius is resolved.
BIN_VOX = 0.5
#: Rings are estimated only where a bin holds enough pixels to average over the angle, and
#: where a crack through the axis covers only a few per cent of the circle.
MIN_RADIUS_VOX = 10.0
#: Bins with fewer pixels (the corners of the slice, near the axis) are left alone: their
#: angular average is too noisy to be a ring.
MIN_PIXELS = 32
#: Values this many standard deviations from a bin's mean are not averaged (cracks, pores).
CLIP_SD = 2.5


class _Radii:
    """Linear binning of a slice's pixels by radius: each pixel shares itself between the two
    nearest radial nodes (``BIN_VOX`` apart) in proportion to its distance from each, so node
    weights vary smoothly with the radius (no aliasing of the pixel grid) and a ring profile
    read back at the pixels is piecewise linear."""

    def __init__(self, shape_yx: tuple[int, int], centre_yx: tuple[float, float] | None):
        ny, nx = shape_yx
        cy, cx = ((ny - 1) / 2.0, (nx - 1) / 2.0) if centre_yx is None else centre_yx
        yy, xx = np.ogrid[:ny, :nx]
        rb = (np.hypot(yy - cy, xx - cx) / BIN_VOX).ravel()
        self.k = np.floor(rb).astype(np.int64)
        self.f = rb - self.k
        self.n_nodes = int(self.k.max()) + 2
        self.shape = (ny, nx)

    def mean(self, v: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean of ``v`` (flat, pixels with weight ``w``) at every node, and the
        nodes' total weight."""
        k, f, n = self.k, self.f, self.n_nodes
        wl, wr = w * (1.0 - f), w * f
        tot = np.bincount(k, wl, n) + np.bincount(k + 1, wr, n)
        s = np.bincount(k, wl * v, n) + np.bincount(k + 1, wr * v, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return s / tot, tot

    def at_pixels(self, nodes: np.ndarray) -> np.ndarray:
        """A node profile read back at every pixel (linear interpolation), flat."""
        return nodes[self.k] * (1.0 - self.f) + nodes[self.k + 1] * self.f


def ring_profile(plane: np.ndarray, *, centre_yx: tuple[float, float] | None = None,
                 size_vox: float = 9.0, radii: _Radii | None = None) -> np.ndarray:
    """The ring component of one slice as a function of radius (one value per radial node).

    Parameters
    ----------
    plane : ndarray, shape (y, x)
        A reconstructed slice (NaN where there is no data).
    centre_yx : (float, float), optional
        The rotation axis in the slice (voxels); the slice centre by default, as
        reconstructions place it.
    size_vox : float
        Rings thinner than about half this (radially, voxels) are removed; wider radial
        changes kept.
    radii : optional
        The radial binning of the slice (reused between the slices of a step).

    Returns
    -------
    ndarray of float64
        The ring value at radii ``0, BIN_VOX, 2 BIN_VOX, ...`` from the axis; 0 near the axis
        and where too few pixels lie (the slice's corners).
    """
    v = np.asarray(plane, dtype=np.float64)
    if v.ndim != 2:
        raise InputError(f"ring_profile: expected a 2D slice, got shape {v.shape}")
    rad = _Radii(v.shape, centre_yx) if radii is None else radii
    flat = v.ravel()
    ok = np.isfinite(flat)
    vals = np.where(ok, flat, 0.0)
    w = ok.astype(np.float64)
    mean, _ = rad.mean(vals, w)
    sq, tot = rad.mean(vals * vals, w)
    sd = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    m_px, sd_px = rad.at_pixels(np.nan_to_num(mean)), rad.at_pixels(np.nan_to_num(sd))
    # cracks and pores are outliers at their radius: left out of the average
    w = w * (np.abs(vals - m_px) <= CLIP_SD * sd_px + 1e-12)
    prof, tot = rad.mean(vals, w)
    has = tot >= MIN_PIXELS
    ring = np.zeros(rad.n_nodes)
    if has.sum() < 3:
        return ring
    idx = np.arange(rad.n_nodes)
    # nodes without enough data take their neighbours' value so the running median sees no gap
    prof = np.interp(idx, idx[has], prof[has])
    width = max(3, round(size_vox / BIN_VOX) | 1)
    ring = prof - ndimage.median_filter(prof, size=width, mode="nearest")
    ring[: int(np.ceil(MIN_RADIUS_VOX / BIN_VOX))] = 0.0
    ring[~has] = 0.0
    return ring


def remove_rings(volume: np.ndarray, *, centre_yx: tuple[float, float] | None = None,
                 size_vox: float = 9.0) -> np.ndarray:
    """Ring artefacts removed from every slice of a step (a new float32 array).

    Parameters
    ----------
    volume : ndarray, shape (z, y, x) or (y, x)
        A reconstructed step or slice, in the scanner's frame (before registration: the
        rings stay where the detector is, the sample moves). Not modified.
    centre_yx : (float, float), optional
        The rotation axis (voxels in y, x); the slice centre by default.
    size_vox : float
        See :func:`ring_profile`.

    Returns
    -------
    ndarray of float32
        ``volume`` less the ring profile of each slice.
    """
    v = np.asarray(volume)
    if v.ndim not in (2, 3) or 0 in v.shape:
        raise InputError(f"remove_rings: expected a 2D slice or 3D step, got shape {v.shape}")
    planes = v[None] if v.ndim == 2 else v
    radii = _Radii(planes.shape[1:], centre_yx)
    out = np.empty(planes.shape, dtype=np.float32)
    for z, plane in enumerate(planes):
        ring = ring_profile(plane, size_vox=size_vox, radii=radii)
        out[z] = plane - radii.at_pixels(ring).reshape(radii.shape).astype(np.float32)
    return out[0] if v.ndim == 2 else out


def remove_rings_lazy(volume: Any, *, centre_yx: tuple[float, float] | None = None,
                      size_vox: float = 9.0) -> Any:
    """:func:`remove_rings` on a lazy (dask) step, plane by plane when its chunks are read.

    Parameters
    ----------
    volume : dask.array.Array, shape (z, y, x)
        One step; chunks are made whole planes in (y, x) if they are not.
    centre_yx, size_vox
        See :func:`remove_rings`.

    Returns
    -------
    dask.array.Array of float32
    """
    import dask.array as da

    vol = volume if isinstance(volume, da.Array) else da.asarray(volume)
    if vol.ndim != 3:
        raise InputError(f"remove_rings: expected a 3D step, got shape {vol.shape}")
    if len(vol.chunks[1]) > 1 or len(vol.chunks[2]) > 1:
        vol = vol.rechunk({1: -1, 2: -1})
    return vol.map_blocks(remove_rings, centre_yx=centre_yx, size_vox=size_vox,
                          dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))
