"""`dendritect model ...` end to end, in process."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_input_error


def _json(result) -> dict:
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_stress(cli) -> None:
    d = _json(cli("model", "stress", "--overpotential", "10mV", "--json"))
    assert d["pressure_MPa"] == pytest.approx(74.2, abs=0.05)
    d = _json(cli("model", "stress", "--overpotential", "0.01 V", "--json"))
    assert d["overpotential_mV"] == pytest.approx(10.0)


def test_thickness(cli) -> None:
    d = _json(cli("model", "thickness", "--capacity", "0.3mAh/cm2", "--json"))
    assert d["lithium_thickness_um"] == pytest.approx(1.455, abs=1e-3)


def test_flaw_from_pressure_and_overpotential(cli) -> None:
    d = _json(cli("model", "flaw", "--electrolyte", "LLZO", "--pressure", "1GPa", "--json"))
    assert d["critical_flaw_um"] == pytest.approx(0.40, abs=0.005)
    assert d["critical_pressure_MPa"] == pytest.approx(1000.0)
    eta = d["critical_overpotential_mV"]
    d2 = _json(cli("model", "flaw", "--electrolyte", "LLZO", "--overpotential", f"{eta}mV",
                   "--json"))
    assert d2["critical_flaw_um"] == pytest.approx(0.40, abs=0.005)
    d3 = _json(cli("model", "flaw", "-e", "LLZO", "--pressure", "1GPa", "--geometry", "penny",
                   "--k-ic", "2.5", "--json"))
    # a ∝ (K/Y)²: doubling K and Y = 2/π instead of 1.12.
    assert d3["critical_flaw_um"] == pytest.approx(
        d["critical_flaw_um"] * 4 * (1.12 / (2 / 3.141592653589793)) ** 2, rel=1e-6)


def test_flaw_text_output(cli) -> None:
    r = cli("model", "flaw", "--electrolyte", "LLZO", "--pressure", "1GPa")
    assert r.code == 0
    assert "critical_flaw_um: 0.396" in r.out


def test_grow_json(cli) -> None:
    d = _json(cli("model", "grow", "--electrolyte", "Li6PS5Cl", "--current-density", "2mA/cm2",
                  "--stack-pressure", "5MPa", "--thickness", "500um", "--flaw", "5um",
                  "--duration", "10h", "--points", "51", "--json"))
    assert 0 < d["t_initiation_s"] < d["t_span_s"] < d["t_short_s"] < 36000
    s = d["series"]
    for key in ("time_s", "crack_length_um", "li_length_um", "li_pressure_MPa", "voltage_V"):
        assert len(s[key]) == 51
    assert s["crack_length_um"][-1] == pytest.approx(500.0)
    assert d["params"]["thickness_um"] == 500.0


def test_grow_compression_and_null_events(cli) -> None:
    d = _json(cli("model", "grow", "--applied-stress", "-200MPa", "--duration", "1h",
                  "--points", "5", "--json"))
    assert d["t_short_s"] is None and d["t_span_s"] is None


def test_grow_set_override(cli) -> None:
    d = _json(cli("model", "grow", "--duration", "10min", "--points", "3", "--set",
                  "k_ic_MPa_sqrt_m=0.5", "--set", "geometry=semicircle", "--json"))
    assert d["params"]["electrolyte"]["k_ic_MPa_sqrt_m"] == 0.5
    assert d["params"]["geometry"] == "semicircle"


def test_ccd(cli) -> None:
    dense = _json(cli("model", "ccd", "--electrolyte", "Li6PS5Cl", "--stack-pressure", "5MPa",
                      "--pore-size", "3um", "--json"))
    porous = _json(cli("model", "ccd", "--electrolyte", "Li6PS5Cl", "--stack-pressure", "5MPa",
                       "--pore-size", "3um", "--relative-density", "0.9", "--json"))
    assert porous["ccd_mA_cm2"] < dense["ccd_mA_cm2"]
    assert dense["stripping_limit_mA_cm2"] > 0
    high = _json(cli("model", "ccd", "--stack-pressure", "7MPa", "--json"))
    assert high["stripping_limit_mA_cm2"] > dense["stripping_limit_mA_cm2"]


def test_grow_cycle_protocol_counts_cycles(cli) -> None:
    d = _json(cli("model", "grow", "--protocol", "cycle", "--capacity", "0.3mAh/cm2",
                  "--current-density", "2mA/cm2", "--duration", "10h", "--points", "11",
                  "--json"))
    assert d["protocol"] == "cycle"
    assert d["half_cycle_s"] == pytest.approx(0.3 / 2.0 * 3600.0)
    # It shorts during a plating half-cycle: cycles_to_short counts the cycles begun.
    assert d["t_short_s"] is not None
    assert d["cycles_to_short"] == int(d["t_short_s"] // (2 * d["half_cycle_s"])) + 1
    assert d["cycles_to_short"] >= 2


def test_grow_idle_cell_and_temperature(cli) -> None:
    idle = _json(cli("model", "grow", "--current-density", "0mA/cm2", "--stack-pressure",
                     "75MPa", "--duration", "1h", "--points", "3", "--json"))
    assert idle["params"]["current_density_mA_cm2"] == 0.0
    assert idle["t_short_s"] is None
    assert all(v == 0.0 for v in idle["series"]["voltage_V"])
    hot = _json(cli("model", "grow", "--temperature", "333.15K", "--duration", "10min",
                    "--points", "3", "--json"))
    assert hot["params"]["temperature_C"] == pytest.approx(60.0)
    cold = _json(cli("model", "grow", "--duration", "10min", "--points", "3", "--json"))
    assert hot["params"]["sigma_S_cm"] > cold["params"]["sigma_S_cm"]


def test_ccd_ramp_and_temperature(cli) -> None:
    steady = _json(cli("model", "ccd", "-e", "LLZO", "--stack-pressure", "0MPa", "--json"))
    ramp = _json(cli("model", "ccd", "-e", "LLZO", "--stack-pressure", "0MPa", "--protocol",
                     "ramp", "--ramp-step", "0.1mA/cm2", "--ramp-start", "0.1mA/cm2",
                     "--json"))
    assert ramp["protocol"] == "ramp"
    # The ramp reports the first step at or above the steady CCD.
    assert steady["ccd_mA_cm2"] <= ramp["ramp_ccd_mA_cm2"] < steady["ccd_mA_cm2"] + 0.1 + 1e-9
    hot = _json(cli("model", "ccd", "-e", "LLZO", "--stack-pressure", "0MPa",
                    "--temperature", "60C", "--json"))
    assert hot["ccd_mA_cm2"] > steady["ccd_mA_cm2"]
    coarse = _json(cli("model", "ccd", "-e", "LLZO", "--stack-pressure", "0MPa",
                       "--grain-size", "100um", "--json"))
    assert coarse["flaw_kind"] == "grain boundary" and coarse["flaw_um"] == 100.0
    assert coarse["ccd_mA_cm2"] < steady["ccd_mA_cm2"]


def test_montecarlo(cli) -> None:
    d = _json(cli("model", "montecarlo", "--cells", "100", "--current-density", "1mA/cm2",
                  "--seed", "2", "--json"))
    assert d["q05"] <= d["q50"] <= d["q95"]
    assert 0.0 <= d["failure_probability"] <= 1.0


def test_sweep_writes_csv_and_png(cli, tmp_path) -> None:
    out = tmp_path / "sw"
    d = _json(cli("model", "sweep", "--out", out, "--current-steps", "3", "--pressure-steps",
                  "2", "--duration", "3h", "--json"))
    assert d["rows"] == 6
    lines = (out / "sweep.csv").read_text().strip().splitlines()
    assert lines[0] == "current_density_mA_cm2,stack_pressure_MPa,t_short_s"
    assert len(lines) == 7
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]
    d = _json(cli("model", "sweep", "--out", out, "--quantity", "ccd", "--current-steps", "2",
                  "--current-min", "0.01mA/cm2", "--current-max", "100mA/cm2",
                  "--pressure-min", "5MPa", "--pressure-steps", "4", "--json"))
    assert d["rows"] == 8
    assert d["safe"] == 4  # every CCD from 5 to 20 MPa lies between 0.01 and 100 mA/cm²
    header = (out / "sweep.csv").read_text().splitlines()[0]
    assert header.startswith("current_density_mA_cm2,stack_pressure_MPa,ccd_margin")


def test_materials(cli) -> None:
    d = _json(cli("model", "materials", "--json"))
    llzo = d["electrolytes"]["LLZO"]
    assert llzo["k_ic_MPa_sqrt_m"]["value"] == 1.25
    assert "Wolfenstine" in llzo["k_ic_MPa_sqrt_m"]["source"]
    r = cli("model", "materials")
    assert r.code == 0 and "Li6PS5Cl" in r.out and "Masias" in r.out


@pytest.mark.parametrize("args, needle", [
    (("model", "grow", "--thickness", "-500um"), "--thickness"),
    (("model", "grow", "--electrolyte", "Unobtainium"), "unknown electrolyte"),
    (("model", "flaw", "--pressure", "3V"), "--pressure"),
    (("model", "grow", "--stack-pressure", "5V"), "--stack-pressure"),
    (("model", "stress", "--overpotential", "ten"), "--overpotential"),
    (("model", "flaw", "--electrolyte", "LLZO"), "exactly one"),
    (("model", "flaw", "--pressure", "1GPa", "--geometry", "cube"), "geometry"),
    (("model", "grow", "--set", "nonsense"), "--set"),
    (("model", "grow", "--set", "bogus=1"), "unknown parameter"),
    (("model", "ccd", "--relative-density", "1.2"), "relative_density"),
    (("model", "grow", "--current-density", "-1mA/cm2"), "--current-density"),
    (("model", "grow", "--protocol", "cycle"), "--capacity"),
    (("model", "grow", "--protocol", "pulse"), "--protocol"),
    (("model", "grow", "--protocol", "cycle", "--capacity", "0.3mAh/cm2",
      "--current-density", "0mA/cm2"), "--current-density"),
    (("model", "grow", "--temperature", "hot"), "--temperature"),
    (("model", "grow", "--temperature", "200C"), "temperature"),
    (("model", "ccd", "--protocol", "sweep"), "--protocol"),
    (("model", "grow", "--duration", "5 kg"), "--duration"),
])
def test_bad_input(cli, args, needle) -> None:
    assert_input_error(cli(*args), needle)


def test_sweep_refuses_a_file_as_out(cli, tmp_path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("keep")
    assert_input_error(cli("model", "sweep", "--out", f, "--current-steps", "1",
                           "--pressure-steps", "1", "--quantity", "ccd"), "--out")
    assert f.read_text() == "keep"
