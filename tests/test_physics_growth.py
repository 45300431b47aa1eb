"""The time-dependent crack-growth model: analytic pieces, invariants, events and inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dendritect.errors import InputError
from dendritect.physics import kinetics as kin
from dendritect.physics.growth import MODEL_DEFAULTS, GrowthResult, grow
from dendritect.physics.materials import get_lithium, get_material


@pytest.fixture(scope="module")
def default_run() -> GrowthResult:
    return grow()


def test_fully_loaded_crack_matches_lefm() -> None:
    # l = c: K = Y·p·√(πc) and the opening area is Y²·π·c²·p/E'.
    assert kin.stress_intensity(10.0, 10.0, 50.0, 1.12) == pytest.approx(
        1.12 * 50.0 * math.sqrt(math.pi * 10e-6))
    assert kin.compliance_um2_MPa(10.0, 10.0, 1.12, 2e4) == pytest.approx(
        1.12**2 * math.pi * 100.0 / 2e4)


def test_partial_load_reduces_k_and_compliance() -> None:
    full = kin.stress_intensity(10.0, 10.0, 50.0, 1.12)
    half = kin.stress_intensity(10.0, 5.0, 50.0, 1.12)
    assert half == pytest.approx(full * 2 / math.pi * math.asin(0.5))
    assert kin.compliance_um2_MPa(10.0, 5.0, 1.12, 2e4) < kin.compliance_um2_MPa(
        10.0, 10.0, 1.12, 2e4)


def test_dry_zone_is_where_tip_opening_equals_entry_gap() -> None:
    e, k, gap = 2.4e4, 0.23, 0.05
    r = kin.dry_zone_um(k, e, gap)
    opening = 8 * k / e * math.sqrt(r * 1e-6 / (2 * math.pi)) * 1e6  # µm
    assert opening == pytest.approx(gap)


def test_slit_creep_flux_power_law() -> None:
    li = get_lithium()
    q1 = kin.slit_creep_flux_um2_s(1.0, 0.2, 5.0, li)
    q2 = kin.slit_creep_flux_um2_s(2.0, 0.2, 5.0, li)
    assert q2 / q1 == pytest.approx(2.0**li.creep_exponent)
    assert kin.slit_creep_flux_um2_s(-2.0, 0.2, 5.0, li) == pytest.approx(-q2)
    # Newtonian check (m = 1): plane Poiseuille q = h³·G/(12·η) with η = σ0/(3·ε̇0).
    newt = get_lithium({"li_creep_exponent": 1.0})
    h, g = 0.2, 1.0 / 5.0
    eta = newt.creep_stress_MPa / (3 * newt.creep_rate_per_s)
    assert kin.slit_creep_flux_um2_s(1.0, h, 5.0, newt) == pytest.approx(h**3 * g / (12 * eta))


def test_focusing_is_one_without_lithium_and_grows_with_it() -> None:
    mat = get_material("Li6PS5Cl")
    assert kin.focusing_factor(0.0, 500.0, mat) == pytest.approx(1.0)
    assert kin.focusing_factor(400.0, 500.0, mat) > kin.focusing_factor(100.0, 500.0, mat) > 1
    # A large interfacial resistance spreads the current evenly.
    resistive = get_material("Li6PS5Cl", {"interfacial_resistance_ohm_cm2": 1e4})
    assert kin.focusing_factor(400.0, 500.0, resistive) < 1.01


def test_result_shapes_and_invariants(default_run: GrowthResult) -> None:
    r = default_run
    n = r.time_s.size
    for arr in (r.crack_length_um, r.li_length_um, r.li_pressure_MPa, r.li_volume_um3,
                r.voltage_V):
        assert arr.shape == (n,)
        assert np.all(np.isfinite(arr))
    assert np.all(np.diff(r.time_s) > 0)
    assert np.all(r.li_length_um <= r.crack_length_um + 1e-12)
    assert np.all(r.crack_length_um <= r.params["thickness_um"])
    assert np.all(np.diff(r.crack_length_um) >= -1e-9)  # cracks do not heal
    assert np.all(r.crack_length_um[r.time_s < r.t_initiation_s] == 0.0)
    assert r.t_initiation_s < r.t_span_s < r.t_short_s < r.params["duration_s"]
    assert r.crack_length_um[-1] == r.params["thickness_um"]


def test_voltage_is_ohmic_then_collapses_at_short(default_run: GrowthResult) -> None:
    r = default_run
    mat = get_material("Li6PS5Cl")
    ohmic = 1e-3 * (mat.interfacial_resistance_ohm_cm2 + 500e-4 / mat.ionic_conductivity_S_cm)
    assert r.voltage_V[0] == pytest.approx(ohmic)
    after = r.time_s > r.t_short_s
    assert np.all(r.voltage_V[after] < 0.01 * ohmic)
    # The lithium-filled crack shortens the ionic path: the voltage sags before the short.
    before = r.time_s < r.t_span_s
    assert np.all(np.diff(r.voltage_V[before]) <= 1e-12)
    assert r.voltage_V[before][-1] < r.voltage_V[0]
    assert np.all(r.voltage_V[before] > 0.5 * ohmic)


def test_pressure_at_initiation_is_the_critical_pressure(default_run: GrowthResult) -> None:
    from dendritect.physics.closed_form import critical_pressure_MPa

    r = default_run
    j = np.searchsorted(r.time_s, r.t_initiation_s)
    p_c = critical_pressure_MPa(5.0, get_material("Li6PS5Cl").k_ic_MPa_sqrt_m)
    assert r.li_pressure_MPa[j] == pytest.approx(p_c, rel=0.05)
    assert r.li_pressure_MPa[:j].max() <= p_c * 1.05


def test_t_eval_is_respected() -> None:
    t = np.array([0.0, 100.0, 5000.0])
    r = grow(t_eval_s=t, duration_s=5000.0)
    assert np.array_equal(r.time_s, t)
    with pytest.raises(InputError, match="t_eval_s"):
        grow(t_eval_s=np.array([5.0, 1.0]))


def test_no_initiation_without_enough_current() -> None:
    r = grow(current_density_mA_cm2=0.01, duration_s=3600.0)
    assert r.t_initiation_s is None and r.t_span_s is None and r.t_short_s is None
    assert np.all(r.crack_length_um == 0.0)


def test_subcritical_growth_reaches_further() -> None:
    fast = grow(current_density_mA_cm2=0.5)
    slow = grow(current_density_mA_cm2=0.5, subcritical=True)
    assert slow.crack_length_um[-1] > fast.crack_length_um[-1]


def test_overrides_are_applied_and_recorded() -> None:
    r = grow(overrides={"k_ic_MPa_sqrt_m": 0.5, "flaw_aspect": 0.02}, duration_s=100.0)
    assert r.params["electrolyte"]["k_ic_MPa_sqrt_m"] == 0.5
    assert r.params["electrolyte"]["sources"]["k_ic_MPa_sqrt_m"] == "override"
    assert r.params["flaw_aspect"] == 0.02
    assert set(MODEL_DEFAULTS) <= set(r.params) | {"capture_width_um"}


def test_to_dict_is_json(default_run: GrowthResult) -> None:
    d = json.loads(json.dumps(default_run.to_dict()))
    assert d["t_span_s"] == pytest.approx(default_run.t_span_s)
    assert len(d["crack_length_um"]) == default_run.time_s.size


@pytest.mark.parametrize("kwargs, needle", [
    ({"thickness_um": -5.0}, "thickness_um"),
    ({"current_density_mA_cm2": 0.0}, "current_density"),
    ({"flaw_um": 600.0}, "flaw_um"),
    ({"stack_pressure_MPa": -1.0}, "stack_pressure"),
    ({"electrolyte": "unobtainium"}, "unknown electrolyte"),
    ({"overrides": {"nonsense": 1.0}}, "unknown parameter"),
    ({"overrides": {"k_ic_MPa_sqrt_m": -1.0}}, "k_ic"),
    ({"overrides": {"geometry": "cube"}}, "geometry"),
    ({"duration_s": float("nan")}, "duration_s"),
])
def test_bad_inputs(kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        grow(**kwargs)
