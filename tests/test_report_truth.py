"""The report says what was measured and no more: the full cycler trace, the span as an
interval between two scans, plain sentences for what could not be measured, defaults named,
crack-table headers in words with units."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dendritect import results as R
from dendritect.report import figures as F
from dendritect.report import load_results
from dendritect.report.html import crack_header, render_html
from tests.test_report_fixture import make_results_dir


def _cycler(t_end: float, short_s: float, n: int = 50_000) -> pd.DataFrame:
    """A cycler record that drops sharply at ``short_s`` (between two scans)."""
    t = np.linspace(0.0, t_end, n)
    v = np.where(t < short_s, 0.08, 0.001)
    return pd.DataFrame({"time_s": t, "voltage_V": v, "current_mA": np.full(n, 0.1)})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = make_results_dir(tmp_path / "res")
    # Scans every 600 s, span first seen at step 4 (2400 s); the short at 2222 s.
    R.write_echem_copy(root / "echem.csv", _cycler(2700.0, 2222.0))
    s = json.loads((root / "summary.json").read_text())
    s["short_circuit"]["echem_time_s"] = 2222.0
    (root / "summary.json").write_text(json.dumps(s))
    return root


def _page(root: Path) -> str:
    return render_html(load_results(root), figures_dir=root / "figures")


def test_decimated_copy_keeps_a_sharp_short() -> None:
    df = _cycler(3600.0, 1234.5, n=200_001)
    small = R.decimate_echem(df)
    assert len(small) <= R.ECHEM_MAX_ROWS
    t, v = small["time_s"].to_numpy(), small["voltage_V"].to_numpy()
    drop = int(np.flatnonzero(v < 0.01)[0])
    assert t[drop - 1] < 1234.5 <= t[drop]
    assert t[drop] - t[drop - 1] < 3600.0 / 200_000 * 2     # as sharp as recorded
    assert R.decimate_echem(df.head(100)).equals(df.head(100))


def test_voltage_axis_draws_the_full_record(folder: Path) -> None:
    res = load_results(folder)
    assert res.echem_source == "echem.csv"
    fig = F.front_figure(res.metrics, res.summary, res.echem)
    line = fig.axes[1].lines[0]
    x = np.asarray(line.get_xdata()) * 60.0   # minutes back to seconds
    assert len(x) > 1000                       # not the 5 scan times
    y = np.asarray(line.get_ydata())
    i = int(np.flatnonzero(y < 0.01)[0])
    assert x[i - 1] < 2222.0 <= x[i] and x[i] - x[i - 1] < 1.0   # the short stays a step


def test_voltage_without_the_record_is_points_only(tmp_path: Path) -> None:
    root = make_results_dir(tmp_path / "res")   # echem named in parameters, file absent
    res = load_results(root)
    assert res.echem is None
    fig = F.front_figure(res.metrics, res.summary, res.echem)
    line = fig.axes[1].lines[0]
    assert line.get_linestyle() == "None" and len(line.get_xdata()) == 5
    assert "at the scan times only" in _page(root)


def test_voltage_record_is_read_again_from_the_parameters(tmp_path: Path) -> None:
    root = make_results_dir(tmp_path / "res")
    src = tmp_path / "cycler.csv"
    _cycler(2700.0, 2222.0, n=3000).to_csv(src, index=False)
    s = json.loads((root / "summary.json").read_text())
    s["parameters"]["echem"] = str(src)
    (root / "summary.json").write_text(json.dumps(s))
    res = load_results(root)
    assert res.echem_source == str(src) and len(res.echem) == 3000


def test_span_is_an_interval_with_the_short_in_it(folder: Path) -> None:
    html = _page(folder)
    assert "span happened between" in html
    assert "step 3 (30 min) and step 4 (40 min)" in html
    assert "between the scan of step 3 (30 min), where it did not" in html
    assert "The short in the cycler data, at 37.03 min, lies inside that interval." in html
    fig = F.front_figure(load_results(folder).metrics, load_results(folder).summary)
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert "span happened here (between steps 3 and 4)" in labels


def test_what_could_not_be_measured_is_said(folder: Path) -> None:
    s = json.loads((folder / "summary.json").read_text())
    s["lithium"] = {"resolved": False, "reason": "the scans' contrast is too low"}
    s["short_circuit"].update(forecast_time_s=None, forecast_sigma_s=None,
                              forecast_method="none: too few steps with a growing front")
    (folder / "summary.json").write_text(json.dumps(s))
    html = _page(folder)
    assert "<h2>Crack front and voltage</h2>" in html
    assert "Lithium front not measured: the scans&#39; contrast is too low." in html
    assert "lithium front depth (µm)" not in html   # no empty lithium column
    assert "No span forecast: too few steps with a growing front." in html
    # Older summaries: the lithium_segmented key.
    del s["lithium"]
    s["lithium_segmented"] = False
    (folder / "summary.json").write_text(json.dumps(s))
    assert "Lithium front not measured: lithium inside cracks could not be told" in _page(folder)


def test_lithium_front_shown_when_resolved(folder: Path) -> None:
    html = _page(folder)
    assert "<h2>Crack front, lithium front and voltage</h2>" in html
    assert "Lithium front not measured" not in html
    s = json.loads((folder / "summary.json").read_text())
    s["lithium"] = {"resolved": True, "reason": "too few crack voxels", "steps_unresolved": [0, 1]}
    (folder / "summary.json").write_text(json.dumps(s))
    html = _page(folder)
    assert "<h2>Crack front, lithium front and voltage</h2>" in html
    assert "Lithium front not measured at steps 0, 1: too few crack voxels." in html


def test_defaults_are_named_and_headers_have_units(folder: Path) -> None:
    s = json.loads((folder / "summary.json").read_text())
    s["parameters"].update(voxel_size=None, times_s=None, dataset=None, interval=None)
    (folder / "summary.json").write_text(json.dumps(s))
    c = pd.read_csv(folder / "cracks.csv")
    c["dry_tip_lead_um"] = 1.5
    c["volume_vox_um3"] = 10.0
    c["li_front_depth_um"] = 2.0
    c.to_csv(folder / "cracks.csv", index=False)
    html = _page(folder)
    assert "<code>voxel_size</code></td><td class=\"s\">default (from the metadata)" in html
    assert "<code>dataset</code></td><td class=\"s\">default (found automatically)" in html
    for header in ("front depth (µm)", "mean aperture (µm)", "volume (µm³)",
                   "volume, voxel count (µm³)", "dry tip ahead of lithium (µm)",
                   "lithium front depth (µm)", "front speed (µm/s)"):
        assert f">{header}</th>" in html, header
    assert ">front_depth_um</th>" not in html
    assert list(pd.read_csv(folder / "cracks.csv").columns) == list(c.columns)   # CSV as is
    assert crack_header("new_thing_um2") == "new thing (µm²)"
