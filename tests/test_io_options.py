"""Voxel size and times: metadata, the user's options, defaults; and ``check_volume``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from dendritect.errors import InputError
from dendritect.io import open_series
from dendritect.io.readers import check_volume


@pytest.fixture
def imagej4d(tmp_path: Path) -> Path:
    p = tmp_path / "hyper.tif"
    data = np.zeros((4, 3, 5, 6), dtype=np.uint8)
    tifffile.imwrite(p, data, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"spacing": 2.0, "unit": "um", "finterval": 60, "axes": "TZYX"})
    return p


@pytest.fixture
def plain4d(tmp_path: Path) -> Path:
    p = tmp_path / "plain.tif"
    tifffile.imwrite(p, np.ones((4, 3, 5, 6), dtype=np.uint16), photometric="minisblack",
                     metadata={"axes": "TZYX"})
    return p


@pytest.mark.parametrize(("given", "expected"), [
    ("0.65um", (0.65, 0.65, 0.65)),
    ("650 nm", (0.65, 0.65, 0.65)),
    ("1,0.65,0.65um", (1.0, 0.65, 0.65)),
    ((1.0, 2.0, 3.0), (1.0, 2.0, 3.0)),
    (0.3, (0.3, 0.3, 0.3)),
])
def test_user_voxel_size_overrides_metadata(imagej4d: Path, given: object,
                                            expected: tuple[float, float, float]) -> None:
    s = open_series(imagej4d, voxel_size=given)
    assert s.voxel_size_um == pytest.approx(expected)
    assert s.meta["voxel_size_source"] == "user"
    assert s.meta["voxel_size_um_metadata"] == pytest.approx([2.0, 0.5, 0.5])


@pytest.mark.parametrize("bad", ["0um", "-1um", "3 s", "abc", "1,2um"])
def test_bad_voxel_size_is_refused(plain4d: Path, bad: str) -> None:
    with pytest.raises(InputError, match="--voxel-size"):
        open_series(plain4d, voxel_size=bad)


def test_times_from_metadata_user_list_and_interval(imagej4d: Path, plain4d: Path) -> None:
    s = open_series(imagej4d)
    np.testing.assert_array_equal(s.times_s, [0, 60, 120, 180])
    assert s.meta["times_source"] == "metadata"
    s = open_series(plain4d)
    np.testing.assert_array_equal(s.times_s, [0, 1, 2, 3])
    assert s.meta["times_source"] == "index"
    s = open_series(plain4d, times_s="0,10min,1h,2h")
    np.testing.assert_array_equal(s.times_s, [0, 600, 3600, 7200])
    assert s.meta["times_source"] == "user"
    s = open_series(plain4d, times_s=[0, 5, 10, 20])
    np.testing.assert_array_equal(s.times_s, [0, 5, 10, 20])
    s = open_series(plain4d, interval="10min")
    np.testing.assert_array_equal(s.times_s, [0, 600, 1200, 1800])
    assert s.times_s.dtype == np.float64


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"times_s": "0,1,2"}, "4 steps"),
    ({"times_s": [0, 1, 2, 3, 4]}, "4 steps"),
    ({"times_s": "0,2,1,3"}, "increase"),
    ({"interval": "0s"}, "--interval"),
    ({"interval": "3um"}, "--interval"),
    ({"interval": "1s", "times_s": "0,1,2,3"}, "not both"),
])
def test_bad_times_are_refused(plain4d: Path, kwargs: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        open_series(plain4d, **kwargs)


def test_check_volume() -> None:
    vol = np.zeros((2, 3, 4), dtype=np.float32)
    check_volume(vol, "ok")  # no error
    vol_nan_first = vol.copy()
    vol_nan_first[0, 0, 0] = np.nan
    check_volume(vol_nan_first, "partly NaN")
    check_volume(np.zeros((2, 3, 4), dtype=np.uint8), "integers")
    with pytest.raises(InputError, match="step 3: every voxel is NaN"):
        check_volume(np.full((2, 3, 4), np.nan), "step 3")
    with pytest.raises(InputError, match="3D"):
        check_volume(np.zeros((3, 4)), "a slice")
    with pytest.raises(InputError, match="3D"):
        check_volume(np.zeros((1, 2, 3, 4)), "a series")
    with pytest.raises(InputError, match="empty"):
        check_volume(np.zeros((0, 3, 4)), "nothing")
    # The input is not changed.
    assert np.isnan(vol_nan_first[0, 0, 0]) and np.count_nonzero(vol_nan_first) == 1
