"""Forecast when the crack front will span the electrolyte.

The front depth of a dendrite crack grows roughly steadily under constant current once it has
started (Ning et al., Nature Materials 20, 1121 (2021), report fronts advancing through
Li6PS5Cl at a near-constant rate before the short). The forecast fits depth against time on the
growth phase with the Theil–Sen estimator (robust to a mis-segmented step), extrapolates to the
electrolyte thickness, and takes its uncertainty from a residual bootstrap. A power law
``depth = a (t - t0)^n`` is tried too when there are enough points, and kept only when it fits
clearly better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from dendritect.errors import InputError

__all__ = ["SpanForecast", "forecast_span"]

_N_BOOT = 200
_SEED = 12345  # fixed: the same data always gives the same forecast


@dataclass(frozen=True)
class SpanForecast:
    """When the front is forecast to reach the far interface.

    Attributes
    ----------
    time_s : float or None
        Forecast time (same clock as the input times); None when growth is not significant.
    sigma_s : float or None
        One-sigma uncertainty of ``time_s``.
    method : str
        ``"linear"``, ``"power-law"``, or ``"none: <why>"``.
    """

    time_s: float | None
    sigma_s: float | None
    method: str


def _none(why: str) -> SpanForecast:
    return SpanForecast(None, None, f"none: {why}")


def _linear_crossing(t: np.ndarray, d: np.ndarray, thickness: float) -> float | None:
    slope, intercept, _, _ = stats.theilslopes(d, t)
    if not slope > 0:
        return None
    return (thickness - intercept) / slope


def _power_law(t: np.ndarray, d: np.ndarray, t0_bounds: tuple[float, float], p0=None):
    """Least-squares fit of ``d = a (t - t0)^n``; returns the model and ``(a, n, t0)``."""
    def f(tt, a, n, t0):
        return a * np.clip(tt - t0, 0.0, None) ** n

    lo, hi = t0_bounds
    t0 = 0.5 * (lo + hi)
    a0 = float(np.max(d) / max(np.max(t) - t0, 1e-12))
    if p0 is None:
        p0 = (a0, 1.0, t0)
    popt, _ = optimize.curve_fit(f, t, d, p0=p0,
                                 bounds=([0.0, 0.2, lo], [np.inf, 5.0, hi]), maxfev=5000)
    return f, popt


def _power_crossing(popt, thickness: float) -> float | None:
    a, n, t0 = popt
    return float(t0 + (thickness / a) ** (1.0 / n)) if a > 0 else None


def forecast_span(times_s, front_depth_um, thickness_um) -> SpanForecast:
    """Forecast the time at which the crack front reaches ``thickness_um``.

    Parameters
    ----------
    times_s : array_like
        Step times, seconds, increasing. Only steps *before* the span should be given.
    front_depth_um : array_like
        Front depth at each step, micrometres (0 before cracks appear; NaN steps are skipped).
    thickness_um : float
        Electrolyte thickness (distance between the interfaces), micrometres.

    Returns
    -------
    SpanForecast
        ``time_s`` None when the front does not grow significantly (fewer than three growth
        points, or a slope whose 95 % Theil–Sen interval includes zero).
    """
    t = np.asarray(times_s, dtype=np.float64).ravel()
    d = np.asarray(front_depth_um, dtype=np.float64).ravel()
    if t.shape != d.shape:
        raise InputError(f"forecast: {t.size} times but {d.size} front depths")
    if not np.isfinite(thickness_um) or thickness_um <= 0:
        raise InputError(f"forecast: thickness must be positive, got {thickness_um!r}")
    ok = np.isfinite(t) & np.isfinite(d)
    t, d = t[ok], d[ok]
    if t.size and np.any(np.diff(t) <= 0):
        raise InputError("forecast: times must increase")
    # Growth phase: from the last step without any crack onwards (that step pins the start).
    zero = np.flatnonzero(d <= 0)
    start = int(zero[-1]) if zero.size else 0
    t, d = t[start:], d[start:]
    if t.size < 3 or np.count_nonzero(d > 0) < 2:
        return _none("too few steps with a growing front")
    if d[-1] >= thickness_um:
        return SpanForecast(float(t[-1]), 0.0, "reached")
    # The line is fitted to the steps with a front (a zero-depth step only pins the start).
    tp, dp = t[d > 0], d[d > 0]
    if tp.size < 3:
        return _none("too few steps with a growing front")
    slope, intercept, lo, _ = stats.theilslopes(dp, tp, alpha=0.95)
    if not lo > 0:
        return _none("front growth not significant")
    method = "linear"
    pred = intercept + slope * tp
    crossing = (thickness_um - intercept) / slope

    def refit(dd):
        return _linear_crossing(tp, dd, thickness_um)

    if tp.size >= 5:
        # The front starts between the last step without a crack and the first step with one.
        t0_lo = float(t[0]) if d[0] <= 0 else float(tp[0] - (tp[-1] - tp[0]))
        t0_hi = float(tp[0]) - 1e-6 * float(tp[-1] - tp[0])
        try:
            f, popt = _power_law(tp, dp, (t0_lo, t0_hi))
            pp = f(tp, *popt)
            rss_lin = float(np.sum((dp - pred) ** 2))
            rss_pow = float(np.sum((dp - pp) ** 2))
            # The power law holds the line (n = 1): keep it only when an F-test says the extra
            # parameter is needed (p < 0.01).
            dof = tp.size - 3
            fstat = (rss_lin - rss_pow) / max(rss_pow / dof, 1e-300)
            if stats.f.sf(fstat, 1, dof) < 0.01 and _power_crossing(popt, thickness_um):
                method = "power-law"
                pred = pp
                crossing = _power_crossing(popt, thickness_um)
                best = tuple(popt)

                def refit(dd):
                    try:
                        return _power_crossing(_power_law(tp, dd, (t0_lo, t0_hi),
                                                           p0=best)[1],
                                               thickness_um)
                    except (RuntimeError, ValueError):
                        return None
        except (RuntimeError, ValueError):
            pass
    resid = dp - pred
    rng = np.random.default_rng(_SEED)
    boots = []
    for _ in range(_N_BOOT):
        c = refit(pred + rng.choice(resid, size=resid.size, replace=True))
        if c is not None and np.isfinite(c):
            boots.append(c)
    if len(boots) >= _N_BOOT // 2:
        # Robust spread: half the 16-84 % range, floored by the time step so that a perfect fit
        # does not claim zero uncertainty.
        q16, q84 = np.percentile(boots, [16, 84])
        sigma = 0.5 * float(q84 - q16)
    else:
        sigma = float("inf")
    step = float(np.median(np.diff(tp)))
    sigma = max(sigma, 0.5 * step)
    return SpanForecast(float(crossing), float(sigma), method)
