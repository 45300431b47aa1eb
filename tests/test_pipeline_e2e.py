"""End to end: ``dendritect analyze`` with the real stages on a small simulated series."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from dendritect.cli.main import main
from tests.conftest import assert_input_error

CRACK_CODES = (3, 4)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    from dendritect.synthetic import simulate

    root = tmp_path_factory.mktemp("e2e")
    data = simulate(root / "data", "demo", seed=0, shape_zyx=(48, 96, 96), n_steps=5)
    out = root / "res"
    code = main(["analyze", str(data), "--out", str(out), "--echem", str(data / "echem.csv"),
                 "--quiet"])
    assert code == 0
    return data, out


def test_results_layout_on_simulated_series(analysed):
    data, out = analysed
    truth = json.loads((data / "truth" / "truth.json").read_text())
    s = json.loads((out / "summary.json").read_text())
    for key in ("dendritect_version", "input", "voxel_size_um", "anode",
                "electrolyte_interfaces_um", "registration_shifts_vox", "span_index",
                "short_circuit", "parameters"):
        assert key in s
    assert s["voxel_size_um"] == truth["voxel_size_um"]
    assert s["anode"] == truth["anode"]
    # Interfaces within a voxel of the truth (voxel 4 um).
    assert np.allclose(s["electrolyte_interfaces_um"], truth["interfaces_um"], atol=4.0)
    # Registration undoes the simulated drift (shift applied = minus the drift) within a voxel.
    drift = np.array([st["drift_shift_vox"] for st in truth["steps"]])
    assert np.allclose(np.array(s["registration_shifts_vox"]), -drift, atol=1.0)
    assert s["span_index"] == truth["span_index"]
    assert s["short_circuit"]["echem_time_s"] == pytest.approx(truth["short_time_s"], abs=30)

    n = len(truth["steps"])
    m = pd.read_csv(out / "metrics.csv")
    assert m.t_index.tolist() == list(range(n))
    assert m.time_s.tolist() == pytest.approx([st["time_s"] for st in truth["steps"]])
    assert {"voltage_V", "charge_mAh"} <= set(m.columns)
    assert m.spanning.tolist() == [int(st["spanning"]) for st in truth["steps"]]
    spanned = m[m.spanning == 1]
    assert (spanned.front_depth_um >= truth["thickness_um"] - 2 * 4.0).all()

    c = pd.read_csv(out / "cracks.csv")
    for col in ("t_index", "time_s", "crack_id", "front_depth_um", "projected_area_um2",
                "surface_area_um2", "volume_um3", "aperture_mean_um", "aperture_max_um",
                "normal_angle_deg", "kind", "origin_edge_distance_um", "front_speed_um_s",
                "li_front_depth_um"):
        assert col in c.columns
    assert set(c.kind) <= {"spallation", "transverse"}

    g = zarr.open_group(str(out / "cracks.zarr"), mode="r")
    shape = tuple(json.loads((data / "dataset.json").read_text())["shape_zyx"])
    assert g["crack"].shape == (n, *shape) and g["crack"].dtype == np.uint8
    assert g["labels"].shape == (n, *shape) and g["labels"].dtype == np.int32
    assert g["time_of_arrival"].shape == shape and g["time_of_arrival"].dtype == np.int16
    # Tracked ids are the crack mask, and time of arrival is the first step of each voxel.
    last = n - 1
    assert np.array_equal(g["labels"][last] > 0, g["crack"][last] > 0)
    toa = g["time_of_arrival"][...]
    assert np.array_equal(toa >= 0, np.any(g["crack"][...] > 0, axis=0))
    # The crack found at the last step overlaps the true crack.
    labels = zarr.open_array(str(data / "truth" / "labels.zarr"), mode="r")
    true_crack = np.isin(labels[last], CRACK_CODES)
    found = g["crack"][last] > 0
    assert (found & true_crack).sum() > 0.5 * found.sum()
    # The first step's pores are kept: mostly the twin's pores, and no crack voxel of step 0.
    pores = g["pores"][...] > 0
    assert g["pores"].shape == shape and g["pores"].dtype == np.uint8
    true_pores = labels[0] == 2
    assert pores.sum() > 0 and (pores & true_pores).sum() > 0.7 * pores.sum()
    assert not (pores & (g["crack"][0] > 0)).any()
    assert not (out / ".partial").exists()


def test_no_electrolyte_layer_is_an_input_error(cli, tmp_path):
    flat = tmp_path / "flat.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(flat, rng.normal(100, 1, (16, 32, 32)).astype(np.float32))
    r = cli("analyze", flat, "--out", tmp_path / "o", "--quiet")
    assert_input_error(r, "no electrolyte layer")
    assert not (tmp_path / "o" / "summary.json").exists()


def test_chunked_run_equals_whole_volume_run(analysed, tmp_path):
    """A memory limit far below one step's filter working set changes how, not what."""
    data, out = analysed
    chunked = tmp_path / "chunked"
    code = main(["analyze", str(data), "--out", str(chunked), "--echem",
                 str(data / "echem.csv"), "--quiet", "--memory-limit", "2MB"])
    assert code == 0
    a = zarr.open_group(str(out / "cracks.zarr"), mode="r")
    b = zarr.open_group(str(chunked / "cracks.zarr"), mode="r")
    assert np.asarray(a["crack"]).any()
    np.testing.assert_array_equal(np.asarray(a["crack"]), np.asarray(b["crack"]))
    np.testing.assert_array_equal(np.asarray(a["labels"]), np.asarray(b["labels"]))
    for name in ("metrics.csv", "cracks.csv"):
        assert (out / name).read_bytes() == (chunked / name).read_bytes()


def test_gpu_without_cupy_is_a_clear_error(analysed, tmp_path, cli):
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed: --device gpu is a valid choice here")
    data, _ = analysed
    res = cli("analyze", data, "--out", tmp_path / "gpu", "--device", "gpu")
    assert_input_error(res, "gpu")
    assert not (tmp_path / "gpu").exists()
