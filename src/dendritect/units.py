"""Parse user-facing quantities with pint, at the edges of the program.

Everything inside the library works in plain floats whose unit is in the name
(``_um``, ``_s``, ``_MPa``...). These helpers turn what a user types
(``"0.65um"``, ``"650 nm"``, ``"1,0.65,0.65um"``, ``"10min"``, ``"1mA/cm2"``) into
those floats, and raise :class:`~dendritect.errors.InputError` on nonsense.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import pint

from dendritect.errors import InputError

__all__ = [
    "parse_duration_s",
    "parse_length_um",
    "parse_quantity",
    "parse_times_s",
    "parse_voxel_size_um",
    "ureg",
]


@lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:
    reg = pint.UnitRegistry()
    # Common spellings in microscopy metadata and cycler files.
    reg.define("micron = micrometer = µm = um")
    return reg


ureg = _registry()

_MICRO = re.compile(r"[µμ]")


def _normalise(text: str) -> str:
    text = _MICRO.sub("u", text.strip())
    # "cm2" -> "cm**2", "mA/cm2" -> "mA/cm**2"
    return re.sub(r"([a-zA-Z])(\d)\b", r"\1**\2", text)


def parse_quantity(value: str | float | int, unit: str, *, name: str = "value",
                   default_unit: str | None = None) -> float:
    """Parse ``value`` and return its magnitude in ``unit``.

    Parameters
    ----------
    value : str or float
        What the user gave, e.g. ``"10 mV"``. A bare number is taken in ``default_unit``
        (or ``unit`` when that is not given).
    unit : str
        The unit to convert to, e.g. ``"MPa"``.
    name : str
        The option's name, used in error messages.
    default_unit : str, optional
        Unit of a bare number.

    Returns
    -------
    float
        The magnitude in ``unit``.

    Raises
    ------
    InputError
        When the text is not a quantity of the right dimension, or not finite.
    """
    reg = _registry()
    target = reg.Unit(_normalise(unit))
    if isinstance(value, (int, float)):
        q = reg.Quantity(float(value), reg.Unit(_normalise(default_unit or unit)))
    else:
        text = _normalise(str(value))
        if not text:
            raise InputError(f"{name}: empty value")
        try:
            q = reg.Quantity(text)
        except Exception as exc:  # pint raises many different exception types
            raise InputError(f"{name}: cannot read {value!r} as a quantity ({exc})") from None
        if not isinstance(q, pint.Quantity) or (q.dimensionless and not target.dimensionless):
            mag = float(q.magnitude if isinstance(q, pint.Quantity) else q)
            q = reg.Quantity(mag, reg.Unit(_normalise(default_unit or unit)))
    try:
        out = float(q.to(target).magnitude)
    except pint.DimensionalityError:
        raise InputError(
            f"{name}: {value!r} is not in units compatible with {unit} "
            f"(got {q.units:~P})"
        ) from None
    if not math.isfinite(out):
        raise InputError(f"{name}: {value!r} is not a finite number")
    return out


def parse_length_um(value: str | float, *, name: str = "length", positive: bool = True) -> float:
    """Parse a length (``"0.65um"``, ``"650 nm"``; bare numbers are µm) into micrometres."""
    out = parse_quantity(value, "um", name=name)
    if positive and out <= 0:
        raise InputError(f"{name}: must be a positive length, got {value!r}")
    return out


def parse_voxel_size_um(value: str | float | tuple | list, *, name: str = "--voxel-size"
                        ) -> tuple[float, float, float]:
    """Parse one voxel size or three ``z,y,x`` sizes into a ``(dz, dy, dx)`` tuple in µm.

    ``"0.65um"`` gives ``(0.65, 0.65, 0.65)``; ``"1,0.65,0.65um"`` gives ``(1.0, 0.65, 0.65)``:
    a unit written once at the end applies to every bare number before it.
    """
    if isinstance(value, (tuple, list)):
        parts = [str(v) for v in value]
    elif isinstance(value, (int, float)):
        parts = [str(value)]
    else:
        parts = [p for p in str(value).split(",") if p.strip()]
    if len(parts) not in (1, 3):
        raise InputError(f"{name}: give one length or three (z,y,x), got {value!r}")
    m = re.search(r"[a-zA-Zµμ]+\s*$", parts[-1].strip())
    tail_unit = m.group(0) if m else None
    sizes = []
    for p in parts:
        p = p.strip()
        if tail_unit and re.fullmatch(r"[-+0-9.eE]+", p):
            p = p + tail_unit
        sizes.append(parse_length_um(p, name=name))
    if len(sizes) == 1:
        sizes = sizes * 3
    return (sizes[0], sizes[1], sizes[2])


def parse_duration_s(value: str | float, *, name: str = "duration") -> float:
    """Parse a duration (``"10min"``, ``"2 h"``; bare numbers are seconds) into seconds."""
    out = parse_quantity(value, "s", name=name)
    if out < 0:
        raise InputError(f"{name}: must not be negative, got {value!r}")
    return out


def parse_times_s(value: str | list[float], *, name: str = "--times-s") -> list[float]:
    """Parse a comma-separated list of step times in seconds (``"0,600,1200"``)."""
    parts = value if isinstance(value, list) else [p for p in str(value).split(",") if p.strip()]
    if not parts:
        raise InputError(f"{name}: empty list")
    return [parse_duration_s(p, name=name) for p in parts]
