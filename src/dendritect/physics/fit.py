"""Calibrate the crack-growth model to a results folder: ``dendritect fit``.

What the analysis measured — the crack-front depth per scan (``metrics.csv``) — is fitted
against the plating time given by the charge passed (``echem.csv``: charge / plating current),
by least squares (:func:`scipy.optimize.least_squares`) over the parameters that cannot be
measured on the cell: the depth of the flaw that leads (``flaw_um``) and the current focusing
on it (``focus``: local / mean current density, Ning et al. 2021 see spallations start at the
electrode edge). Their covariance is (JᵀJ)⁻¹·s² from the Jacobian at the optimum, s² the
reduced χ². The fitted model then forecasts the span and short times, with σ from the same
covariance (delta method), and a what-if table of the time to short at other stack pressures,
currents, temperatures and densities.

Two forward models: ``"cell"`` (:func:`dendritect.physics.ecm.simulate`, the default) and
``"growth"`` (:func:`dendritect.physics.growth.grow`, the first closure, which drives the
synthetic twin; fitting a twin series with it checks the fit against known parameters).

The lithium front and the crack count are read and reported (measured dry-tip lead, cracks
per scan) but are not residuals: the model has one crack and its dry-tip length is not
validated (``docs/validation.md``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from dendritect import results as R
from dendritect.errors import InputError

__all__ = ["FIT_MODELS", "FitData", "FitResult", "fit", "load_results", "write_fit_json"]

FIT_MODELS = ("cell", "growth")
_PARAMS = ("flaw_um", "focus")
_UNITS = {"flaw_um": "um", "focus": "1"}


@dataclass(frozen=True)
class FitData:
    """What a results folder says about one cell, ready to fit.

    Attributes
    ----------
    time_s : ndarray
        Acquisition time of each scan used.
    plating_time_s : ndarray
        Charge passed while plating, up to each scan, over the plating current (s); equals
        ``time_s`` when there is no cycler record.
    front_um, li_front_um : ndarray
        Measured crack-front and lithium-front depths (NaN where not measured).
    n_cracks : ndarray
        Cracks seen per scan.
    thickness_um, sigma_um : float
        Electrolyte thickness and the depth uncertainty used for the residuals.
    conditions : dict
        ``electrolyte``, ``current_density_mA_cm2``, ``stack_pressure_MPa``,
        ``temperature_C`` and where each came from.
    empirical_forecast_s : float or None
        The extrapolation in ``summary.json`` (``short_circuit.forecast_time_s``).
    """

    time_s: np.ndarray
    plating_time_s: np.ndarray
    front_um: np.ndarray
    li_front_um: np.ndarray
    n_cracks: np.ndarray
    thickness_um: float
    sigma_um: float
    conditions: dict
    empirical_forecast_s: float | None = None
    t_of_tau: Any = None  # callable: plating time → wall time
    notes: list = field(default_factory=list)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None


def _plating_clock(echem: pd.DataFrame | None, times: np.ndarray, notes: list[str]):
    """Plating time at each scan from the charge passed, and its inverse."""
    if echem is None or len(echem) < 2:
        notes.append("no cycler record: plating time = acquisition time (constant current "
                     "assumed from t = 0)")
        return times.astype(float), (lambda tau: float(tau))
    t = echem["time_s"].to_numpy(float)
    cur = echem["current_mA"].to_numpy(float)
    order = np.argsort(t)
    t, cur = t[order], cur[order]
    plating = cur[cur > 0]
    if plating.size == 0:
        raise InputError(f"{R.ECHEM_CSV}: no plating current (positive current_mA) in the record")
    i_plate = float(np.median(plating))
    dt = np.diff(t, prepend=t[0])
    # Plating time: the charge passed while plating over the plating current (it stalls while
    # the anode is stripped, as crack growth does).
    tau = np.cumsum(np.where(cur > 0, cur, 0.0) * dt) / i_plate
    tau_scan = np.interp(times, t, tau)

    def t_of_tau(x: float) -> float:
        if x <= tau[-1]:
            return float(np.interp(x, tau, t))
        return float(t[-1] + (x - tau[-1]))  # constant plating after the record
    return tau_scan, t_of_tau


def load_results(results: str | Path, *, electrolyte: str | None = None,
                 current_density_mA_cm2: float | None = None,
                 stack_pressure_MPa: float | None = None, temperature_C: float = 25.0,
                 last_index: int | None = None) -> FitData:
    """Read ``metrics.csv``, ``summary.json`` and ``echem.csv`` of a results folder.

    The cell's conditions come from the arguments, else from the input's ``dataset.json``
    (a folder written by ``dendritect simulate``), else defaults (Li6PS5Cl, 1 mA/cm², 5 MPa),
    each noted in ``conditions``. ``last_index`` fits only the scans up to that index.

    Raises
    ------
    InputError
        When the folder is not a results folder or holds too little to fit.
    """
    d = Path(results)
    if not d.is_dir():
        raise InputError(f"{d}: not a folder")
    if not (d / R.METRICS_CSV).is_file() or not (d / R.SUMMARY_JSON).is_file():
        raise InputError(f"{d}: not a dendritect results folder ({R.METRICS_CSV} and "
                         f"{R.SUMMARY_JSON} missing)")
    summary = _read_json(d / R.SUMMARY_JSON)
    try:
        m = pd.read_csv(d / R.METRICS_CSV)
    except (OSError, ValueError) as exc:
        raise InputError(f"{d / R.METRICS_CSV}: cannot read ({exc})") from None
    for col in ("time_s", "front_depth_um"):
        if col not in m.columns:
            raise InputError(f"{d / R.METRICS_CSV}: column {col!r} missing")
    if last_index is not None:
        if "t_index" in m.columns:
            m = m[m["t_index"] <= last_index]
        else:
            m = m.iloc[: last_index + 1]
    notes: list[str] = []
    try:
        za, zc = (float(v) for v in summary["electrolyte_interfaces_um"])
        thickness = abs(zc - za)
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{d / R.SUMMARY_JSON}: electrolyte_interfaces_um missing") from None
    if not thickness > 0:
        raise InputError(f"{d / R.SUMMARY_JSON}: electrolyte thickness is not positive")
    vox = summary.get("voxel_size_um") or [1.0, 1.0, 1.0]
    sigma = max(float(vox[0]), 1.0)

    meta: dict[str, Any] = {}
    src = summary.get("input")
    if src:
        ds = Path(src) / "dataset.json"
        if ds.is_file():
            meta = _read_json(ds)
    cond: dict[str, Any] = {}

    def pick(name: str, given: Any, default: Any) -> None:
        if given is not None:
            cond[name], cond[f"{name}_source"] = given, "given"
        elif meta.get(name) is not None:
            cond[name], cond[f"{name}_source"] = meta[name], "dataset.json"
        else:
            cond[name], cond[f"{name}_source"] = default, "default"
            notes.append(f"{name}: not known, {default} assumed")

    pick("electrolyte", electrolyte, "Li6PS5Cl")
    pick("current_density_mA_cm2", current_density_mA_cm2, 1.0)
    pick("stack_pressure_MPa", stack_pressure_MPa, 5.0)
    cond["temperature_C"] = float(temperature_C)
    cond["current_density_mA_cm2"] = float(cond["current_density_mA_cm2"])
    cond["stack_pressure_MPa"] = float(cond["stack_pressure_MPa"])

    echem = None
    if (d / R.ECHEM_CSV).is_file():
        try:
            echem = pd.read_csv(d / R.ECHEM_CSV)
        except (OSError, ValueError):
            echem = None
        if echem is not None and not {"time_s", "current_mA"} <= set(echem.columns):
            notes.append(f"{R.ECHEM_CSV} lacks time_s/current_mA: plating time = acquisition "
                         "time")
            echem = None
    times = m["time_s"].to_numpy(float)
    tau, t_of_tau = _plating_clock(echem, times, notes)
    front = pd.to_numeric(m["front_depth_um"], errors="coerce").to_numpy(float)
    li = (pd.to_numeric(m["li_front_depth_um"], errors="coerce").to_numpy(float)
          if "li_front_depth_um" in m.columns else np.full(times.size, np.nan))
    ncr = (pd.to_numeric(m["n_cracks"], errors="coerce").to_numpy(float)
           if "n_cracks" in m.columns else np.full(times.size, np.nan))
    if np.isfinite(front).sum() < 3:
        raise InputError(f"{d}: need at least three scans with a measured front to fit")
    emp = (summary.get("short_circuit") or {}).get("forecast_time_s")
    return FitData(time_s=times, plating_time_s=tau, front_um=np.minimum(front, thickness),
                   li_front_um=li, n_cracks=ncr, thickness_um=thickness, sigma_um=sigma,
                   conditions=cond, empirical_forecast_s=None if emp is None else float(emp),
                   t_of_tau=t_of_tau, notes=notes)


@dataclass
class FitResult:
    """Outcome of :func:`fit`: parameters with σ, forecasts, what-if table and series."""

    model: str
    parameters: dict[str, dict[str, Any]]
    covariance: np.ndarray
    forecast_span_time_s: float | None
    forecast_span_time_sigma_s: float | None
    forecast_short_time_s: float | None
    forecast_short_time_sigma_s: float | None
    what_if: list[dict[str, Any]]
    residual_rms_um: float
    series: dict[str, list]
    data: FitData
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``fit.json`` document (CONTRACT keys plus diagnostics)."""
        d = self.data
        lead = d.front_um - d.li_front_um
        return {
            "parameters": self.parameters,
            "forecast_span_time_s": self.forecast_span_time_s,
            "forecast_span_time_sigma_s": self.forecast_span_time_sigma_s,
            "forecast_short_time_s": self.forecast_short_time_s,
            "forecast_short_time_sigma_s": self.forecast_short_time_sigma_s,
            "what_if": self.what_if,
            "model": self.model,
            "conditions": d.conditions,
            "thickness_um": d.thickness_um,
            "n_scans": int(d.time_s.size),
            "residual_rms_um": self.residual_rms_um,
            "depth_sigma_um": d.sigma_um,
            "empirical_forecast_span_time_s": d.empirical_forecast_s,
            "measured_dry_tip_lead_um": (float(np.nanmedian(lead)) if np.isfinite(lead).any()
                                         else None),
            "max_cracks_seen": (int(np.nanmax(d.n_cracks)) if np.isfinite(d.n_cracks).any()
                                else None),
            "covariance": [[float(v) for v in row] for row in self.covariance],
            "series": self.series,
            "notes": self.notes,
        }


def _forward(model: str, data: FitData, flaw: float, focus: float, horizon: float,
             t_eval: np.ndarray | None = None, **changes: Any):
    """Run the forward model with the fitted parameters (and what-if changes)."""
    c = {**data.conditions, **changes}
    i = float(c["current_density_mA_cm2"]) * focus
    thick = data.thickness_um
    flaw = min(max(flaw, 0.05), 0.9 * thick)
    if model == "growth":
        from dendritect.physics.growth import grow

        ov = {"relative_density": c["relative_density"]} if "relative_density" in c else None
        return grow(c["electrolyte"], current_density_mA_cm2=max(i, 1e-9),
                    stack_pressure_MPa=float(c["stack_pressure_MPa"]), thickness_um=thick,
                    flaw_um=flaw, duration_s=horizon, t_eval_s=t_eval, overrides=ov)
    from dendritect.physics.ecm import simulate

    ov = {"relative_density": c["relative_density"]} if "relative_density" in c else None
    return simulate(c["electrolyte"], current_density_mA_cm2=i,
                    stack_pressure_MPa=float(c["stack_pressure_MPa"]), thickness_um=thick,
                    flaw_um=flaw, temperature_C=float(c.get("temperature_C", 25.0)),
                    duration_s=horizon, t_eval_s=t_eval, overrides=ov)


def _depth_at(model: str, data: FitData, x: np.ndarray, tau: np.ndarray,
              horizon: float) -> np.ndarray:
    flaw, focus = float(np.exp(x[0])), float(np.exp(x[1]))
    grid = np.unique(np.concatenate([[0.0], tau, [horizon]]))
    r = _forward(model, data, flaw, focus, horizon, t_eval=grid)
    depth = np.maximum.accumulate(np.nan_to_num(np.asarray(r.crack_length_um, float)))
    return np.interp(tau, grid, depth)


def _events(model: str, data: FitData, x: np.ndarray, horizon: float,
            **changes: Any) -> tuple[float | None, float | None]:
    r = _forward(model, data, float(np.exp(x[0])), float(np.exp(x[1])), horizon,
                 t_eval=np.array([0.0, horizon]), **changes)
    return r.t_span_s, r.t_short_s


def fit(data: FitData, *, model: str = "cell", x0: tuple[float, float] | None = None,
        horizon_factor: float = 20.0) -> FitResult:
    """Least-squares calibration of ``flaw_um`` and ``focus`` to the measured fronts.

    Parameters
    ----------
    data : FitData
        From :func:`load_results`.
    model : {"cell", "growth"}
        Forward model (see the module docstring).
    x0 : (flaw_um, focus), optional
        Starting point; default a small grid search.
    horizon_factor : float
        How far past the last scan (in plating time) the model is run for the forecasts.
    """
    if model not in FIT_MODELS:
        raise InputError(f"--model: use one of {', '.join(FIT_MODELS)}, got {model!r}")
    ok = np.isfinite(data.front_um)
    tau = data.plating_time_s[ok]
    meas = data.front_um[ok]
    last = float(np.max(data.plating_time_s))
    horizon = max(last * horizon_factor, 3600.0)
    fit_h = max(last * 1.05, 1.0)
    sig = data.sigma_um

    grown = meas > 0  # the offset applies to a front the analysis sees

    def resid(x: np.ndarray) -> np.ndarray:
        d = _depth_at(model, data, x[:2], tau, fit_h)
        d = np.where(grown & (d > 0), np.minimum(d + x[2], data.thickness_um), d)
        return (d - meas) / sig

    lo = np.array([math.log(0.05), math.log(0.3), -3.0 * sig])
    hi = np.array([math.log(0.5 * data.thickness_um), math.log(30.0), 3.0 * sig])
    if x0 is None:
        # The front speed follows the lithium supply flaw × focus: search supply × flaw,
        # then refine the best few starts.
        trials = []
        for a in (2.0, 4.0, 8.0):
            for supply in (2.0, 3.0, 4.5, 7.0, 10.0, 15.0, 22.0, 33.0):
                f = supply / a
                if not 0.3 < f < 30.0:
                    continue
                x = np.array([math.log(a), math.log(f), 0.0])
                trials.append((float(np.sum(resid(x) ** 2)), x))
        trials.sort(key=lambda c: c[0])
        starts = [c[1] for c in trials[:3]]
    else:
        starts = [np.array([*np.log(np.asarray(x0, float)), 0.0])]
    sol = None
    for start in starts:
        start = np.clip(start, lo + 1e-6, hi - 1e-6)
        trial = least_squares(resid, start, bounds=(lo, hi),
                              x_scale=np.array([0.1, 0.1, sig]), diff_step=1e-3, max_nfev=200)
        if sol is None or trial.cost < sol.cost:
            sol = trial
    n = meas.size
    dof = max(n - sol.x.size, 1)
    # The stated depth uncertainty (one voxel) is a floor: residuals below it do not make
    # the parameters better known than the voxel allows.
    s2 = max(float(np.sum(sol.fun ** 2)) / dof, 1.0)
    full = np.linalg.pinv(sol.jac.T @ sol.jac) * s2
    offset, offset_sd = float(sol.x[2]), float(math.sqrt(max(full[2, 2], 0.0)))
    x = sol.x[:2]
    p = x.size
    jac = sol.jac[:, :2]
    cov = full[:2, :2]
    del jac
    notes = list(data.notes)
    if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) <= 0):
        notes.append("the fronts do not constrain both parameters: σ is not defined")
        cov = np.full((p, p), np.nan)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    params = {}
    for k, name in enumerate(_PARAMS):
        v = float(np.exp(x[k]))
        params[name] = {"value": v, "sigma": float(v * sd[k]) if np.isfinite(sd[k]) else None,
                        "unit": _UNITS[name]}
    params["depth_offset_um"] = {"value": offset, "sigma": offset_sd, "unit": "um"}
    # The front speed is set by the lithium supply, flaw × focus (capture width × local
    # current): the best-determined combination.
    g_sup = np.array([1.0, 1.0])
    supply = params["flaw_um"]["value"] * params["focus"]["value"]
    sup_sd = math.sqrt(max(g_sup @ cov @ g_sup, 0.0)) if np.all(np.isfinite(cov)) else None
    params["supply_um"] = {"value": supply,
                           "sigma": None if sup_sd is None else supply * sup_sd, "unit": "um"}
    params["local_current_density_mA_cm2"] = {
        "value": params["focus"]["value"] * data.conditions["current_density_mA_cm2"],
        "sigma": (None if params["focus"]["sigma"] is None
                  else params["focus"]["sigma"] * data.conditions["current_density_mA_cm2"]),
        "unit": "mA/cm2"}

    # Forecasts (plating time → wall time), σ by the delta method.
    def to_wall(tau_x: float | None) -> float | None:
        return None if tau_x is None else float(data.t_of_tau(tau_x))

    rms = float(np.sqrt(np.mean((sol.fun * sig) ** 2)))
    if rms > 3.0 * sig:
        notes.append(f"the {model} model does not follow the measured fronts (rms {rms:.3g} µm "
                     f"against a depth σ of {sig:.3g} µm): its forecasts are not reliable"
                     + ("; a synthetic twin series is fitted with --model growth"
                        if model == "cell" else ""))
    span_tau, short_tau = _events(model, data, x, horizon)
    grads = []
    for k in range(p):
        dx = np.zeros(p)
        dx[k] = 1e-3
        s1 = _events(model, data, x + dx, horizon)
        s0 = _events(model, data, x - dx, horizon)
        grads.append(s1 + s0)

    def sigma_of(idx: int, centre: float | None) -> float | None:
        if centre is None or not np.all(np.isfinite(cov)):
            return None
        g = []
        for k in range(p):
            a, b = grads[k][idx], grads[k][2 + idx]
            if a is not None and b is not None:
                g.append((a - b) / 2e-3)
            elif a is not None:  # one side does not reach the event: one-sided difference
                g.append((a - centre) / 1e-3)
            elif b is not None:
                g.append((centre - b) / 1e-3)
            else:
                return None
        g = np.asarray(g)
        return float(math.sqrt(max(g @ cov @ g, 0.0)))

    span_t, short_t = to_wall(span_tau), to_wall(short_tau)
    span_sig, short_sig = sigma_of(0, span_tau), sigma_of(1, short_tau)
    what_if = _what_if(model, data, x, horizon, short_tau)

    grid = np.linspace(0.0, min(horizon, max(last, span_tau or 0.0) * 1.3), 121)
    r = _forward(model, data, params["flaw_um"]["value"], params["focus"]["value"], horizon,
                 t_eval=grid)
    series = {
        "plating_time_s": [float(v) for v in grid],
        "model_front_um": [float(v) for v in np.maximum.accumulate(
            np.nan_to_num(np.asarray(r.crack_length_um, float)))],
        "measured_plating_time_s": [float(v) for v in data.plating_time_s],
        "measured_front_um": [None if not np.isfinite(v) else float(v) for v in data.front_um],
        "measured_li_front_um": [None if not np.isfinite(v) else float(v)
                                 for v in data.li_front_um],
    }
    return FitResult(model=model, parameters=params, covariance=cov,
                     forecast_span_time_s=span_t, forecast_span_time_sigma_s=span_sig,
                     forecast_short_time_s=short_t, forecast_short_time_sigma_s=short_sig,
                     what_if=what_if,
                     residual_rms_um=rms,
                     series=series, data=data, notes=notes)


def _what_if(model: str, data: FitData, x: np.ndarray, horizon: float,
             short_tau: float | None) -> list[dict[str, Any]]:
    """Time to short (plating time from the start) under changed conditions."""
    c = data.conditions
    p, i = c["stack_pressure_MPa"], c["current_density_mA_cm2"]
    rows: list[tuple[str, dict[str, Any]]] = [
        ("as fitted", {}),
        (f"stack pressure {p / 2:g} MPa (half)", {"stack_pressure_MPa": p / 2}),
        (f"stack pressure {p * 2:g} MPa (double)", {"stack_pressure_MPa": p * 2}),
        (f"current density {i / 2:g} mA/cm2 (half)", {"current_density_mA_cm2": i / 2}),
        (f"current density {i * 2:g} mA/cm2 (double)", {"current_density_mA_cm2": i * 2}),
        ("relative density 0.9", {"relative_density": 0.9}),
    ]
    if model == "cell":
        t = c.get("temperature_C", 25.0)
        rows.append((f"temperature {t + 20:g} C (+20 C)", {"temperature_C": t + 20.0}))
    out = []
    for label, change in rows:
        if not change:
            out.append({"change": label, "short_time_s": short_tau})
            continue
        scale = i / change.get("current_density_mA_cm2", i)
        _, s = _events(model, data, x, horizon * max(scale, 1.0), **change)
        out.append({"change": label, "short_time_s": s})
    return out


def write_fit_json(results: str | Path, result: FitResult) -> Path:
    """Write ``DIR/fit.json`` atomically and list it in the folder's marker (so that
    ``analyze --overwrite`` removes it with the run it was fitted to)."""
    path = R.atomic_write_json(Path(results) / R.FIT_JSON, result.to_dict())
    R.note_written(results, (R.FIT_JSON,))
    return path
