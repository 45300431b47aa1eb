"""The cell's steady state: its properties at a temperature, the plating and stripping limits
and the critical current density (closed forms of the cell model, microseconds each).

This module sits below both :mod:`dendritect.physics.closed_form` and
:mod:`dendritect.physics.ecm`: it holds what both need (the input checks of
:func:`check_finite`, the crack criterion :func:`critical_pressure_MPa`, the merge of
parameter overrides and the steady limits), so that neither imports the other. Both re-export
their names from here; :func:`dendritect.physics.closed_form.critical_current_density` is
:func:`critical_current_density` with fixed defaults for the void and the density.

Units: lengths µm, times s, stresses MPa, current densities mA/cm², resistances Ω·cm².
Equations and sources: ``docs/model.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dendritect.errors import InputError
from dendritect.physics import kinetics as kin
from dendritect.physics.constants import FARADAY_C_MOL, geometry_factor, lithium_velocity_um_s
from dendritect.physics.materials import (
    ELECTROLYTE_KEYS,
    LITHIUM_KEYS,
    Lithium,
    Material,
    get_lithium,
    get_material,
)

__all__ = ["ECM_DEFAULTS", "CellProperties", "cell_properties", "check_finite",
           "critical_current_density", "critical_pressure_MPa", "deposition_flux_um2_s",
           "ecm_parameters", "front_overpotential_mV", "merge_overrides",
           "plating_limit_mA_cm2", "pressure_per_mV", "slit_flux_um2_s",
           "stripping_limit_mA_cm2"]

R_GAS_J_MOL_K = 8.314462618
EV_J_MOL = 96485.33212
T_REF_C = 25.0
_SQRT3 = math.sqrt(3.0)


def check_finite(name: str, value: Any, *, positive: bool = False,
                 nonnegative: bool = False) -> float:
    """``value`` as a finite float, or an InputError naming ``name``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise InputError(f"{name}: must be finite, got {value!r}")
    if positive and out <= 0:
        raise InputError(f"{name}: must be positive, got {value!r}")
    if nonnegative and out < 0:
        raise InputError(f"{name}: must not be negative, got {value!r}")
    return out


def merge_overrides(defaults: dict[str, Any], overrides: dict | None, *,
                    string_keys: frozenset[str] | set[str] = frozenset(),
                    bool_keys: frozenset[str] | set[str] = frozenset(),
                    none_keys: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """Merge ``overrides`` into a model's ``defaults``, checking names and values.

    Material keys (``k_ic_MPa_sqrt_m``...) and lithium keys (``li_creep_exponent``...) are
    accepted and left for the materials; any other unknown key raises InputError.
    ``string_keys`` hold a flaw geometry name, ``bool_keys`` a flag, ``none_keys`` may be None;
    every other value must be a positive finite number.
    """
    params = dict(defaults)
    known = set(defaults) | set(ELECTROLYTE_KEYS) | {f"li_{k}" for k in LITHIUM_KEYS}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise InputError(
                f"override: unknown parameter {key!r}; known: {', '.join(sorted(known))}")
        if key not in defaults:
            continue
        if key in string_keys:
            geometry_factor(str(value))
            params[key] = str(value)
        elif key in bool_keys:
            params[key] = (str(value).lower() in ("1", "true", "yes", "on")
                           if isinstance(value, str) else bool(value))
        elif key in none_keys and value is None:
            params[key] = None
        else:
            params[key] = check_finite(f"override {key}", value, positive=True)
    if params["relative_density"] > 1.0:
        raise InputError("override relative_density: must be in (0, 1]")
    return params


def critical_pressure_MPa(flaw_um: float, k_ic_MPa_sqrt_m: float, geometry: str = "edge",
                          applied_stress_MPa: float = 0.0) -> float:
    """Lithium pressure that cracks a flaw: p_c = K_IC/(Y·√(πa)) − σ_applied."""
    a = check_finite("flaw_um", flaw_um, positive=True)
    k = check_finite("k_ic_MPa_sqrt_m", k_ic_MPa_sqrt_m, positive=True)
    y = geometry_factor(geometry)
    return k / (y * math.sqrt(math.pi * a * 1e-6)) - check_finite("applied_stress_MPa",
                                                            applied_stress_MPa)


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
    "grain_flaw_ratio": 1.0,       # depth of a grain-boundary flaw open at the interface per
                                   # grain size (intergranular lithium; used with grain_um)
}
_STRING_KEYS = {"geometry"}
_BOOL_KEYS = {"li_size_effect"}


def ecm_parameters(overrides: dict | None) -> dict[str, Any]:
    """:func:`merge_overrides` into :data:`ECM_DEFAULTS`."""
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


def pressure_per_mV(lithium: Lithium) -> float:
    """Pressure that 1 mV of overpotential can build in plated lithium: F·(1 mV)/Ω (MPa)."""
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
    k = pressure_per_mV(props.lithium) * front_overpotential_mV(1.0, a, a, props)
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
                             grain_um: float | None = None,
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
    grain_um : float, optional
        Largest grain size of a polycrystalline electrolyte. Lithium runs along grain
        boundaries, so a boundary open at the interface is a flaw of depth
        ``grain_flaw_ratio``·d; the plating limit is that of the larger of it and ``pore_um``
        (weakest link). None (default): no grain-boundary flaw (a single crystal, or a grain
        size below the pore size).

    Returns
    -------
    dict
        ``ccd_mA_cm2``, ``plating_limit_mA_cm2``, ``stripping_limit_mA_cm2``,
        ``critical_pressure_MPa``, ``limited_by``, ``flaw_um`` (the flaw of the plating limit),
        ``flaw_kind`` (``"pore"`` or ``"grain boundary"``) and the terms of each limit.
    """
    p_stack = check_finite("stack_pressure_MPa", stack_pressure_MPa, nonnegative=True)
    pore = check_finite("pore_um", pore_um, positive=True)
    grain = None if grain_um is None else check_finite("grain_um", grain_um, positive=True)
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
    a_gb = 0.0 if grain is None else params["grain_flaw_ratio"] * grain
    a = max(pore, a_gb)
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
        "pore_um": pore,
        "grain_um": grain,
        "flaw_um": a,
        "flaw_kind": "grain boundary" if a_gb > pore else "pore",
        "relative_density": params["relative_density"],
        "temperature_C": props.temperature_C,
        "contact_factor": props.contact_factor,
        "edge_factor": props.edge_factor(a),
        **terms,
        **{k: v for k, v in strip.items() if k != "stripping_limit_mA_cm2"},
    }

