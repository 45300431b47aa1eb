"""``dendritect info``: the report on good inputs, and one clear error line on bad ones."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import zarr

from dendritect.errors import InputError
from dendritect.io import open_series
from tests.conftest import assert_input_error

REAL = Path("real-lab-ct-liion-cell") / "cell_vol_stack_zlib.tif"


def _write_4d(p: Path, data: np.ndarray, **kw: object) -> Path:
    tifffile.imwrite(p, data, photometric="minisblack", metadata={"axes": "TZYX"}, **kw)
    return p


def test_info_json_on_imagej_hyperstack(cli: Callable, tmp_path: Path) -> None:
    p = tmp_path / "hyper.tif"
    data = np.zeros((3, 4, 5, 6), dtype=np.uint16)
    tifffile.imwrite(p, data, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"spacing": 2.0, "unit": "um", "finterval": 600, "axes": "TZYX"})
    r = cli("info", p, "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["format"] == "tiff-4d"
    assert d["n_steps"] == 3
    assert d["shape_zyx"] == [4, 5, 6]
    assert d["dtype"] == "uint16"
    assert d["voxel_size_um"] == pytest.approx([2.0, 0.5, 0.5])
    assert d["voxel_size_source"] == "metadata"
    assert d["times_s"] == [0.0, 600.0, 1200.0]
    assert d["bytes_in_memory"] == 3 * 4 * 5 * 6 * 2
    assert d["bytes_per_step"] == 4 * 5 * 6 * 2
    assert d["bytes_on_disk"] == p.stat().st_size
    assert d["chunk_shape"][0] == 1 and d["n_chunks"] >= 3


def test_info_options_override(cli: Callable, tmp_path: Path) -> None:
    p = _write_4d(tmp_path / "s.tif", np.ones((3, 2, 4, 4), dtype=np.uint8))
    r = cli("info", p, "--json", "--voxel-size", "1,0.65,0.65um", "--interval", "10min")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["voxel_size_um"] == [1.0, 0.65, 0.65] and d["voxel_size_source"] == "user"
    assert d["times_s"] == [0.0, 600.0, 1200.0] and d["times_source"] == "user"
    d = json.loads(cli("info", p, "--json", "--times-s", "0,5,50").out)
    assert d["times_s"] == [0.0, 5.0, 50.0]
    d = json.loads(cli("info", p, "--json").out)
    assert d["voxel_size_um"] == [1.0, 1.0, 1.0] and d["voxel_size_source"] == "default"
    assert d["times_s"] == [0.0, 1.0, 2.0] and d["times_source"] == "index"


def test_info_table(cli: Callable, tmp_path: Path) -> None:
    p = _write_4d(tmp_path / "s.tif", np.ones((2, 3, 4, 5), dtype=np.float32))
    r = cli("info", p, "--voxel-size", "0.5um")
    assert r.code == 0, r.err
    for needle in ("tiff-4d", "3 x 4 x 5", "float32", "0.5, 0.5, 0.5 µm (user)", "(index)",
                   "one step 240 B"):
        assert needle in r.out, (needle, r.out)


def test_info_hdf5_dataset_option(cli: Callable, tmp_path: Path) -> None:
    p = tmp_path / "two.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("a", data=np.zeros((2, 3, 4, 5), dtype=np.uint8))
        f.create_dataset("b", data=np.zeros((4, 3, 4, 5), dtype=np.uint16))
    d = json.loads(cli("info", p, "--json", "--dataset", "b").out)
    assert d["n_steps"] == 4 and d["dtype"] == "uint16" and d["dataset"] == "/b"


def test_info_zarr(cli: Callable, tmp_path: Path) -> None:
    p = tmp_path / "s.zarr"
    zarr.create_array(p, data=np.zeros((2, 3, 4, 5), dtype=np.float64))
    d = json.loads(cli("info", p, "--json").out)
    assert d["format"] == "zarr" and d["n_steps"] == 2 and d["dtype"] == "float64"


def test_info_on_real_lab_scan(cli: Callable, shared_data: Path) -> None:
    p = shared_data / REAL
    r = cli("info", p, "--json")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["n_steps"] == 1
    assert d["shape_zyx"] == [100, 728, 728]
    assert d["dtype"] == "uint8"
    assert d["bytes_on_disk"] == p.stat().st_size
    assert d["bytes_in_memory"] == 100 * 728 * 728
    assert d["voxel_size_source"] == "default"
    # The source README gives in-plane 34 µm and dz 68 µm: the user supplies them.
    d = json.loads(cli("info", p, "--json", "--voxel-size", "68,34,34um").out)
    assert d["voxel_size_um"] == [68.0, 34.0, 34.0]
    s = open_series(p)
    assert s.data.shape == (1, 100, 728, 728)


# --- bad input: each one is `error: ...` on stderr with exit status 2 ------------------------

def _truncate(p: Path, keep: float) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * keep)])


def _bad_not_tiff(tmp: Path) -> list[object]:
    p = tmp / "scan.tif"
    p.write_text("this is not an image\n")
    return [p]


def _bad_truncated_zlib(tmp: Path) -> list[object]:
    p = tmp / "scan.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(p, rng.integers(0, 255, (20, 64, 64), dtype=np.uint8), compression="zlib")
    _truncate(p, 0.5)
    return [p]


def _bad_truncated_plain(tmp: Path) -> list[object]:
    p = tmp / "scan.tif"
    tifffile.imwrite(p, np.ones((20, 64, 64), dtype=np.uint8), photometric="minisblack")
    _truncate(p, 0.5)
    return [p]


def _bad_declared_huge(tmp: Path) -> list[object]:
    # An uncompressed header that declares 100 MB of pixels in a 1 MiB file.
    p = tmp / "huge.tif"
    m = tifffile.memmap(p, shape=(100, 1000, 1000), dtype="uint8", photometric="minisblack")
    del m
    os.truncate(p, 2**20)
    return [p]


def _bad_hdf5_truncated(tmp: Path) -> list[object]:
    p = tmp / "scan.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("data", data=np.ones((20, 64, 64)))
    _truncate(p, 0.5)
    return [p]


def _bad_shapes_folder(tmp: Path) -> list[object]:
    d = tmp / "steps"
    d.mkdir()
    tifffile.imwrite(d / "t0.tif", np.ones((4, 8, 8), np.uint8), photometric="minisblack")
    tifffile.imwrite(d / "t1.tif", np.ones((5, 8, 8), np.uint8), photometric="minisblack")
    return [d]


def _bad_shapes_slices(tmp: Path) -> list[object]:
    for step, n in (("scan_1", 5), ("scan_2", 4)):
        (tmp / step).mkdir()
        for z in range(n):
            tifffile.imwrite(tmp / step / f"s{z}.tif", np.ones((8, 8), np.uint8))
    return [tmp]


def _bad_shapes_hdf5(tmp: Path) -> list[object]:
    p = tmp / "steps.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("scans/t0", data=np.ones((4, 8, 8)))
        f.create_dataset("scans/t1", data=np.ones((4, 8, 9)))
    return [p]


def _bad_2d(tmp: Path) -> list[object]:
    p = tmp / "slice.tif"
    tifffile.imwrite(p, np.ones((16, 16), np.uint8))
    return [p]


def _bad_hdf5_no_volume(tmp: Path) -> list[object]:
    p = tmp / "flat.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("image", data=np.ones((16, 16)))
        f.create_dataset("trace", data=np.ones(100))
    return [p]


def _bad_hdf5_several(tmp: Path) -> list[object]:
    p = tmp / "two.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("raw", data=np.ones((2, 4, 8, 8)))
        f.create_dataset("flat", data=np.ones((2, 4, 8, 8)))
    return [p]


def _bad_hdf5_missing_dataset(tmp: Path) -> list[object]:
    p = tmp / "one.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("raw", data=np.ones((2, 4, 8, 8)))
    return [p, "--dataset", "/entry/data"]


def _bad_zarr_missing_dataset(tmp: Path) -> list[object]:
    p = tmp / "g.zarr"
    zarr.open_group(p, mode="w").create_array("raw", data=np.ones((2, 4, 8, 8)))
    return [p, "--dataset", "nope"]


def _good_tiff(tmp: Path) -> Path:
    return _write_4d(tmp / "ok.tif", np.ones((3, 2, 4, 4), dtype=np.uint8))


def _bad_all_nan(tmp: Path) -> list[object]:
    return [_write_4d(tmp / "nan.tif", np.full((2, 3, 4, 4), np.nan, dtype=np.float32))]


def _empty(tmp: Path) -> list[object]:
    (tmp / "empty").mkdir()
    return [tmp / "empty"]


def _no_images(tmp: Path) -> list[object]:
    (tmp / "readme.txt").write_text("hello")
    (tmp / "sub").mkdir()
    return [tmp]


def _unknown_file(tmp: Path) -> list[object]:
    (tmp / "data.csv").write_text("a,b\n1,2\n")
    return [tmp / "data.csv"]


BAD: dict[str, tuple[Callable[[Path], list[object]], tuple[str, ...]]] = {
    "missing path": (lambda t: [t / "nothing.tif"], ("nothing.tif", "no such file")),
    "empty folder": (_empty, ("empty folder",)),
    "no images": (_no_images, ("no images",)),
    "unknown file": (_unknown_file, ("data.csv", "unknown input format")),
    "not a tiff": (_bad_not_tiff, ("scan.tif", "not a TIFF")),
    "truncated zlib tiff": (_bad_truncated_zlib, ("scan.tif", "truncated")),
    "truncated plain tiff": (_bad_truncated_plain, ("scan.tif", "truncated")),
    "declared size past the end": (_bad_declared_huge, ("huge.tif", "declares data",
                                                        "1,048,576 bytes")),
    "truncated hdf5": (_bad_hdf5_truncated, ("scan.h5", "truncated")),
    "steps of different shapes (files)": (_bad_shapes_folder, ("t1.tif", "different shapes")),
    "steps of different shapes (slices)": (_bad_shapes_slices, ("scan_2", "different shapes")),
    "steps of different shapes (hdf5)": (_bad_shapes_hdf5, ("/scans/t1", "different shapes")),
    "2D image": (_bad_2d, ("slice.tif", "2D image")),
    "hdf5 without volume": (_bad_hdf5_no_volume, ("flat.h5", "no 3D or 4D")),
    "hdf5 several datasets": (_bad_hdf5_several, ("/raw", "/flat", "--dataset")),
    "hdf5 dataset not found": (_bad_hdf5_missing_dataset, ("--dataset", "/entry/data",
                                                           "not found", "/raw")),
    "zarr dataset not found": (_bad_zarr_missing_dataset, ("--dataset", "nope", "not found")),
    "voxel size not a length": (lambda t: [_good_tiff(t), "--voxel-size", "3s"],
                                ("--voxel-size",)),
    "voxel size zero": (lambda t: [_good_tiff(t), "--voxel-size", "0um"],
                        ("--voxel-size", "positive")),
    "voxel size negative": (lambda t: [_good_tiff(t), "--voxel-size", "-0.5um"],
                            ("--voxel-size", "positive")),
    "times of wrong length": (lambda t: [_good_tiff(t), "--times-s", "0,1"],
                              ("--times-s", "3 steps")),
    "interval not a time": (lambda t: [_good_tiff(t), "--interval", "5um"], ("--interval",)),
    "all NaN step 0": (_bad_all_nan, ("nan.tif", "NaN")),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(cli: Callable, tmp_path: Path, case: str) -> None:
    build, needles = BAD[case]
    args = build(tmp_path)
    before = {p: p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
    r = cli("info", *args)
    assert_input_error(r, *needles)
    assert r.err.count("\n") == 1  # one line
    after = {p: p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing written into the input


def test_corrupt_slice_found_when_read(tmp_path: Path) -> None:
    # Only the first slice of each step is checked on opening; a damaged later slice is an
    # InputError naming the file when the step is read.
    for z in range(4):
        tifffile.imwrite(tmp_path / f"s{z}.tif", np.full((8, 8), z, np.uint8))
    (tmp_path / "s2.tif").write_bytes(b"II*\x00garbage")
    s = open_series(tmp_path)
    with pytest.raises(InputError, match=r"s2\.tif"):
        s.step(0)
