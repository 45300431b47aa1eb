"""``dendritect.read_results``: a results folder as a lazy xarray Dataset, coordinates in µm and
seconds; ``cracks.zarr`` itself names its dimensions; the registered scans plane by plane."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

import dendritect
from dendritect.errors import InputError
from dendritect.reading import register_lazily, registered_scans
from tests.test_export import analysed  # noqa: F401  (the module's results folder fixture)


def test_read_results_coordinates_and_variables(analysed: Path) -> None:  # noqa: F811
    ds = dendritect.read_results(analysed)
    s = json.loads((analysed / "summary.json").read_text())
    dz, dy, dx = s["voxel_size_um"]
    nz, ny, nx = s["shape_zyx"]
    metrics = pd.read_csv(analysed / "metrics.csv")
    assert dict(ds.sizes) == {"t": 3, "z": nz, "y": ny, "x": nx}
    np.testing.assert_allclose(ds.t.values, metrics.time_s.to_numpy())
    assert ds.t.attrs["units"] == "second" and ds.x.attrs["units"] == "micrometer"
    assert ds.t_index.values.tolist() == metrics.t_index.tolist()
    np.testing.assert_allclose(ds.z.values, (np.arange(nz) + 0.5) * dz)
    np.testing.assert_allclose(ds.y.values, (np.arange(ny) + 0.5) * dy)
    np.testing.assert_allclose(ds.x.values, (np.arange(nx) + 0.5) * dx)
    assert ds.attrs["voxel_size_um"] == [dz, dy, dx]
    assert {"crack", "labels", "lithium", "time_of_arrival"} <= set(ds.data_vars)
    assert ds.crack.dims == ("t", "z", "y", "x") and ds.time_of_arrival.dims == ("z", "y", "x")
    assert all(hasattr(v.data, "dask") for v in ds.data_vars.values())   # lazy
    g = zarr.open_group(str(analysed / "cracks.zarr"), mode="r")
    np.testing.assert_array_equal(ds.labels.isel(t=2).values, g["labels"][2])
    np.testing.assert_array_equal(ds.time_of_arrival.values, g["time_of_arrival"][...])
    pd.testing.assert_frame_equal(ds.attrs["metrics"], metrics)
    pd.testing.assert_frame_equal(ds.attrs["cracks"], pd.read_csv(analysed / "cracks.csv"))
    assert ds.attrs["summary"]["span_index"] == s["span_index"]
    # selection by physical position: the crack voxel count of the last step agrees
    last = int(ds.crack.sel(t=ds.t[-1]).sum().compute())
    assert last == int(g["crack"][2].sum()) and last > 0


def test_cracks_zarr_names_its_dimensions_for_xarray(analysed: Path) -> None:  # noqa: F811
    import xarray as xr

    raw = xr.open_zarr(analysed / "cracks.zarr", consolidated=False)
    assert raw.crack.dims == ("t", "z", "y", "x")
    assert raw.time_of_arrival.dims == ("z", "y", "x")
    s = json.loads((analysed / "summary.json").read_text())
    assert raw.attrs["voxel_size_um"] == s["voxel_size_um"]
    assert raw.attrs["times_s"] == pytest.approx(s["times_s"])
    assert raw.attrs["axes_units"]["x"] == "micrometer"
    previews = zarr.open_group(str(analysed / "previews.zarr"), mode="r")
    assert previews["zx"].metadata.dimension_names == ("t", "z", "x")


@pytest.mark.parametrize("z_chunk", [1, 3, 7])
def test_registered_scans_match_apply_shift(z_chunk: int) -> None:
    import dask.array as da

    from dendritect.preprocess.register import apply_shift

    rng = np.random.default_rng(1)
    series = rng.random((4, 7, 9, 11), dtype=np.float32) * 1000
    shifts = [[0, 0, 0], [-0.3, 0.8, -1.4], [2, -1, 3], [-9, 0.5, 0]]
    reg = register_lazily(da.from_array(series, chunks=(1, z_chunk, 9, 11)), shifts)
    assert reg.dtype == np.float32
    assert reg.chunks[1] == da.from_array(series, chunks=(1, z_chunk, 9, 11)).chunks[1]
    for t in range(4):
        np.testing.assert_allclose(np.asarray(reg[t]), apply_shift(series[t], shifts[t]),
                                   rtol=1e-5, atol=1e-3)
        # one plane alone gives the same values as in the whole step
        np.testing.assert_allclose(np.asarray(reg[t, 4]), apply_shift(series[t], shifts[t])[4],
                                   rtol=1e-5, atol=1e-3)


def test_registered_blocks_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import dendritect.reading as reading

    monkeypatch.setattr(reading, "BLOCK_BYTES", 2 * 9 * 11 * 4)   # two planes
    reg = register_lazily(np.zeros((1, 7, 9, 11), np.uint16), [[0.5, 0, 0]])
    assert reg.chunks[1] == (2, 2, 2, 1)
    np.testing.assert_array_equal(np.asarray(reg), 0)
    with pytest.raises(InputError, match="need 1 finite shifts"):
        register_lazily(np.zeros((1, 7, 9, 11)), [[0, 0, 0], [1, 1, 1]])


def test_registered_scans_of_a_results_folder(analysed: Path) -> None:  # noqa: F811
    from dendritect.io import open_series

    s = json.loads((analysed / "summary.json").read_text())
    reg = registered_scans(analysed)
    assert reg.shape == (3, *s["shape_zyx"])
    raw = open_series(s["input"]).data
    # step 0 is the reference: unshifted
    np.testing.assert_array_equal(np.asarray(reg[0, 5]), np.asarray(raw[0, 5], np.float32))


def test_read_results_refuses_what_is_not_a_results_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        dendritect.read_results(tmp_path / "missing")
    with pytest.raises(InputError, match=r"no summary\.json"):
        dendritect.read_results(tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps({"voxel_size_um": [1, 1, 1]}))
    with pytest.raises(InputError, match=r"no cracks\.zarr"):
        dendritect.read_results(tmp_path)
    (tmp_path / "summary.json").write_text("{")
    with pytest.raises(InputError, match="cannot be read"):
        dendritect.read_results(tmp_path)
