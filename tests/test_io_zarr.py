"""Zarr v2/v3 and OME-Zarr inputs, and the dataset folder written by ``simulate``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from dendritect.errors import InputError
from dendritect.io import open_series


def _series(t: int = 3, z: int = 4, y: int = 5, x: int = 6, dtype: str = "uint16") -> np.ndarray:
    return np.arange(t * z * y * x).reshape(t, z, y, x).astype(dtype)


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_array_v2_and_v3(tmp_path: Path, fmt: int) -> None:
    data = _series(dtype="float32")
    p = tmp_path / "scans.zarr"
    a = zarr.create_array(p, shape=data.shape, dtype=data.dtype, chunks=(1, 2, 5, 6),
                          zarr_format=fmt)
    a[:] = data
    a.attrs["voxel_size_um"] = [1.5, 0.75, 0.75]
    s = open_series(p)
    assert s.format == "zarr"
    assert s.meta["zarr_format"] == fmt
    np.testing.assert_array_equal(s.data.compute(), data)
    assert s.voxel_size_um == (1.5, 0.75, 0.75)


def test_zarr_group_of_3d_arrays_and_dataset_option(tmp_path: Path) -> None:
    data = _series(t=11, dtype="uint8")
    p = tmp_path / "g.zarr"
    root = zarr.open_group(p, mode="w")
    steps = root.create_group("steps")
    for i, vol in enumerate(data):
        steps.create_array(f"t{i}", data=vol)
    root.create_array("mask", data=np.zeros((2, 4, 5, 6), dtype="uint8"))
    with pytest.raises(InputError, match="several"):
        open_series(p)
    s = open_series(p, dataset="steps")
    assert s.meta["steps"][:3] == ["t0", "t1", "t2"]
    np.testing.assert_array_equal(s.data.compute(), data)
    with pytest.raises(InputError, match="not found"):
        open_series(p, dataset="nothing")


def _ome_group(p: Path, data: np.ndarray, fmt: int) -> None:
    axes = [{"name": "t", "type": "time", "unit": "minute"},
            {"name": "c", "type": "channel"},
            {"name": "z", "type": "space", "unit": "micrometer"},
            {"name": "y", "type": "space", "unit": "nanometer"},
            {"name": "x", "type": "space", "unit": "nanometer"}]
    ms = {"version": "0.4" if fmt == 2 else "0.5", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [10.0, 1.0, 2.0, 500.0, 500.0]}]},
        {"path": "1", "coordinateTransformations": [
            {"type": "scale", "scale": [10.0, 1.0, 4.0, 1000.0, 1000.0]}]}]}
    root = zarr.open_group(p, mode="w", zarr_format=fmt)
    if fmt == 2:
        root.attrs["multiscales"] = [ms]
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    root.create_array("0", data=data[:, None])
    root.create_array("1", data=data[:, None, ::2, ::2, ::2])


@pytest.mark.parametrize("fmt", [2, 3])
def test_ome_zarr_level0_scale_and_units(tmp_path: Path, fmt: int) -> None:
    data = _series()
    p = tmp_path / "img.ome.zarr"
    _ome_group(p, data, fmt)
    s = open_series(p)
    assert s.format == "ome-zarr"
    assert s.meta["dataset"] == "0"
    np.testing.assert_array_equal(s.data.compute(), data)
    assert s.voxel_size_um == pytest.approx((2.0, 0.5, 0.5))
    np.testing.assert_allclose(s.times_s, [0, 600, 1200])


def _simulate_folder(p: Path, data: np.ndarray, zarr_scans: bool) -> dict:
    (p / "scans").mkdir(parents=True)
    info = {"voxel_size_um": [2.0, 1.0, 1.0], "times_s": [0.0, 3600.0, 7200.0],
            "anode": "top", "electrolyte": "Li6PS5Cl", "current_density_mA_cm2": 1.0,
            "seed": 0, "preset": "tiny"}
    (p / "dataset.json").write_text(json.dumps(info))
    if zarr_scans:
        zarr.create_array(p / "scans" / "scans.zarr", data=data, chunks=(1, *data.shape[1:]))
    else:
        for i, vol in enumerate(data):
            tifffile.imwrite(p / "scans" / f"t{i:03d}.tif", vol, photometric="minisblack")
    return info


@pytest.mark.parametrize("zarr_scans", [False, True])
def test_simulate_dataset_folder(tmp_path: Path, zarr_scans: bool) -> None:
    data = _series(dtype="uint16")
    p = tmp_path / "ds"
    info = _simulate_folder(p, data, zarr_scans)
    s = open_series(p)
    assert s.format == "simulate"
    np.testing.assert_array_equal(s.data.compute(), data)
    assert s.voxel_size_um == (2.0, 1.0, 1.0)
    np.testing.assert_array_equal(s.times_s, [0, 3600, 7200])
    assert s.meta["anode"] == "top"
    assert s.meta["electrolyte"] == "Li6PS5Cl"
    assert s.meta["dataset_json"] == info
    # The user's voxel size still wins over the file's.
    assert open_series(p, voxel_size="3um").voxel_size_um == (3.0, 3.0, 3.0)


def test_simulate_dataset_times_must_match_steps(tmp_path: Path) -> None:
    p = tmp_path / "ds"
    _simulate_folder(p, _series(t=2), zarr_scans=False)
    with pytest.raises(InputError, match="times_s"):
        open_series(p)
