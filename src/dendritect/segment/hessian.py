"""Multiscale 3D sheetness from Hessian eigenvalues, in closed form and float32.

Cracks in a ceramic electrolyte are thin dark sheets: across the sheet the intensity has a sharp
minimum (one large positive second derivative), along it the intensity barely changes (two small
ones). This module computes the scale-normalised Hessian with separable Gaussian derivative kernels
(the same sampled kernels as :func:`scipy.ndimage.gaussian_filter` with ``order=``), takes the
eigenvalues of each symmetric 3×3 matrix with the trigonometric closed form (Smith, "Eigenvalues of
a symmetric 3×3 matrix", Commun. ACM 4, 168, 1961), and turns them into a sheet measure in the
spirit of Descoteaux, Collins & Siddiqi, "A multi-scale geometric flow for segmenting vasculature
in MRI" (2005) (the ratio of the two largest magnitudes penalises blobs and tubes).

Everything runs in one fused numba kernel per scale: no ``(N, 3, 3)`` float64 temporaries; the
only full-size temporaries are six float32 arrays (the partly filtered derivatives).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
from numba import njit, prange

from dendritect.errors import InputError

__all__ = ["eigvalsh3", "gaussian_kernel1d", "hessian_eigvals", "sheetness"]

_TRUNCATE = 3.0  # kernel half-width in sigmas; 3 sigma keeps >99.7 % of the Gaussian's mass


def gaussian_kernel1d(sigma: float, order: int, radius: int) -> np.ndarray:
    """Sampled Gaussian derivative kernel, identical to SciPy's ``gaussian_filter1d`` kernel.

    Parameters
    ----------
    sigma : float
        Standard deviation in voxels.
    order : int
        Derivative order (0, 1 or 2).
    radius : int
        Half-width in samples.

    Returns
    -------
    numpy.ndarray
        float64 kernel of length ``2 * radius + 1``, to be *convolved* with the signal.
    """
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    s2 = sigma * sigma
    phi = np.exp(-0.5 * x * x / s2)
    phi /= phi.sum()
    if order == 0:
        return phi
    if order == 1:
        return -x / s2 * phi
    if order == 2:
        return (x * x / (s2 * s2) - 1.0 / s2) * phi
    raise ValueError("order must be 0, 1 or 2")


@njit(inline="always")
def _eig3(a: float, b: float, c: float, d: float, e: float, f: float):
    """Eigenvalues (descending) of [[a, b, c], [b, d, e], [c, e, f]] by Smith's closed form."""
    q = (a + d + f) / 3.0
    p1 = b * b + c * c + e * e
    aq = a - q
    dq = d - q
    fq = f - q
    p2 = aq * aq + dq * dq + fq * fq + 2.0 * p1
    if p2 <= 0.0:
        return q, q, q
    p = math.sqrt(p2 / 6.0)
    inv = 1.0 / p
    b11 = aq * inv
    b22 = dq * inv
    b33 = fq * inv
    b12 = b * inv
    b13 = c * inv
    b23 = e * inv
    det = (b11 * (b22 * b33 - b23 * b23) - b12 * (b12 * b33 - b23 * b13)
           + b13 * (b12 * b23 - b22 * b13))
    r = 0.5 * det
    if r <= -1.0:
        phi = math.pi / 3.0
    elif r >= 1.0:
        phi = 0.0
    else:
        phi = math.acos(r) / 3.0
    e1 = q + 2.0 * p * math.cos(phi)
    # the other two from the trace and the sum of principal minors (one cosine fewer)
    s23 = 3.0 * q - e1
    m2 = a * d - b * b + a * f - c * c + d * f - e * e
    prod = m2 - e1 * s23
    disc = 0.25 * s23 * s23 - prod
    h = math.sqrt(disc) if disc > 0.0 else 0.0
    e2 = 0.5 * s23 + h
    e3 = 0.5 * s23 - h
    if e2 > e1:  # rounding at a double eigenvalue
        e2 = e1
    return e1, e2, e3


@njit(parallel=True, fastmath=False, cache=True)
def _eig3_arrays(a, b, c, d, e, f, o1, o2, o3):  # pragma: no cover - compiled
    n = a.size
    for i in prange(n):
        e1, e2, e3 = _eig3(np.float64(a[i]), np.float64(b[i]), np.float64(c[i]),
                           np.float64(d[i]), np.float64(e[i]), np.float64(f[i]))
        o1[i] = e1
        o2[i] = e2
        o3[i] = e3


def eigvalsh3(hxx, hxy, hxz, hyy, hyz, hzz) -> np.ndarray:
    """Eigenvalues of many symmetric 3×3 matrices given by their six unique entries.

    Parameters
    ----------
    hxx, hxy, hxz, hyy, hyz, hzz : array_like
        Matrix entries, all of the same shape.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(3, *shape)``, eigenvalues in descending order.
    """
    arrs = [np.ascontiguousarray(np.asarray(h, dtype=np.float32)).ravel()
            for h in (hxx, hxy, hxz, hyy, hyz, hzz)]
    shape = np.shape(hxx)
    out = np.empty((3, arrs[0].size), dtype=np.float32)
    _eig3_arrays(*arrs, out[0], out[1], out[2])
    return out.reshape((3, *shape))


@njit(parallel=True, fastmath=False, cache=True)
def _xy_pass(v, g0, g1, g2, b00, b01, b02, b10, b11, b20):  # pragma: no cover - compiled
    """Per z slice: x-derivatives of order 0,1,2 then the y-derivatives each needs.

    Outputs ``bIJ`` = d^I/dx^I d^J/dy^J of the Gaussian-smoothed slice (z not yet smoothed).
    Kernels are convolution kernels (``g0``, ``g2`` even, ``g1`` odd, so each tap pair is
    folded); edges are extended with the nearest value.
    """
    nz, ny, nx = v.shape
    r = (g0.size - 1) // 2
    for z in prange(nz):
        a0 = np.empty((ny, nx), np.float32)
        a1 = np.empty((ny, nx), np.float32)
        a2 = np.empty((ny, nx), np.float32)
        buf = np.empty(nx + 2 * r, np.float32)
        for y in range(ny):
            for i in range(nx + 2 * r):
                j = min(max(i - r, 0), nx - 1)
                buf[i] = v[z, y, j]
            for x in range(nx):
                c = buf[x + r]
                s0 = g0[r] * c
                s1 = np.float32(0.0)
                s2 = g2[r] * c
                for j in range(1, r + 1):
                    lo = buf[x + r - j]
                    hi = buf[x + r + j]
                    # convolution: out[x] = sum_k w[k] in[x + r - k]; k = r - j pairs with x + j
                    s0 += g0[r + j] * (lo + hi)
                    s1 += g1[r - j] * (hi - lo)
                    s2 += g2[r + j] * (lo + hi)
                a0[y, x] = s0
                a1[y, x] = s1
                a2[y, x] = s2
        r0 = np.empty(nx, np.float32)
        r1 = np.empty(nx, np.float32)
        r2 = np.empty(nx, np.float32)
        r3 = np.empty(nx, np.float32)
        r4 = np.empty(nx, np.float32)
        r5 = np.empty(nx, np.float32)
        for y in range(ny):
            w0 = g0[r]
            w2 = g2[r]
            for x in range(nx):
                r0[x] = w0 * a0[y, x]
                r1[x] = 0.0
                r2[x] = w2 * a0[y, x]
                r3[x] = w0 * a1[y, x]
                r4[x] = 0.0
                r5[x] = w0 * a2[y, x]
            for j in range(1, r + 1):
                ym = max(y - j, 0)
                yp = min(y + j, ny - 1)
                w0 = g0[r + j]
                w1 = g1[r - j]
                w2 = g2[r + j]
                for x in range(nx):
                    p0 = a0[ym, x] + a0[yp, x]
                    r0[x] += w0 * p0
                    r1[x] += w1 * (a0[yp, x] - a0[ym, x])
                    r2[x] += w2 * p0
                    r3[x] += w0 * (a1[ym, x] + a1[yp, x])
                    r4[x] += w1 * (a1[yp, x] - a1[ym, x])
                    r5[x] += w0 * (a2[ym, x] + a2[yp, x])
            for x in range(nx):
                b00[z, y, x] = r0[x]
                b01[z, y, x] = r1[x]
                b02[z, y, x] = r2[x]
                b10[z, y, x] = r3[x]
                b11[z, y, x] = r4[x]
                b20[z, y, x] = r5[x]


@njit(inline="always")
def _sheet_measure(e1, e2, e3, inv_ref, inv_2a2):
    """Dark-sheet measure from descending eigenvalues of the scale-normalised Hessian."""
    # the largest-magnitude eigenvalue must be positive (intensity minimum across the sheet)
    if e1 <= 0.0 or -e3 > e1:
        return 0.0
    mid = max(abs(e2), abs(e3))
    ra = mid / e1
    s = math.exp(-ra * ra * inv_2a2) * e1 * inv_ref
    if s < 1e-2:
        return 0.0  # below the reported resolution (keeps the fast bound in the kernel exact)
    return min(s, 1.0)


@njit(parallel=True, fastmath=False, cache=True)
def _z_pass_sheet(b00, b01, b02, b10, b11, b20, g0, g1, g2, norm, inv_ref, inv_2a2,
                  out, hess_out, want_hess):  # pragma: no cover - compiled
    """Finish the Hessian along z, take eigenvalues and keep the maximum sheetness in ``out``.

    ``norm`` is σ² times the sign (−σ² for bright sheets).
    """
    nz, ny, nx = b00.shape
    r = (g0.size - 1) // 2
    for z in prange(nz):
        a0 = np.empty(nx, np.float32)
        a1 = np.empty(nx, np.float32)
        a2 = np.empty(nx, np.float32)
        a3 = np.empty(nx, np.float32)
        a4 = np.empty(nx, np.float32)
        a5 = np.empty(nx, np.float32)
        for y in range(ny):
            w0 = g0[r]
            w2 = g2[r]
            for x in range(nx):
                a0[x] = w0 * b20[z, y, x]
                a1[x] = w0 * b11[z, y, x]
                a2[x] = 0.0
                a3[x] = w0 * b02[z, y, x]
                a4[x] = 0.0
                a5[x] = w2 * b00[z, y, x]
            for j in range(1, r + 1):
                zm = max(z - j, 0)
                zq = min(z + j, nz - 1)
                w0 = g0[r + j]
                w1 = g1[r - j]
                w2 = g2[r + j]
                for x in range(nx):
                    a0[x] += w0 * (b20[zm, y, x] + b20[zq, y, x])  # xx
                    a1[x] += w0 * (b11[zm, y, x] + b11[zq, y, x])  # xy
                    a2[x] += w1 * (b10[zq, y, x] - b10[zm, y, x])  # xz
                    a3[x] += w0 * (b02[zm, y, x] + b02[zq, y, x])  # yy
                    a4[x] += w1 * (b01[zq, y, x] - b01[zm, y, x])  # yz
                    a5[x] += w2 * (b00[zm, y, x] + b00[zq, y, x])  # zz
            for x in range(nx):
                hxx = norm * np.float64(a0[x])
                hxy = norm * np.float64(a1[x])
                hxz = norm * np.float64(a2[x])
                hyy = norm * np.float64(a3[x])
                hyz = norm * np.float64(a4[x])
                hzz = norm * np.float64(a5[x])
                if not want_hess:
                    # cheap bounds (λ1 <= q + 2p, and the plate factor from the norm): skip the
                    # trigonometry where the result cannot raise the running maximum (or stays
                    # below the 0.01 resolution)
                    q = (hxx + hyy + hzz) / 3.0
                    dx_ = hxx - q
                    dy_ = hyy - q
                    dz_ = hzz - q
                    p2 = (dx_ * dx_ + dy_ * dy_ + dz_ * dz_
                          + 2.0 * (hxy * hxy + hxz * hxz + hyz * hyz))
                    l1 = q + 2.0 * math.sqrt(p2 / 6.0)
                    cur = max(out[z, y, x], 1e-2)
                    if l1 * inv_ref <= cur:
                        continue
                    # and the plate factor: |λ2|² + |λ3|² = ||H||² − λ1² >= ||H||² − l1²
                    rest = 3.0 * q * q + p2 - l1 * l1
                    if rest > 0.0:
                        rmin2 = 0.5 * rest / (l1 * l1)
                        if math.exp(-rmin2 * inv_2a2) * l1 * inv_ref <= cur:
                            continue
                e1, e2, e3 = _eig3(hxx, hxy, hxz, hyy, hyz, hzz)
                if want_hess:
                    hess_out[0, z, y, x] = e1
                    hess_out[1, z, y, x] = e2
                    hess_out[2, z, y, x] = e3
                s = _sheet_measure(e1, e2, e3, inv_ref, inv_2a2)
                if s > out[z, y, x]:
                    out[z, y, x] = s


def _check(volume: np.ndarray, sigmas_vox) -> tuple[np.ndarray, list[float]]:
    vol = np.asarray(volume)
    if vol.ndim != 3:
        raise InputError(f"sheetness: expected a 3D (z, y, x) volume, got shape {vol.shape}")
    if min(vol.shape) < 1 or vol.size == 0:
        raise InputError("sheetness: empty volume")
    sig = [float(s) for s in np.atleast_1d(np.asarray(sigmas_vox, dtype=np.float64))]
    if not sig or any(not np.isfinite(s) or s <= 0 for s in sig):
        raise InputError(f"sheetness: sigmas must be positive numbers, got {sigmas_vox!r}")
    vol = np.ascontiguousarray(vol, dtype=np.float32)
    if not np.isfinite(vol).all():
        raise InputError("sheetness: the volume holds NaN or infinite values")
    return vol, sig


def _kernels(sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    radius = max(1, int(_TRUNCATE * sigma + 0.5))
    return tuple(gaussian_kernel1d(sigma, o, radius).astype(np.float32) for o in (0, 1, 2))


def _hessian_pass(vol, sigma, out, *, sign, inv_ref, inv_2a2, hess_out=None):
    g0, g1, g2 = _kernels(sigma)
    bufs = [np.empty(vol.shape, np.float32) for _ in range(6)]
    _xy_pass(vol, g0, g1, g2, *bufs)
    want = hess_out is not None
    hess = hess_out if want else np.empty((3, 1, 1, 1), np.float32)
    _z_pass_sheet(*bufs, g0, g1, g2, np.float64(sign * sigma * sigma),
                  np.float64(inv_ref), np.float64(inv_2a2), out, hess, want)


def hessian_eigvals(volume: np.ndarray, sigma_vox: float) -> np.ndarray:
    """Eigenvalues of the σ²-normalised Hessian at one scale.

    Parameters
    ----------
    volume : numpy.ndarray
        3D (z, y, x) volume.
    sigma_vox : float
        Gaussian scale in voxels.

    Returns
    -------
    numpy.ndarray
        float32 ``(3, z, y, x)``, eigenvalues in descending order.
    """
    vol, sig = _check(volume, [sigma_vox])
    out = np.zeros(vol.shape, np.float32)
    hess = np.empty((3, *vol.shape), np.float32)
    _hessian_pass(vol, sig[0], out, sign=1.0, inv_ref=1.0, inv_2a2=2.0, hess_out=hess)
    return hess


def default_contrast(volume) -> float:
    """The contrast :func:`sheetness` scales by when none is given.

    ``p99.5 - p0.5`` of a sub-sample of about 2 million voxels (every ``step``-th along each
    axis). One rule for every backend: the chunked and GPU filters must scale exactly like this
    one to give the same result. Works on NumPy, dask and CuPy arrays; only the sub-sample is
    brought into host memory.
    """
    size = int(np.prod(volume.shape))
    step = max(1, round((size / 2e6) ** (1 / 3)))
    sub = volume[::step, ::step, ::step]
    if hasattr(sub, "compute"):  # dask
        sub = sub.compute()
    if hasattr(sub, "get"):  # CuPy
        sub = sub.get()
    sub = np.asarray(sub, dtype=np.float32)
    if not np.isfinite(sub).all():
        raise InputError("sheetness: the volume holds NaN or infinite values")
    lo, hi = np.percentile(sub, [0.5, 99.5])
    return float(hi - lo)


def sheetness(volume: np.ndarray, sigmas_vox: float | Sequence[float], *, dark: bool = True,
              contrast: float | None = None, alpha: float = 0.5) -> np.ndarray:
    """Multiscale sheetness of dark (or bright) thin sheets, in [0, 1].

    At each scale σ the Hessian H of the Gaussian-smoothed volume is scaled by σ² and its
    eigenvalues λ1 ≥ λ2 ≥ λ3 taken. A dark sheet has λ1 ≫ 0 and |λ2|, |λ3| ≪ λ1; the measure is

    ``S = exp(-R² / (2 α²)) · λ1 / (0.4 · contrast)``,  ``R = max(|λ2|, |λ3|) / λ1``

    (zero where the largest-magnitude eigenvalue is negative), clipped to 1 (values below 0.01
    are reported as 0), and the maximum over scales is kept. With σ = 1 an empty
    one-voxel-thick sheet whose intensity is ``contrast`` below its surroundings gives
    λ1 ≈ contrast / √(2π) ≈ 0.4 · contrast, hence S ≈ 1: the value reads as "fraction of a
    fully empty one-voxel crack's signal".

    Parameters
    ----------
    volume : numpy.ndarray
        3D (z, y, x) volume, any real dtype (computed in float32).
    sigmas_vox : float or sequence of float
        Gaussian scales in voxels.
    dark : bool
        Look for dark sheets (cracks) rather than bright ones.
    contrast : float, optional
        Intensity drop of an empty crack (e.g. electrolyte level minus void level). Defaults
        to the 0.5–99.5 percentile range of the volume.
    alpha : float
        Tolerance on the plate ratio R (Frangi's α): smaller is stricter.

    Returns
    -------
    numpy.ndarray
        float32 array of the volume's shape, values in [0, 1].
    """
    vol, sig = _check(volume, sigmas_vox)
    if contrast is None:
        contrast = default_contrast(vol)
    if not np.isfinite(contrast) or contrast <= 0:
        # a constant volume holds no sheet
        return np.zeros(vol.shape, np.float32)
    if alpha <= 0:
        raise InputError(f"sheetness: alpha must be positive, got {alpha}")
    out = np.zeros(vol.shape, np.float32)
    for s in sig:
        _hessian_pass(vol, s, out, sign=1.0 if dark else -1.0,
                      inv_ref=1.0 / (0.4 * contrast), inv_2a2=1.0 / (2.0 * alpha * alpha))
    return out


def set_threads(n: int | None) -> None:
    """Limit the threads the compiled kernels use (``None``: all cores)."""
    numba.set_num_threads(n or numba.config.NUMBA_NUM_THREADS)
