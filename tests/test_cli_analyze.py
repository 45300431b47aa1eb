"""``dendritect analyze`` on the command line: options, exit codes, messages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dendritect import pipeline
from tests.conftest import assert_input_error
from tests.test_pipeline import FakeStages, make_series


@pytest.fixture
def fake_stages(monkeypatch):
    FakeStages.calls = []
    FakeStages.fail_at = None
    monkeypatch.setattr(pipeline, "_Stages", FakeStages)
    monkeypatch.setattr(pipeline, "_write_report", lambda out: None)
    return FakeStages


@pytest.fixture
def segment_params(monkeypatch):
    """``--param`` reads the fields of segment.cracks.SegmentParams; stand in a small one."""
    import dendritect.cli.analyze as mod
    from tests.test_pipeline import ThresholdParams

    real = mod.segment_params

    def fake(pairs):
        import sys
        import types

        m = types.ModuleType("dendritect.segment.cracks")
        m.SegmentParams = ThresholdParams
        saved = sys.modules.get("dendritect.segment.cracks")
        sys.modules["dendritect.segment.cracks"] = m
        try:
            return real(pairs)
        finally:
            if saved is None:
                del sys.modules["dendritect.segment.cracks"]
            else:
                sys.modules["dendritect.segment.cracks"] = saved

    monkeypatch.setattr(mod, "segment_params", fake)


def test_analyze_help(cli):
    r = cli("analyze", "--help")
    assert r.code == 0
    for opt in ("--out", "--voxel-size", "--anode", "--echem", "--times-s", "--interval",
                "--dataset", "--resume", "--overwrite", "--param"):
        assert opt in r.out


def test_analyze_runs_with_options(cli, fake_stages, segment_params, tmp_path):
    src = make_series(tmp_path / "s.tif")
    out = tmp_path / "res"
    r = cli("analyze", src, "--out", out, "--voxel-size", "2,1,1um", "--interval", "10min",
            "--anode", "top", "--param", "threshold=0.2", "--quiet")
    assert r.code == 0, r.err
    assert "span step: 4" in r.out
    s = json.loads((out / "summary.json").read_text())
    assert s["voxel_size_um"] == [2.0, 1.0, 1.0]
    assert s["anode"] == "top" and s["parameters"]["anode"] == "top"
    m = pd.read_csv(out / "metrics.csv")
    assert m.time_s.tolist() == [0.0, 600.0, 1200.0, 1800.0, 2400.0]
    assert m.front_depth_um.tolist() == [0.0, 8.0, 16.0, 24.0, 32.0]   # dz = 2 um
    # A finished run is not replaced without --overwrite.
    assert_input_error(cli("analyze", src, "--out", out, "--quiet"), "--overwrite")
    assert s["parameters"]["ring_correction"] is False
    assert cli("analyze", src, "--out", out, "--quiet", "--overwrite",
               "--times-s", "0,1,2,3,4", "--ring-correction").code == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["parameters"]["ring_correction"] is True


def test_analyze_bad_input(cli, fake_stages, segment_params, tmp_path):
    src = make_series(tmp_path / "s.tif")
    assert_input_error(cli("analyze", tmp_path / "nope.tif", "--out", tmp_path / "o"),
                       "not found")
    assert_input_error(cli("analyze", src, "--out", tmp_path / "o", "--anode", "left"), "anode")
    assert_input_error(cli("analyze", src, "--out", tmp_path / "o", "--voxel-size", "3 s"),
                       "--voxel-size")
    assert_input_error(cli("analyze", src, "--out", tmp_path / "o", "--param", "nosuch=1"),
                       "unknown setting")
    assert_input_error(cli("analyze", src, "--out", tmp_path / "o", "--param", "threshold=x"),
                       "threshold")
    assert_input_error(cli("analyze", src, "--out", tmp_path / "o", "--times-s", "0,1",
                           "--interval", "1s"), "--interval")
    flat = tmp_path / "flat.tif"
    import tifffile

    tifffile.imwrite(flat, np.full((2, 8, 8, 8), 0.3, np.float32))
    assert_input_error(cli("analyze", flat, "--out", tmp_path / "o"), "no electrolyte layer")
    assert not (tmp_path / "o" / "summary.json").exists()


def test_analyze_echem_warning_and_unreadable(cli, fake_stages, segment_params, tmp_path):
    src = make_series(tmp_path / "s.tif")
    late = tmp_path / "late.csv"
    t = np.linspace(0, 4, 5)
    pd.DataFrame({"time_s": t + 1e5, "voltage_V": 0.1 + 0 * t,
                  "current_mA": 1.0 + 0 * t}).to_csv(late, index=False)
    r = cli("analyze", src, "--out", tmp_path / "a", "--echem", late, "--quiet")
    assert r.code == 0, r.err
    assert "warning:" in r.err and "does not overlap" in r.err and "Traceback" not in r.err
    junk = tmp_path / "junk.csv"
    junk.write_text("this,is\nnot,cycler data\n")
    assert_input_error(cli("analyze", src, "--out", tmp_path / "b", "--echem", junk, "--quiet"))
    assert not (tmp_path / "b" / "summary.json").exists()
    assert_input_error(cli("analyze", src, "--out", tmp_path / "c", "--echem",
                           tmp_path / "missing.csv"), "--echem")


def test_help_shows_no_value_on_flags_and_names_the_cycler_formats(cli):
    r = cli("analyze", "--help")
    assert r.code == 0
    assert "<bool>" not in r.out
    assert "--force-units" in r.out
    text = " ".join(r.out.replace("│", " ").split())
    for fmt in (".mpr/.mpt", "Neware .nda/.ndax", "Maccor", "BDF", "CSV"):
        assert fmt in text, fmt
    assert "<bool>" not in cli("report", "--help").out
    assert "<bool>" not in cli("--help").out
