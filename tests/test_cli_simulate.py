"""`dendritect simulate` on the command line."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_input_error


def test_simulate_writes_a_dataset(cli, tmp_path):
    out = tmp_path / "ds"
    r = cli("simulate", out, "--steps", 3, "--seed", 4, "--current-density", "2 mA/cm2",
            "--stack-pressure", "3MPa")
    assert r.code == 0, r.err
    assert "wrote" in r.out and str(out) in r.out
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["n_steps"] == 3 and meta["seed"] == 4
    assert meta["current_density_mA_cm2"] == pytest.approx(2.0)
    assert meta["stack_pressure_MPa"] == pytest.approx(3.0)
    assert len(list((out / "scans").glob("t*.tif"))) == 3
    r = cli("simulate", out, "--steps", 3)
    assert_input_error(r, "not empty")


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--preset", "nope"], "preset"), (["--current-density", "-1mA/cm2"], "current"),
     (["--current-density", "3V"], "current-density"), (["--ct", "xray"], "ct"),
     (["--electrolyte", "cheese"], "electrolyte"), (["--stack-pressure", "-1MPa"], "pressure"),
     (["--steps", "0"], "steps")],
)
def test_simulate_bad_input(cli, tmp_path, args, needle):
    out = tmp_path / "ds"
    assert_input_error(cli("simulate", out, *args), needle)
    assert not out.exists()
