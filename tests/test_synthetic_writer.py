"""The dataset folder written by simulate(): layout, metadata, atomicity, reproducibility."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from dendritect.errors import InputError
from dendritect.synthetic import simulate

TINY = {"shape_zyx": (44, 64, 64), "n_steps": 3, "n_cracks": 3}


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    base = tmp_path_factory.mktemp("sim")
    a = simulate(base / "a", seed=11, **TINY)
    b = simulate(base / "b", seed=11, **TINY)
    c = simulate(base / "c", seed=12, **TINY)
    return a, b, c


def test_layout(written):
    a = written[0]
    names = set(_hashes(a))
    assert {"dataset.json", "echem.csv", "truth/truth.json", "scans/t000.tif",
            "scans/t002.tif"} <= names
    assert any(n.startswith("truth/labels.zarr/") for n in names)
    assert not list(a.parent.glob(".a.*"))  # no temporary folder left behind


def test_same_seed_same_bytes_other_seed_differs(written):
    a, b, c = written
    ha, hb, hc = _hashes(a), _hashes(b), _hashes(c)
    assert ha == hb
    assert ha["scans/t001.tif"] != hc["scans/t001.tif"]
    assert ha["truth/truth.json"] != hc["truth/truth.json"]


def test_dataset_json(written):
    meta = json.loads((written[0] / "dataset.json").read_text())
    for key in ("voxel_size_um", "times_s", "anode", "electrolyte", "current_density_mA_cm2",
                "seed", "preset", "stack_pressure_MPa", "ct", "shape_zyx", "drift_shift_vox"):
        assert key in meta, key
    assert meta["seed"] == 11 and meta["preset"] == "demo" and meta["anode"] == "top"
    assert len(meta["times_s"]) == 3 and len(meta["drift_shift_vox"]) == 3
    assert meta["voxel_size_um"] == [4.0, 4.0, 4.0]


def test_scans_are_imagej_tiffs_with_spacing(written):
    with tifffile.TiffFile(written[0] / "scans" / "t001.tif") as tif:
        assert tif.is_imagej
        vol = tif.asarray()
        ij = tif.imagej_metadata
        xres = tif.pages[0].tags["XResolution"].value
    assert vol.shape == (44, 64, 64) and vol.dtype == np.uint16
    assert ij["spacing"] == pytest.approx(4.0) and ij["unit"] in ("um", "micron", "µm")
    assert xres[1] / xres[0] == pytest.approx(4.0)


def test_labels_zarr_and_truth(written):
    arr = zarr.open_array(str(written[0] / "truth" / "labels.zarr"), mode="r")
    assert arr.shape == (3, 44, 64, 64) and arr.dtype == np.uint8
    assert set(np.unique(arr[:])) <= set(range(6))
    truth = json.loads((written[0] / "truth" / "truth.json").read_text())
    for key in ("span_index", "short_time_s", "interfaces_um", "steps"):
        assert key in truth
    for st in truth["steps"]:
        assert {"front_depth_um", "li_front_depth_um"} <= set(st)


def test_echem_csv(written):
    lines = (written[0] / "echem.csv").read_text().splitlines()
    assert lines[0] == "time_s,voltage_V,current_mA"
    data = np.loadtxt(lines[1:], delimiter=",")
    assert np.all(np.diff(data[:, 0]) > 0)
    assert np.all(data[:, 2] > 0)  # galvanostatic plating in the demo


def test_opens_as_a_series(written):
    from dendritect.io import open_series

    s = open_series(written[0])
    meta = json.loads((written[0] / "dataset.json").read_text())
    assert s.data.shape == (3, 44, 64, 64)
    assert tuple(s.voxel_size_um) == pytest.approx((4.0, 4.0, 4.0))
    assert np.allclose(s.times_s, meta["times_s"])
    with tifffile.TiffFile(written[0] / "scans" / "t002.tif") as tif:
        assert np.array_equal(s.step(2), tif.asarray())


def test_refuses_non_empty_and_overwrites(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        simulate(out, seed=0, **TINY)
    assert (out / "keep.txt").exists()
    simulate(out, seed=0, overwrite=True, **TINY)
    assert not (out / "keep.txt").exists() and (out / "dataset.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        simulate(f, seed=0, **TINY)
