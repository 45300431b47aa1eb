"""Sanity checks on units before an analysis starts: a wrong unit fails at once, in words.

A voxel size of ``1e9m`` or times that go backwards are almost always a slip (a unit, a sign,
a metadata field read wrongly), and the results would be numbers without meaning. These are
refused with an :class:`~dendritect.errors.InputError` that says what is off and where it came
from; ``force=True`` (``--force-units``) accepts them with a warning instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dendritect.errors import InputError

__all__ = ["MAX_THICKNESS_UM", "VOXEL_RANGE_UM", "check_thickness", "check_units"]

#: Plausible voxel sizes: 10 nm (nano-CT) to 1 mm.
VOXEL_RANGE_UM = (0.01, 1000.0)
#: No solid-state cell is thicker than this (10 cm).
MAX_THICKNESS_UM = 1e5

_FORCE = "pass --force-units to use it anyway"


def _refuse_or_warn(problem: str, force: bool) -> list[str]:
    if not force:
        raise InputError(f"{problem}; {_FORCE}")
    return [f"{problem} (accepted: --force-units)"]


def check_units(voxel_size_um: Sequence[float], times_s: Sequence[float] | np.ndarray,
                shape_zyx: Sequence[int] | None = None, *, force: bool = False) -> list[str]:
    """Refuse implausible voxel sizes and times that do not increase.

    Parameters
    ----------
    voxel_size_um : (dz, dy, dx)
        Voxel size in micrometres.
    times_s : sequence of float
        Acquisition time of each step.
    shape_zyx : (nz, ny, nx), optional
        Shape of a scan (for the field of view in the message).
    force : bool
        Warn instead of refusing.

    Returns
    -------
    list of str
        Warnings (only with ``force``).
    """
    notes: list[str] = []
    lo, hi = VOXEL_RANGE_UM
    for axis, v in zip("zyx", voxel_size_um, strict=True):
        v = float(v)
        if not np.isfinite(v) or v <= 0:
            raise InputError(f"voxel size {v:g} µm ({axis}) is not a positive length; check "
                             "--voxel-size or the metadata")
        if not lo <= v <= hi:
            fov = ""
            if shape_zyx is not None:
                n = int(shape_zyx["zyx".index(axis)])
                fov = f", a field of view of {n * v / 1e3:.3g} mm"
            notes += _refuse_or_warn(
                f"voxel size {v:g} µm ({axis}{fov}) is outside 10 nm - 1 mm: check the unit of "
                "--voxel-size or of the metadata", force)
            break
    t = np.asarray(times_s, dtype=np.float64)
    if t.size and not np.isfinite(t).all():
        raise InputError("acquisition times hold a value that is not a number; check "
                         "--times-s, --interval or the metadata")
    if t.size > 1:
        d = np.diff(t)
        if (d <= 0).any():
            i = int(np.flatnonzero(d <= 0)[0])
            notes += _refuse_or_warn(
                f"acquisition times do not increase: step {i + 1} at {t[i + 1]:g} s follows "
                f"step {i} at {t[i]:g} s (check --times-s, --interval or the metadata)", force)
    return notes


def check_thickness(geometry: Any, voxel_size_um: Sequence[float], *,
                    force: bool = False) -> list[str]:
    """Refuse a cell whose electrolyte is thicker than :data:`MAX_THICKNESS_UM` (10 cm)."""
    dz = float(voxel_size_um[0])
    try:
        thick_vox = float(getattr(geometry, "thickness_vox", abs(
            float(geometry.z_cathode_vox) - float(geometry.z_anode_vox))))
    except (AttributeError, TypeError, ValueError):
        return []
    thick = thick_vox * dz
    if thick > MAX_THICKNESS_UM:
        return _refuse_or_warn(
            f"the electrolyte found is {thick / 1e4:.3g} cm thick ({thick_vox:.0f} slices of "
            f"{dz:g} µm), more than 10 cm: check the unit of --voxel-size or of the metadata",
            force)
    return []
