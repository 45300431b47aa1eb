"""Crack growth in time: lithium plating into a flaw, creep, LEFM growth, span and short.

The model follows the picture of Ning et al. 2021 (Nat. Mater. 20, 1121) and Ning et al.
2023 (Nature 618, 287): lithium plated into a surface flaw at the anode pressurises it; when
K_I = Y·p·√(πa) reaches K_IC (Porz et al. 2017) a dry crack runs ahead and lithium fills it
from the rear like a wedge; stack pressure pushes more lithium in by creep; the crack spans
the electrolyte before lithium reaches the cathode and shorts the cell. In-plane compression
closes the crack and, when large enough, kinks it parallel to the electrode (Fincher et al.
2022). Equations and assumptions: ``docs/model.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from dendritect.errors import InputError
from dendritect.physics import kinetics as kin
from dendritect.physics.closed_form import check_finite
from dendritect.physics.constants import geometry_factor
from dendritect.physics.limits import merge_overrides
from dendritect.physics.materials import Material, get_lithium, get_material

__all__ = ["MODEL_DEFAULTS", "GrowthResult", "grow"]

#: Model parameters beyond the materials database; every key can be overridden.
MODEL_DEFAULTS: dict[str, Any] = {
    "geometry": "edge",            # flaw geometry factor: edge | semicircle | penny
    "flaw_aspect": 0.03,           # initial gap / depth of the flaw (a sharp surface flaw)
    "li_entry_gap_um": 0.02,       # narrowest gap lithium follows into: sets the dry tip
    "capture_width_um": None,      # footprint feeding the crack; None = flaw size
    "crack_spacing_um": 200.0,     # distance between cracks (area fraction for the voltage)
    "crack_width_um": 100.0,       # lateral extent of the crack sheet (for volumes)
    "relative_density": 1.0,       # electrolyte density / theoretical density
    "growth_rate_per_s": 20.0,     # fast LEFM kinetics: dc/dt = k·c·(K/K_IC − 1)
    "subcritical_v0_um_s": 1.0,    # subcritical growth v = v0·(K/K_IC)^n (Evans 1974)
    "subcritical_n": 20.0,
    "short_resistance_ohm_cm2": 1e-3,  # area-specific resistance through a lithium short
    "stack_pressure_on_flaw": True,    # stack pressure acts on the anode lithium at the mouth
}

_STRING_KEYS = {"geometry"}
_BOOL_KEYS = {"stack_pressure_on_flaw"}


@dataclass(frozen=True)
class GrowthResult:
    """Outcome of :func:`grow`.

    Attributes
    ----------
    time_s, crack_length_um, li_length_um, li_pressure_MPa, li_volume_um3, voltage_V : ndarray
        Sampled series; depths are measured from the anode interface toward the cathode.
    t_initiation_s, t_span_s, t_short_s : float or None
        Event times (None when not reached in the simulated duration).
    params : dict
        Every value used, so a run can be repeated.
    t_deflection_s : float or None
        When the crack kinked parallel to the electrode under in-plane compression.
    """

    time_s: np.ndarray
    crack_length_um: np.ndarray
    li_length_um: np.ndarray
    li_pressure_MPa: np.ndarray
    li_volume_um3: np.ndarray
    voltage_V: np.ndarray
    t_initiation_s: float | None
    t_span_s: float | None
    t_short_s: float | None
    params: dict = field(default_factory=dict)
    t_deflection_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (lists and floats, None for events not reached)."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            if isinstance(v, np.ndarray):
                out[k] = [float(x) for x in v]
            elif isinstance(v, (np.floating, np.integer)):
                out[k] = float(v)
            else:
                out[k] = v
        return out


def model_parameters(overrides: dict | None) -> dict[str, Any]:
    """:func:`merge_overrides` into :data:`MODEL_DEFAULTS`."""
    return merge_overrides(MODEL_DEFAULTS, overrides, string_keys=_STRING_KEYS,
                           bool_keys=_BOOL_KEYS, none_keys={"capture_width_um"})


def grow(electrolyte: str | Material = "Li6PS5Cl", *, current_density_mA_cm2: float = 1.0,
         stack_pressure_MPa: float = 5.0, thickness_um: float = 500.0, flaw_um: float = 5.0,
         applied_stress_MPa: float = 0.0, duration_s: float = 36000.0,
         t_eval_s: np.ndarray | None = None, subcritical: bool = False,
         overrides: dict | None = None) -> GrowthResult:
    """Simulate a lithium-filled flaw turning into a crack that spans and shorts the cell.

    Parameters
    ----------
    electrolyte : str or Material
        Name in the materials database (``"Li6PS5Cl"``, ``"LLZO"``...) or a Material.
    current_density_mA_cm2 : float
        Plating current density at the anode (> 0).
    stack_pressure_MPa : float
        Stack pressure on the lithium anode (≥ 0); drives lithium creep into the crack.
    thickness_um : float
        Electrolyte thickness, anode to cathode.
    flaw_um : float
        Depth of the initial surface flaw at the anode interface.
    applied_stress_MPa : float
        Far-field stress across the crack plane; negative is compression (Fincher et al.).
    duration_s : float
        Simulated time.
    t_eval_s : array, optional
        Times at which to report the series; default a dense grid plus the event times.
    subcritical : bool
        Also grow below K_IC at v = v0·(K/K_IC)^n.
    overrides : dict, optional
        Material, lithium (``li_`` prefix) or model parameters (:data:`MODEL_DEFAULTS`).

    Returns
    -------
    GrowthResult

    Raises
    ------
    InputError
        For non-physical inputs (negative thickness, unknown electrolyte, flaw ≥ thickness).
    """
    i = check_finite("current_density_mA_cm2", current_density_mA_cm2, positive=True)
    p_stack = check_finite("stack_pressure_MPa", stack_pressure_MPa, nonnegative=True)
    thick = check_finite("thickness_um", thickness_um, positive=True)
    a0 = check_finite("flaw_um", flaw_um, positive=True)
    sigma_app = check_finite("applied_stress_MPa", applied_stress_MPa)
    duration = check_finite("duration_s", duration_s, positive=True)
    if a0 >= thick:
        raise InputError(f"flaw_um: the flaw ({a0} µm) must be shallower than the "
                         f"electrolyte ({thick} µm)")
    params = model_parameters(overrides)
    mat = get_material(electrolyte, overrides)
    li = get_lithium(overrides)
    if t_eval_s is not None:
        t_eval = np.asarray(t_eval_s, dtype=float).ravel()
        if t_eval.size == 0 or not np.all(np.isfinite(t_eval)) or np.any(t_eval < 0):
            raise InputError("t_eval_s: need finite, non-negative times")
        if np.any(np.diff(t_eval) < 0):
            raise InputError("t_eval_s: times must be sorted")
        duration = max(duration, float(t_eval[-1]))
    else:
        t_eval = None

    y = geometry_factor(params["geometry"])
    e_mod = mat.plane_strain_modulus_MPa
    k_ic = mat.k_ic_MPa_sqrt_m
    rho = params["relative_density"]
    gap0 = params["flaw_aspect"] * a0
    void0 = gap0 * a0  # the flaw's own open area, filled before it pressurises
    capture = params["capture_width_um"] or a0
    r_dry = kin.dry_zone_um(k_ic, e_mod, params["li_entry_gap_um"])
    p_feed = p_stack if params["stack_pressure_on_flaw"] else 0.0
    k_rate = params["growth_rate_per_s"]
    v0, n_sub = params["subcritical_v0_um_s"], params["subcritical_n"]

    def li_front(vol: float, c: float) -> float:
        if vol < void0:
            return a0 * max(vol, 0.0) / void0
        return min(c, max(a0, c - r_dry))

    def pressure(vol: float, c: float, lf: float) -> float:
        if vol <= void0:
            return 0.0
        return (vol - void0) / max(kin.compliance_um2_MPa(c, lf, y, e_mod), 1e-30)

    def net_flux(vol: float, c: float, lf: float, p: float) -> float:
        q_in = kin.plating_flux_um2_s(i, capture, lf, thick, mat, li, rho)
        gap = kin.mouth_opening_um(c, lf, p, y, e_mod, gap0, sigma_app)
        dp = p - p_feed
        # Lithium plated at the front leaves along the whole column; stack-driven inflow only
        # has to pass the entrance of the mouth (flow length ≈ the mouth gap).
        path = max(lf, a0) if dp > 0 else gap
        return q_in - kin.slit_creep_flux_um2_s(dp, gap, path, li)

    # --- phase 1: flaw fills, pressurises, cracks and grows until it spans or kinks -------
    def rhs1(t: float, s: np.ndarray) -> list[float]:
        vol, c = float(s[0]), float(s[1])
        lf = li_front(vol, c)
        p = pressure(vol, c, lf)
        k = kin.stress_intensity(c, lf, p, y, sigma_app)
        dc = k_rate * c * max(k / k_ic - 1.0, 0.0)
        if subcritical and k > 0:
            dc += v0 * min(k / k_ic, 2.0) ** n_sub
        return [net_flux(vol, c, lf, p), dc]

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

    max_step = duration / 200.0
    sol1 = solve_ivp(rhs1, (0.0, duration), [0.0, a0], method="LSODA", events=[ev_init, ev_span,
                     ev_kink], dense_output=True, rtol=1e-6, atol=[1e-6, 1e-6],
                     max_step=max_step)
    if sol1.status < 0:  # pragma: no cover - solver failure is an internal fault
        raise RuntimeError(f"crack growth integration failed: {sol1.message}")
    t_init = float(sol1.t_events[0][0]) if sol1.t_events[0].size else None
    t_span = float(sol1.t_events[1][0]) if sol1.t_events[1].size else None
    t_kink = float(sol1.t_events[2][0]) if sol1.t_events[2].size else None
    if t_init is None and t_kink is not None:
        t_init = t_kink  # the flaw cracked straight into a branch parallel to the electrode
    t_end1 = float(sol1.t[-1])

    # --- phase 2: the crack spans; lithium fills the remaining dry part ------------------
    sol2 = None
    t_short = None
    span_state: dict[str, float] = {}
    if t_span is not None and t_span < duration:
        vol_s, _ = (float(v) for v in sol1.y[:, -1])
        lf_s = li_front(vol_s, thick)
        p_s = pressure(vol_s, thick, lf_s)
        mean_gap = max((vol_s - void0) / max(lf_s, 1e-9), 1e-9)
        span_state = {"vol": vol_s, "li": lf_s, "p": p_s, "gap": mean_gap}

        def rhs2(t: float, s: np.ndarray) -> list[float]:
            lf = min(float(s[0]), thick)
            return [max(net_flux(vol_s, thick, lf, p_s), 0.0) / mean_gap]

        def ev_short(t: float, s: np.ndarray) -> float:
            return float(s[0]) - thick
        ev_short.terminal = True
        ev_short.direction = 1.0

        sol2 = solve_ivp(rhs2, (t_span, duration), [lf_s], method="LSODA", events=[ev_short],
                         dense_output=True, rtol=1e-6, atol=1e-6, max_step=max_step)
        if sol2.t_events[0].size:
            t_short = float(sol2.t_events[0][0])

    # --- sample ---------------------------------------------------------------------------
    if t_eval is None:
        grid = np.linspace(0.0, duration, 2001)
        extra = [t for t in (t_init, t_span, t_short, t_kink) if t is not None]
        t_eval = np.unique(np.concatenate([grid, np.asarray(extra, dtype=float)]))
    n = t_eval.size
    crack = np.empty(n)
    lif = np.empty(n)
    pres = np.empty(n)
    vols = np.empty(n)
    volt = np.empty(n)

    def voltage(lf: float, shorted: bool) -> float:
        sigma = mat.ionic_conductivity_S_cm * rho**1.5
        r_int = mat.interfacial_resistance_ohm_cm2
        phi = min(1.0, capture / params["crack_spacing_um"])
        if shorted:
            return i * 1e-3 * params["short_resistance_ohm_cm2"]
        g = (1.0 - phi) / (r_int + thick * 1e-4 / sigma) \
            + phi / (r_int + max(thick - lf, 0.0) * 1e-4 / sigma)
        return i * 1e-3 / g

    vol_end1, c_end1 = (float(v) for v in sol1.y[:, -1])
    lf_end1 = li_front(vol_end1, c_end1)
    p_end1 = pressure(vol_end1, c_end1, lf_end1)
    for j, t in enumerate(t_eval):
        if t <= t_end1:
            vol, c = (float(v) for v in sol1.sol(t))
            c = min(max(c, a0), thick)
            lf = li_front(vol, c)
            p = pressure(vol, c, lf)
            shorted = False
        elif t_kink is not None:
            # Kinked parallel to the electrode: depth frozen, lithium goes sideways.
            c, lf, p = c_end1, lf_end1, p_end1
            vol = vol_end1 + kin.plating_flux_um2_s(i, capture, lf, thick, mat, li, rho) * (
                t - t_end1)
            shorted = False
        elif sol2 is not None:
            c, p = thick, span_state["p"]
            if t_short is not None and t >= t_short:
                lf, shorted = thick, True
            else:
                lf, shorted = min(float(sol2.sol(t)[0]), thick), False
            vol = void0 + span_state["gap"] * lf
        else:  # pragma: no cover - phase 1 always reaches the end otherwise
            c, lf, p, vol, shorted = c_end1, lf_end1, p_end1, vol_end1, False
        crack[j] = c if (t_init is not None and t >= t_init) else 0.0
        lif[j] = min(lf, crack[j])
        pres[j] = p
        vols[j] = max(vol, 0.0) * params["crack_width_um"]
        volt[j] = voltage(lif[j], shorted)

    used = {
        "electrolyte": mat.to_dict(),
        "lithium": li.to_dict(),
        "current_density_mA_cm2": i,
        "stack_pressure_MPa": p_stack,
        "thickness_um": thick,
        "flaw_um": a0,
        "applied_stress_MPa": sigma_app,
        "duration_s": float(duration),
        "subcritical": bool(subcritical),
        "geometry_factor": y,
        "plane_strain_modulus_MPa": e_mod,
        "dry_zone_um": r_dry,
        "capture_width_um": capture,
        **{k: v for k, v in params.items() if k != "capture_width_um"},
    }
    return GrowthResult(
        time_s=t_eval.astype(float),
        crack_length_um=crack,
        li_length_um=lif,
        li_pressure_MPa=pres,
        li_volume_um3=vols,
        voltage_V=volt,
        t_initiation_s=t_init,
        t_span_s=t_span,
        t_short_s=t_short,
        params=used,
        t_deflection_s=t_kink,
    )
