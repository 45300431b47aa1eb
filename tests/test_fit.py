"""`dendritect fit`: calibration of the model to measured fronts, forecasts and fit.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dendritect.physics import ecm
from dendritect.physics.fit import fit, load_results
from dendritect.predict.forecast import forecast_span
from tests.conftest import assert_input_error

CONTRACT_KEYS = ("parameters", "forecast_span_time_s", "forecast_span_time_sigma_s",
                 "forecast_short_time_s", "what_if")


def _results_folder(path: Path, times: np.ndarray, front: np.ndarray, thickness: float,
                    voxel_um: float, current_mA: float | None = None,
                    echem: dict | None = None, li: np.ndarray | None = None) -> Path:
    """A minimal results folder (metrics.csv, summary.json, echem.csv)."""
    path.mkdir(parents=True)
    n = times.size
    pd.DataFrame({
        "t_index": np.arange(n), "time_s": times, "front_depth_um": front,
        "li_front_depth_um": li if li is not None else np.full(n, np.nan),
        "n_cracks": (front > 0).astype(int), "spanning": (front >= thickness).astype(int),
    }).to_csv(path / "metrics.csv", index=False)
    grow = front > 0
    fc = forecast_span(times[grow], front[grow], thickness) if grow.sum() >= 3 else None
    summary = {"dendritect_version": "test", "input": None,
               "voxel_size_um": [voxel_um] * 3, "anode": "top",
               "electrolyte_interfaces_um": [10.0, 10.0 + thickness],
               "span_index": None,
               "short_circuit": {"echem_time_s": None,
                                 "forecast_time_s": None if fc is None else fc.time_s,
                                 "forecast_from_index": n - 1},
               "parameters": {}}
    (path / "summary.json").write_text(json.dumps(summary))
    if echem is not None:
        pd.DataFrame(echem).to_csv(path / "echem.csv", index=False)
    elif current_mA is not None:
        t = np.arange(0.0, float(times[-1]) + 5.0, 5.0)
        pd.DataFrame({"time_s": t, "voltage_V": 0.01, "current_mA": current_mA}).to_csv(
            path / "echem.csv", index=False)
    return path


def test_cell_model_fit_recovers_known_parameters(tmp_path: Path) -> None:
    # Fronts made by the cell model itself with a known flaw and focusing, on a 2 µm grid.
    flaw, focus, thick = 3.3, 2.2, 300.0
    truth = ecm.simulate("Li6PS5Cl", current_density_mA_cm2=1.0 * focus,
                         stack_pressure_MPa=5.0, thickness_um=thick, flaw_um=flaw,
                         duration_s=20000.0)
    assert truth.t_span_s is not None
    times = np.linspace(0.0, 0.7 * truth.t_span_s, 9)
    depth = np.interp(times, truth.time_s, truth.crack_length_um)
    front = np.floor(depth / 2.0) * 2.0
    d = _results_folder(tmp_path / "r", times, front, thick, 2.0, current_mA=0.5)
    data = load_results(d, electrolyte="Li6PS5Cl", current_density_mA_cm2=1.0,
                        stack_pressure_MPa=5.0)
    r = fit(data, model="cell")
    p = r.parameters
    for name, value in (("flaw_um", flaw), ("focus", focus)):
        assert p[name]["sigma"] is not None and p[name]["sigma"] > 0
        assert abs(p[name]["value"] - value) <= 2.0 * p[name]["sigma"], (name, p[name])
    assert abs(p["supply_um"]["value"] - flaw * focus) <= 2.0 * p["supply_um"]["sigma"]
    # From scans before the span, the forecast is within 10 % of the true span time.
    assert r.forecast_span_time_s == pytest.approx(truth.t_span_s, rel=0.10)
    assert r.forecast_span_time_sigma_s is not None and r.forecast_span_time_sigma_s > 0
    assert r.residual_rms_um < 2.0


@pytest.fixture(scope="module")
def twin():
    from dendritect.synthetic.twin import generate

    return generate("demo", seed=0)


def test_twin_fit_forecasts_the_span_from_pre_span_scans(twin, tmp_path: Path) -> None:
    # The twin's truth is the first closure (growth.grow) with known flaw and local current;
    # the fit sees its fronts on the voxel grid, before the span only.
    tr = twin.truth
    steps = tr["steps"]
    vox = float(tr["voxel_size_um"][0])
    thick = float(tr["thickness_um"])
    t_span = float(tr["span_time_s"])
    times = np.array([s["time_s"] for s in steps])
    front = np.floor(np.array([s["front_depth_um"] for s in steps]) / vox) * vox
    pre = times < t_span
    assert pre.sum() >= 4
    e = {k: np.asarray(v) for k, v in twin.echem.items()}
    d = _results_folder(tmp_path / "r", times[pre], front[pre], thick, vox,
                        echem={"time_s": e["time_s"], "voltage_V": e["voltage_V"],
                               "current_mA": e["current_mA"]})
    meta = twin.meta
    data = load_results(d, electrolyte=meta["electrolyte"],
                        current_density_mA_cm2=meta["current_density_mA_cm2"],
                        stack_pressure_MPa=meta["stack_pressure_MPa"])
    r = fit(data, model="growth")
    assert not any("does not follow" in n for n in r.notes)
    assert r.forecast_span_time_s == pytest.approx(t_span, rel=0.10)
    empirical = data.empirical_forecast_s
    assert empirical is not None
    assert abs(r.forecast_span_time_s - t_span) <= abs(empirical - t_span)
    # The lead crack's known parameters, within 2 σ; the lithium supply (flaw × focus),
    # which sets the front speed, is the best-determined combination.
    lead = next(c for c in tr["cracks"] if c["id"] == tr["lead_crack"])
    focus = lead["current_density_mA_cm2"] / meta["current_density_mA_cm2"]
    p = r.parameters
    assert abs(p["flaw_um"]["value"] - lead["flaw_um"]) <= 2.0 * p["flaw_um"]["sigma"]
    assert abs(p["focus"]["value"] - focus) <= 2.0 * p["focus"]["sigma"]
    supply = lead["flaw_um"] * focus
    assert abs(p["supply_um"]["value"] - supply) <= 2.0 * p["supply_um"]["sigma"]
    assert p["supply_um"]["sigma"] < 0.1 * supply


def test_cli_fit_writes_fit_json(cli, tmp_path: Path) -> None:
    times = np.arange(8) * 600.0
    front = np.array([0.0, 30.0, 60.0, 88.0, 118.0, 146.0, 176.0, 204.0])
    d = _results_folder(tmp_path / "r", times, front, 300.0, 2.0, current_mA=0.5)
    r = cli("fit", d, "--model", "cell", "--electrolyte", "Li6PS5Cl", "--current-density",
            "1mA/cm2", "--stack-pressure", "5MPa", "--json")
    assert r.code == 0, r.err
    doc = json.loads((d / "fit.json").read_text())
    assert json.loads(r.out) == doc
    for key in CONTRACT_KEYS:
        assert key in doc
    for name, v in doc["parameters"].items():
        assert set(v) >= {"value", "sigma", "unit"}, name
        assert isinstance(v["value"], float)
    assert doc["forecast_span_time_s"] is None or doc["forecast_span_time_s"] > times[-1]
    changes = [w["change"] for w in doc["what_if"]]
    assert any("stack pressure" in c for c in changes)
    assert any("current density" in c for c in changes)
    assert any("temperature" in c for c in changes)
    assert any("density 0.9" in c for c in changes)
    # Doubling the current shortens the time to short.
    base = doc["what_if"][0]["short_time_s"]
    double = next(w for w in doc["what_if"] if "(double)" in w["change"]
                  and "current" in w["change"])["short_time_s"]
    if base is not None:
        assert double is not None and double < base
    assert not [p for p in d.iterdir() if p.name.startswith(".tmp")]


def test_cli_fit_bad_input(cli, tmp_path: Path) -> None:
    assert_input_error(cli("fit", tmp_path / "missing"), "not a folder")
    (tmp_path / "empty").mkdir()
    assert_input_error(cli("fit", tmp_path / "empty"), "not a dendritect results folder")
    d = _results_folder(tmp_path / "few", np.array([0.0, 1.0]), np.array([0.0, 1.0]),
                        100.0, 1.0)
    assert_input_error(cli("fit", d), "at least three")
    d2 = _results_folder(tmp_path / "ok", np.arange(5) * 60.0, np.arange(5) * 5.0, 100.0, 1.0)
    assert_input_error(cli("fit", d2, "--model", "magic"), "--model")


def test_report_fit_panel_from_fit_json(cli, tmp_path: Path) -> None:
    from dendritect.report.fit_panel import fit_figure, fit_rows, load_fit

    assert load_fit(tmp_path) is None
    times = np.arange(8) * 600.0
    front = np.array([0.0, 30.0, 60.0, 88.0, 118.0, 146.0, 176.0, 204.0])
    d = _results_folder(tmp_path / "r", times, front, 300.0, 2.0, current_mA=0.5)
    assert cli("fit", d, "--electrolyte", "Li6PS5Cl", "--current-density", "1mA/cm2",
               "--stack-pressure", "5MPa").code == 0
    doc = load_fit(d)
    assert doc is not None
    fig = fit_figure(doc)
    assert fig is not None and len(fig.axes[0].lines) >= 2
    rows = fit_rows(doc)
    assert {"flaw_um", "focus"} <= {r[0] for r in rows["parameters"]}
    assert len(rows["what_if"]) == len(doc["what_if"])
    (d / "fit.json").write_text("not json")
    assert load_fit(d) is None


def test_plating_clock_stalls_while_stripping(tmp_path: Path) -> None:
    # 0-1000 s plating, 1000-1500 s stripping, then plating again.
    t = np.arange(0.0, 3001.0, 5.0)
    cur = np.where((t >= 1000.0) & (t < 1500.0), -0.5, 0.5)
    times = np.array([0.0, 500.0, 1000.0, 1500.0, 2000.0, 3000.0])
    front = np.array([0.0, 10.0, 20.0, 20.0, 30.0, 50.0])
    d = _results_folder(tmp_path / "r", times, front, 300.0, 2.0,
                        echem={"time_s": t, "voltage_V": 0.01 + 0 * t, "current_mA": cur})
    data = load_results(d, electrolyte="Li6PS5Cl", current_density_mA_cm2=1.0,
                        stack_pressure_MPa=5.0)
    assert data.plating_time_s == pytest.approx([0.0, 500.0, 1000.0, 1000.0, 1500.0, 2500.0],
                                                abs=5.0)
    assert data.t_of_tau(2500.0) == pytest.approx(3000.0, abs=5.0)
    assert data.t_of_tau(4000.0) == pytest.approx(4500.0, abs=5.0)  # plating after the record


def test_flat_fronts_give_no_forecast(tmp_path: Path) -> None:
    times = np.arange(6) * 600.0
    d = _results_folder(tmp_path / "r", times, np.zeros(6), 300.0, 2.0, current_mA=0.5)
    data = load_results(d, electrolyte="Li6PS5Cl", current_density_mA_cm2=1.0,
                        stack_pressure_MPa=5.0)
    r = fit(data, model="cell")
    assert r.residual_rms_um < 2.0
    # No measured growth: the fitted cell does not span within the measured time.
    assert r.forecast_span_time_s is None or r.forecast_span_time_s > times[-1]
