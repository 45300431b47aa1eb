"""TIFF inputs: single 3D/4D files (plain, BigTIFF, ImageJ, OME), folders of files and of slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from dendritect.io import Series, open_series


def _series(t: int = 3, z: int = 4, y: int = 5, x: int = 6, dtype: str = "uint16") -> np.ndarray:
    # Every voxel different, so a wrong order of steps, slices or axes shows up.
    return np.arange(t * z * y * x).reshape(t, z, y, x).astype(dtype)


def _check(s: Series, expected: np.ndarray) -> None:
    assert s.data.shape == expected.shape
    assert s.data.dtype == expected.dtype
    assert s.n_steps == expected.shape[0]
    assert s.shape_zyx == expected.shape[1:]
    np.testing.assert_array_equal(s.data.compute(), expected)
    assert s.times_s.dtype == np.float64 and s.times_s.shape == (expected.shape[0],)


def test_plain_3d_tiff_is_one_step_with_defaults(tmp_path: Path) -> None:
    vol = _series(1, 7, 8, 9, "uint8")[0]
    p = tmp_path / "vol.tif"
    tifffile.imwrite(p, vol, compression="zlib")
    s = open_series(p)
    _check(s, vol[None])
    assert s.format == "tiff-3d"
    assert s.voxel_size_um == (1.0, 1.0, 1.0)
    assert s.meta["voxel_size_source"] == "default"
    np.testing.assert_array_equal(s.times_s, [0.0])
    assert s.meta["times_source"] == "index"


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "float64"])
def test_4d_bigtiff_keeps_dtype_and_reads_lazily(tmp_path: Path, dtype: str) -> None:
    data = _series(dtype=dtype)
    p = tmp_path / "series.tif"
    tifffile.imwrite(p, data, bigtiff=True, photometric="minisblack",
                     metadata={"axes": "TZYX"})
    s = open_series(p)
    assert s.format == "tiff-4d"
    # One step read alone equals the written step.
    np.testing.assert_array_equal(s.step(1), data[1])
    _check(s, data)


def test_imagej_hyperstack_spacing_unit_and_finterval(tmp_path: Path) -> None:
    data = _series()
    p = tmp_path / "hyper.tif"
    tifffile.imwrite(p, data, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"spacing": 2.0, "unit": "micron", "finterval": 10,
                               "tunit": "min", "axes": "TZYX"})
    s = open_series(p)
    _check(s, data)
    assert s.voxel_size_um == pytest.approx((2.0, 0.5, 0.5))
    assert s.meta["voxel_size_source"] == "metadata"
    np.testing.assert_allclose(s.times_s, [0, 600, 1200])  # 10 min apart
    assert s.meta["times_source"] == "metadata"


def test_ome_tiff_physical_sizes_with_units_and_time_increment(tmp_path: Path) -> None:
    data = _series()
    p = tmp_path / "scan.ome.tif"
    tifffile.imwrite(p, data, ome=True, metadata={
        "axes": "TZYX", "PhysicalSizeX": 0.65, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.65,
        "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 1300, "PhysicalSizeZUnit": "nm",
        "TimeIncrement": 10, "TimeIncrementUnit": "min"})
    s = open_series(p)
    _check(s, data)
    assert s.voxel_size_um == pytest.approx((1.3, 0.65, 0.65))
    np.testing.assert_allclose(s.times_s, [0, 600, 1200])


def test_ome_tiff_plane_delta_t_gives_uneven_times(tmp_path: Path) -> None:
    data = _series()
    p = tmp_path / "scan.ome.tif"
    tifffile.imwrite(p, data, ome=True, metadata={
        "axes": "TZYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "PhysicalSizeZ": 0.65,
        "Plane": {"DeltaT": list(np.repeat([0.0, 7.0, 100.0], 4))}})
    s = open_series(p)
    np.testing.assert_allclose(s.times_s, [0, 7, 100])
    assert s.voxel_size_um == pytest.approx((0.65, 0.65, 0.65))


def test_ome_tiff_z_before_t_is_reordered(tmp_path: Path) -> None:
    data = _series()
    p = tmp_path / "zt.ome.tif"
    tifffile.imwrite(p, np.ascontiguousarray(data.transpose(1, 0, 2, 3)), ome=True,
                     metadata={"axes": "ZTYX"})
    _check(open_series(p), data)


def test_folder_of_3d_tiffs_natural_order(tmp_path: Path) -> None:
    data = _series(t=11, z=3, y=4, x=5, dtype="uint8")
    folder = tmp_path / "steps"
    folder.mkdir()
    for i, vol in enumerate(data):
        tifffile.imwrite(folder / f"scan_{i}.tif", vol, imagej=True,
                         resolution=(1 / 0.8, 1 / 0.8),
                         metadata={"spacing": 1.6, "unit": "um", "axes": "ZYX"})
    (folder / "notes.txt").write_text("not an image")
    s = open_series(folder)
    assert s.format == "tiff-folder"
    _check(s, data)  # scan_2 before scan_10
    assert s.meta["files"][:3] == ["scan_0.tif", "scan_1.tif", "scan_2.tif"]
    assert s.voxel_size_um == pytest.approx((1.6, 0.8, 0.8))
    np.testing.assert_array_equal(s.times_s, np.arange(11))


def test_folder_of_slice_folders_natural_order(tmp_path: Path) -> None:
    data = _series(t=3, z=12, y=4, x=5)
    root = tmp_path / "operando"
    for t, vol in enumerate(data):
        d = root / f"scan_{t * 5}"  # scan_0, scan_5, scan_10: natural, not text, order
        d.mkdir(parents=True)
        for z, img in enumerate(vol):
            tifffile.imwrite(d / f"slice_{z}.tiff", img)
    s = open_series(root)
    assert s.format == "tiff-slice-folders"
    assert s.meta["steps"] == ["scan_0", "scan_5", "scan_10"]
    _check(s, data)


def test_folder_of_2d_slices_is_one_step(tmp_path: Path) -> None:
    vol = _series(t=1, z=10, y=4, x=5, dtype="uint8")[0]
    for z, img in enumerate(vol):
        tifffile.imwrite(tmp_path / f"im{z + 1:d}.tif", img)
    s = open_series(tmp_path)
    _check(s, vol[None])


def test_reading_does_not_change_the_input(tmp_path: Path) -> None:
    data = _series()
    p = tmp_path / "series.tif"
    tifffile.imwrite(p, data, photometric="minisblack", metadata={"axes": "TZYX"})
    before = p.read_bytes()
    open_series(p, voxel_size="1um", interval="1min").data.compute()
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["series.tif"]


def test_real_lab_scan(shared_data: Path) -> None:
    p = shared_data / "real-lab-ct-liion-cell" / "cell_vol_stack_zlib.tif"
    s = open_series(p)
    assert s.data.shape == (1, 100, 728, 728)
    assert s.data.dtype == np.uint8
    assert s.meta["voxel_size_source"] == "default"
    step = s.step(0)
    with tifffile.TiffFile(p) as tf:
        np.testing.assert_array_equal(step[[0, 57, 99]], tf.asarray(key=[0, 57, 99]))
    s2 = open_series(p, voxel_size="68,34,34um")
    assert s2.voxel_size_um == (68.0, 34.0, 34.0)
