"""``dendritect export``: each format read back with its own library (ome-zarr-py, tifffile,
meshio); shape, scale, units and mesh bounds checked; bad input refused with exit status 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from dendritect.export import (
    EXPORT_MARKER,
    mesh_of_mask,
    pyramid_factors,
    write_imagej_tiff,
    write_ome_zarr,
)
from tests.conftest import assert_input_error


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder of the real pipeline on a tiny twin (3 steps of 48 x 96 x 96)."""
    from dendritect.pipeline import analyze
    from dendritect.synthetic import simulate

    root = tmp_path_factory.mktemp("export")
    data = simulate(root / "cell", "demo", seed=0, shape_zyx=(48, 96, 96), n_steps=3)
    analyze(data, root / "res", report=False, progress=False)
    return root / "res"


def _summary(res: Path) -> dict:
    return json.loads((res / "summary.json").read_text())


def _group(res: Path) -> zarr.Group:
    return zarr.open_group(str(res / "cracks.zarr"), mode="r")


def _extent_um(mask: np.ndarray, voxel_zyx) -> tuple[np.ndarray, np.ndarray]:
    """Crack voxels' extent in µm, (x, y, z): low face of the first, high face of the last."""
    idx = np.argwhere(mask)
    d = np.asarray(voxel_zyx, np.float64)
    return (idx.min(0) * d)[::-1], ((idx.max(0) + 1) * d)[::-1]


def _tree(p: Path) -> dict[str, int]:
    return {str(f.relative_to(p)): f.stat().st_mtime_ns for f in sorted(p.rglob("*"))
            if f.is_file() and not f.name.startswith(".dendritect.lock")}


# -- OME-Zarr -------------------------------------------------------------------------------

def test_ome_zarr_round_trips_with_ome_zarr_py(analysed: Path, tmp_path: Path, cli) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    before = _tree(analysed)
    out = tmp_path / "cell.ome.zarr"
    r = cli("export", analysed, "--format", "ome-zarr", "--out", out)
    assert r.code == 0, r.err
    assert _tree(analysed) == before                      # the results folder is only read
    s = _summary(analysed)
    dz, dy, dx = s["voxel_size_um"]
    times = s["times_s"]
    nodes = {n.metadata.get("name"): n for n in Reader(parse_url(str(out)))() if n.data}
    assert set(nodes) == {"crack", "cracks", "lithium"}
    g = _group(analysed)
    for name, key in (("crack", "crack"), ("cracks", "labels"), ("lithium", "lithium")):
        node = nodes[name]
        assert [a["name"] for a in node.metadata["axes"]] == ["t", "z", "y", "x"]
        assert [a.get("unit") for a in node.metadata["axes"]] == [
            "second", "micrometer", "micrometer", "micrometer"]
        [scale, translation] = node.metadata["coordinateTransformations"][0]
        assert scale["scale"] == pytest.approx([(times[-1] - times[0]) / 2, dz, dy, dx])
        assert translation["translation"] == pytest.approx([0, dz / 2, dy / 2, dx / 2])
        assert node.data[0].shape == (3, 48, 96, 96)
        np.testing.assert_array_equal(np.asarray(node.data[0]), g[key][...])
    root = zarr.open_group(str(out), mode="r")
    assert root["labels/cracks"].attrs["ome"]["image-label"]["source"] == {"image": "../../"}
    # napari's OME-Zarr reader finds the image and both label images, scaled and with units
    napari_ome_zarr = pytest.importorskip("napari_ome_zarr")
    read = napari_ome_zarr.napari_get_reader(str(out))
    layers = read(str(out))
    assert sorted(kind for _, _, kind in layers) == ["image", "labels", "labels"]
    for data, kw, _ in layers:
        assert kw["scale"] == pytest.approx([(times[-1] - times[0]) / 2, dz, dy, dx])
        assert tuple(kw["units"]) == ("second", "micrometer", "micrometer", "micrometer")
        assert data[0].shape == (3, 48, 96, 96)
    assert root.attrs["dendritect"]["times_s"] == pytest.approx(times)
    assert json.loads((out / EXPORT_MARKER).read_text())["format"] == "ome-zarr"


def test_ome_zarr_pyramid_for_large_steps(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    assert pyramid_factors((48, 96, 96)) == []
    assert pyramid_factors((600, 2048, 2048)) == [2, 4]   # 512 voxels along x at the top
    img = np.arange(2 * 16 * 40 * 40, dtype=np.uint16).reshape(2, 16, 40, 40)
    labels = (img % 7 == 0).astype(np.int32)
    write_ome_zarr(tmp_path / "p.ome.zarr", img, (2.0, 0.5, 0.5), [0.0, 60.0],
                   labels={"cracks": labels}, max_vox=10)
    [image, _, lab] = list(Reader(parse_url(str(tmp_path / "p.ome.zarr")))())
    assert [d.shape for d in image.data] == [(2, 16, 40, 40), (2, 8, 20, 20), (2, 4, 10, 10)]
    assert [d.shape for d in lab.data] == [d.shape for d in image.data]
    scales = [c[0]["scale"] for c in image.metadata["coordinateTransformations"]]
    assert scales == [[60.0, 2.0, 0.5, 0.5], [60.0, 4.0, 1.0, 1.0], [60.0, 8.0, 2.0, 2.0]]
    # every level's voxel centres lie in the same frame: level k's first centre at half its
    # own voxel from the corner of the volume
    trans = [c[1]["translation"] for c in image.metadata["coordinateTransformations"]]
    assert trans[2] == pytest.approx([0.0, 4.0, 1.0, 1.0])
    assert set(np.unique(np.asarray(lab.data[2])).tolist()) <= {0, 1}   # nearest: still labels


# -- TIFF -----------------------------------------------------------------------------------

def test_tiff_hyperstacks_round_trip_with_tifffile(analysed: Path, tmp_path: Path, cli) -> None:
    import tifffile

    from dendritect.io import open_series

    out = tmp_path / "fiji"
    r = cli("export", analysed, "--format", "tiff", "--out", out)
    assert r.code == 0, r.err
    s = _summary(analysed)
    dz, dy, dx = s["voxel_size_um"]
    g = _group(analysed)
    marker = json.loads((out / EXPORT_MARKER).read_text())
    assert sorted(marker["files"]) == ["crack.tif", "labels.tif", "lithium.tif", "pores.tif",
                                       "time_of_arrival.tif"]
    for name, dtype in (("crack", np.uint8), ("labels", np.uint16), ("lithium", np.uint8)):
        with tifffile.TiffFile(out / f"{name}.tif") as tf:
            assert tf.is_imagej
            ij = tf.imagej_metadata
            assert ij["spacing"] == pytest.approx(dz) and ij["unit"] == "um"
            assert json.loads(ij["Info"])["times_s"] == pytest.approx(s["times_s"])
            assert (ij["frames"], ij["slices"]) == (3, 48)
            xres = tf.pages[0].tags["XResolution"].value
            assert xres[0] / xres[1] == pytest.approx(1 / dx)
            series = tf.series[0]
            assert series.axes == "TZYX" and series.shape == (3, 48, 96, 96)
            assert series.dtype == dtype
            np.testing.assert_array_equal(series.asarray(), g[name][...])
    with tifffile.TiffFile(out / "time_of_arrival.tif") as tf:
        toa = tf.series[0].asarray()
        assert tf.series[0].axes == "ZYX" and toa.dtype == np.float32
        np.testing.assert_array_equal(toa, g["time_of_arrival"][...].astype(np.float32))
    with tifffile.TiffFile(out / "pores.tif") as tf:
        pores = tf.series[0].asarray()
        assert tf.series[0].axes == "ZYX" and pores.dtype == np.uint8
        np.testing.assert_array_equal(pores, g["pores"][...])
        assert pores.any()
    # dendritect's own reader (as Fiji does) finds the calibration
    series = open_series(out / "labels.tif")
    assert series.voxel_size_um == pytest.approx((dz, dy, dx))


def test_imagej_tiff_times_and_pixel_type(tmp_path: Path) -> None:
    import tifffile

    vol = np.full((2, 3, 4, 5), 70_000, np.int32)
    write_imagej_tiff(tmp_path / "big.tif", vol, (1.0, 0.65, 0.65), [0.0, 600.0])
    with tifffile.TiffFile(tmp_path / "big.tif") as tf:
        assert tf.series[0].dtype == np.float32        # past uint16: float32, values exact
        assert tf.imagej_metadata["finterval"] == pytest.approx(600.0)
        assert float(tf.series[0].asarray().max()) == 70_000.0


# -- meshes ---------------------------------------------------------------------------------

def test_mesh_bounds_are_the_crack_voxels_extent_and_normals_point_out() -> None:
    mask = np.zeros((6, 7, 8), bool)
    mask[1:4, 2:6, 3:5] = True
    mask[5, 6, 7] = True                                 # one voxel in the far corner
    verts, faces, _ = mesh_of_mask(mask, (2.0, 0.5, 0.25))
    lo, hi = _extent_um(mask, (2.0, 0.5, 0.25))
    np.testing.assert_allclose(verts.min(0), lo)
    np.testing.assert_allclose(verts.max(0), hi)
    np.testing.assert_allclose(hi, [2.0, 3.5, 12.0])    # the volume's far corner: n * d
    tri = verts[faces]
    signed = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 0 < signed <= mask.sum() * 2.0 * 0.5 * 0.25  # closed, outward, inside the voxels
    assert mesh_of_mask(np.zeros((3, 3, 3), bool), (1, 1, 1)) is None


@pytest.mark.parametrize("fmt", ["stl", "vtk"])
def test_meshes_per_step_and_per_crack_in_micrometres(analysed: Path, tmp_path: Path, cli,
                                                      fmt: str) -> None:
    import meshio

    out = tmp_path / fmt
    r = cli("export", analysed, "--format", fmt, "--out", out)
    assert r.code == 0, r.err
    voxel = _summary(analysed)["voxel_size_um"]
    g = _group(analysed)
    crack, labels = g["crack"][...], g["labels"][...]
    marker = json.loads((out / EXPORT_MARKER).read_text())
    rows = marker["meshes"]
    steps = [t for t in range(crack.shape[0]) if crack[t].any()]
    assert sorted({r["t_index"] for r in rows}) == steps
    cracks_csv = pd.read_csv(analysed / "cracks.csv")
    expected = {(int(t), int(c)) for t, c in zip(cracks_csv.t_index, cracks_csv.crack_id,
                                                 strict=True)}
    assert {(r["t_index"], r["crack_id"]) for r in rows if r["crack_id"]} == expected
    for row in rows:
        mesh = meshio.read(out / row["file"])
        t, cid = row["t_index"], row["crack_id"]
        mask = crack[t] > 0 if cid is None else labels[t] == cid
        lo, hi = _extent_um(mask, voxel)
        np.testing.assert_allclose(mesh.points.min(0), lo, atol=1e-4)
        np.testing.assert_allclose(mesh.points.max(0), hi, atol=1e-4)
        assert len(mesh.cells_dict["triangle"]) == row["n_triangles"] > 0
        if fmt == "vtk":
            arrival = mesh.point_data["arrival_step"]
            assert arrival.min() >= 0 and arrival.max() <= t
    assert sorted(os.listdir(out)) == sorted([EXPORT_MARKER, *marker["files"]])


# -- the command line: bad input ------------------------------------------------------------

def test_export_refuses_bad_input(analysed: Path, tmp_path: Path, cli) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_input_error(cli("export", empty, "--format", "tiff", "--out", tmp_path / "a"),
                       "not a dendritect results folder")
    assert_input_error(cli("export", tmp_path / "missing", "--format", "tiff", "--out",
                           tmp_path / "a"), "not a folder")
    assert_input_error(cli("export", analysed, "--format", "png", "--out", tmp_path / "a"),
                       "--format must be one of ome-zarr, tiff, stl, vtk")
    users = tmp_path / "users"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    assert_input_error(cli("export", analysed, "--format", "stl", "--out", users),
                       "not a dendritect export")
    assert (users / "notes.txt").read_text() == "mine" and os.listdir(users) == ["notes.txt"]
    a_file = tmp_path / "file.zarr"
    a_file.write_text("x")
    assert_input_error(cli("export", analysed, "--format", "ome-zarr", "--out", a_file),
                       "is not a folder written by dendritect export")
    before = _tree(analysed)
    assert_input_error(cli("export", analysed, "--format", "stl", "--out", analysed / "meshes"),
                       "inside the results folder")
    assert _tree(analysed) == before and not (analysed / "meshes").exists()
    assert_input_error(cli("export", analysed, "--format", "stl", "--scans", "--out",
                           tmp_path / "s"), "--scans applies to ome-zarr and tiff")
    assert not (tmp_path / "a").exists() and not (tmp_path / "s").exists()


def test_export_replaces_only_its_own_export(analysed: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "meshes"
    assert cli("export", analysed, "--format", "stl", "--out", out).code == 0
    assert_input_error(cli("export", analysed, "--format", "stl", "--out", out),
                       "already holds an export; pass --overwrite")
    r = cli("export", analysed, "--format", "vtk", "--out", out, "--overwrite")
    assert r.code == 0, r.err
    names = os.listdir(out)
    assert names and all(n.endswith(".vtk") or n == EXPORT_MARKER for n in names)
    assert [n for n in os.listdir(tmp_path) if ".dtmp-" in n] == []   # no temporaries left


def test_export_waits_for_no_run_and_reads_read_only_folders(analysed: Path, tmp_path: Path,
                                                             cli, monkeypatch) -> None:
    import shutil
    import socket
    import time

    from dendritect.lock import LOCK_NAME

    res = tmp_path / "res"
    shutil.copytree(analysed, res)
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "command": "analyze",
            "started": time.time()}
    (res / LOCK_NAME).write_text(json.dumps(lock) + "\n")
    assert_input_error(cli("export", res, "--format", "stl", "--out", tmp_path / "a"),
                       "in use by another run")
    assert not (tmp_path / "a").exists()
    # a folder this user cannot write (shared storage): exported without a lock of its own,
    # still refused while another run's lock is there
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        False if mode & os.W_OK else real_access(path, mode, **kw)))
    assert_input_error(cli("export", res, "--format", "stl", "--out", tmp_path / "a"),
                       "in use by another run")
    (res / LOCK_NAME).unlink()
    r = cli("export", res, "--format", "stl", "--out", tmp_path / "a")
    assert r.code == 0, r.err
    assert not (res / LOCK_NAME).exists() and (tmp_path / "a" / EXPORT_MARKER).is_file()
