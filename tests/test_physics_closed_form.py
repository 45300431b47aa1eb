"""Closed forms against analytic values and the literature table (physics/data/validation.csv)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dendritect.errors import InputError
from dendritect.physics import closed_form as cf
from dendritect.physics.constants import GEOMETRY_FACTORS, geometry_factor


def test_plating_pressure_is_linear_and_inverts() -> None:
    # p = F·η/Ω exactly: 96485.33212 * 0.010 / 1.30e-5 Pa.
    assert cf.plating_pressure_MPa(10.0) == pytest.approx(96485.33212 * 0.01 / 1.3e-5 / 1e6)
    assert cf.plating_pressure_MPa(20.0) == pytest.approx(2 * cf.plating_pressure_MPa(10.0))
    assert cf.pressure_overpotential_mV(cf.plating_pressure_MPa(37.0)) == pytest.approx(37.0)


def test_lithium_thickness_scales_with_capacity() -> None:
    assert cf.lithium_thickness_um(1.0) == pytest.approx(3.6 / 96485.33212 * 13.0 * 1e4)
    assert cf.lithium_thickness_um(0.0) == 0.0


@pytest.mark.parametrize("geometry", list(GEOMETRY_FACTORS))
def test_critical_flaw_and_pressure_are_inverse(geometry: str) -> None:
    a = cf.critical_flaw_um(300.0, 1.25, geometry)
    assert cf.critical_pressure_MPa(a, 1.25, geometry) == pytest.approx(300.0)
    # K at the critical flaw equals K_IC.
    k = geometry_factor(geometry) * 300.0 * math.sqrt(math.pi * a * 1e-6)
    assert k == pytest.approx(1.25)


def test_critical_flaw_scales_as_inverse_square_of_pressure() -> None:
    assert cf.critical_flaw_um(500.0, 1.0) == pytest.approx(4 * cf.critical_flaw_um(1000.0, 1.0))


def test_compression_raises_critical_pressure_and_can_close_the_flaw() -> None:
    free = cf.critical_pressure_MPa(5.0, 1.25)
    assert cf.critical_pressure_MPa(5.0, 1.25, applied_stress_MPa=-200.0) == pytest.approx(
        free + 200.0)
    assert math.isinf(cf.critical_flaw_um(100.0, 1.25, applied_stress_MPa=-150.0))


def test_critical_overpotential_round_trip() -> None:
    eta = cf.critical_overpotential_mV(0.4, 1.25)
    assert cf.critical_flaw_um(cf.plating_pressure_MPa(eta), 1.25) == pytest.approx(0.4)


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError, match="geometry"):
        cf.critical_flaw_um(100.0, 1.0, "triangle")
    with pytest.raises(InputError, match="flaw_um"):
        cf.critical_pressure_MPa(-1.0, 1.0)
    with pytest.raises(InputError, match="k_ic"):
        cf.critical_flaw_um(100.0, 0.0)
    with pytest.raises(InputError, match="stack_pressure"):
        cf.stripping_limit_mA_cm2(-1.0)
    with pytest.raises(InputError, match="relative_density"):
        cf.critical_current_density("LLZO", relative_density=1.5)


def test_stripping_limit_follows_power_law_creep() -> None:
    # i ∝ p^m with the default creep exponent 5 (void closure, Budiansky et al. 1982).
    ratio = cf.stripping_limit_mA_cm2(4.0) / cf.stripping_limit_mA_cm2(2.0)
    assert ratio == pytest.approx(2.0**5)
    assert cf.stripping_limit_mA_cm2(0.0) == 0.0


def test_ccd_is_the_lower_limit() -> None:
    d = cf.critical_current_density("Li6PS5Cl", stack_pressure_MPa=5.0, pore_um=3.0)
    assert d["ccd_mA_cm2"] == min(d["plating_limit_mA_cm2"], d["stripping_limit_mA_cm2"])
    assert d["ccd_mA_cm2"] > 0
    # A stack pressure above the flaw's critical pressure cracks it without current.
    hi = cf.critical_current_density("Li6PS5Cl", stack_pressure_MPa=200.0, pore_um=3.0)
    assert hi["plating_limit_mA_cm2"] == 0.0


def test_void_closure_rate_matches_radial_flow_integral() -> None:
    # Independent check of ṙ/r: integrate p = ∫_r^∞ 2σ_e(ρ) dρ/ρ numerically for the radial
    # flow field, with σ_e = σ0·(ε̇_e/ε̇0)^(1/m) and ε̇_e = 2·ṙ·r²/ρ³, and invert for ṙ.
    from scipy.integrate import quad
    from scipy.optimize import brentq

    from dendritect.physics.constants import FARADAY_C_MOL, LI_MOLAR_VOLUME_M3_MOL
    from dendritect.physics.materials import get_lithium

    li = get_lithium()
    r, p = 1.0, 4.0

    def pressure(rdot: float) -> float:
        def integrand(rho: float) -> float:
            rate = 2 * rdot * r**2 / rho**3
            return 2 * li.creep_stress_MPa * (rate / li.creep_rate_per_s) ** (
                1 / li.creep_exponent) / rho

        return quad(integrand, r, np.inf)[0]

    rdot = brentq(lambda x: pressure(x) - p, 1e-12, 1e3)  # µm/s for r = 1 µm
    expected = rdot * 1e-6 * FARADAY_C_MOL / LI_MOLAR_VOLUME_M3_MOL / 10.0
    assert cf.stripping_limit_mA_cm2(p, void_um=r) == pytest.approx(expected, rel=1e-4)
