"""The 3D view's crack mesh: geometry, colouring by arrival step, triangle budget."""

from __future__ import annotations

import numpy as np
import pytest

from dendritect.report.mesh import crack_mesh, downsample_arrival


def _sheet(shape=(30, 40, 50)) -> np.ndarray:
    """A 1-voxel crack sheet at x = 25 over y 5..34, z 0..19, arriving at step z // 5."""
    toa = np.full(shape, -1, np.int16)
    for z in range(20):
        toa[z, 5:35, 25] = z // 5
    return toa


def test_mesh_covers_the_sheet_in_micrometres() -> None:
    voxel = (2.0, 0.5, 0.5)
    mesh = crack_mesh(_sheet(), voxel)
    assert mesh is not None and mesh.factor == 1
    z, y, x = mesh.verts_um.T
    # voxel centres of the sheet span z 0..19 (µm: 1..39), y 5..34, x 25, +- half a voxel
    assert z.min() == pytest.approx(0.5 * 2.0 + 0 - 1.0, abs=1.01)
    assert z.max() == pytest.approx(19.5 * 2.0, abs=1.01)
    assert y.min() == pytest.approx(5 * 0.5, abs=0.26) and y.max() == pytest.approx(35 * 0.5,
                                                                                     abs=0.26)
    assert np.all(np.abs(x - 25.5 * 0.5) <= 0.5)
    assert mesh.faces.max() < len(mesh.verts_um)


def test_mesh_vertices_take_the_arrival_step_of_their_voxels() -> None:
    voxel = (1.0, 1.0, 1.0)
    mesh = crack_mesh(_sheet(), voxel)
    z_vox = mesh.verts_um[:, 0] - 0.5
    inner = (z_vox > 0.6) & (z_vox < 18.4) & (np.abs(z_vox % 5 - 2) < 1.5)
    expect = np.floor(np.clip(np.rint(z_vox[inner]), 0, 19) / 5)
    np.testing.assert_array_equal(mesh.arrival[inner], expect)
    assert set(np.unique(mesh.arrival)) == {0.0, 1.0, 2.0, 3.0}


def test_mesh_respects_the_triangle_budget() -> None:
    rng = np.random.default_rng(1)
    toa = np.where(rng.random((40, 60, 60)) < 0.2, 1, -1).astype(np.int16)
    full = crack_mesh(toa, (1, 1, 1), max_triangles=10**9)
    small = crack_mesh(toa, (1, 1, 1), max_triangles=5000)
    assert full.n_triangles > 5000
    assert small.n_triangles <= 5000 and small.factor > 1


def test_no_crack_no_mesh() -> None:
    assert crack_mesh(np.full((5, 5, 5), -1, np.int16), (1, 1, 1)) is None


def test_downsampling_keeps_thin_cracks_and_earliest_step() -> None:
    toa = np.full((8, 8, 8), -1, np.int16)
    toa[3, :, 5] = 2
    toa[2, 0, 4] = 1
    small = downsample_arrival(toa, 4)
    assert small.shape == (2, 2, 2)
    assert small[0, 0, 1] == 1      # block holding both keeps the earlier step
    assert small[0, 1, 1] == 2
    assert (small[1] == -1).all() and (small[:, :, 0] == -1).all()
    assert toa[3, 0, 5] == 2         # input untouched


def test_streaming_in_slabs_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Volumes larger than memory are read in z-slabs; the slab size must not matter."""
    import dendritect.report.results as R
    from dendritect.report.figures import arrival_projections

    toa = _sheet()
    ref_mesh = crack_mesh(toa, (1, 1, 1), max_voxels=5000)
    ref_top, ref_side = arrival_projections(toa)
    monkeypatch.setattr(R, "SLAB_VOXELS", 7 * 40 * 50)  # a few planes at a time
    assert len(list(R.iter_slabs(toa.shape, multiple=3))) > 3
    mesh = crack_mesh(toa, (1, 1, 1), max_voxels=5000)
    top, side = arrival_projections(toa)
    assert mesh.factor == ref_mesh.factor > 1
    np.testing.assert_array_equal(mesh.faces, ref_mesh.faces)
    np.testing.assert_array_equal(mesh.arrival, ref_mesh.arrival)
    np.testing.assert_array_equal(top.filled(-1), ref_top.filled(-1))
    np.testing.assert_array_equal(side.filled(-1), ref_side.filled(-1))
    assert int(top.min()) == 0 and int(side.max()) == 3
