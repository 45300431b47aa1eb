"""The cell model: lithium-filled flaws that crack, span and short a solid electrolyte.

This is the model behind ``dendritect model grow``/``ccd`` and ``dendritect fit``. Compared
with the first closure (:func:`dendritect.physics.growth.grow`, kept unchanged because the
synthetic twin is pinned to it) it has

- one lithium-flow law for inflow and outflow: lithium moves between the anode and the crack
  along the lithium column itself (path = filled length, gap = crack-mouth opening) in both
  directions, with a yield threshold (Herschel–Bulkley form of power-law creep) and the size
  effect on the strength of lithium (Xu et al. 2017);
- interface kinetics: the measured ASR (less any uniform interphase film) over the ASR of a
  fully contacting interface is the contact loss, which focuses the current; the current
  also focuses at flaw and void edges over the length κ·Z (Roy et al.); the pressure lithium
  can build is set by the local overpotential, p ≤ p_stack + F·η/Ω (Porz et al. 2017), which
  grows with the depth the lithium has reached;
- a stripping limit from vacancy diffusion in lithium plus creep under the stack pressure, both
  divided by the current focusing of the interface (Kasemchainan et al. 2019; Krauskopf et al.
  2019);
- porosity once: σ_eff = σ·ρ^1.5 (Bruggeman) for the bulk, the solid area fraction ρ
  (Delesse's principle) for the interface (ASR Z/ρ, stripping limit × ρ);
- temperature through Arrhenius laws for σ_ion, the ASR, lithium creep (Q ≈ 37 kJ/mol,
  LePage et al. 2019) and self-diffusion;
- protocols: galvanostatic plating, plate/strip cycling (``cycles_to_short``), idle cells at
  zero current under stack pressure, and the step-ramp CCD;
- the short from lithium filling the spanned crack by plating and creep.

Units: lengths µm, times s, stresses MPa, current densities mA/cm², resistances Ω·cm².
Equations and sources: ``docs/model.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from dendritect.errors import InputError
from dendritect.physics import kinetics as kin
from dendritect.physics.closed_form import check_finite, critical_pressure_MPa
from dendritect.physics.constants import FARADAY_C_MOL, geometry_factor, lithium_velocity_um_s
from dendritect.physics.growth import GrowthResult, merge_overrides
from dendritect.physics.materials import Lithium, Material, get_lithium, get_material

__all__ = ["ECM_DEFAULTS", "PROTOCOLS", "CellProperties", "SimulationResult",
           "cell_properties", "critical_current_density", "ecm_parameters",
           "plating_limit_mA_cm2", "ramp_ccd", "simulate", "slit_flux_um2_s",
           "stripping_limit_mA_cm2"]

R_GAS_J_MOL_K = 8.314462618
EV_J_MOL = 96485.33212
T_REF_C = 25.0
_SQRT3 = math.sqrt(3.0)
PROTOCOLS = ("galvanostatic", "cycle")

#: Parameters that cannot be measured on a given cell (calibration level); every key can be
#: overridden (``--set key=value``). Sensitivities: ``docs/model.md``.
ECM_DEFAULTS: dict[str, Any] = {
    "geometry": "edge",            # flaw geometry factor: edge | semicircle | penny
    "flaw_aspect": 0.03,           # initial gap / depth of the flaw
    "li_entry_gap_um": 0.02,       # narrowest gap lithium follows into: sets the dry tip
    "relative_density": 1.0,       # electrolyte density / theoretical density
    "growth_rate_per_s": 20.0,     # fast LEFM kinetics: dc/dt = k·c·(K/K_IC − 1)
    "subcritical_v0_um_s": 1.0,    # subcritical growth v = v0·(K/K_IC)^n (Evans 1974)
    "subcritical_n": 20.0,
    "crack_spacing_um": 200.0,     # distance between cracks (area fraction for the voltage)
    "crack_width_um": 100.0,       # lateral extent of the crack sheet (for volumes)
    "short_resistance_ohm_cm2": 1e-3,
    "edge_focus_max": 10.0,        # cap of the edge focusing factor 1 + a/(κ·Z_ct)
    "vacancy_length_um": 6.0,      # diffusion length of vacancies (calibrated: Flatscher 2020)
    "void_um": 0.1,                # void radius at full contact (stripping limit)
    "interphase_asr_ohm_cm2": 0.0,  # part of the measured ASR that is a uniform film over
                                   # full contact (an interlayer or wetted interphase), not
                                   # contact loss; 0: all ASR above the full-contact ASR is
                                   # contact loss (Flatscher et al. 2020)
    "li_size_effect": True,        # lithium is stronger in narrow gaps (Xu et al. 2017)
}
_STRING_KEYS = {"geometry"}
_BOOL_KEYS = {"li_size_effect"}


def ecm_parameters(overrides: dict | None) -> dict[str, Any]:
    """:func:`~dendritect.physics.growth.merge_overrides` into :data:`ECM_DEFAULTS`."""
    return merge_overrides(ECM_DEFAULTS, overrides, string_keys=_STRING_KEYS,
                           bool_keys=_BOOL_KEYS)


def _arrhenius(energy_J_mol: float, temperature_C: float) -> float:
    """exp(−E/R·(1/T − 1/T_ref)), T_ref = 25 °C: a rate at T over the rate at 25 °C."""
    t_k = temperature_C + 273.15
    return math.exp(-energy_J_mol / R_GAS_J_MOL_K * (1.0 / t_k - 1.0 / (T_REF_C + 273.15)))


@dataclass(frozen=True)
class CellProperties:
    """Electrolyte, interface and lithium properties of one cell at its temperature."""

    temperature_C: float
    material: Material
    lithium: Lithium
    relative_density: float
    sigma_S_cm: float          # effective ionic conductivity (Bruggeman ρ^1.5)
    asr_ohm_cm2: float         # measured interfacial ASR
    ct_asr_ohm_cm2: float      # ASR of a fully contacting interface
    creep_rate_per_s: float    # ε̇0 at the temperature
    yield_MPa: float           # bulk yield strength at the temperature
    diffusivity_cm2_s: float   # lithium self-diffusion at the temperature
    size_effect: bool = True
    edge_focus_max: float = 10.0
    film_asr_ohm_cm2: float = 0.0  # uniform interphase film over full contact (in asr_ohm_cm2)

    @property
    def contact_factor(self) -> float:
        """Current focusing by contact loss: (measured ASR − film) / full-contact ASR (≥ 1).

        A uniform interphase film adds resistance over the whole interface and does not focus
        the current; only the rest of the ASR above the full-contact ASR is contact loss.
        """
        return max(1.0, (self.asr_ohm_cm2 - self.film_asr_ohm_cm2) / self.ct_asr_ohm_cm2)

    @property
    def effective_asr_ohm_cm2(self) -> float:
        """ASR per geometric area of a porous interface: Z/ρ (current through the solid area
        fraction ρ, Delesse's principle; Z is the ASR of a dense interface)."""
        return self.asr_ohm_cm2 / self.relative_density

    @property
    def focusing_length_um(self) -> float:
        """κ·(Z_ct + Z_film), the length over which current focuses at an edge (Roy et al.'s
        κZ with the uniform part of the interface resistance)."""
        return self.sigma_S_cm * (self.ct_asr_ohm_cm2 + self.film_asr_ohm_cm2) * 1e4

    def edge_factor(self, size_um: float) -> float:
        """Current focusing at the edge of a flaw or void of size ``size_um``: 1 + a/(κ·Z)."""
        return min(1.0 + max(size_um, 0.0) / self.focusing_length_um, self.edge_focus_max)

    def _size_scale(self, gap_um: float) -> float:
        if not self.size_effect or gap_um <= 0:
            return 1.0
        li = self.lithium
        t_scale = self.yield_MPa / li.yield_strength_MPa
        small = li.size_yield_1um_MPa * t_scale * gap_um ** (-li.size_yield_exponent)
        return max(1.0, small / self.yield_MPa)

    def yield_at_MPa(self, gap_um: float) -> float:
        """Yield strength of lithium in a gap of ``gap_um`` (size effect, Xu et al. 2017)."""
        return self.yield_MPa * self._size_scale(gap_um)

    def creep_stress_at_MPa(self, gap_um: float) -> float:
        """Creep reference stress σ0 in a gap of ``gap_um`` (scaled like the yield)."""
        return self.lithium.creep_stress_MPa * self._size_scale(gap_um)


def cell_properties(electrolyte: str | Material = "Li6PS5Cl", *, temperature_C: float = 25.0,
                    overrides: dict | None = None,
                    params: dict | None = None) -> CellProperties:
    """Properties of the cell at ``temperature_C`` (Arrhenius from 25 °C values).

    σ_ion(T) = σ_ion·exp(−E_a/R(1/T − 1/T0)); the ASRs scale with the inverse of the same
    law with their own E_a; lithium creep ε̇0(T) with Q = 37 kJ/mol (LePage et al. 2019) and
    the yield at a fixed strain rate as exp(Q/(mR)(1/T − 1/T0)); self-diffusion with its own
    activation energy.
    """
    t_c = check_finite("temperature_C", temperature_C)
    if t_c <= -273.15:
        raise InputError(f"temperature: must be above absolute zero, got {temperature_C!r}")
    if t_c >= 180.5:
        raise InputError(f"temperature: lithium melts at 180.5 °C, got {temperature_C!r}")
    p = params if params is not None else ecm_parameters(overrides)
    mat = get_material(electrolyte, overrides)
    li = get_lithium(overrides)
    rho = p["relative_density"]
    film = float(p["interphase_asr_ohm_cm2"])
    if film >= mat.interfacial_resistance_ohm_cm2:
        raise InputError("interphase_asr_ohm_cm2: must be below the interfacial resistance "
                         f"({mat.interfacial_resistance_ohm_cm2} ohm cm2), got {film!r}")
    f_ion = _arrhenius(mat.ionic_activation_energy_eV * EV_J_MOL, t_c)
    f_asr = _arrhenius(mat.asr_activation_energy_eV * EV_J_MOL, t_c)
    f_creep = _arrhenius(li.creep_activation_energy_kJ_mol * 1e3, t_c)
    return CellProperties(
        temperature_C=t_c, material=mat, lithium=li, relative_density=rho,
        sigma_S_cm=mat.ionic_conductivity_S_cm * f_ion * rho**1.5,
        asr_ohm_cm2=mat.interfacial_resistance_ohm_cm2 / f_asr,
        ct_asr_ohm_cm2=mat.charge_transfer_asr_ohm_cm2 / f_asr,
        creep_rate_per_s=li.creep_rate_per_s * f_creep,
        yield_MPa=li.yield_strength_MPa * f_creep ** (-1.0 / li.creep_exponent),
        diffusivity_cm2_s=li.self_diffusion_cm2_s * _arrhenius(
            li.diffusion_activation_energy_kJ_mol * 1e3, t_c),
        size_effect=bool(p["li_size_effect"]), edge_focus_max=float(p["edge_focus_max"]),
        film_asr_ohm_cm2=film / f_asr,
    )


def slit_flux_um2_s(delta_p_MPa: float, gap_um: float, path_um: float,
                    props: CellProperties) -> float:
    """Lithium flux per unit width (µm²/s) through a slit: yield threshold plus creep.

    Force balance on a lithium plug of length L in a slit of gap h = 2b: it moves only when
    Δp > Δp_y = τ_y·L/b, τ_y = σ_y(h)/√3. The excess drives power-law creep (ε̇ = ε̇0(σ/σ0)^m,
    von Mises σ = √3τ): q = 2√3·ε̇0·(√3·G·b/σ0)^m·b²/(m+2), G = (|Δp| − Δp_y)/L (a
    Herschel–Bulkley closure of the exact power-law slit flow). The same law and the same
    path serve inflow (Δp < 0) and outflow (Δp > 0).
    """
    if gap_um <= 0.0 or delta_p_MPa == 0.0:
        return 0.0
    li = props.lithium
    m = li.creep_exponent
    b = 0.5 * gap_um
    path = max(path_um, 1e-6)
    tau_y = props.yield_at_MPa(gap_um) / _SQRT3
    excess = abs(delta_p_MPa) - tau_y * path / b
    if excess <= 0.0:
        return 0.0
    grad = excess / path
    sigma0 = props.creep_stress_at_MPa(gap_um)
    x = _SQRT3 * grad * b / sigma0
    q = 2.0 * _SQRT3 * props.creep_rate_per_s * x**m * b * b / (m + 2.0)
    return math.copysign(q, delta_p_MPa)




def _pressure_per_mV(lithium: Lithium) -> float:
    return FARADAY_C_MOL * 1e-3 / lithium.molar_volume_m3_mol * 1e-6


def front_overpotential_mV(current_density_mA_cm2: float, depth_um: float, flaw_um: float,
                           props: CellProperties) -> float:
    """Overpotential at a lithium front ``depth_um`` into the electrolyte (mV).

    η = i·f_edge·(Z/ρ + l/σ_eff): the interfacial overpotential of the (focused) current plus
    the ohmic drop the front has overtaken (Porz et al. 2017; Monroe & Newman's field picture).
    In a porous electrolyte the current crosses the interface through its solid area fraction,
    which equals the volume fraction ρ (Delesse's principle), so the dense-interface ASR Z acts
    as Z/ρ; the bulk path is already in σ_eff = σ·ρ^1.5 (Bruggeman) and is not focused again.
    """
    r = props.effective_asr_ohm_cm2 + max(depth_um, 0.0) * 1e-4 / props.sigma_S_cm
    return abs(current_density_mA_cm2) * props.edge_factor(flaw_um) * r


def _front_focus(depth_um: float, thickness_um: float, props: CellProperties) -> float:
    r_int = props.effective_asr_ohm_cm2
    r_bulk = thickness_um * 1e-4 / props.sigma_S_cm
    r_left = max(thickness_um - depth_um, 0.0) * 1e-4 / props.sigma_S_cm
    return (r_int + r_bulk) / max(r_int + r_left, 1e-12)


def deposition_flux_um2_s(current_density_mA_cm2: float, depth_um: float, flaw_um: float,
                          thickness_um: float, props: CellProperties) -> float:
    """Lithium plated into the flaw per unit width at zero back-pressure (µm²/s).

    Faraday's law over the flaw's footprint (w = a0) with the focusing of the current on the
    flaw edge and by the shortened ionic path of the front. Neither contact loss nor porosity
    adds lithium: averaged over a footprint much larger than the contact spots or the pores the
    current is still i (they raise the local overpotential instead,
    :func:`front_overpotential_mV`); porosity enters through σ_eff in the edge and front factors.
    """
    v = lithium_velocity_um_s(abs(current_density_mA_cm2), props.lithium.molar_volume_m3_mol)
    return (v * flaw_um * props.edge_factor(flaw_um)
            * _front_focus(depth_um, thickness_um, props))


def plating_limit_mA_cm2(props: CellProperties, *, flaw_um: float, stack_pressure_MPa: float,
                         thickness_um: float, params: dict,
                         applied_stress_MPa: float = 0.0) -> tuple[float, dict[str, Any]]:
    """Current at which a lithium-filled flaw reaches its critical pressure (closed form).

    The steady balance q_in(i, p) = q_x(p − p_stack) with q_in = A·i·(1 − (p − p_s)/(k·i)):
    deposition slows linearly as the back-pressure uses up the overpotential, k·i = F·η/Ω.
    At p = p_c it gives i_c = (p_c − p_s)/k + q_x(p_c − p_s)/A: the overpotential limit of
    Porz et al. plus the extrusion relief. ``i_c = 0`` when lithium under the stack pressure
    alone cracks the flaw.
    """
    a = flaw_um
    y = geometry_factor(params["geometry"])
    p_c = critical_pressure_MPa(a, props.material.k_ic_MPa_sqrt_m, params["geometry"],
                                applied_stress_MPa)
    delta = p_c - stack_pressure_MPa
    k = _pressure_per_mV(props.lithium) * front_overpotential_mV(1.0, a, a, props)
    a_unit = deposition_flux_um2_s(1.0, a, a, thickness_um, props)
    gap = kin.mouth_opening_um(a, a, max(p_c, 0.0), y, props.material.plane_strain_modulus_MPa,
                               params["flaw_aspect"] * a, applied_stress_MPa)
    q_x = slit_flux_um2_s(delta, gap, a, props)
    i_c = max(0.0, delta / k + q_x / a_unit)
    idle = delta <= 0 and q_x < 0
    return i_c, {"critical_pressure_MPa": p_c, "overpotential_term_mA_cm2": max(delta / k, 0.0),
                 "extrusion_term_mA_cm2": q_x / a_unit, "mouth_gap_um": gap,
                 "idle_cracks": bool(idle)}


def stripping_limit_mA_cm2(props: CellProperties, *, stack_pressure_MPa: float,
                           params: dict) -> dict[str, float]:
    """Largest stripping current at which the interface keeps its contact.

    Vacancies left by stripping must leave the interface by self-diffusion in lithium,
    i_vac = (F/Ω)·D_Li(T)/ℓ_v (Krauskopf et al. 2019), or be filled by creep under the stack
    pressure: a void of radius r closes at ṙ/r = ½ε̇0(T)((3/2m)·p/σ0)^m (exact radial
    power-law flow; Budiansky, Hutchinson & Slutsky 1982), i_creep = (F/Ω)·r·ṙ/r
    (Kasemchainan et al. 2019). The interface sets how much of the current the contact spots
    carry: both terms are divided by the contact factor (measured ASR / full-contact ASR) and
    the focusing at the void edges, 1 + r/(κ·Z_ct). In a porous electrolyte only the solid area
    fraction ρ of the interface carries the current (Delesse's principle), so the limit per
    geometric area is ρ times the limit per contacting area.
    """
    li = props.lithium
    f_over_omega = FARADAY_C_MOL / li.molar_volume_cm3_mol  # C/cm³
    i_vac = f_over_omega * props.diffusivity_cm2_s / (params["vacancy_length_um"] * 1e-4) * 1e3
    r_um = params["void_um"] * props.contact_factor
    m = li.creep_exponent
    rate = 0.5 * props.creep_rate_per_s * (1.5 / m * max(stack_pressure_MPa, 0.0)
                                           / li.creep_stress_MPa) ** m
    i_creep = f_over_omega * r_um * 1e-4 * rate * 1e3
    focus = props.contact_factor * props.edge_factor(r_um) / props.relative_density
    return {"stripping_limit_mA_cm2": (i_vac + i_creep) / focus,
            "vacancy_term_mA_cm2": i_vac / focus, "creep_term_mA_cm2": i_creep / focus}


def critical_current_density(electrolyte: str | Material = "Li6PS5Cl", *,
                             stack_pressure_MPa: float = 5.0, pore_um: float = 3.0,
                             relative_density: float | None = None,
                             thickness_um: float = 500.0, temperature_C: float = 25.0,
                             void_um: float | None = None, applied_stress_MPa: float = 0.0,
                             overrides: dict | None = None) -> dict[str, Any]:
    """Critical current density: the lower of the plating and stripping limits.

    Parameters
    ----------
    electrolyte : str or Material
        Database name or a Material.
    stack_pressure_MPa : float
        Stack pressure (≥ 0).
    pore_um : float
        Size of the largest lithium-accessible flaw or pore at the anode.
    relative_density : float, optional
        Overrides ``relative_density`` in the parameters.
    temperature_C : float
        Cell temperature.
    void_um : float, optional
        Overrides ``void_um`` (void radius at full contact for the stripping limit).

    Returns
    -------
    dict
        ``ccd_mA_cm2``, ``plating_limit_mA_cm2``, ``stripping_limit_mA_cm2``,
        ``critical_pressure_MPa``, ``limited_by`` and the terms of each limit.
    """
    p_stack = check_finite("stack_pressure_MPa", stack_pressure_MPa, nonnegative=True)
    a = check_finite("pore_um", pore_um, positive=True)
    thick = check_finite("thickness_um", thickness_um, positive=True)
    ov = dict(overrides or {})
    if relative_density is not None:
        rho = check_finite("relative_density", relative_density, positive=True)
        if rho > 1.0:
            raise InputError(f"relative_density: must be in (0, 1], got {relative_density!r}")
        ov["relative_density"] = rho
    if void_um is not None:
        ov["void_um"] = check_finite("void_um", void_um, positive=True)
    params = ecm_parameters(ov)
    props = cell_properties(electrolyte, temperature_C=temperature_C, overrides=ov,
                            params=params)
    plating, terms = plating_limit_mA_cm2(props, flaw_um=a, stack_pressure_MPa=p_stack,
                                          thickness_um=thick, params=params,
                                          applied_stress_MPa=applied_stress_MPa)
    strip = stripping_limit_mA_cm2(props, stack_pressure_MPa=p_stack, params=params)
    s = strip["stripping_limit_mA_cm2"]
    return {
        "electrolyte": props.material.name,
        "ccd_mA_cm2": min(plating, s),
        "plating_limit_mA_cm2": plating,
        "stripping_limit_mA_cm2": s,
        "limited_by": "plating" if plating <= s else "stripping",
        "stack_pressure_MPa": p_stack,
        "pore_um": a,
        "relative_density": params["relative_density"],
        "temperature_C": props.temperature_C,
        "contact_factor": props.contact_factor,
        "edge_factor": props.edge_factor(a),
        **terms,
        **{k: v for k, v in strip.items() if k != "stripping_limit_mA_cm2"},
    }


def ramp_ccd(electrolyte: str | Material = "Li6PS5Cl", *, start_mA_cm2: float = 0.05,
             step_mA_cm2: float = 0.05, max_mA_cm2: float = 20.0,
             **kwargs: Any) -> dict[str, Any]:
    """The CCD as a step-ramp experiment reports it: the first step at or above the CCD.

    Symmetric cells are ramped in steps (each step plating one electrode and stripping the
    other), and the CCD is the current of the step at which the cell fails. Each step lasts
    long enough for the flaw to fill and the interface to reach its steady state, so the
    step fails when its current exceeds the lower of the two steady limits.
    """
    i0 = check_finite("start_mA_cm2", start_mA_cm2, positive=True)
    di = check_finite("step_mA_cm2", step_mA_cm2, positive=True)
    top = check_finite("max_mA_cm2", max_mA_cm2, positive=True)
    out = critical_current_density(electrolyte, **kwargs)
    ccd = out["ccd_mA_cm2"]
    n = max(0, math.ceil((ccd - i0) / di - 1e-9))
    step = i0 + n * di
    out = dict(out)
    out["protocol"] = "ramp"
    out["ramp_step_mA_cm2"] = di
    out["ramp_ccd_mA_cm2"] = step if step <= top else None
    return out


@dataclass(frozen=True)
class SimulationResult(GrowthResult):
    """:class:`GrowthResult` plus the protocol, the cycle count and the filling time."""

    protocol: str = "galvanostatic"
    cycles_to_short: int | None = None
    half_cycle_s: float | None = None
    span_to_short_s: float | None = None
    extra: dict = field(default_factory=dict)


def _segments(protocol: str, i: float, duration: float,
              capacity_mAh_cm2: float | None) -> tuple[list[tuple[float, float, float]],
                                                      float | None]:
    if protocol == "galvanostatic":
        return [(0.0, duration, i)], None
    if capacity_mAh_cm2 is None or capacity_mAh_cm2 <= 0:
        raise InputError("capacity: the cycle protocol needs a positive --capacity")
    if i <= 0:
        raise InputError("current_density: the cycle protocol needs a positive current")
    half = capacity_mAh_cm2 / i * 3600.0
    n = math.ceil(duration / half)
    if n > 20000:
        raise InputError(f"duration: {n} half-cycles is too many; shorten --duration or raise "
                         "--capacity")
    segs = []
    for k in range(n):
        t0 = k * half
        segs.append((t0, min(t0 + half, duration), i if k % 2 == 0 else -i))
    return segs, half


def simulate(electrolyte: str | Material = "Li6PS5Cl", *, current_density_mA_cm2: float = 1.0,
             stack_pressure_MPa: float = 5.0, thickness_um: float = 500.0,
             flaw_um: float = 5.0, applied_stress_MPa: float = 0.0,
             temperature_C: float = 25.0, duration_s: float = 36000.0,
             protocol: str = "galvanostatic", capacity_mAh_cm2: float | None = None,
             t_eval_s: np.ndarray | None = None, subcritical: bool = False,
             overrides: dict | None = None) -> SimulationResult:
    """Simulate a lithium-filled flaw turning into a crack that spans and shorts the cell.

    Parameters
    ----------
    electrolyte : str or Material
        Name in the materials database or a Material.
    current_density_mA_cm2 : float
        Plating current density at the anode (≥ 0; 0 is an idle cell under stack pressure).
    stack_pressure_MPa : float
        Stack pressure on the lithium anode (≥ 0).
    thickness_um, flaw_um : float
        Electrolyte thickness and depth of the initial flaw at the anode.
    applied_stress_MPa : float
        Stress across the crack plane; negative is compression (Fincher et al. 2022).
    temperature_C : float
        Cell temperature (Arrhenius laws from 25 °C).
    duration_s : float
        Simulated time.
    protocol : {"galvanostatic", "cycle"}
        Constant plating, or plate/strip half-cycles of ``capacity_mAh_cm2`` each.
    t_eval_s : array, optional
        Times at which to report the series.
    subcritical : bool
        Also grow below K_IC at v = v0·(K/K_IC)^n.
    overrides : dict, optional
        Material, lithium (``li_`` prefix) or model parameters (:data:`ECM_DEFAULTS`).

    Returns
    -------
    SimulationResult

    Raises
    ------
    InputError
        For non-physical inputs.
    """
    if protocol not in PROTOCOLS:
        raise InputError(f"protocol: use one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    i_set = check_finite("current_density_mA_cm2", current_density_mA_cm2, nonnegative=True)
    p_s = check_finite("stack_pressure_MPa", stack_pressure_MPa, nonnegative=True)
    thick = check_finite("thickness_um", thickness_um, positive=True)
    a0 = check_finite("flaw_um", flaw_um, positive=True)
    sigma_app = check_finite("applied_stress_MPa", applied_stress_MPa)
    duration = check_finite("duration_s", duration_s, positive=True)
    if a0 >= thick:
        raise InputError(f"flaw_um: the flaw ({a0} µm) must be shallower than the "
                         f"electrolyte ({thick} µm)")
    cap = None if capacity_mAh_cm2 is None else check_finite("capacity_mAh_cm2", capacity_mAh_cm2,
                                                         positive=True)
    if t_eval_s is not None:
        t_eval = np.asarray(t_eval_s, dtype=float).ravel()
        if t_eval.size == 0 or not np.all(np.isfinite(t_eval)) or np.any(t_eval < 0):
            raise InputError("t_eval_s: need finite, non-negative times")
        if np.any(np.diff(t_eval) < 0):
            raise InputError("t_eval_s: times must be sorted")
        duration = max(duration, float(t_eval[-1]))
    else:
        t_eval = None
    params = ecm_parameters(overrides)
    props = cell_properties(electrolyte, temperature_C=temperature_C, overrides=overrides,
                            params=params)
    mat, li = props.material, props.lithium
    segs, half = _segments(protocol, i_set, duration, cap)

    y = geometry_factor(params["geometry"])
    e_mod = mat.plane_strain_modulus_MPa
    k_ic = mat.k_ic_MPa_sqrt_m
    gap0 = params["flaw_aspect"] * a0
    void0 = gap0 * a0
    r_dry = kin.dry_zone_um(k_ic, e_mod, params["li_entry_gap_um"])
    k_rate = params["growth_rate_per_s"]
    v0, n_sub = params["subcritical_v0_um_s"], params["subcritical_n"]
    per_mv = _pressure_per_mV(li)

    def li_front(vol: float, c: float) -> float:
        if vol < void0:
            return a0 * max(vol, 0.0) / void0
        return min(c, max(a0, c - r_dry))

    def pressure(vol: float, c: float, lf: float) -> float:
        if vol <= void0:
            return 0.0
        return (vol - void0) / max(kin.compliance_um2_MPa(c, lf, y, e_mod), 1e-30)

    def q_deposit(i: float, lf: float, p: float, vol: float) -> float:
        if i == 0.0:
            return 0.0
        if i < 0.0:
            # Stripping draws on the crack's lithium at the mean rate over its footprint
            # (no focusing: the front recedes from the high-field region), down to the
            # filled flaw.
            v = max(vol - void0, 0.0)
            q_strip = lithium_velocity_um_s(-i, li.molar_volume_m3_mol) * a0
            return -q_strip * v / (v + 0.01 * void0)
        q0 = deposition_flux_um2_s(i, max(lf, 0.0), a0, thick, props)
        head = per_mv * front_overpotential_mV(i, lf, a0, props)
        if head <= 0.0:
            return 0.0
        return q0 * max(0.0, 1.0 - max(p - p_s, 0.0) / head)

    def q_exchange(c: float, lf: float, p: float, vol: float) -> float:
        gap = kin.mouth_opening_um(c, lf, p, y, e_mod, gap0, sigma_app)
        path = max(lf, gap0)
        q = slit_flux_um2_s(p - p_s, gap, path, props)
        if q > 0.0:  # outflow stops when the crack holds no more than the filled flaw
            v = max(vol - void0, 0.0)
            return q * v / (v + 0.01 * void0)
        return q

    state = np.array([0.0, a0])
    t_init = t_span = t_kink = t_short = None
    pieces: list[tuple[float, float, Any, str, float]] = []  # (t0, t1, sol, phase, i)
    phase = "grow"
    span: dict[str, float] = {}

    for t0, t1, i in segs:
        if t_short is not None or t_kink is not None:
            break
        if t1 <= t0:
            continue
        max_step = max((t1 - t0) / 50.0, 1e-3)
        if phase == "grow":
            def rhs1(t: float, s: np.ndarray, i: float = i) -> list[float]:
                vol, c = float(s[0]), float(s[1])
                lf = li_front(vol, c)
                p = pressure(vol, c, lf)
                k = kin.stress_intensity(c, lf, p, y, sigma_app)
                dc = k_rate * c * max(k / k_ic - 1.0, 0.0)
                if subcritical and k > 0:
                    dc += v0 * min(k / k_ic, 2.0) ** n_sub
                return [q_deposit(i, lf, p, vol) - q_exchange(c, lf, p, vol), dc]

            def ev_init(t: float, s: np.ndarray) -> float:
                return float(s[1]) - a0 * (1.0 + 1e-3)
            ev_init.direction = 1.0

            def ev_span(t: float, s: np.ndarray) -> float:
                return float(s[1]) - thick
            ev_span.terminal = True
            ev_span.direction = 1.0

            def ev_kink(t: float, s: np.ndarray) -> float:
                if sigma_app >= 0:
                    return -1.0
                vol, c = float(s[0]), float(s[1])
                lf = li_front(vol, c)
                return kin.kinked_stress_intensity(c, lf, pressure(vol, c, lf), y) - k_ic
            ev_kink.terminal = True
            ev_kink.direction = 1.0

            sol = solve_ivp(rhs1, (t0, t1), state, method="LSODA",
                            events=[ev_init, ev_span, ev_kink], dense_output=True,
                            rtol=1e-6, atol=[1e-7, 1e-6], max_step=max_step)
            if sol.status < 0:  # pragma: no cover - solver failure is an internal fault
                raise RuntimeError(f"crack growth integration failed: {sol.message}")
            if t_init is None and sol.t_events[0].size:
                t_init = float(sol.t_events[0][0])
            t_end = float(sol.t[-1])
            pieces.append((t0, t_end, sol, "grow", i))
            state = sol.y[:, -1].copy()
            state[0] = max(state[0], 0.0)
            if sol.t_events[2].size:
                t_kink = float(sol.t_events[2][0])
                t_init = t_init if t_init is not None else t_kink
                break
            if sol.t_events[1].size:
                t_span = float(sol.t_events[1][0])
                vol_s = float(state[0])
                lf_s = li_front(vol_s, thick)
                p_s_span = pressure(vol_s, thick, lf_s)
                span = {"vol": vol_s, "li": lf_s, "p": p_s_span,
                        "gap": max((vol_s - void0) / max(lf_s, 1e-9), gap0)}
                phase = "fill"
                state = np.array([lf_s])
                if t_end < t1:  # the rest of this segment fills the spanned crack
                    t0 = t_end
                else:
                    continue
            else:
                continue
        # --- the crack spans; lithium fills its dry part -----------------------------
        gap_f = span["gap"]

        def rhs2(t: float, s: np.ndarray, i: float = i, gap_f: float = gap_f,
                 p_span: float = span["p"]) -> list[float]:
            lf = min(max(float(s[0]), 0.0), thick)
            p = min(p_span, p_s + per_mv * front_overpotential_mV(i, lf, a0, props)) \
                if i > 0 else p_span
            q = q_deposit(i, lf, p, 1.0) - slit_flux_um2_s(p - p_s, gap_f, max(lf, gap0),
                                                            props)
            return [max(q, 0.0) / gap_f]

        def ev_short(t: float, s: np.ndarray) -> float:
            return float(s[0]) - thick
        ev_short.terminal = True
        ev_short.direction = 1.0

        sol = solve_ivp(rhs2, (t0, t1), state, method="LSODA", events=[ev_short],
                        dense_output=True, rtol=1e-6, atol=1e-6, max_step=max_step)
        pieces.append((t0, float(sol.t[-1]), sol, "fill", i))
        state = sol.y[:, -1].copy()
        if sol.t_events[0].size:
            t_short = float(sol.t_events[0][0])

    # --- sample ---------------------------------------------------------------------------
    if t_eval is None:
        grid = np.linspace(0.0, duration, 2001)
        extra = [t for t in (t_init, t_span, t_short, t_kink) if t is not None]
        t_eval = np.unique(np.concatenate([grid, np.asarray(extra, dtype=float)]))
    n = t_eval.size
    crack, lif, pres, vols, volt = (np.zeros(n) for _ in range(5))
    last = pieces[-1]

    def voltage(i: float, lf: float, shorted: bool) -> float:
        if shorted:
            return i * 1e-3 * params["short_resistance_ohm_cm2"]
        r_int, sig = props.effective_asr_ohm_cm2, props.sigma_S_cm
        phi = min(1.0, a0 / params["crack_spacing_um"])
        g = (1.0 - phi) / (r_int + thick * 1e-4 / sig) \
            + phi / (r_int + max(thick - lf, 0.0) * 1e-4 / sig)
        return i * 1e-3 / g

    for j, t in enumerate(t_eval):
        piece = next((pc for pc in pieces if pc[0] <= t <= pc[1]), None)
        if piece is None:
            piece = last if t > last[1] else pieces[0]
        t0, t1, sol, ph, i = piece
        tt = min(max(t, t0), t1)
        shorted = t_short is not None and t >= t_short
        if ph == "grow":
            vol, c = (float(v) for v in sol.sol(tt))
            c = min(max(c, a0), thick)
            lf = li_front(vol, c)
            p = pressure(vol, c, lf)
            if t > t1 and t_kink is not None:  # kinked: depth frozen, lithium goes sideways
                vol = vol + deposition_flux_um2_s(i, lf, a0, thick, props) * (t - t1)
        else:
            c = thick
            lf = thick if shorted else min(float(sol.sol(tt)[0]), thick)
            p = span["p"]
            vol = void0 + span["gap"] * lf
        crack[j] = c if (t_init is not None and t >= t_init) else 0.0
        lif[j] = min(lf, crack[j]) if crack[j] > 0 else 0.0
        pres[j] = p
        vols[j] = max(vol, 0.0) * params["crack_width_um"]
        volt[j] = voltage(i, lif[j], shorted)

    strip = stripping_limit_mA_cm2(props, stack_pressure_MPa=p_s, params=params)
    extra = {"stripping_limit_mA_cm2": strip["stripping_limit_mA_cm2"],
             # A symmetric cell strips its counter electrode at the same current: above the
             # stripping limit voids grow there, which this run does not follow.
             "counter_electrode_voids": bool(i_set > strip["stripping_limit_mA_cm2"])}
    cycles = None
    if half is not None and t_short is not None:
        cycles = math.floor(t_short / (2.0 * half)) + 1
    used = {
        "electrolyte": mat.to_dict(), "lithium": li.to_dict(),
        "current_density_mA_cm2": i_set, "stack_pressure_MPa": p_s, "thickness_um": thick,
        "flaw_um": a0, "applied_stress_MPa": sigma_app, "temperature_C": props.temperature_C,
        "duration_s": float(duration), "protocol": protocol, "capacity_mAh_cm2": cap,
        "subcritical": bool(subcritical), "geometry_factor": y,
        "plane_strain_modulus_MPa": e_mod, "dry_zone_um": r_dry,
        "sigma_S_cm": props.sigma_S_cm, "asr_ohm_cm2": props.asr_ohm_cm2,
        "contact_factor": props.contact_factor, "edge_factor": props.edge_factor(a0),
        "li_creep_rate_per_s_at_T": props.creep_rate_per_s, **params,
    }
    return SimulationResult(
        time_s=t_eval.astype(float), crack_length_um=crack, li_length_um=lif,
        li_pressure_MPa=pres, li_volume_um3=vols, voltage_V=volt,
        t_initiation_s=t_init, t_span_s=t_span, t_short_s=t_short, params=used,
        t_deflection_s=t_kink, protocol=protocol, cycles_to_short=cycles, half_cycle_s=half,
        span_to_short_s=(t_short - t_span) if (t_short is not None and t_span is not None)
        else None, extra=extra,
    )
