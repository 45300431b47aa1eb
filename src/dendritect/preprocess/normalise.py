"""Grey-level gain/offset drift between the steps of a series.

Source intensity, detector response and reconstruction scaling drift between operando scans;
after registration each step is mapped onto the grey levels of the first with a linear
``gain * v + offset``, fitted so that a few per cent of changed voxels (new cracks, plated
lithium) and the noise of both scans bias neither gain nor offset.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dendritect.errors import InputError

__all__ = ["MAX_SAMPLES", "SMOOTH_VOX", "fit_gain_offset", "fit_samples", "match_intensity"]

_QUANTILES = np.linspace(5.0, 95.0, 37)
#: Most voxel pairs the gain/offset fit samples (every k-th masked voxel in C order).
MAX_SAMPLES = 2_000_000
#: Gaussian sigma (voxels) both volumes are smoothed with before they are sampled.
SMOOTH_VOX = 1.5


def _sample(a: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    vals = a[mask] if mask is not None else a.ravel()
    step = max(1, vals.size // MAX_SAMPLES)
    return vals[::step].astype(np.float64)


def fit_gain_offset(volume: np.ndarray, reference: np.ndarray, *,
                    mask: np.ndarray | None = None) -> tuple[float, float]:
    """Gain and offset with ``gain * volume + offset ≈ reference``.

    The steps are registered, so voxels correspond: the fit is a reduced-major-axis line
    through the voxel pairs (symmetric in the two scans, hence not biased toward zero gain by
    the noise of either, unlike least squares), refitted without pairs whose residual exceeds
    3.5 robust standard deviations (new cracks, plated lithium). Where the scans do not
    correlate (e.g. not registered) quantiles are matched instead.

    Parameters
    ----------
    volume, reference : numpy.ndarray
        Registered volumes of the same shape.
    mask : numpy.ndarray of bool, optional
        Voxels to fit on (e.g. electrolyte and electrodes).

    Returns
    -------
    tuple of float
        ``(gain, offset)``.
    """
    vol = np.asarray(volume)
    ref = np.asarray(reference)
    if vol.shape != ref.shape:
        raise InputError(f"match_intensity: shapes differ ({vol.shape} vs {ref.shape})")
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != vol.shape:
            raise InputError(f"match_intensity: mask shape {m.shape} differs from {vol.shape}")
        if m.sum() < 100:
            raise InputError("match_intensity: mask selects fewer than 100 voxels")
    # smoothing first: the noise of the two scans differs (it follows photon counts, not the
    # grey-level gain) and would otherwise bias the fitted gain; the grey levels of the phases
    # and their blurred edges remain
    x = _sample(ndimage.gaussian_filter(vol.astype(np.float32), SMOOTH_VOX), m)
    y = _sample(ndimage.gaussian_filter(ref.astype(np.float32), SMOOTH_VOX), m)
    return fit_samples(x, y)


def fit_samples(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The robust gain/offset fit of :func:`fit_gain_offset` on sampled voxel pairs.

    Parameters
    ----------
    x, y : numpy.ndarray
        Smoothed grey levels of the step and of the reference at the same voxels.

    Returns
    -------
    tuple of float
        ``(gain, offset)`` with ``gain * x + offset ≈ y``.
    """
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("match_intensity: the volume holds NaN or infinite values")
    if np.ptp(x) <= 0 or np.ptp(y) <= 0:
        # flat: only an offset can be fitted
        return 1.0, float(np.median(y) - np.median(x))
    keep = np.ones(x.size, bool)
    gain = offset = float("nan")
    for _ in range(4):
        xs, ys = x[keep], y[keep]
        if xs.size < 100:
            break
        r = np.corrcoef(xs, ys)[0, 1]
        if not np.isfinite(r) or r < 0.5:
            return _quantile_fit(x, y)
        gain = float(np.std(ys) / np.std(xs))
        offset = float(np.mean(ys) - gain * np.mean(xs))
        res = y - (gain * x + offset)
        sd = 1.4826 * float(np.median(np.abs(res[keep] - np.median(res[keep]))))
        new = np.abs(res) <= 3.5 * max(sd, 1e-12 * np.ptp(y))
        if np.array_equal(new, keep):
            break
        keep = new
    if not np.isfinite(gain) or gain <= 0:
        return _quantile_fit(x, y)
    return gain, offset


def _quantile_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares through matched quantiles (a Q–Q line)."""
    qx = np.percentile(x, _QUANTILES)
    qy = np.percentile(y, _QUANTILES)
    if np.ptp(qx) <= 0:
        return 1.0, float(np.median(y) - np.median(x))
    gain, offset = np.polyfit(qx, qy, 1)
    if not np.isfinite(gain) or gain <= 0:
        raise InputError("match_intensity: could not fit a positive gain between steps")
    return float(gain), float(offset)


def match_intensity(volume: np.ndarray, reference: np.ndarray, *,
                    mask: np.ndarray | None = None) -> np.ndarray:
    """Map ``volume``'s grey levels onto ``reference``'s with a fitted gain and offset.

    Parameters
    ----------
    volume, reference : numpy.ndarray
        Registered 3D volumes of the same shape.
    mask : numpy.ndarray of bool, optional
        Voxels to fit on.

    Returns
    -------
    numpy.ndarray
        float32 ``gain * volume + offset``.
    """
    gain, offset = fit_gain_offset(volume, reference, mask=mask)
    out = np.asarray(volume, dtype=np.float32) * np.float32(gain)
    out += np.float32(offset)
    return out
