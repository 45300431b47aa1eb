"""Render an attenuation volume as an operando X-ray CT scan, artifacts included.

``fbp``: for each z slice, parallel-beam projections (:func:`skimage.transform.radon`), a
beam-hardening polynomial (cupping), uncorrected detector gain errors (rings), Poisson photon
noise (so streaks appear behind the steel plungers), then filtered back-projection
(:func:`skimage.transform.iradon`). ``fast``: the same artifacts applied in image space
(blur, cupping, rings, Gaussian noise), an order of magnitude quicker.

Both add a rigid sub-voxel sample drift and a grey-level gain/offset drift, and write uint16.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
from scipy import ndimage
from skimage.transform import iradon, radon

__all__ = ["GREY_OFFSET", "GREY_PER_MU", "Detector", "make_detector", "phase_k_px2",
           "render_scan"]

# Grey level of air and grey levels per unit of mu relative to the electrolyte: the electrolyte
# sits near 1000 + 20000; the steel plungers saturate, as in a windowed 16-bit export.
GREY_OFFSET = 1000.0
GREY_PER_MU = 20000.0


class Detector:
    """Fixed properties of the imaging system, shared by every scan of a series."""

    def __init__(self, eps: np.ndarray, n_angles: int):
        # (z, detector column) gain error in units of ring_strength, not flat-field corrected
        self.eps = eps
        self.theta = np.linspace(0.0, 180.0, int(n_angles), endpoint=False)


def make_detector(p: dict, rng: np.random.Generator) -> Detector:
    """Draw per-pixel detector gain errors (a few bad columns make strong rings)."""
    nz, ny, nx = p["shape_zyx"]
    n = max(ny, nx)
    eps = 0.25 * rng.standard_normal((nz, n))
    bad = rng.random(n) < 0.06  # defective columns, through all rows
    eps[:, bad] += rng.choice([-1.0, 1.0], bad.sum()) * rng.uniform(1.0, 3.0, bad.sum())
    return Detector(eps, p["n_angles"])


# Ring amplitude, relative to the electrolyte's mu, per unit of ring_strength * eps.
_RING_GAIN = 4.0


@lru_cache(maxsize=8)
def _fbp_gains(n: int, n_angles: int) -> tuple[float, float]:
    """Noise and ring transfer of filtered back-projection on an ``n``-pixel detector.

    Returns the reconstruction's standard deviation per unit of white sinogram noise, and the
    ring amplitude per unit of line-integral error on one detector column.
    """
    theta = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    sino = np.random.default_rng(12345).standard_normal((n, n_angles))
    rec = iradon(sino, theta, circle=True, filter_name="shepp-logan", output_size=n)
    q = n // 4
    noise = float(rec[q:-q, q:-q].std())
    col = np.zeros((n, n_angles))
    col[n // 2 + q // 2, :] = 1.0
    rec = iradon(col, theta, circle=True, filter_name="shepp-logan", output_size=n)
    return noise, float(np.abs(rec).max())


def _to_uint16(mu: np.ndarray, mu_ref: float, gain: float, offset: float) -> np.ndarray:
    g = offset + gain * GREY_PER_MU * (mu / mu_ref)
    return np.clip(np.rint(g), 0, 65535).astype(np.uint16)


def render_scan(mu_per_cm: np.ndarray, p: dict, det: Detector, rng: np.random.Generator, *,
                drift_vox: tuple[float, float, float], gain: float, offset: float,
                mu_ref: float, outside: tuple[np.ndarray, np.ndarray] | None = None
                ) -> np.ndarray:
    """Render one scan.

    Parameters
    ----------
    mu_per_cm : ndarray of float32, (z, y, x)
        Attenuation in the step-0 frame, 1/cm. Not modified.
    p : dict
        Resolved simulation parameters (``ct``, voxel size, noise, artifacts).
    det : Detector
        Detector gains and projection angles (same for all scans).
    rng : numpy.random.Generator
        Noise source of this scan.
    drift_vox : tuple of float
        Rigid displacement of the sample relative to step 0, voxels (z, y, x).
    gain, offset : float
        Grey-level drift of this scan.
    mu_ref : float
        Attenuation of the electrolyte (grey-level scale).
    outside : (r_um, profile), optional
        Interior tomography (``ct="fbp"``): the cell beyond the field of view, as attenuation
        ``profile[z, i]`` (1/cm) at radius ``r_um[i]`` from the axis (air beyond the last).
        Projections are taken through the whole object and truncated to the detector.

    Returns
    -------
    ndarray of uint16, (z, y, x)
    """
    mu = ndimage.shift(mu_per_cm, drift_vox, order=1, mode="nearest", prefilter=False)
    if p["ct"] == "fbp":
        out = _fbp(mu, p, det, rng, mu_ref, outside)
    else:
        out = _fast(mu, p, det, rng, mu_ref)
    return _to_uint16(out, mu_ref, gain, offset)


def _radius_vox(shape_yx: tuple[int, int]) -> np.ndarray:
    ny, nx = shape_yx
    y = np.arange(ny) - (ny - 1) / 2
    x = np.arange(nx) - (nx - 1) / 2
    return np.hypot(y[:, None], x[None, :])


# Phase-contrast scale: K (pixel^2) per unit of phase_contrast and per unit of the squared
# edge width (psf^2 + _PHASE_W0^2). Strength 1 gives fringes of roughly +20..50 % / -20 % of
# the electrolyte-air step at a pellet edge, whatever the blur (measured on the twin; FBP
# smooths the projections' fringes, hence its larger constant).
_PHASE_C = {"fast": 0.9, "fbp": 1.5}
_PHASE_W0 = 0.5
# Phase retrieval is applied with a slightly larger alpha than the fringes' K, as beamlines
# do (they choose delta/beta to suppress the fringes): the result is a little blurred.
_RETRIEVAL_OVER = 1.25


def phase_k_px2(p: dict) -> float:
    """Phase-contrast coefficient K (in squared pixels): measured = P - K lap(P)."""
    psf = float(p["psf_vox"])
    return float(p.get("phase_contrast", 0.0)) * _PHASE_C[p["ct"]] * (psf * psf
                                                                    + _PHASE_W0 ** 2)


def _z_weight(p: dict) -> float:
    """(dx/dz)^2: second differences along z in units of the lateral pixel."""
    dz, _, dx = p["voxel_size_um"]
    return (float(dx) / float(dz)) ** 2


def _psf_sigma(p: dict):
    """Blur sigma per axis, voxels: an isotropic PSF in micrometres on anisotropic voxels."""
    dz, _, dx = p["voxel_size_um"]
    psf = p["psf_vox"]
    if dz == dx:
        return psf
    return (psf * dx / dz, psf, psf)


def _laplacian(vol: np.ndarray, weights) -> np.ndarray:
    """Discrete Laplacian with per-axis weights (a scalar weights axis 0 only), edges held."""
    if np.isscalar(weights):
        weights = (float(weights),) + (1.0,) * (vol.ndim - 1)
    out = np.zeros(vol.shape, np.float64)
    for ax, w in enumerate(weights):
        if w:
            out += w * ndimage.correlate1d(vol, [1.0, -2.0, 1.0], axis=ax, mode="nearest")
    return out


def _paganin(vol: np.ndarray, alpha: float, weights, axes=None) -> np.ndarray:
    """Paganin-type low-pass 1 / (1 + alpha k^2) over ``axes`` (k^2 of the discrete Laplacian).

    Edges are padded by reflection so the FFT does not wrap opposite faces together.
    """
    axes = tuple(range(vol.ndim)) if axes is None else tuple(axes)
    pad = [(0, 0)] * vol.ndim
    for ax in axes:
        pad[ax] = (min(16, vol.shape[ax]), min(16, vol.shape[ax]))
    v = np.pad(np.asarray(vol, np.float64), pad, mode="reflect")
    f = np.fft.rfftn(v, axes=axes)
    denom = np.ones(f.shape, np.float64)
    k2 = 0.0
    for i, ax in enumerate(axes):
        n = v.shape[ax]
        freq = np.fft.rfftfreq(n) if i == len(axes) - 1 else np.fft.fftfreq(n)
        sym = 2.0 - 2.0 * np.cos(2 * np.pi * freq)
        shape = [1] * vol.ndim
        shape[ax] = sym.size
        k2 = k2 + weights[i] * sym.reshape(shape)
    denom = denom * (1.0 + alpha * k2)
    out = np.fft.irfftn(f / denom, s=[v.shape[ax] for ax in axes], axes=axes)
    sl = tuple(slice(pad[ax][0], pad[ax][0] + vol.shape[ax]) for ax in range(vol.ndim))
    return out[sl]


def _fast(mu: np.ndarray, p: dict, det: Detector, rng: np.random.Generator,
          mu_ref: float) -> np.ndarray:
    nz, ny, nx = mu.shape
    out = ndimage.gaussian_filter(mu, _psf_sigma(p))
    if float(p.get("phase_contrast", 0.0)) > 0:
        # Propagation phase contrast in image space: mu - K lap(mu) (dark/bright fringe pairs).
        k = phase_k_px2(p)
        w = _z_weight(p)
        out = out - np.float32(k) * _laplacian(out, w)
        if p.get("phase_retrieval"):
            out = _paganin(out, _RETRIEVAL_OVER * k, (w, 1.0, 1.0))
        out = out.astype(np.float32, copy=False)
    r = _radius_vox((ny, nx))
    r_max = min(ny, nx) / 2
    # Beam hardening darkens the middle of the cell.
    cup = 1.0 - p["cupping"] * np.clip(1.0 - (r / r_max) ** 2, 0, 1)
    out *= cup.astype(np.float32)[None]
    # A detector column's gain error at distance d from the axis rings at radius d.
    n = det.eps.shape[1]
    d = np.abs(np.arange(n) - (n - 1) / 2)
    order = np.argsort(d)
    ring_amp = det.eps[:, order]  # (z, radius-sorted columns)
    ring = np.empty((nz, ny, nx), np.float32)
    for z in range(nz):
        ring[z] = np.interp(r, d[order], ring_amp[z])
    out += (_RING_GAIN * p["ring_strength"] * mu_ref) * ring
    out += (p["noise_frac"] * mu_ref) * rng.standard_normal(out.shape, dtype=np.float32)
    return out


def _fbp(mu: np.ndarray, p: dict, det: Detector, rng: np.random.Generator,
         mu_ref: float, outside: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    nz, ny, nx = mu.shape
    n = max(ny, nx)
    pix_cm = float(min(p["voxel_size_um"][1:])) * 1e-4
    noise_gain, ring_gain = _fbp_gains(n, len(det.theta))
    # Photons per ray chosen so the reconstruction noise is noise_frac of the electrolyte's mu.
    sigma_p = p["noise_frac"] * mu_ref * pix_cm / noise_gain
    i0 = 1.0 / sigma_p**2
    gains = np.exp(-(_RING_GAIN * p["ring_strength"] * mu_ref * pix_cm / ring_gain) * det.eps)
    # Beam hardening: measured line integrals grow slower than the true ones (cupping).
    p_typ = mu_ref * 2 * p["pellet_radius_frac"] * n * pix_cm
    beta = p["cupping"] / max(p_typ, 1e-12)
    gens = rng.spawn(nz)
    psf = p["psf_vox"]
    # radon(circle=True) needs nothing outside the inscribed circle (only air is there).
    c0, c1 = np.ogrid[:n, :n]
    inscribed = (((c0 - n // 2) ** 2 + (c1 - n // 2) ** 2 <= (n // 2 - 1) ** 2)
                 .astype(np.float64))
    workers = min(nz, os.cpu_count() or 1)

    if outside is not None:
        # Interior tomography: the object is larger than the detector. Project a padded slice
        # that holds the whole object, keep the detector's columns only, reconstruct those.
        r_grid, prof = outside
        pix_um = pix_cm * 1e4
        big = int(np.ceil(float(r_grid[-1]) / pix_um)) + 3
        n_pad = max(n, 2 * big + (n % 2))
        o = n_pad // 2 - n // 2
        q0, q1 = np.ogrid[:n_pad, :n_pad]
        rr = np.hypot(q0 - n_pad // 2, q1 - n_pad // 2)
        beyond = rr > (n // 2 - 1)
        rr_um = rr[beyond] * pix_um

        def project(z: int) -> np.ndarray:
            sl = np.zeros((n_pad, n_pad), np.float64)
            sl[o:o + ny, o:o + nx] = mu[z]
            sl[o:o + n, o:o + n] *= inscribed
            sl[beyond] = np.interp(rr_um, r_grid, prof[z], right=0.0)
            sino = radon(sl * pix_cm, det.theta, circle=True)
            return sino[o:o + n]
    else:
        def project(z: int) -> np.ndarray:
            sl = np.zeros((n, n), np.float64)
            sl[:ny, :nx] = mu[z]
            return radon(sl * inscribed * pix_cm, det.theta, circle=True)

    def reconstruct(meas: np.ndarray) -> np.ndarray:
        rec = iradon(meas, det.theta, circle=True, filter_name="shepp-logan",
                     output_size=n)
        return (rec[:ny, :nx] / pix_cm).astype(np.float32)

    if float(p.get("phase_contrast", 0.0)) <= 0 and not p.get("phase_retrieval"):
        def one(z: int) -> np.ndarray:
            sino = project(z)
            sino = ndimage.gaussian_filter1d(sino, psf, axis=0)
            sino = sino / (1.0 + beta * sino)  # saturating, so thick steel cups strongly
            expected = i0 * np.exp(-sino) * gains[z][:, None]
            counts = np.maximum(gens[z].poisson(expected), 1.0)
            meas = -np.log(counts / i0)
            return reconstruct(meas)

        with ThreadPoolExecutor(max_workers=workers) as ex:
            slices = list(ex.map(one, range(nz)))
        return np.stack(slices)

    # Propagation phase contrast on the projection stack (z, detector, angle): in the
    # near field (transport of intensity, homogeneous object) I = T - K lap_perp(T) with
    # T = exp(-P), the transverse Laplacian along z (rows) and the detector; then the
    # detector blurs the intensity.
    with ThreadPoolExecutor(max_workers=workers) as ex:
        sinos = np.stack(list(ex.map(project, range(nz))))
    sinos = sinos / (1.0 + beta * sinos)
    trans = np.exp(-sinos)
    k = phase_k_px2(p)
    wz = _z_weight(p)
    if k > 0:
        trans = trans - k * _laplacian(trans, (wz, 1.0, 0.0))
    dz, _, dx = p["voxel_size_um"]
    trans = ndimage.gaussian_filter(trans, (psf * dx / dz, psf, 0.0))
    trans = np.maximum(trans, 1e-12)

    def count(z: int) -> np.ndarray:
        expected = i0 * trans[z] * gains[z][:, None]
        return np.maximum(gens[z].poisson(expected), 1.0) / i0

    with ThreadPoolExecutor(max_workers=workers) as ex:
        meas_i = np.stack(list(ex.map(count, range(nz))))
    if p.get("phase_retrieval") and k > 0:
        # Paganin-type retrieval per projection angle over (z, detector), then -log.
        meas_i = _paganin(meas_i, _RETRIEVAL_OVER * k, (wz, 1.0), axes=(0, 1))
        meas_i = np.maximum(meas_i, 1.0 / i0)

    with ThreadPoolExecutor(max_workers=workers) as ex:
        slices = list(ex.map(lambda z: reconstruct(-np.log(meas_i[z])), range(nz)))
    return np.stack(slices)
