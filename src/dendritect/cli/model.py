"""``dendritect model ...``: the electro-chemo-mechanical model from the command line.

Quantities are read with units (``10mV``, ``1GPa``, ``1mA/cm2``, ``10h``); ``--json`` prints
machine-readable output; ``--set key=value`` overrides any material or model parameter.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import typer

from dendritect.cli.main import app
from dendritect.errors import InputError
from dendritect.units import parse_duration_s, parse_length_um, parse_quantity

model_app = typer.Typer(
    help="The electro-chemo-mechanical model: plating stress, critical flaws, crack growth, "
         "critical current density, sweeps and the materials database.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")

_JSON = typer.Option(False, "--json", help="Print JSON instead of text.")
_SET = typer.Option(None, "--set", help="Override a parameter, key=value (repeatable).")
_ELECTROLYTE = typer.Option("Li6PS5Cl", "--electrolyte", "-e",
                            help="Electrolyte name (see `dendritect model materials`).")


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become null, numpy scalars and arrays become Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _emit(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(_clean(data), indent=2))
        return
    for k, v in data.items():
        if isinstance(v, float):
            typer.echo(f"{k}: {v:.6g}")
        elif isinstance(v, (dict, list)):
            continue
        else:
            typer.echo(f"{k}: {v}")


def _overrides(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--set: expected key=value, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        if not key:
            raise InputError(f"--set: missing key in {item!r}")
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value
    return out


def _pressure(value: str, name: str) -> float:
    return parse_quantity(value, "MPa", name=name)


def parse_current_density(value: str, name: str = "--current-density") -> float:
    """A positive current density in mA/cm²; an InputError naming ``name`` otherwise."""
    out = parse_quantity(value, "mA/cm2", name=name)
    if out <= 0:
        raise InputError(f"{name}: must be positive, got {value!r}")
    return out


def _nonneg_current(value: str, name: str = "--current-density") -> float:
    out = parse_quantity(value, "mA/cm2", name=name)
    if out < 0:
        raise InputError(f"{name}: must not be negative, got {value!r}")
    return out


_TEMPERATURE = re.compile(r"^\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*"
                          r"(°C|degC|celsius|C|K|kelvin)?\s*$", re.IGNORECASE)


def parse_temperature_C(value: str, name: str = "--temperature") -> float:
    """A temperature in °C from ``25C``, ``25degC``, ``60 °C``, ``333K`` or a bare number (°C)."""
    m = _TEMPERATURE.match(str(value))
    if not m:
        raise InputError(f"{name}: cannot read {value!r} as a temperature (e.g. 25C, 333K)")
    x = float(m.group(1))
    unit = (m.group(2) or "C").lower()
    out = x - 273.15 if unit in ("k", "kelvin") else x
    if out <= -273.15:
        raise InputError(f"{name}: below absolute zero: {value!r}")
    return out


def parse_pressure_MPa(value: str, name: str) -> float:
    """A pressure in MPa from a quantity with units (``5MPa``, ``50bar``) or a bare number
    (MPa); negative values are refused. ``name`` is the option, for the message."""
    out = _pressure(value, name)
    if out < 0:
        raise InputError(f"{name}: must not be negative, got {value!r}")
    return out


@model_app.command("stress")
def stress(overpotential: str = typer.Option(..., "--overpotential",
                                             help="Plating overpotential, e.g. 10mV."),
           as_json: bool = _JSON) -> None:
    """Pressure that a plating overpotential can build in confined lithium (p = Fη/Ω)."""
    from dendritect.physics.closed_form import plating_pressure_MPa

    eta = parse_quantity(overpotential, "mV", name="--overpotential")
    _emit({"overpotential_mV": eta, "pressure_MPa": plating_pressure_MPa(eta)}, as_json)


@model_app.command("thickness")
def thickness(capacity: str = typer.Option(..., "--capacity",
                                           help="Areal capacity, e.g. 0.3mAh/cm2."),
              as_json: bool = _JSON) -> None:
    """Thickness of lithium plated by an areal capacity (Faraday's law)."""
    from dendritect.physics.closed_form import lithium_thickness_um

    q = parse_quantity(capacity, "mAh/cm2", name="--capacity")
    if q < 0:
        raise InputError(f"--capacity: must not be negative, got {capacity!r}")
    _emit({"capacity_mAh_cm2": q, "lithium_thickness_um": lithium_thickness_um(q)}, as_json)


@model_app.command("flaw")
def flaw(electrolyte: str = _ELECTROLYTE,
         pressure: str | None = typer.Option(None, "--pressure",
                                             help="Lithium pressure, e.g. 1GPa."),
         overpotential: str | None = typer.Option(None, "--overpotential",
                                                  help="Plating overpotential, e.g. 50mV."),
         flaw_size: str | None = typer.Option(None, "--flaw",
                                              help="A flaw size: gives its critical "
                                                   "pressure and overpotential."),
         k_ic: str | None = typer.Option(None, "--k-ic",
                                         help="Fracture toughness (MPa·m^0.5; bare number "
                                              "or e.g. '1.25 MPa*m**0.5')."),
         geometry: str = typer.Option("edge", "--geometry",
                                      help="Flaw geometry: edge, semicircle or penny."),
         applied_stress: str = typer.Option("0MPa", "--applied-stress",
                                            help="In-plane stress; negative = compression."),
         settings: list[str] | None = _SET,
         as_json: bool = _JSON) -> None:
    """Critical flaw size, pressure and overpotential (K_I = Y·(p+σ)·√(πa) = K_IC)."""
    from dendritect.physics import closed_form as cf
    from dendritect.physics.constants import geometry_factor
    from dendritect.physics.materials import get_material

    given = [x for x in (pressure, overpotential, flaw_size) if x is not None]
    if len(given) != 1:
        raise InputError("flaw: give exactly one of --pressure, --overpotential or --flaw")
    geometry_factor(geometry)
    mat = get_material(electrolyte, _overrides(settings))
    k = (parse_quantity(k_ic, "MPa*m**0.5", name="--k-ic") if k_ic is not None
         else mat.k_ic_MPa_sqrt_m)
    if k <= 0:
        raise InputError(f"--k-ic: must be positive, got {k_ic!r}")
    sigma = _pressure(applied_stress, "--applied-stress")
    if flaw_size is not None:
        a = parse_length_um(flaw_size, name="--flaw")
        p = cf.critical_pressure_MPa(a, k, geometry, sigma)
    else:
        if pressure is not None:
            p = _pressure(pressure, "--pressure")
        else:
            p = cf.plating_pressure_MPa(parse_quantity(overpotential, "mV",
                                                       name="--overpotential"))
        if p <= 0:
            raise InputError("flaw: the pressure must be positive")
        a = cf.critical_flaw_um(p, k, geometry, sigma)
    _emit({"electrolyte": mat.name, "geometry": geometry, "k_ic_MPa_sqrt_m": k,
           "applied_stress_MPa": sigma, "critical_flaw_um": a, "critical_pressure_MPa": p,
           "critical_overpotential_mV": cf.pressure_overpotential_mV(p)}, as_json)


@model_app.command("grow")
def grow_cmd(electrolyte: str = _ELECTROLYTE,
             current_density: str = typer.Option(
                 "1mA/cm2", "--current-density",
                 help="Plating current density; 0mA/cm2 is an idle cell under stack pressure."),
             stack_pressure: str = typer.Option("5MPa", "--stack-pressure"),
             thickness_: str = typer.Option("500um", "--thickness",
                                            help="Electrolyte thickness."),
             flaw_size: str = typer.Option("5um", "--flaw", help="Initial flaw depth."),
             applied_stress: str = typer.Option("0MPa", "--applied-stress",
                                                help="In-plane stress; negative = compression."),
             temperature: str = typer.Option("25C", "--temperature",
                                             help="Cell temperature, e.g. 25C, 60C, 333K."),
             protocol: str = typer.Option("galvanostatic", "--protocol",
                                          help="galvanostatic (constant plating) or cycle "
                                               "(plate/strip half-cycles of --capacity)."),
             capacity: str | None = typer.Option(None, "--capacity",
                                                 help="Areal capacity per half-cycle for "
                                                      "--protocol cycle, e.g. 0.3mAh/cm2."),
             duration: str = typer.Option("10h", "--duration"),
             points: int = typer.Option(201, "--points", min=2,
                                        help="Samples in the printed series."),
             subcritical: bool = typer.Option(False, "--subcritical",
                                              help="Allow subcritical growth below K_IC."),
             settings: list[str] | None = _SET,
             as_json: bool = _JSON) -> None:
    """Crack growth in time: initiation, span and short (and cycles to short), with the series."""
    from dendritect.physics.ecm import simulate

    dur = parse_duration_s(duration, name="--duration")
    if dur <= 0:
        raise InputError(f"--duration: must be positive, got {duration!r}")
    if protocol not in ("galvanostatic", "cycle"):
        raise InputError(f"--protocol: use galvanostatic or cycle, got {protocol!r}")
    cap = None
    if capacity is not None:
        cap = parse_quantity(capacity, "mAh/cm2", name="--capacity")
        if cap <= 0:
            raise InputError(f"--capacity: must be positive, got {capacity!r}")
    if protocol == "cycle" and cap is None:
        raise InputError("--capacity: --protocol cycle needs a capacity per half-cycle, "
                         "e.g. 0.3mAh/cm2")
    i = _nonneg_current(current_density)
    if protocol == "cycle" and i <= 0:
        raise InputError("--current-density: --protocol cycle needs a positive current")
    t_eval = np.linspace(0.0, dur, points)
    r = simulate(electrolyte, current_density_mA_cm2=i,
                 stack_pressure_MPa=parse_pressure_MPa(stack_pressure, "--stack-pressure"),
                 thickness_um=parse_length_um(thickness_, name="--thickness"),
                 flaw_um=parse_length_um(flaw_size, name="--flaw"),
                 applied_stress_MPa=_pressure(applied_stress, "--applied-stress"),
                 temperature_C=parse_temperature_C(temperature), duration_s=dur,
                 protocol=protocol, capacity_mAh_cm2=cap, t_eval_s=t_eval,
                 subcritical=subcritical, overrides=_overrides(settings))
    data = {
        "protocol": r.protocol,
        "t_initiation_s": r.t_initiation_s, "t_span_s": r.t_span_s, "t_short_s": r.t_short_s,
        "t_deflection_s": r.t_deflection_s, "span_to_short_s": r.span_to_short_s,
        "cycles_to_short": r.cycles_to_short, "half_cycle_s": r.half_cycle_s,
        "stripping_limit_mA_cm2": r.extra["stripping_limit_mA_cm2"],
        "counter_electrode_voids": r.extra["counter_electrode_voids"],
        "series": {"time_s": r.time_s, "crack_length_um": r.crack_length_um,
                   "li_length_um": r.li_length_um, "li_pressure_MPa": r.li_pressure_MPa,
                   "li_volume_um3": r.li_volume_um3, "voltage_V": r.voltage_V},
        "params": r.params,
    }
    if as_json:
        _emit(data, True)
        return
    typer.echo(f"protocol: {r.protocol}")
    for k in ("t_initiation_s", "t_span_s", "t_short_s", "t_deflection_s", "span_to_short_s",
              "cycles_to_short"):
        v = data[k]
        if k == "cycles_to_short" and r.protocol != "cycle":
            continue
        typer.echo(f"{k}: {'not reached' if v is None else f'{v:.6g}'}")
    typer.echo(f"final crack_length_um: {r.crack_length_um[-1]:.6g}")
    typer.echo(f"final li_length_um: {r.li_length_um[-1]:.6g}")
    if r.extra["counter_electrode_voids"]:
        typer.echo(f"note: {i:g} mA/cm2 is above the stripping limit "
                   f"({r.extra['stripping_limit_mA_cm2']:.3g} mA/cm2): in a symmetric cell "
                   "voids grow at the counter electrode, which this run does not follow")


@model_app.command("ccd")
def ccd(electrolyte: str = _ELECTROLYTE,
        stack_pressure: str = typer.Option("5MPa", "--stack-pressure"),
        pore_size: str = typer.Option("3um", "--pore-size",
                                      help="Size of the largest pore/flaw at the anode."),
        grain_size: str | None = typer.Option(
            None, "--grain-size",
            help="Largest grain size of a polycrystalline electrolyte: a grain boundary open "
                 "at the anode is a flaw of that depth (intergranular lithium)."),
        relative_density: float = typer.Option(1.0, "--relative-density",
                                               help="Density / theoretical density, (0, 1]."),
        thickness_: str = typer.Option("500um", "--thickness"),
        temperature: str = typer.Option("25C", "--temperature",
                                        help="Cell temperature, e.g. 25C, 60C, 333K."),
        void_size: str = typer.Option("0.1um", "--void-size",
                                      help="Interfacial void radius at full contact "
                                           "(stripping limit)."),
        protocol: str = typer.Option("steady", "--protocol",
                                     help="steady (the steady limits) or ramp (the step of a "
                                          "step-ramp experiment at which the cell fails)."),
        ramp_start: str = typer.Option("0.05mA/cm2", "--ramp-start",
                                       help="First step of --protocol ramp."),
        ramp_step: str = typer.Option("0.05mA/cm2", "--ramp-step",
                                      help="Current increment per step of --protocol ramp."),
        settings: list[str] | None = _SET,
        as_json: bool = _JSON) -> None:
    """Critical current density: plating (flaw pressurisation) and stripping (voids) limits."""
    from dendritect.physics.ecm import critical_current_density, ramp_ccd

    if protocol not in ("steady", "ramp"):
        raise InputError(f"--protocol: use steady or ramp, got {protocol!r}")
    if not 0.0 < relative_density <= 1.0:
        raise InputError(f"relative_density: must be in (0, 1], got {relative_density!r}")
    kwargs = dict(
        stack_pressure_MPa=parse_pressure_MPa(stack_pressure, "--stack-pressure"),
        pore_um=parse_length_um(pore_size, name="--pore-size"),
        relative_density=relative_density,
        thickness_um=parse_length_um(thickness_, name="--thickness"),
        temperature_C=parse_temperature_C(temperature),
        void_um=parse_length_um(void_size, name="--void-size"),
        grain_um=None if grain_size is None else parse_length_um(grain_size, name="--grain-size"),
        overrides=_overrides(settings))
    if protocol == "ramp":
        out = ramp_ccd(electrolyte, start_mA_cm2=parse_current_density(ramp_start, "--ramp-start"),
                       step_mA_cm2=parse_current_density(ramp_step, "--ramp-step"), **kwargs)
    else:
        out = critical_current_density(electrolyte, **kwargs)
    _emit(out, as_json)


@model_app.command("montecarlo")
def montecarlo(electrolyte: str = _ELECTROLYTE,
               stack_pressure: str = typer.Option("5MPa", "--stack-pressure"),
               flaw_scale: str = typer.Option("2um", "--flaw-scale", help="Weibull scale."),
               flaw_shape: float = typer.Option(2.0, "--flaw-shape", help="Weibull shape."),
               n_flaws: int = typer.Option(100, "--flaws", help="Flaws per cell."),
               cells: int = typer.Option(1000, "--cells", help="Cells to sample."),
               current_density: str | None = typer.Option(
                   None, "--current-density", help="Report the failure probability here."),
               relative_density: float = typer.Option(1.0, "--relative-density"),
               seed: int = typer.Option(0, "--seed"),
               settings: list[str] | None = _SET,
               as_json: bool = _JSON) -> None:
    """CCD scatter and failure probability over Weibull-distributed flaws."""
    from dendritect.physics.montecarlo import ccd_monte_carlo

    mc = ccd_monte_carlo(electrolyte,
                         stack_pressure_MPa=parse_pressure_MPa(stack_pressure, "--stack-pressure"),
                         flaw_scale_um=parse_length_um(flaw_scale, name="--flaw-scale"),
                         flaw_shape=flaw_shape, n_flaws=n_flaws, n_cells=cells,
                         relative_density=relative_density, seed=seed,
                         overrides=_overrides(settings))
    out: dict[str, Any] = {**mc.quantiles(),
                           "stripping_limit_mA_cm2": mc.stripping_limit_mA_cm2,
                           "mean_ccd_mA_cm2": float(np.mean(mc.ccd_mA_cm2))}
    if current_density is not None:
        i = parse_current_density(current_density)
        out["current_density_mA_cm2"] = i
        out["failure_probability"] = mc.failure_probability(i)
    out["params"] = mc.params
    _emit(out, as_json)


@model_app.command("sweep")
def sweep_cmd(out: str = typer.Option(..., "--out", help="Folder for sweep.csv and sweep.png."),
              quantity: str = typer.Option("t_short", "--quantity",
                                           help="t_short, t_span, t_initiation or ccd."),
              electrolyte: str = _ELECTROLYTE,
              current_min: str = typer.Option("0.1mA/cm2", "--current-min"),
              current_max: str = typer.Option("10mA/cm2", "--current-max"),
              current_steps: int = typer.Option(20, "--current-steps", min=1),
              pressure_min: str = typer.Option("1MPa", "--pressure-min"),
              pressure_max: str = typer.Option("20MPa", "--pressure-max"),
              pressure_steps: int = typer.Option(20, "--pressure-steps", min=1),
              thickness_: str = typer.Option("500um", "--thickness"),
              flaw_size: str = typer.Option("5um", "--flaw",
                                            help="Flaw depth (pore size for ccd)."),
              applied_stress: str = typer.Option("0MPa", "--applied-stress"),
              duration: str = typer.Option("10h", "--duration"),
              settings: list[str] | None = _SET,
              as_json: bool = _JSON) -> None:
    """Sweep current density (log-spaced) × stack pressure; write a CSV table and a PNG map."""
    from dendritect.physics.sweep import sweep, write_sweep

    i0 = parse_current_density(current_min, "--current-min")
    i1 = parse_current_density(current_max, "--current-max")
    p0 = parse_pressure_MPa(pressure_min, "--pressure-min")
    p1 = parse_pressure_MPa(pressure_max, "--pressure-max")
    if i1 < i0 or p1 < p0:
        raise InputError("sweep: each maximum must not be below its minimum")
    table = sweep(quantity, electrolyte=electrolyte,
                  current_densities_mA_cm2=np.geomspace(i0, i1, current_steps),
                  stack_pressures_MPa=np.linspace(p0, p1, pressure_steps),
                  thickness_um=parse_length_um(thickness_, name="--thickness"),
                  flaw_um=parse_length_um(flaw_size, name="--flaw"),
                  applied_stress_MPa=_pressure(applied_stress, "--applied-stress"),
                  duration_s=parse_duration_s(duration, name="--duration"),
                  overrides=_overrides(settings))
    paths = write_sweep(table, out)
    col = next(c for c in table.columns if c.endswith(("_s", "ccd_margin")))
    summary: dict[str, Any] = {"quantity": quantity, "rows": len(table), **paths}
    if quantity == "ccd":
        summary["safe"] = int((table[col] > 1.0).sum())
    else:
        summary["reached"] = int(table[col].notna().sum())
    _emit(summary, as_json)


@model_app.command("materials")
def materials(as_json: bool = _JSON) -> None:
    """The materials database, every value with its source."""
    from dendritect.physics.materials import materials_table

    table = materials_table()
    if as_json:
        _emit(table, True)
        return
    for section, entries in (("electrolytes", table["electrolytes"]),
                             ("lithium", {"lithium": table["lithium"]})):
        typer.echo(f"[{section}]")
        for name, props in entries.items():
            typer.echo(f"{name}: {props.get('description', '')}")
            for key, v in props.items():
                if isinstance(v, dict):
                    typer.echo(f"  {key} = {v['value']:g}  ({v['source']})")
