"""HDF5 / NeXus inputs: 4D datasets, groups of 3D datasets, NeXus metadata, compression."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from dendritect.errors import InputError
from dendritect.io import open_series


def _series(t: int = 3, z: int = 4, y: int = 5, x: int = 6, dtype: str = "uint16") -> np.ndarray:
    return np.arange(t * z * y * x).reshape(t, z, y, x).astype(dtype)


def test_4d_dataset_found_alone_with_voxel_attrs(tmp_path: Path) -> None:
    data = _series(dtype="float32")
    p = tmp_path / "scan.h5"
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("exp/volume", data=data, chunks=(1, 2, 5, 6))
        ds.attrs["voxel_size_um"] = [2.0, 0.5, 0.5]
        ds.attrs["times_s"] = [0.0, 30.0, 90.0]
        f.create_dataset("exp/current_mA", data=np.ones(10))  # 1D: not a candidate
        f.create_dataset("exp/preview", data=np.zeros((5, 6)))  # 2D: not a candidate
    s = open_series(p)
    assert s.format == "hdf5"
    assert s.meta["dataset"] == "/exp/volume"
    assert s.data.dtype == np.float32
    np.testing.assert_array_equal(s.data.compute(), data)
    assert s.voxel_size_um == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(s.times_s, [0, 30, 90])


def test_group_of_3d_datasets_natural_order_element_size(tmp_path: Path) -> None:
    data = _series(t=12, z=2, y=3, x=4, dtype="uint8")
    p = tmp_path / "steps.hdf5"
    with h5py.File(p, "w") as f:
        g = f.create_group("scans")
        g.attrs["element_size_um"] = [1.0, 0.7, 0.7]  # ilastik / Fiji convention, z, y, x
        for i, vol in enumerate(data):
            g.create_dataset(f"step_{i}", data=vol)
    s = open_series(p)
    assert s.meta["steps"][:3] == ["step_0", "step_1", "step_2"]
    np.testing.assert_array_equal(s.data.compute(), data)
    assert s.voxel_size_um == (1.0, 0.7, 0.7)


def test_nexus_signal_axes_units_preferred(tmp_path: Path) -> None:
    data = _series()
    p = tmp_path / "scan.nxs"
    with h5py.File(p, "w") as f:
        f.attrs["NX_class"] = "NXroot"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        nxd = entry.create_group("data")
        nxd.attrs["NX_class"] = "NXdata"
        nxd.attrs["signal"] = "volume"
        nxd.attrs["axes"] = ["time", "z", "y", "x"]
        nxd.create_dataset("volume", data=data)
        for name, vals, unit in (("time", [0, 5, 15], "min"), ("z", [0, 1.5, 3.0, 4.5], "um"),
                                 ("y", np.arange(5) * 650.0, "nm"),
                                 ("x", np.arange(6) * 0.00065, "mm")):
            nxd.create_dataset(name, data=np.asarray(vals, dtype=float)).attrs["units"] = unit
        # A second 4D array (e.g. a flat field) would be ambiguous without the signal.
        entry.create_dataset("flats", data=np.zeros((1, 2, 5, 6)))
    s = open_series(p)
    assert s.format == "nexus"
    assert s.meta["dataset"] == "/entry/data/volume"
    np.testing.assert_array_equal(s.data.compute(), data)
    assert s.voxel_size_um == pytest.approx((1.5, 0.65, 0.65))
    np.testing.assert_allclose(s.times_s, [0, 300, 900])


def test_nexus_detector_pixel_size_with_units(tmp_path: Path) -> None:
    data = _series(t=2)
    p = tmp_path / "scan.nxs"
    with h5py.File(p, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        det = entry.create_group("instrument/detector")
        det.attrs["NX_class"] = "NXdetector"
        det.create_dataset("x_pixel_size", data=6.5e-7).attrs["units"] = "m"
        det.create_dataset("y_pixel_size", data=6.5e-7).attrs["units"] = "m"
        entry.create_dataset("reconstruction", data=data)
    s = open_series(p)
    assert s.voxel_size_um == pytest.approx((0.65, 0.65, 0.65))
    assert s.meta["voxel_size_source"] == "metadata"
    assert any("z spacing" in n for n in s.meta["notes"])


def test_compressed_blosc_dataset(tmp_path: Path) -> None:
    data = _series(t=2, z=8, y=16, x=16)
    p = tmp_path / "blosc.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("data", data=data, chunks=(1, 4, 16, 16), **hdf5plugin.Blosc())
    s = open_series(p)
    np.testing.assert_array_equal(s.step(1), data[1])


def test_dataset_option_picks_among_several(tmp_path: Path) -> None:
    data = _series()
    p = tmp_path / "two.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("raw", data=data)
        f.create_dataset("filtered", data=data + 1)
        f.create_dataset("single", data=data[0])
    with pytest.raises(InputError, match="--dataset") as err:
        open_series(p)
    assert "/raw" in str(err.value) and "/filtered" in str(err.value)
    np.testing.assert_array_equal(open_series(p, dataset="filtered").data.compute(), data + 1)
    one = open_series(p, dataset="/single")
    assert one.data.shape == (1, *data.shape[1:])


def test_sparse_chunked_file_reads_fill_value(tmp_path: Path) -> None:
    p = tmp_path / "sparse.h5"
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("scans", shape=(4, 8, 16, 16), dtype="u1", chunks=(1, 4, 16, 16),
                              fillvalue=7)
        ds[2, 1, 2, 3] = 200
    s = open_series(p)
    step = s.step(2)
    assert step[1, 2, 3] == 200
    assert step.sum() == 7 * (step.size - 1) + 200
