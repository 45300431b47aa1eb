"""Measurements from crack voxels equal those from dense labels, on synthetic twin cracks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from dendritect.errors import InputError
from dendritect.measure import (
    CRACK_COLUMNS,
    measure_cracks,
    measure_cracks_voxels,
    measure_step,
    measure_step_voxels,
)
from dendritect.preprocess.cell import CellGeometry
from dendritect.synthetic import LABELS
from dendritect.synthetic.twin import generate
from dendritect.track import track_cracks, track_voxels

_STRUCTURE = np.ones((3, 3, 3), bool)


def _disk(shape_yx, centre_vox, radius_vox):
    yy, xx = np.indices(shape_yx)
    return (yy - centre_vox[0]) ** 2 + (xx - centre_vox[1]) ** 2 <= radius_vox**2


def _geometry(truth, shape, anode="top"):
    """The cell of a synthetic dataset, from its truth record (anode at low z as generated)."""
    dz, dy, dx = truth["voxel_size_um"]
    za, zc = (z / dz for z in truth["interfaces_um"])   # interfaces lie between voxel centres
    cy, cx = truth["cell_axis_yx_um"][0] / dy, truth["cell_axis_yx_um"][1] / dx
    pellet = _disk(shape[1:], (cy, cx), truth["pellet_radius_um"] / dx)
    electrode = _disk(shape[1:], (cy, cx), truth["electrode_radius_um"] / dx)
    if anode == "bottom":                                # the same cell turned upside down
        za, zc = shape[0] - 1 - za, shape[0] - 1 - zc
    return CellGeometry(anode, za, zc, pellet, electrode, {"electrolyte": 1.0})


@pytest.fixture(scope="module")
def twin():
    return generate("demo", seed=1, shape_zyx=(48, 96, 96), n_steps=4, ct="fast")


def _steps(twin, flip=False):
    crack = np.isin(twin.labels, (LABELS["crack"], LABELS["crack_li"]))
    li = twin.labels == LABELS["crack_li"]
    if flip:
        crack, li = crack[:, ::-1], li[:, ::-1]
    return np.ascontiguousarray(crack), np.ascontiguousarray(li)


@pytest.mark.parametrize("anode", ["top", "bottom"])
def test_twin_series_tracked_and_measured_like_dense(twin, anode):
    crack, li = _steps(twin, flip=anode == "bottom")
    shape = crack.shape[1:]
    geom = _geometry(twin.truth, shape, anode)
    spacing = twin.voxel_size_um
    assert crack[-1].sum() > 1000 and li[-1].any() and (crack[-1] & ~li[-1]).any()
    flats = [np.flatnonzero(c) for c in crack]
    dense = track_cracks(crack)
    sparse = track_voxels(iter(flats), shape)
    n_rows = 0
    for t, (flat, lab, ref) in enumerate(zip(flats, sparse, dense, strict=True)):
        np.testing.assert_array_equal(lab, ref.ravel()[flat])
        for lith in (None, li[t]):
            lith_vox = None if lith is None else lith.ravel()[flat]
            want = measure_cracks(ref, geom, spacing, lithium=lith, time_s=60.0 * t, t_index=t)
            got = measure_cracks_voxels(flat, lab, shape, geom, spacing, lithium=lith_vox,
                                        time_s=60.0 * t, t_index=t)
            pd.testing.assert_frame_equal(got, want)
            n_rows += len(got)
            m_want = measure_step(crack[t], geom, spacing, lithium=lith)
            m_got = measure_step_voxels(flat, shape, geom, spacing, lithium=lith_vox)
            assert list(m_got) == list(m_want)
            np.testing.assert_equal(m_got, m_want)       # NaN equals NaN here
    assert n_rows >= 4
    # The last step's twin cracks reach the cathode: the sparse metrics say so too.
    last = measure_step_voxels(flats[-1], shape, geom, spacing, lithium=li[-1].ravel()[flats[-1]])
    assert last["spanning"] == 1 and last["n_cracks"] >= 1
    assert last["crack_volume_um3"] == pytest.approx(crack[-1].sum() * np.prod(spacing))


def _drawn_cracks(shape):
    """Planes, a slanted sheet, a lens and pieces cut by the array's faces and corners."""
    m = np.zeros(shape, bool)
    z, y, x = np.indices(shape)
    m[10:13, 20:40, 16:46] = True                          # spallation plane
    m[2:30, 45:55, 50:52] = True                           # transverse crack, two voxels open
    m |= (np.abs(z - 0.5 * y - 3) < 0.6) & (x > 3) & (x < 12) & (y < 60)   # slanted sheet
    m |= ((z - 25) / 2.0) ** 2 + ((y - 10) / 6.0) ** 2 + ((x - 55) / 6.0) ** 2 <= 1  # lens
    m[:4, :3, :3] = True                                   # at a corner of the array
    m[20:23, 63, 30:35] = True                             # on the y face
    m[39, 0, 63] = True                                    # a single voxel at a corner
    return m


@pytest.mark.parametrize("anode", ["top", "bottom"])
def test_drawn_cracks_like_dense(anode):
    shape = (40, 64, 64)
    spacing = (1.0, 0.5, 0.5)
    geom = CellGeometry(anode, 2.0 if anode == "top" else 37.0, 38.0 if anode == "top" else 3.0,
                        np.ones(shape[1:], bool), _disk(shape[1:], (32, 32), 20), {})
    mask = _drawn_cracks(shape)
    lab, n = ndi.label(mask, _STRUCTURE)
    # Sparse ids with gaps (as tracked ids have): ids 1, 4, 7, ...
    lab = np.where(lab > 0, 3 * lab - 2, 0).astype(np.int32)
    rng = np.random.default_rng(5)
    li = mask & (rng.random(shape) < 0.3)
    flat = np.flatnonzero(mask)
    for lith in (None, li):
        lith_vox = None if lith is None else lith.ravel()[flat]
        want = measure_cracks(lab, geom, spacing, lithium=lith, time_s=2.5, t_index=7)
        got = measure_cracks_voxels(flat, lab.ravel()[flat], shape, geom, spacing,
                                    lithium=lith_vox, time_s=2.5, t_index=7)
        assert len(got) == n >= 6
        pd.testing.assert_frame_equal(got, want)
        np.testing.assert_equal(measure_step_voxels(flat, shape, geom, spacing, lithium=lith_vox),
                                measure_step(mask, geom, spacing, lithium=lith))
    # An analytic check through the sparse path: the spallation plane (see test_measure_cracks).
    plane = np.zeros(shape, bool)
    plane[10:13, 20:40, 16:46] = True
    f = np.flatnonzero(plane)
    r = measure_cracks_voxels(f, np.ones(f.size, np.int32), shape, geom, spacing).iloc[0]
    if anode == "top":
        assert r.front_depth_um == pytest.approx(10.5)
    assert r.projected_area_um2 == pytest.approx(20 * 30 * 0.25)
    assert r.volume_um3 == pytest.approx(3 * 20 * 30 * 0.25)


def test_empty_and_bad_input():
    shape = (8, 8, 8)
    geom = CellGeometry("top", 0.5, 6.5, np.ones((8, 8), bool), np.ones((8, 8), bool), {})
    empty = np.zeros(0, np.int64)
    df = measure_cracks_voxels(empty, empty, shape, geom, 1.0)
    assert len(df) == 0 and list(df.columns) == CRACK_COLUMNS
    np.testing.assert_equal(measure_step_voxels(empty, shape, geom, 1.0),
                            measure_step(np.zeros(shape, bool), geom, 1.0))
    labels = np.ones(2, np.int32)
    with pytest.raises(InputError, match="aligned"):
        measure_cracks_voxels([1, 2], labels[:1], shape, geom, 1.0)
    with pytest.raises(InputError, match="aligned"):
        measure_step_voxels([1, 2], shape, geom, 1.0, lithium=[1])
    with pytest.raises(InputError, match="negative"):
        measure_cracks_voxels([1, 2], [-1, 1], shape, geom, 1.0)
    with pytest.raises(InputError, match="integer"):
        measure_cracks_voxels([1, 2], [1.0, 1.0], shape, geom, 1.0)
    with pytest.raises(InputError, match="voxel size"):
        measure_step_voxels([1, 2], shape, geom, (1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="outside"):
        measure_step_voxels([600], shape, geom, 1.0)
