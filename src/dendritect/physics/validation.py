"""The model against published cells: the cases behind ``physics/data/validation.csv``.

Each case sets up one published cell (or a pair, for a trend) in the cell model
(:mod:`dendritect.physics.ecm`) and returns the model's value. ``kind`` says how a row is
compared with the paper:

- ``closed_form``: an equation's number, within ``tolerance`` (same unit);
- ``value``: a published CCD or time to short; the ratio model / published is reported and
  "within 2×" is 0.5 ≤ ratio ≤ 2;
- ``upper`` / ``lower``: the paper gives a bound (a cell that shorted at a current, or did not
  short for a time); the model must respect it;
- ``trend``: the direction the paper reports; the model returns 1.0 when it agrees.

:func:`validation_rows` recomputes every row; :func:`sensitivity_table` gives the factor by
which a 2× change of each parameter that cannot be measured moves the CCD and the time to
short. ``python -m dendritect.physics.validation`` prints both as Markdown (docs).
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable
from importlib import resources
from typing import Any

from dendritect.physics import closed_form as cf
from dendritect.physics import ecm
from dendritect.physics.constants import geometry_factor

__all__ = ["CASES", "SENSITIVITY_PARAMETERS", "published_rows", "sensitivity_table",
           "validation_rows"]


def _ccd(**kw: Any) -> float:
    return float(ecm.critical_current_density(**kw)["ccd_mA_cm2"])


def _short(**kw: Any) -> float:
    t = ecm.simulate(**kw).t_short_s
    return math.inf if t is None else float(t)


def _decreasing(values: list[float]) -> bool:
    return all(b < a for a, b in itertools.pairwise(values))


def _increasing(values: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


# Published cells as the model sees them. Setup choices that the papers' abstracts do not
# give (flaw size, ASR of the best interface, current density) are stated in the CSV row.
_FLATSCHER = {"electrolyte": "LLZO", "stack_pressure_MPa": 0.0, "pore_um": 1.0}
_TSAI = {"electrolyte": "LLZO", "stack_pressure_MPa": 0.0, "pore_um": 5.0,
         "relative_density": 0.99, "temperature_C": 30.0}
_LLZO_CELL = {"electrolyte": "LLZO", "flaw_um": 20.0, "stack_pressure_MPa": 0.0,
              "current_density_mA_cm2": 1.0, "overrides": {"flaw_aspect": 0.01}}
_LPSCL_IDLE = {"electrolyte": "Li6PS5Cl", "current_density_mA_cm2": 0.0,
               "stack_pressure_MPa": 75.0, "flaw_um": 10.0, "thickness_um": 700.0,
               "duration_s": 30 * 3600.0, "overrides": {"flaw_aspect": 1.0}}
_LPSCL_CYCLE = {"electrolyte": "Li6PS5Cl", "current_density_mA_cm2": 0.3,
                "stack_pressure_MPa": 15.0, "flaw_um": 10.0, "thickness_um": 700.0,
                "protocol": "cycle", "capacity_mAh_cm2": 0.3, "duration_s": 150 * 3600.0,
                "overrides": {"flaw_aspect": 1.0}}


# Polycrystalline pellets whose test pressure the source does not give: oxide pellets at
# 0 MPa (no press), sulfide pellets at the model's default 5 MPa (tested in a die); the largest
# lithium-accessible flaw 5 µm unless the source gives the microstructure.
_LLZO_PELLET = {"electrolyte": "LLZO", "stack_pressure_MPa": 0.0, "pore_um": 5.0}
_HAN = {"electrolyte": "Li6PS5Cl", "stack_pressure_MPa": 5.0,
        "overrides": {"ionic_conductivity_S_cm": 16.4e-3}}
_CHEN = {"electrolyte": "LLZO", "stack_pressure_MPa": 0.0,
         "overrides": {"ionic_conductivity_S_cm": 1.9e-3}}
# A garnet wetted by a liquid electrolyte (Nasir et al. 2025): full contact, so the measured ASR
# above the full-contact ASR (1 Ω·cm², database) is an interphase film, not contact loss.
_NASIR = {"ionic_conductivity_S_cm": 1.53e-3, "interfacial_resistance_ohm_cm2": 32.0,
          "interphase_asr_ohm_cm2": 31.0}


# Ga2O3-added Ta-LLZO (Batteries 2022, 8, 158): ≤ 2 mol % Ga2O3 gives grains of 5–10 µm, ≥ 3 mol %
# grains of several 10 to 100 µm; the largest grain stated is the grain-boundary flaw (weakest
# link). The 5 mol % sample has the stated 1.1 mS/cm; the 2 mol % sample's is not stated.
_INADA_COARSE = {"electrolyte": "LLZO", "stack_pressure_MPa": 0.0, "pore_um": 5.0,
                 "grain_um": 100.0, "overrides": {"ionic_conductivity_S_cm": 1.1e-3}}
_INADA_FINE = {"electrolyte": "LLZO", "stack_pressure_MPa": 0.0, "pore_um": 5.0,
               "grain_um": 10.0}


def _inada_grain_trend() -> float:
    return float(_ccd(**_INADA_COARSE) < _ccd(**_INADA_FINE))


def _flatscher_trend() -> float:
    ccd = [_ccd(**_FLATSCHER, overrides={"interfacial_resistance_ohm_cm2": z})
           for z in (2.0, 20.0, 200.0)]
    return float(_decreasing(ccd))


def _sharafi_trend() -> float:
    ccd = [_ccd(electrolyte="LLZO", stack_pressure_MPa=0.0, pore_um=5.0, temperature_C=t)
           for t in (25.0, 60.0, 100.0)]
    return float(_increasing(ccd))


def _kasemchainan_trend() -> float:
    s = [ecm.critical_current_density("Li6PS5Cl", stack_pressure_MPa=p, pore_um=5.0)[
        "stripping_limit_mA_cm2"] for p in (3.0, 7.0)]
    return float(_increasing(s))


def _cycling_hours_to_short(cell: dict[str, Any], current: float, capacity: float,
                            hours: float, flaw_um: float = 5.0) -> float:
    """Hours of plate/strip cycling to the short (inf: none).

    Below both limits a flaw never cracks in the model, so 50 h of cycling without initiation
    stands for any longer published run; any initiation is followed to its short.
    """
    kw = {"current_density_mA_cm2": current, "flaw_um": flaw_um, "protocol": "cycle",
          "capacity_mAh_cm2": capacity}
    sim = {k: v for k, v in cell.items() if k != "overrides"}
    ov = cell.get("overrides")
    r = ecm.simulate(**sim, **kw, duration_s=50 * 3600.0, overrides=ov)
    below = current < _ccd(**sim, pore_um=flaw_um, overrides=ov)
    if r.t_initiation_s is None and below:
        return math.inf
    return _short(**sim, **kw, duration_s=hours * 3600.0, overrides=ov) / 3600.0


def _doux_no_short() -> float:
    cell = {"electrolyte": "Li6PS5Cl", "stack_pressure_MPa": 5.0, "thickness_um": 700.0}
    return _cycling_hours_to_short(cell, 0.5, 0.5, 1000.0)


def _ning2023_cycles() -> float:
    kw = {"current_density_mA_cm2": 1.5, "protocol": "cycle", "capacity_mAh_cm2": 0.1,
          "duration_s": 50 * 3600.0}
    n = [ecm.simulate(stack_pressure_MPa=p, **kw).cycles_to_short for p in (1.0, 15.0)]
    return float(n[0] is not None and n[1] is not None and n[0] > n[1])


def _fincher() -> float:
    free = ecm.simulate(**_LLZO_CELL).t_short_s
    pressed = ecm.simulate(**_LLZO_CELL, applied_stress_MPa=-200.0).t_short_s
    return float(free is not None and pressed is None)


def _span_before_short() -> float:
    ok = True
    for kw in ({"current_density_mA_cm2": 2.0}, {"current_density_mA_cm2": 4.0}, _LLZO_CELL):
        r = ecm.simulate(**kw)
        ok &= r.t_span_s is not None and r.t_short_s is not None and r.t_span_s < r.t_short_s
    return float(ok)


def _tip_ahead() -> float:
    r = ecm.simulate(current_density_mA_cm2=2.0)
    if r.t_initiation_s is None or r.t_span_s is None:
        return 0.0
    growing = (r.time_s > r.t_initiation_s) & (r.time_s < r.t_span_s)
    return float(growing.sum() > 10 and bool((r.li_length_um[growing]
                                              < r.crack_length_um[growing]).all()))


def _short_vs_current() -> float:
    return float(_decreasing([_short(current_density_mA_cm2=i) for i in (2.0, 4.0, 8.0)]))


def _short_vs_pressure() -> float:
    return float(_decreasing([_short(current_density_mA_cm2=2.0, stack_pressure_MPa=p)
                              for p in (5.0, 10.0, 20.0)]))


def _oxford_density() -> float:
    # 83 % dense with 5 µm pores vs 99 % dense with 1 µm pores (smaller pores on densifying).
    return float(_ccd(pore_um=5.0, relative_density=0.83)
                 < _ccd(pore_um=1.0, relative_density=0.99))


def _ccd_vs_density() -> float:
    return float(_increasing([_ccd(pore_um=3.0, relative_density=r) for r in (0.8, 0.9, 1.0)]))


def _ccd_vs_pore() -> float:
    return float(_decreasing([
        ecm.critical_current_density(pore_um=a)["plating_limit_mA_cm2"] for a in (1.0, 3.0, 10.0)]))


#: id → the model's value for that row.
CASES: dict[str, Callable[[], float]] = {
    "plating_stress_10mV": lambda: cf.plating_pressure_MPa(10.0),
    "li_thickness_0p3mAh": lambda: cf.lithium_thickness_um(0.3),
    "llzo_flaw_1GPa": lambda: cf.critical_flaw_um(1000.0, 1.25, "edge"),
    "semicircle_factor": lambda: geometry_factor("semicircle"),
    "penny_factor": lambda: geometry_factor("penny"),
    "flatscher2020_ccd": lambda: _ccd(**_FLATSCHER),
    "flatscher2020_asr": _flatscher_trend,
    "tsai2016_dense_llzo": lambda: _ccd(**_TSAI),
    "sharafi2016_temperature": _sharafi_trend,
    "kasemchainan2019_pressure": _kasemchainan_trend,
    "doux2020_5MPa": _doux_no_short,
    "ning2023_stack_pressure": _ning2023_cycles,
    "fincher2022_compression": _fincher,
    "ning2021_span_before_short": _span_before_short,
    "ning2021_dry_tip": _tip_ahead,
    "ning2021_current": _short_vs_current,
    "ning2023_propagation": _short_vs_pressure,
    "porz2017_density": _ccd_vs_density,
    "porz2017_pore_size": _ccd_vs_pore,
    "oxford2025_dense_lpscl": lambda: _ccd(pore_um=1.0, relative_density=0.99),
    "oxford2025_density": _oxford_density,
    "zhu2025_llzto150": lambda: _ccd(**_LLZO_PELLET),
    "zhu2025_llzto300": lambda: _ccd(**_LLZO_PELLET),
    "zhu2025_llzto600": lambda: _ccd(**_LLZO_PELLET),
    "garciamendez2017_lps_hp170": lambda: _ccd(electrolyte="Li3PS4", stack_pressure_MPa=5.0,
                                               pore_um=5.0, relative_density=0.80),
    "han2024_bh4_argyrodite": lambda: _ccd(**_HAN, pore_um=5.0),
    "han2024_cycling_1mA": lambda: _cycling_hours_to_short(
        {**_HAN, "thickness_um": 700.0}, 1.0, 1.0, 2000.0),
    "chen_ga_llzo": lambda: _ccd(**_CHEN, pore_um=5.0),
    "chen_ga_llzo_cycling": lambda: _cycling_hours_to_short(
        {**_CHEN, "thickness_um": 700.0}, 0.3, 0.3, 500.0),
    "nasir2025_ga_llzo_ether": lambda: _ccd(electrolyte="LLZO", stack_pressure_MPa=0.0, pore_um=5.0,
                                            overrides=_NASIR),
    "oxford2025_garnet_typical": lambda: _ccd(**_LLZO_PELLET, relative_density=0.99),
    "inada2022_ga5_llzo": lambda: _ccd(**_INADA_COARSE),
    "inada2022_grain_size": _inada_grain_trend,
    "duan2023_idle_75MPa": lambda: _short(**_LPSCL_IDLE) / 3600.0,
    "duan2023_cycling_15MPa": lambda: _short(**_LPSCL_CYCLE) / 3600.0,
}


def published_rows() -> list[dict[str, str]]:
    """The rows of ``physics/data/validation.csv`` as written."""
    text = resources.files("dendritect.physics").joinpath("data/validation.csv").read_text(
        encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def judge(row: dict[str, str], model: float) -> tuple[float | None, bool]:
    """The ratio model/published (value rows) and whether the row agrees with the paper."""
    kind = row["kind"]
    if kind == "trend":
        return None, model == 1.0
    published = float(row["published"])
    if kind == "closed_form":
        return model / published, abs(model - published) <= float(row["tolerance"])
    if kind == "upper":
        return model / published, model < published
    if kind == "lower":
        return model / published, model > published
    ratio = model / published
    return ratio, 0.5 <= ratio <= 2.0


def validation_rows() -> list[dict[str, Any]]:
    """Every row recomputed: the CSV fields plus ``model_now``, ``ratio_now``, ``agrees``."""
    out = []
    for row in published_rows():
        model = float(CASES[row["id"]]())
        ratio, agrees = judge(row, model)
        out.append({**row, "model_now": model, "ratio_now": ratio, "agrees": agrees})
    return out


#: Parameters that cannot be measured on a cell, with the reference value used.
SENSITIVITY_PARAMETERS = ("flaw_aspect", "li_entry_gap_um", "vacancy_length_um", "void_um",
                          "edge_focus_max", "charge_transfer_asr_ohm_cm2",
                          "li_size_yield_1um_MPa", "li_creep_rate_per_s",
                          "li_self_diffusion_cm2_s", "growth_rate_per_s", "grain_flaw_ratio")


def _default(name: str, electrolyte: str) -> float:
    from dendritect.physics.materials import get_lithium, get_material

    if name in ecm.ECM_DEFAULTS:
        return float(ecm.ECM_DEFAULTS[name])
    if name.startswith("li_"):
        return float(getattr(get_lithium(), name[3:]))
    return float(getattr(get_material(electrolyte), name))


#: The wide-pore reference cell: an equiaxed 10 µm pore (aspect 1) under 20 MPa, where
#: lithium can extrude and the creep parameters enter.
_WIDE_PORE = {"stack_pressure_MPa": 20.0, "pore_um": 10.0}


def sensitivity_table() -> list[dict[str, Any]]:
    """Factor by which doubling each parameter moves the CCD and the time to short.

    Reference cells: the CCD of Li6PS5Cl (5 MPa, 5 µm pore), of LLZO (0 MPa, 1 µm flaw), of
    coarse-grained LLZO (0 MPa, 100 µm grains: the grain-boundary flaw) and of Li6PS5Cl with
    a wide, equiaxed pore (20 MPa, 10 µm, aspect 1), and the time to short of Li6PS5Cl at
    2 mA/cm², 5 MPa, 5 µm flaw, 500 µm.
    """
    base_l = _ccd(pore_um=5.0)
    base_o = _ccd(**_FLATSCHER)
    coarse = {k: v for k, v in _INADA_COARSE.items() if k != "overrides"}
    coarse_ov = _INADA_COARSE["overrides"]
    base_g = _ccd(**coarse, overrides=coarse_ov)
    wide = {"flaw_aspect": 1.0}
    base_w = float(ecm.critical_current_density(**_WIDE_PORE, overrides=wide)[
        "plating_limit_mA_cm2"])
    base_t = _short(current_density_mA_cm2=2.0)
    rows = []
    for name in SENSITIVITY_PARAMETERS:
        ov_l = {name: 2.0 * _default(name, "Li6PS5Cl")}
        ov_o = {name: 2.0 * _default(name, "LLZO")}
        ov_w = {**wide, **ov_l} if name != "flaw_aspect" else {"flaw_aspect": 2.0}
        rows.append({
            "parameter": name,
            "ccd_Li6PS5Cl_factor": _ccd(pore_um=5.0, overrides=ov_l) / base_l,
            "ccd_LLZO_factor": _ccd(**_FLATSCHER, overrides=ov_o) / base_o,
            "ccd_coarse_LLZO_factor": _ccd(**coarse, overrides={**coarse_ov, **ov_o}) / base_g,
            "plating_wide_pore_factor": float(ecm.critical_current_density(
                **_WIDE_PORE, overrides=ov_w)["plating_limit_mA_cm2"]) / base_w,
            "t_short_factor": _short(current_density_mA_cm2=2.0, overrides=ov_l) / base_t,
        })
    return rows


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        if math.isinf(x):
            return "no short"
        return f"{x:.3g}"
    return str(x)


def markdown() -> str:  # pragma: no cover - documentation helper
    """The validation and sensitivity tables as Markdown."""
    lines = ["| id | kind | paper | material | density / flaw | p (MPa) | T (°C) | protocol | "
             "quantity | published | unit | model | ratio | agrees | verified |",
             "|" + "---|" * 15]
    for r in validation_rows():
        lines.append("| " + " | ".join([
            f"`{r['id']}`", r["kind"], r["paper"], r["material"], r["density_flaw"],
            r["stack_pressure_MPa"], r["temperature_C"], r["protocol"], r["quantity"],
            r["published"], r["unit"], _fmt(r["model_now"]),
            "" if r["ratio_now"] is None else _fmt(r["ratio_now"]),
            "yes" if r["agrees"] else "**no**", r["verified"]]) + " |")
    lines += ["", "| parameter | CCD Li6PS5Cl ×2 | CCD LLZO ×2 | CCD coarse-grained LLZO ×2 | "
              "plating limit, wide pore ×2 | t_short ×2 |", "|---|---|---|---|---|---|"]
    for r in sensitivity_table():
        lines.append(f"| `{r['parameter']}` | {_fmt(r['ccd_Li6PS5Cl_factor'])} | "
                     f"{_fmt(r['ccd_LLZO_factor'])} | {_fmt(r['ccd_coarse_LLZO_factor'])} | "
                     f"{_fmt(r['plating_wide_pore_factor'])} | {_fmt(r['t_short_factor'])} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown())
