"""Building blocks shared by the crack-growth model and the current-density limits.

Units: lengths µm, stresses MPa, toughness MPa·√m, fluxes of lithium as an area per unit
crack width per second (µm²/s), current densities mA/cm².

The crack is a plane-strain edge crack of depth ``c`` (µm) measured from the anode
interface, filled with lithium from the mouth to depth ``l`` ≤ ``c`` at a uniform pressure
``p``. Sources of each relation are in ``docs/model.md``.
"""

from __future__ import annotations

import math

from dendritect.physics.constants import (
    EDGE_CMOD_FACTOR,
    KINK_90_FACTOR,
    lithium_velocity_um_s,
)
from dendritect.physics.materials import Lithium, Material

_SQRT3 = math.sqrt(3.0)


def load_fraction(crack_um: float, li_um: float) -> float:
    """(2/π)·arcsin(l/c): K of a crack loaded over the part next to its mouth.

    For faces loaded by a pressure over a length l of a crack of length c, the stress
    intensity is K = p·√(πc)·(2/π)·arcsin(l/c) (Tada, Paris & Irwin, Stress Analysis of
    Cracks Handbook, partially loaded Griffith crack), so a lithium wedge at the rear of the
    crack drives the dry tip ahead of it.
    """
    if crack_um <= 0.0:
        return 0.0
    r = min(1.0, max(0.0, li_um / crack_um))
    return 2.0 / math.pi * math.asin(r)


def stress_intensity(crack_um: float, li_um: float, pressure_MPa: float, y: float,
                     applied_stress_MPa: float = 0.0) -> float:
    """Mode-I stress intensity (MPa·√m) at the dry tip.

    K_I = Y·(p·(2/π)·arcsin(l/c) + σ_applied)·√(πc); σ_applied < 0 is compression acting
    across the crack plane (Fincher et al. 2022).
    """
    f = load_fraction(crack_um, li_um)
    return y * (pressure_MPa * f + applied_stress_MPa) * math.sqrt(math.pi * crack_um * 1e-6)


def kinked_stress_intensity(crack_um: float, li_um: float, pressure_MPa: float,
                            y: float) -> float:
    """K_I (MPa·√m) of a branch kinked by 90°, running parallel to the electrode.

    The in-plane applied stress is parallel to such a branch and does not close it; the
    kink reduces the lithium-driven K by cos³(45°) (Cotterell & Rice 1980).
    """
    return KINK_90_FACTOR * stress_intensity(crack_um, li_um, pressure_MPa, y, 0.0)


def compliance_um2_MPa(crack_um: float, li_um: float, y: float, modulus_MPa: float) -> float:
    """Area (per unit width) opened in the lithium-filled part per MPa of lithium pressure.

    Opening of a uniformly pressurised crack is (4p/E')·√(c²−x²); for a crack loaded only
    over its rear length l it is scaled by the load fraction (2/π)·arcsin(l/c) and
    integrated over 0..l; Y² accounts for the free surface of an edge crack.
    """
    c, lf = crack_um, min(li_um, crack_um)
    if c <= 0.0 or lf <= 0.0:
        return 0.0
    s = math.asin(min(1.0, lf / c))
    integral = 0.5 * (lf * math.sqrt(max(c * c - lf * lf, 0.0)) + c * c * s)
    return y * y * (2.0 / math.pi * s) * 4.0 / modulus_MPa * integral


def mouth_opening_um(crack_um: float, li_um: float, pressure_MPa: float, y: float,
                     modulus_MPa: float, initial_gap_um: float,
                     applied_stress_MPa: float = 0.0) -> float:
    """Crack-mouth opening: the flaw's own gap plus CMOD = 4·V·σ_net·c/E' (V = 1.454)."""
    net = pressure_MPa * load_fraction(crack_um, li_um) + applied_stress_MPa
    elastic = 4.0 * EDGE_CMOD_FACTOR * (y / 1.12) * max(net, 0.0) * crack_um / modulus_MPa
    return initial_gap_um + elastic


def slit_creep_flux_um2_s(delta_p_MPa: float, gap_um: float, path_um: float,
                          lithium: Lithium) -> float:
    """Volume flux per unit width of power-law-creeping lithium through a slit.

    Lithium creeps as ε̇ = ε̇0·(σ/σ0)^m (LePage et al. 2019; Masias et al. 2019). For a
    slit of gap h = 2b and length L driven by a pressure drop Δp (gradient G = Δp/L), the
    exact flux of a power-law fluid with von Mises equivalence (σ = √3 τ, γ̇ = √3 ε̇) is
    q = 2√3·ε̇0·(√3·G·/σ0)^m·b^(m+2)/(m+2). Positive ``delta_p_MPa`` gives a positive flux.
    """
    if gap_um <= 0.0 or delta_p_MPa == 0.0:
        return 0.0
    m = lithium.creep_exponent
    b = 0.5 * gap_um
    grad = abs(delta_p_MPa) / max(path_um, 1e-9)
    # Written as (√3·G·b/σ0)^m·b² to keep the power well scaled.
    q = (2.0 * _SQRT3 * lithium.creep_rate_per_s
         * (_SQRT3 * grad * b / lithium.creep_stress_MPa) ** m * b * b / (m + 2.0))
    return math.copysign(q, delta_p_MPa)


def focusing_factor(li_um: float, thickness_um: float, material: Material,
                    relative_density: float = 1.0) -> float:
    """Local current density at the lithium front over the mean current density.

    A lithium filament of length l shortens the ionic path through the electrolyte; with the
    interfacial resistance in series the front draws
    (R_int + L/σ)/(R_int + (L−l)/σ) times the mean current. A large interfacial resistance
    spreads the current evenly.
    """
    sigma = material.ionic_conductivity_S_cm * relative_density**1.5
    r_bulk = thickness_um * 1e-4 / sigma
    r_left = max(thickness_um - li_um, 0.0) * 1e-4 / sigma
    r_int = material.interfacial_resistance_ohm_cm2
    return (r_int + r_bulk) / max(r_int + r_left, 1e-12)


def plating_flux_um2_s(current_density_mA_cm2: float, capture_um: float, li_um: float,
                       thickness_um: float, material: Material, lithium: Lithium,
                       relative_density: float = 1.0) -> float:
    """Lithium plated into the flaw/crack per unit width and time (µm²/s).

    Faraday's law v = i·Ω/F over the footprint ``capture_um`` that feeds the crack, times the
    focusing factor; in a porous electrolyte the current is carried by the dense fraction
    (Bruggeman, i_local = i·ρ^-1.5).
    """
    v = lithium_velocity_um_s(current_density_mA_cm2, lithium.molar_volume_m3_mol)
    return (v * capture_um * relative_density**-1.5
            * focusing_factor(li_um, thickness_um, material, relative_density))


def dry_zone_um(k_MPa_sqrt_m: float, modulus_MPa: float, entry_gap_um: float) -> float:
    """Length of the dry crack tip ahead of the lithium.

    Near the tip the opening is δ(r) = (8K/E')·√(r/2π); lithium cannot follow into a gap
    narrower than ``entry_gap_um``, so it stops r = 2π·(δ·E'/8K)² behind the tip.
    """
    k = max(k_MPa_sqrt_m, 1e-12)
    return 2.0 * math.pi * (entry_gap_um * modulus_MPa / (8.0 * k)) ** 2 * 1e-6
