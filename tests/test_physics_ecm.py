"""The cell model (physics/ecm.py): flow law, kinetics, temperature, limits and protocols."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dendritect.errors import InputError
from dendritect.physics import ecm


@pytest.fixture(scope="module")
def props() -> ecm.CellProperties:
    return ecm.cell_properties("Li6PS5Cl")


def test_flow_law_is_the_same_both_ways_with_a_yield_threshold(props) -> None:
    gap, path = 5.0, 10.0
    tau_y = props.yield_at_MPa(gap) / math.sqrt(3.0)
    dp_y = tau_y * path / (gap / 2)
    q_out = ecm.slit_flux_um2_s(1.5 * dp_y, gap, path, props)
    q_in = ecm.slit_flux_um2_s(-1.5 * dp_y, gap, path, props)
    assert q_out > 0 and q_in == pytest.approx(-q_out)  # one path, one law
    # Below the threshold Δp_y = τ_y·L/b nothing moves.
    assert ecm.slit_flux_um2_s(0.99 * dp_y, gap, path, props) == 0.0
    assert ecm.slit_flux_um2_s(1.01 * dp_y, gap, path, props) > 0.0
    # Above it the excess drives power-law creep: q ∝ excess^m.
    m = props.lithium.creep_exponent
    q1 = ecm.slit_flux_um2_s(dp_y + 10.0, gap, path, props)
    q2 = ecm.slit_flux_um2_s(dp_y + 20.0, gap, path, props)
    assert q2 / q1 == pytest.approx(2.0**m, rel=1e-9)


def test_size_effect_follows_xu_and_can_be_switched_off(props) -> None:
    # Xu et al. 2017: ~105 MPa at 1 µm, ∝ D^-0.68, never below the bulk yield.
    assert props.yield_at_MPa(1.0) == pytest.approx(105.0, rel=1e-9)
    assert props.yield_at_MPa(0.1) / props.yield_at_MPa(1.0) == pytest.approx(10**0.68)
    assert props.yield_at_MPa(1e4) == pytest.approx(props.yield_MPa)
    off = ecm.cell_properties("Li6PS5Cl", overrides={"li_size_effect": False})
    assert off.yield_at_MPa(0.1) == pytest.approx(off.yield_MPa)


def test_arrhenius_temperature_laws() -> None:
    cold, hot = ecm.cell_properties("LLZO"), ecm.cell_properties("LLZO", temperature_C=60.0)
    r = 8.314462618
    inv = 1 / 298.15 - 1 / 333.15
    assert hot.creep_rate_per_s / cold.creep_rate_per_s == pytest.approx(
        math.exp(37e3 / r * inv), rel=1e-9)
    ea = cold.material.ionic_activation_energy_eV * 96485.33212
    assert hot.sigma_S_cm / cold.sigma_S_cm == pytest.approx(math.exp(ea / r * inv), rel=1e-9)
    assert hot.asr_ohm_cm2 < cold.asr_ohm_cm2
    assert hot.yield_MPa < cold.yield_MPa
    with pytest.raises(InputError, match="temperature"):
        ecm.cell_properties("LLZO", temperature_C=200.0)


def test_interfacial_resistance_focuses_the_current_and_lowers_the_ccd() -> None:
    low = ecm.critical_current_density("LLZO", stack_pressure_MPa=0.0, pore_um=1.0)
    high = ecm.critical_current_density("LLZO", stack_pressure_MPa=0.0, pore_um=1.0,
                                        overrides={"interfacial_resistance_ohm_cm2": 20.0})
    assert high["contact_factor"] == pytest.approx(10 * low["contact_factor"])
    assert high["plating_limit_mA_cm2"] < low["plating_limit_mA_cm2"]
    assert high["stripping_limit_mA_cm2"] < low["stripping_limit_mA_cm2"]


def test_an_interphase_film_adds_resistance_but_does_not_focus_the_current() -> None:
    # The same measured ASR read as contact loss (default) or as a uniform film over full
    # contact (a wetted interlayer): the film neither focuses the current (contact factor 1)
    # nor shortens κZ, it only adds overpotential.
    ov = {"interfacial_resistance_ohm_cm2": 32.0}
    loss = ecm.cell_properties("LLZO", overrides=ov)
    film = ecm.cell_properties("LLZO", overrides={**ov, "interphase_asr_ohm_cm2": 31.0})
    assert loss.contact_factor == pytest.approx(32.0)
    assert film.contact_factor == pytest.approx(1.0)
    assert film.focusing_length_um == pytest.approx(32.0 * loss.focusing_length_um)
    assert ecm.front_overpotential_mV(1.0, 0.0, 0.0, film) == pytest.approx(32.0)
    kw = {"stack_pressure_MPa": 0.0, "pore_um": 5.0}
    c_loss = ecm.critical_current_density("LLZO", **kw, overrides=ov)
    c_film = ecm.critical_current_density("LLZO", **kw,
                                          overrides={**ov, "interphase_asr_ohm_cm2": 31.0})
    assert c_film["stripping_limit_mA_cm2"] > 10 * c_loss["stripping_limit_mA_cm2"]
    # A thicker film still lowers the plating limit (more overpotential, less pressure).
    thin = ecm.critical_current_density("LLZO", **kw)
    assert c_film["plating_limit_mA_cm2"] < thin["plating_limit_mA_cm2"]
    with pytest.raises(InputError, match="interphase_asr"):
        ecm.cell_properties("LLZO", overrides={"interphase_asr_ohm_cm2": 5.0})


def test_porosity_enters_once_through_the_solid_area_fraction() -> None:
    # Delesse: the solid area fraction of a section is the volume fraction ρ, so the interface
    # current crosses ρ of the area (Z/ρ); the bulk path is only in σ_eff = σ·ρ^1.5 (Bruggeman).
    dense = ecm.cell_properties("Li6PS5Cl")
    porous = ecm.cell_properties("Li6PS5Cl", overrides={"relative_density": 0.8})
    assert porous.sigma_S_cm == pytest.approx(dense.sigma_S_cm * 0.8**1.5, rel=1e-12)
    assert porous.effective_asr_ohm_cm2 == pytest.approx(dense.asr_ohm_cm2 / 0.8, rel=1e-12)
    i, depth, a = 2.0, 4.0, 5.0
    expected = i * porous.edge_factor(a) * (dense.asr_ohm_cm2 / 0.8
                                             + depth * 1e-4 / porous.sigma_S_cm)
    assert ecm.front_overpotential_mV(i, depth, a, porous) == pytest.approx(expected, rel=1e-12)
    # Porosity adds no lithium over a footprint (charge is conserved); it acts through σ_eff
    # in the edge and front focusing only.
    q_dense = ecm.deposition_flux_um2_s(i, 0.0, a, 500.0, dense)
    q_porous = ecm.deposition_flux_um2_s(i, 0.0, a, 500.0, porous)
    assert q_porous / q_dense == pytest.approx(porous.edge_factor(a) / dense.edge_factor(a))
    # The stripping current per geometric area is carried by the solid fraction ρ.
    params = ecm.ecm_parameters(None)
    s_d = ecm.stripping_limit_mA_cm2(dense, stack_pressure_MPa=5.0, params=params)
    s_p = ecm.stripping_limit_mA_cm2(porous, stack_pressure_MPa=5.0, params=params)
    r = 0.1 * dense.contact_factor
    assert s_p["stripping_limit_mA_cm2"] / s_d["stripping_limit_mA_cm2"] == pytest.approx(
        0.8 * dense.edge_factor(r) / porous.edge_factor(r), rel=1e-9)


def test_a_grain_boundary_is_a_flaw_one_grain_deep() -> None:
    # Intergranular lithium: the largest grain is a flaw of depth grain_flaw_ratio·d; the
    # plating limit is that of the larger of it and the pore, the stripping limit is unchanged.
    kw = {"stack_pressure_MPa": 0.0, "pore_um": 5.0}
    none = ecm.critical_current_density("LLZO", **kw)
    fine = ecm.critical_current_density("LLZO", **kw, grain_um=2.0)
    coarse = ecm.critical_current_density("LLZO", **kw, grain_um=100.0)
    as_pore = ecm.critical_current_density("LLZO", stack_pressure_MPa=0.0, pore_um=100.0)
    assert none["flaw_um"] == 5.0 and none["flaw_kind"] == "pore" and none["grain_um"] is None
    assert fine["ccd_mA_cm2"] == none["ccd_mA_cm2"] and fine["flaw_kind"] == "pore"
    assert coarse["flaw_um"] == 100.0 and coarse["flaw_kind"] == "grain boundary"
    assert coarse["pore_um"] == 5.0
    assert coarse["plating_limit_mA_cm2"] == pytest.approx(as_pore["plating_limit_mA_cm2"])
    assert coarse["plating_limit_mA_cm2"] < none["plating_limit_mA_cm2"]
    assert coarse["stripping_limit_mA_cm2"] == none["stripping_limit_mA_cm2"]
    half = ecm.critical_current_density("LLZO", **kw, grain_um=100.0,
                                        overrides={"grain_flaw_ratio": 0.5})
    assert half["flaw_um"] == 50.0
    with pytest.raises(InputError, match="grain_um"):
        ecm.critical_current_density("LLZO", **kw, grain_um=-1.0)


def test_stripping_limit_is_not_zero_without_pressure_and_rises_with_it() -> None:
    s0 = ecm.critical_current_density("LLZO", stack_pressure_MPa=0.0, pore_um=1.0)
    assert s0["creep_term_mA_cm2"] == 0.0 and s0["vacancy_term_mA_cm2"] > 0.0
    s = [ecm.critical_current_density("Li6PS5Cl", stack_pressure_MPa=p)[
        "stripping_limit_mA_cm2"] for p in (1.0, 3.0, 7.0)]
    assert s[0] < s[1] < s[2]
    # The vacancy term is (F/Ω)·D/ℓ over the focusing.
    p = ecm.cell_properties("LLZO")
    focus = p.contact_factor * p.edge_factor(0.1 * p.contact_factor)
    expected = 96485.33212 / 13.0 * p.diffusivity_cm2_s / 6e-4 * 1e3 / focus
    assert s0["vacancy_term_mA_cm2"] == pytest.approx(expected, rel=1e-9)


def test_plating_limit_is_where_growth_starts() -> None:
    # ccd and grow agree: below the plating limit the flaw never cracks, above it the crack
    # runs through.
    c = ecm.critical_current_density("Li6PS5Cl", stack_pressure_MPa=5.0, pore_um=5.0)
    i_c = c["plating_limit_mA_cm2"]
    below = ecm.simulate(current_density_mA_cm2=0.9 * i_c, flaw_um=5.0)
    above = ecm.simulate(current_density_mA_cm2=1.5 * i_c, flaw_um=5.0)
    assert below.t_initiation_s is None
    assert above.t_span_s is not None and above.t_short_s is not None
    assert above.t_span_s <= above.t_short_s
    assert above.span_to_short_s == pytest.approx(above.t_short_s - above.t_span_s)


def test_pressure_never_exceeds_the_overpotential_ceiling() -> None:
    r = ecm.simulate(current_density_mA_cm2=1.0, flaw_um=5.0, duration_s=3600.0)
    p = ecm.cell_properties("Li6PS5Cl")
    eta = ecm.front_overpotential_mV(1.0, float(r.li_length_um.max()), 5.0, p)
    ceiling = 5.0 + 96485.33212e-3 / 1.3e-5 * 1e-6 * eta
    assert r.li_pressure_MPa.max() <= ceiling * (1 + 1e-3)


def test_idle_cell_under_stack_pressure() -> None:
    # No current: only creep inflow acts. A wide pore fills and cracks at 75 MPa, not at 15.
    kw = {"current_density_mA_cm2": 0.0, "flaw_um": 10.0, "duration_s": 3600.0,
          "overrides": {"flaw_aspect": 1.0}}
    hi = ecm.simulate(stack_pressure_MPa=75.0, **kw)
    lo = ecm.simulate(stack_pressure_MPa=15.0, **kw)
    assert hi.t_initiation_s is not None
    assert lo.t_initiation_s is None
    assert np.all(hi.voltage_V == 0.0)
    c = ecm.critical_current_density(stack_pressure_MPa=75.0, pore_um=10.0,
                                     overrides={"flaw_aspect": 1.0})
    assert c["idle_cracks"] and c["plating_limit_mA_cm2"] == 0.0


def test_cycle_protocol_half_cycles_and_cycles_to_short() -> None:
    r = ecm.simulate(current_density_mA_cm2=2.0, protocol="cycle", capacity_mAh_cm2=0.3,
                     duration_s=40000.0)
    assert r.half_cycle_s == pytest.approx(540.0)
    assert r.t_short_s is not None
    assert r.cycles_to_short == math.floor(r.t_short_s / 1080.0) + 1
    # Continuous plating shorts sooner than cycling the same current.
    g = ecm.simulate(current_density_mA_cm2=2.0, duration_s=40000.0)
    assert g.t_short_s < r.t_short_s
    with pytest.raises(InputError, match="capacity"):
        ecm.simulate(protocol="cycle")
    with pytest.raises(InputError, match="protocol"):
        ecm.simulate(protocol="pulse")


def test_ramp_reports_the_failing_step() -> None:
    steady = ecm.critical_current_density("LLZO", stack_pressure_MPa=0.0, pore_um=1.0)
    ramp = ecm.ramp_ccd("LLZO", stack_pressure_MPa=0.0, pore_um=1.0, start_mA_cm2=0.05,
                        step_mA_cm2=0.05)
    ccd = steady["ccd_mA_cm2"]
    assert ccd <= ramp["ramp_ccd_mA_cm2"] < ccd + 0.05 + 1e-12
    assert round(ramp["ramp_ccd_mA_cm2"] / 0.05, 6) == pytest.approx(
        round(ramp["ramp_ccd_mA_cm2"] / 0.05))


def test_counter_electrode_voids_are_flagged() -> None:
    r = ecm.simulate("LLZO", current_density_mA_cm2=1.0, stack_pressure_MPa=0.0,
                     duration_s=60.0)
    assert r.extra["counter_electrode_voids"]
    assert r.extra["stripping_limit_mA_cm2"] < 1.0
    ok = ecm.simulate("Li6PS5Cl", current_density_mA_cm2=1.0, stack_pressure_MPa=5.0,
                      duration_s=60.0)
    assert not ok.extra["counter_electrode_voids"]


def test_compression_averts_the_short_in_llzo() -> None:
    kw = {"electrolyte": "LLZO", "stack_pressure_MPa": 0.0, "flaw_um": 20.0,
          "overrides": {"flaw_aspect": 0.01}}
    assert ecm.simulate(**kw).t_short_s is not None
    assert ecm.simulate(**kw, applied_stress_MPa=-200.0).t_short_s is None


@pytest.mark.parametrize("kwargs, needle", [
    ({"current_density_mA_cm2": -1.0}, "current_density"),
    ({"thickness_um": -5.0}, "thickness"),
    ({"flaw_um": 600.0}, "flaw"),
    ({"overrides": {"bogus": 1}}, "unknown parameter"),
    ({"overrides": {"relative_density": 1.5}}, "relative_density"),
])
def test_bad_inputs(kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        ecm.simulate(**kwargs)
