"""Find the short circuit in cycler data: the moment lithium bridges the electrolyte.

In a Li|solid electrolyte|Li symmetric cell plated at constant current, the cell voltage is
the plating overpotential: tens to hundreds of millivolts, its sign set by the current's
direction. When a lithium filament reaches the other electrode the cell becomes a resistor
of almost no resistance: ``|V|`` collapses abruptly to about zero while the current still
flows, and it stays there (Kasemchainan et al., *Nature Materials* 18, 1105, 2019; Ning et
al., *Nature Materials* 20, 1121, 2021).

The criterion is relative, not a fixed voltage: a sample is *collapsed* when ``|V|`` is
below ``drop_fraction`` of the median ``|V|`` over the preceding ``window_s`` of
current-carrying samples. A short is the first collapsed sample that

1. follows, within ``fall_within_s`` (or at the previous sample), a sample at no less than
   half that median (the drop is abrupt, not a slow drift), and
2. starts a run of current-carrying samples that all stay collapsed for at least
   ``min_duration_s`` and ``min_points`` samples (or until the last current-carrying
   sample of the record).

Samples at rest (``|I|`` below ``min_current_mA``) are left out altogether, so rests, where a
symmetric cell relaxes to 0 V, cannot trigger; nor can a current reversal, where ``|V|`` only
passes through zero; nor normal cycling of a full cell, whose voltage stays at 2 to 4 V.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dendritect.errors import InputError

__all__ = ["ShortCircuit", "detect_short"]

# A collapse counts as abrupt when, just before it, |V| was at least this fraction of the
# reference (median |V| of the preceding window).
_ABRUPT_FROM = 0.5


@dataclass(frozen=True)
class ShortCircuit:
    """The short circuit found in cycler data, or why none was found.

    Attributes
    ----------
    time_s : float or None
        Time of the first collapsed sample (cycler clock, s); None when there is no short.
    index : int or None
        Row position (``df.iloc``) of that sample.
    voltage_before_V : float or None
        Median voltage (signed) over the reference window before the short.
    voltage_after_V : float or None
        Median voltage (signed) over the collapsed run.
    reason : str
        One line that says what was found, or why nothing was.
    """

    time_s: float | None
    index: int | None
    voltage_before_V: float | None
    voltage_after_V: float | None
    reason: str

    @property
    def detected(self) -> bool:
        """True when a short was found."""
        return self.time_s is not None


def _none(reason: str) -> ShortCircuit:
    return ShortCircuit(None, None, None, None, reason)


def _check_params(drop_fraction: float, window_s: float, min_duration_s: float,
                  fall_within_s: float, min_reference_V: float, min_points: int) -> None:
    if not 0.0 < drop_fraction < _ABRUPT_FROM:
        raise InputError(f"drop_fraction must be in (0, {_ABRUPT_FROM}), got {drop_fraction}")
    for name, val in (("window_s", window_s), ("min_duration_s", min_duration_s),
                      ("fall_within_s", fall_within_s), ("min_reference_V", min_reference_V)):
        if not (math.isfinite(val) and val >= 0):
            raise InputError(f"{name} must be a finite number >= 0, got {val}")
    if window_s <= 0:
        raise InputError(f"window_s must be positive, got {window_s}")
    if min_points < 1:
        raise InputError(f"min_points must be at least 1, got {min_points}")


def _reference(t: np.ndarray, a: np.ndarray, window_s: float, min_points: int) -> np.ndarray:
    """Median of ``a`` over the samples in ``[t - window_s, t)``.

    Where that window holds fewer than ``min_points`` samples (just after a long rest) the
    last ``min_points`` samples before are used instead, so that a short at the start of a
    half-cycle still has a reference.
    """
    s = pd.Series(a, index=pd.to_timedelta(t, unit="s"))
    roll = s.rolling(pd.Timedelta(seconds=window_s), closed="left")
    med_t = roll.median().to_numpy()
    n_t = roll.count().to_numpy()
    med_n = pd.Series(a).rolling(min_points, min_periods=min_points).median().shift(1).to_numpy()
    return np.where(n_t >= min_points, med_t, med_n)


def detect_short(df: pd.DataFrame, *, drop_fraction: float = 0.2, window_s: float = 600.0,
                 min_duration_s: float = 60.0, fall_within_s: float = 60.0,
                 min_current_mA: float | None = None, min_reference_V: float = 0.002,
                 min_points: int = 3) -> ShortCircuit:
    """Find the first sustained, abrupt collapse of ``|V|`` while current flows.

    Parameters
    ----------
    df : pandas.DataFrame
        Cycler table with ``time_s``, ``voltage_V``, ``current_mA``
        (:func:`dendritect.io.echem.read_echem`).
    drop_fraction : float
        ``|V|`` counts as collapsed below this fraction of the reference (default 0.2).
    window_s : float
        Length of the reference window before each sample, seconds (default 600).
    min_duration_s : float
        How long the collapse must last, seconds of record (default 60).
    fall_within_s : float
        The fall from at least half the reference must happen within this time, seconds
        (default 60); the previous current-carrying sample always counts.
    min_current_mA : float, optional
        ``|I|`` at or below this is a rest. Default: 5 % of the 99th percentile of ``|I|``.
    min_reference_V : float
        No short is sought where the reference ``|V|`` is below this (noise level, default
        2 mV).
    min_points : int
        Fewest samples in the reference window and in the collapsed run (default 3).

    Returns
    -------
    ShortCircuit
        ``time_s``/``index`` of the first collapsed sample, or None with the reason.

    Raises
    ------
    InputError
        When a column is missing or a parameter makes no sense.
    """
    _check_params(drop_fraction, window_s, min_duration_s, fall_within_s, min_reference_V,
                  min_points)
    for c in ("time_s", "voltage_V", "current_mA"):
        if c not in df.columns:
            raise InputError(f"cycler table: missing column {c!r}")
    t = df["time_s"].to_numpy(np.float64)
    v = df["voltage_V"].to_numpy(np.float64)
    cur = df["current_mA"].to_numpy(np.float64)
    pos = np.arange(len(df))
    ok = np.isfinite(t) & np.isfinite(v)
    t, v, cur, pos = t[ok], v[ok], cur[ok], pos[ok]
    if len(t) == 0:
        return _none("no samples with a time and a voltage")
    if not np.isfinite(cur).any():
        return _none("no current data: a short cannot be told from a rest")
    if np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, v, cur, pos = t[order], v[order], cur[order], pos[order]

    t_last = float(t[-1])
    abs_i = np.abs(cur)
    if min_current_mA is None:
        min_current_mA = 0.05 * float(np.nanpercentile(abs_i, 99))
    on = np.isfinite(abs_i) & (abs_i > min_current_mA)
    if not on.any():
        return _none("no current flows in the record")
    t, v, cur, pos = t[on], v[on], cur[on], pos[on]
    a = np.abs(v)
    n = len(t)
    if n < 2 * min_points:
        return _none(f"too few current-carrying samples ({n}) to look for a short")

    ref = _reference(t, a, window_s, min_points)
    with np.errstate(invalid="ignore"):
        cand = np.flatnonzero((ref >= min_reference_V) & (a < drop_fraction * ref))
    brief = 0
    for k in cand:
        if k == 0:
            continue
        limit = drop_fraction * ref[k]
        # 1. abrupt: a high sample just before (the previous one, or any within fall_within_s)
        k0 = min(int(np.searchsorted(t, t[k] - fall_within_s, side="left")), k - 1)
        if a[k0:k].max() < _ABRUPT_FROM * ref[k]:
            continue
        # 2. sustained: every sample until min_duration_s later stays collapsed
        k_end = int(np.searchsorted(t, t[k] + min_duration_s, side="left"))
        run_end = min(k_end + 1, n)  # include the first sample at/after the duration
        run = a[k:run_end]
        above = np.flatnonzero(run >= limit)
        if above.size:
            brief += 1
            continue
        if run.size < min_points:
            brief += 1
            continue
        until_end = k_end >= n
        lasted = t[run_end - 1] - t[k]
        before = _window_values(t, v, k, window_s, min_points)
        v_before = float(np.median(before))
        v_after = float(np.median(v[k:run_end]))
        reason = (
            f"|V| fell from {abs(v_before) * 1e3:.3g} mV to {abs(v_after) * 1e3:.3g} mV at "
            f"t = {t[k]:g} s (below {drop_fraction:.0%} of its median over the preceding "
            f"{window_s:g} s) and stayed there for {lasted:g} s"
            + (" (until the record ends)" if until_end and t[-1] >= t_last else
               " (until the last current-carrying sample)" if until_end else "")
            + f" while {cur[k]:.3g} mA flowed"
        )
        return ShortCircuit(float(t[k]), int(pos[k]), v_before, v_after, reason)
    extra = f"; {brief} brief dip(s) ignored" if brief else ""
    return _none(f"no sustained, abrupt collapse of |V| while current flows{extra}")


def _window_values(t: np.ndarray, v: np.ndarray, k: int, window_s: float,
                   min_points: int) -> np.ndarray:
    """Signed voltages of the reference window before sample ``k`` (as in :func:`_reference`)."""
    k0 = int(np.searchsorted(t, t[k] - window_s, side="left"))
    if k - k0 >= min_points:
        return v[k0:k]
    return v[max(0, k - min_points):k]
