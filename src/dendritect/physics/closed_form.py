"""Closed-form estimates (microseconds each): plating stress, lithium thickness, critical
flaws, and the plating and stripping current limits.

Units are in the names. Sources are given per function and in ``docs/model.md``.
:func:`check_finite` and :func:`critical_pressure_MPa` are defined in
:mod:`dendritect.physics.limits` (below this module and :mod:`dendritect.physics.ecm`) and
re-exported here; :func:`critical_current_density` wraps the cell model's CCD from there.
"""

from __future__ import annotations

import math
from typing import Any

from dendritect.errors import InputError
from dendritect.physics import limits
from dendritect.physics.constants import (
    FARADAY_C_MOL,
    LI_MOLAR_VOLUME_M3_MOL,
    geometry_factor,
)
from dendritect.physics.limits import check_finite, critical_pressure_MPa
from dendritect.physics.materials import Material, get_lithium

__all__ = [
    "check_finite",
    "critical_current_density",
    "critical_flaw_um",
    "critical_overpotential_mV",
    "critical_pressure_MPa",
    "lithium_thickness_um",
    "plating_pressure_MPa",
    "pressure_overpotential_mV",
    "stripping_limit_mA_cm2",
]


def plating_pressure_MPa(overpotential_mV: float,
                         molar_volume_m3_mol: float = LI_MOLAR_VOLUME_M3_MOL) -> float:
    """Pressure that an overpotential can build in lithium plated in a confined space.

    p = F·η/Ω_Li (Porz et al. 2017, Adv. Energy Mater. 7, 1701003; Ω_Li = 1.30e-5 m³/mol):
    10 mV gives 74.2 MPa.
    """
    eta = check_finite("overpotential_mV", overpotential_mV)
    return FARADAY_C_MOL * eta * 1e-3 / molar_volume_m3_mol * 1e-6


def pressure_overpotential_mV(pressure_MPa: float,
                              molar_volume_m3_mol: float = LI_MOLAR_VOLUME_M3_MOL) -> float:
    """Overpotential needed to plate lithium against a pressure: η = p·Ω_Li/F."""
    p = check_finite("pressure_MPa", pressure_MPa)
    return p * 1e6 * molar_volume_m3_mol / FARADAY_C_MOL * 1e3


def lithium_thickness_um(capacity_mAh_cm2: float, molar_volume_cm3_mol: float = 13.0) -> float:
    """Thickness of lithium plated by an areal capacity (Faraday's law).

    t = Q·V_m/F with V_m = 13.0 cm³/mol: 0.3 mAh/cm² gives 1.455 µm.
    """
    q = check_finite("capacity_mAh_cm2", capacity_mAh_cm2)
    return q * 3.6 / FARADAY_C_MOL * molar_volume_cm3_mol * 1e4


def critical_flaw_um(pressure_MPa: float, k_ic_MPa_sqrt_m: float, geometry: str = "edge",
                     applied_stress_MPa: float = 0.0) -> float:
    """Smallest lithium-filled flaw that cracks under a lithium pressure.

    From K_I = Y·(p + σ)·√(πa) = K_IC (Porz et al. 2017; Ning et al. 2023):
    a_c = (K_IC / (Y·(p + σ)))² / π. LLZO (K_IC 1.25 MPa√m) at 1 GPa with an edge flaw
    (Y = 1.12): 0.40 µm. Returns ``inf`` when the net load does not open the flaw.
    """
    p = check_finite("pressure_MPa", pressure_MPa)
    k = check_finite("k_ic_MPa_sqrt_m", k_ic_MPa_sqrt_m, positive=True)
    net = p + check_finite("applied_stress_MPa", applied_stress_MPa)
    if net <= 0:
        return math.inf
    y = geometry_factor(geometry)
    return (k / (y * net)) ** 2 / math.pi * 1e6


def critical_overpotential_mV(flaw_um: float, k_ic_MPa_sqrt_m: float, geometry: str = "edge",
                              applied_stress_MPa: float = 0.0) -> float:
    """Overpotential whose plating stress cracks a flaw: η_c = p_c·Ω_Li/F."""
    return pressure_overpotential_mV(
        critical_pressure_MPa(flaw_um, k_ic_MPa_sqrt_m, geometry, applied_stress_MPa))


def stripping_limit_mA_cm2(stack_pressure_MPa: float, void_um: float = 0.1,
                           overrides: dict | None = None) -> float:
    """Creep term of the stripping limit: the current at which creep still closes a void.

    This is the void-closure building block only; the cell's stripping limit adds vacancy
    diffusion and the current focusing of the interface
    (:func:`dendritect.physics.ecm.stripping_limit_mA_cm2`).

    Kasemchainan et al. 2019 (Nat. Mater. 18, 1105): voids form at the stripped electrode
    when lithium is removed faster than creep under the stack pressure brings it back. A
    spherical void of radius r in an incompressible power-law creeping solid under a remote
    pressure p closes at ṙ/r = ½·ε̇0·((3/(2m))·p/σ0)^m (the exact radial-flow solution; the
    hydrostatic limit of Budiansky, Hutchinson & Slutsky 1982, Mechanics of Solids);
    stripping recedes the interface at v = i·Ω/F, so voids survive above i = (F/Ω)·r·ṙ/r.
    Rises steeply (as p^m) with stack pressure.
    """
    p = check_finite("stack_pressure_MPa", stack_pressure_MPa)
    if p < 0:
        raise InputError(f"stack_pressure_MPa: must not be negative, got {stack_pressure_MPa!r}")
    r = check_finite("void_um", void_um, positive=True)
    li = get_lithium(overrides)
    m = li.creep_exponent
    rate = 0.5 * li.creep_rate_per_s * (1.5 / m * p / li.creep_stress_MPa) ** m
    v_m_s = r * 1e-6 * rate
    return v_m_s * FARADAY_C_MOL / li.molar_volume_m3_mol / 10.0


def critical_current_density(electrolyte: str | Material = "Li6PS5Cl", *,
                             stack_pressure_MPa: float = 5.0, pore_um: float = 3.0,
                             relative_density: float = 1.0, thickness_um: float = 500.0,
                             void_um: float = 0.1, temperature_C: float = 25.0,
                             overrides: dict | None = None) -> dict[str, Any]:
    """Critical current density: the lower of the plating and stripping limits.

    The cell model's closed forms (:func:`dendritect.physics.ecm.critical_current_density`):
    the plating limit is the current at which a lithium-filled pore of size ``pore_um``
    reaches its critical pressure, against the overpotential ceiling p_stack + F·η/Ω and
    extrusion by creep; the stripping limit is vacancy diffusion plus creep under the stack
    pressure, divided by the current focusing of the interface.

    Returns
    -------
    dict
        ``ccd_mA_cm2``, ``plating_limit_mA_cm2``, ``stripping_limit_mA_cm2``,
        ``critical_pressure_MPa`` and ``limited_by`` (``"plating"`` or ``"stripping"``),
        with the terms of each limit.
    """
    rho = check_finite("relative_density", relative_density, positive=True)
    if rho > 1.0:
        raise InputError(f"relative_density: must be in (0, 1], got {relative_density!r}")
    return limits.critical_current_density(
        electrolyte, stack_pressure_MPa=stack_pressure_MPa, pore_um=pore_um,
        relative_density=rho, thickness_um=thickness_um, temperature_C=temperature_C,
        void_um=void_um, overrides=overrides)
