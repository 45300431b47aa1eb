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

The cell's steady state (its properties, the plating and stripping limits and the CCD) is in
:mod:`dendritect.physics.limits`, re-exported here.

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
from dendritect.physics.constants import geometry_factor, lithium_velocity_um_s
from dendritect.physics.growth import GrowthResult
from dendritect.physics.limits import (
    ECM_DEFAULTS,
    EV_J_MOL,  # noqa: F401 - the Arrhenius constants, still importable from here
    R_GAS_J_MOL_K,  # noqa: F401
    T_REF_C,  # noqa: F401
    CellProperties,
    cell_properties,
    check_finite,
    critical_current_density,
    deposition_flux_um2_s,
    ecm_parameters,
    front_overpotential_mV,
    plating_limit_mA_cm2,
    pressure_per_mV,
    slit_flux_um2_s,
    stripping_limit_mA_cm2,
)
from dendritect.physics.materials import Material

__all__ = ["ECM_DEFAULTS", "PROTOCOLS", "CellProperties", "SimulationResult",
           "cell_properties", "critical_current_density", "ecm_parameters",
           "plating_limit_mA_cm2", "ramp_ccd", "simulate", "slit_flux_um2_s",
           "stripping_limit_mA_cm2"]

PROTOCOLS = ("galvanostatic", "cycle")


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
    per_mv = pressure_per_mV(li)

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
