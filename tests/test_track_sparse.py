"""Sparse labelling and tracking give exactly what the dense functions give, at the crack voxels."""

from __future__ import annotations

import dask.array as da
import h5py
import numpy as np
import pytest
import zarr
from scipy import ndimage as ndi

from dendritect.errors import InputError
from dendritect.track import (
    arrival_voxels,
    label_voxels,
    mask_voxels,
    time_of_arrival,
    track_cracks,
    track_voxels,
    write_voxels,
)

SHAPE = (10, 24, 24)


def _dense_label(mask, connectivity):
    return ndi.label(mask, structure=ndi.generate_binary_structure(3, connectivity))


def _assert_same_labels(mask, connectivity):
    ref, n = _dense_label(mask, connectivity)
    flat = np.flatnonzero(mask)
    lab, k = label_voxels(flat, mask.shape, connectivity=connectivity)
    assert lab.dtype == np.int32 and lab.shape == flat.shape
    assert k == n
    # Same partition and the same numbering (raster order of each component's first voxel).
    np.testing.assert_array_equal(lab, ref.ravel()[flat])


def _random_masks():
    rng = np.random.default_rng(7)
    for density in (0.002, 0.03, 0.15, 0.35, 0.6):
        yield f"random{density}", rng.random((9, 13, 17)) < density


def _diagonal_sheets():
    z, y, x = np.indices((12, 14, 16))
    # One voxel thick planes that touch only along edges or only at corners.
    yield "sheet_zyx", (z + y + x) % 9 == 0
    yield "sheet_yx", (y - x) % 7 == 0
    yield "sheet_zy", (z - y + 3 * x) % 11 == 0
    yield "lines_corner", (z == y) & (y == x)          # a 3D diagonal: corners only


def _edge_masks():
    m = np.zeros((5, 6, 7), bool)
    # The 8 corners of the array, plus voxels whose flat indices follow each other across a
    # row or plane boundary (they must not be joined: no wrap-around).
    for z in (0, 4):
        for y in (0, 5):
            for x in (0, 6):
                m[z, y, x] = True
    m[1, 2, 6] = m[1, 3, 0] = True      # flat neighbours across the end of a row
    m[2, 5, 6] = m[3, 0, 0] = True      # flat neighbours across the end of a plane
    m[2, 5, 0] = m[3, 0, 6] = True      # x-diagonal across the plane boundary
    yield "corners_and_wraps", m
    edges = np.zeros((4, 5, 6), bool)
    edges[:, 0, 0] = edges[0, :, 5] = edges[3, 4, :] = True
    yield "array_edges", edges
    yield "full", np.ones((3, 4, 5), bool)
    yield "empty", np.zeros((3, 4, 5), bool)
    single = np.zeros((1, 1, 9), bool)
    single[0, 0, ::2] = True
    yield "one_row", single


CASES = [*_random_masks(), *_diagonal_sheets(), *_edge_masks()]


@pytest.mark.parametrize("connectivity", [1, 2, 3])
@pytest.mark.parametrize(("name", "mask"), CASES, ids=[c[0] for c in CASES])
def test_label_voxels_equals_ndimage_label(name, mask, connectivity):
    _assert_same_labels(mask, connectivity)


def test_label_voxels_no_wrap_and_connectivity():
    shape = (2, 3, 4)
    idx = np.ravel_multi_index
    # Consecutive flat indices at the end of a row and of a plane: never neighbours.
    flat = np.array([idx((0, 0, 3), shape), idx((0, 1, 0), shape)])
    assert label_voxels(flat, shape)[1] == 2
    flat = np.array([idx((0, 2, 3), shape), idx((1, 0, 0), shape)])
    assert label_voxels(flat, shape)[1] == 2
    # Edge-sharing pair: one crack for connectivity 2 and 3, two for 1; corner pair: only 3.
    edge = np.sort([idx((0, 0, 0), shape), idx((0, 1, 1), shape)])
    corner = np.sort([idx((0, 0, 0), shape), idx((1, 1, 1), shape)])
    assert [label_voxels(edge, shape, connectivity=c)[1] for c in (1, 2, 3)] == [2, 1, 1]
    assert [label_voxels(corner, shape, connectivity=c)[1] for c in (1, 2, 3)] == [2, 2, 1]


def test_label_voxels_bad_input():
    with pytest.raises(InputError, match="sorted"):
        label_voxels([5, 3], SHAPE)
    with pytest.raises(InputError, match="sorted"):
        label_voxels([3, 3], SHAPE)
    with pytest.raises(InputError, match="outside"):
        label_voxels([np.prod(SHAPE)], SHAPE)
    with pytest.raises(InputError, match="negative"):
        label_voxels([-1, 2], SHAPE)
    with pytest.raises(InputError, match="integer"):
        label_voxels(np.array([1.0, 2.0]), SHAPE)
    with pytest.raises(InputError, match="connectivity"):
        label_voxels([1], SHAPE, connectivity=4)
    with pytest.raises(InputError, match="shape"):
        label_voxels([1], (4, 4))


def _box(z0, z1, y0, y1, x0, x1):
    m = np.zeros(SHAPE, np.uint8)
    m[z0:z1, y0:y1, x0:x1] = 1
    return m


def _series():
    """Six steps: growth, a merge, a crack that closes for a step and reopens, a weak overlap."""
    a = _box(0, 2, 2, 5, 2, 5)
    a_grown = a | _box(0, 5, 3, 5, 3, 5)
    b = _box(0, 2, 2, 5, 12, 15)
    bridge = _box(1, 2, 3, 4, 5, 12)
    c = _box(6, 8, 18, 21, 18, 21)
    d = np.zeros(SHAPE, np.uint8)
    for k in range(8):                         # thin diagonal crack at the array's corner
        d[min(k, 9), k, 23 - k] = 1
    # Two voxels of c's old place, plus a new part: overlaps c by 2 voxels only.
    weak = _box(7, 8, 20, 21, 19, 21) | _box(7, 8, 21, 24, 19, 21)
    return [
        a | b,                                  # 0: cracks 1 and 2
        a_grown | b | c,                        # 1: 1 grows; 3 appears
        a_grown | b | bridge | c,               # 2: 1 and 2 merge: oldest id (1) wins
        a_grown | b | bridge | d,               # 3: 3 closes; a new diagonal crack
        a_grown | b | bridge | c | d,           # 4: 3 reopens with its id
        a_grown | b | bridge | d | weak,        # 5: 2-voxel overlap with 3
    ]


@pytest.mark.parametrize("min_overlap_vox", [1, 3])
def test_track_voxels_equals_track_cracks(min_overlap_vox):
    steps = _series()
    dense = list(track_cracks(steps, min_overlap_vox=min_overlap_vox))
    flats = [np.flatnonzero(s) for s in steps]
    sparse = list(track_voxels(iter(flats), SHAPE, min_overlap_vox=min_overlap_vox))
    assert len(sparse) == len(dense) == 6
    for f, lab, ref in zip(flats, sparse, dense, strict=True):
        assert lab.dtype == np.int32
        np.testing.assert_array_equal(lab, ref.ravel()[f])
        assert (ref.ravel()[np.setdiff1d(np.arange(ref.size), f)] == 0).all()
    # The series does what it claims (so the equality above covers those cases).
    c_vox = np.flatnonzero(_box(6, 8, 18, 21, 18, 21))
    assert set(np.unique(dense[2][dense[2] > 0])) == {1, 3}            # merged
    assert set(np.unique(dense[4].ravel()[c_vox])) == {3}                # reopened, same id
    weak_ids = set(np.unique(dense[5][7, 21:24, 19:21]))
    assert weak_ids == ({3} if min_overlap_vox == 1 else {5})


def test_track_voxels_random_series():
    rng = np.random.default_rng(3)
    shape = (12, 16, 20)
    steps, m = [], np.zeros(shape, bool)
    for _ in range(6):
        m = (m | (rng.random(shape) < 0.04)) & (rng.random(shape) > 0.1)   # grow, partly close
        steps.append(m.copy())
    for mo in (1, 2):
        dense = list(track_cracks(steps, min_overlap_vox=mo))
        sparse = track_voxels((np.flatnonzero(s) for s in steps), shape, min_overlap_vox=mo)
        for s, lab, ref in zip(steps, sparse, dense, strict=True):
            np.testing.assert_array_equal(lab, ref[s])


def test_track_voxels_bad_input():
    with pytest.raises(InputError, match="min_overlap"):
        next(track_voxels([np.array([1])], SHAPE, min_overlap_vox=0))
    it = track_voxels([np.array([1]), np.array([np.prod(SHAPE) + 3])], SHAPE)
    next(it)
    with pytest.raises(InputError, match="step 1"):
        next(it)


def test_arrival_voxels_equals_time_of_arrival():
    steps = [np.zeros(SHAPE, np.uint8), *_series()]
    toa = time_of_arrival(steps)
    flat, first = arrival_voxels(np.flatnonzero(s) for s in steps)
    assert first.dtype == np.int16 and flat.dtype == np.int64
    np.testing.assert_array_equal(flat, np.flatnonzero(toa >= 0))
    np.testing.assert_array_equal(first, toa.ravel()[flat])
    assert first.min() == 1
    with pytest.raises(InputError, match="no steps"):
        arrival_voxels([])


@pytest.fixture
def crack_step():
    rng = np.random.default_rng(11)
    return (rng.random(SHAPE) < 0.05).astype(np.uint8)


def test_mask_voxels_from_arrays_and_stores(tmp_path, crack_step):
    ref = np.flatnonzero(crack_step)
    np.testing.assert_array_equal(mask_voxels(crack_step), ref)
    np.testing.assert_array_equal(mask_voxels(crack_step.astype(np.float32), slab_vox=3), ref)
    z = zarr.create_array(str(tmp_path / "m.zarr"), shape=SHAPE, chunks=(4, 24, 24),
                          dtype="uint8")
    z[...] = crack_step
    np.testing.assert_array_equal(mask_voxels(z), ref)
    np.testing.assert_array_equal(mask_voxels(da.from_array(crack_step, chunks=(3, 8, 8))), ref)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("m", data=crack_step, chunks=(2, 24, 24))
        f.create_dataset("c", data=crack_step)               # contiguous: default slab
        np.testing.assert_array_equal(mask_voxels(f["m"]), ref)
        np.testing.assert_array_equal(mask_voxels(f["c"]), ref)
    series = zarr.create_array(str(tmp_path / "s.zarr"), shape=(3, *SHAPE),
                               chunks=(1, 4, 24, 24), dtype="uint8")
    series[1] = crack_step
    np.testing.assert_array_equal(mask_voxels(series, t=1), ref)
    assert mask_voxels(series, t=0).size == 0
    with pytest.raises(InputError):
        mask_voxels(series)
    with pytest.raises(InputError):
        mask_voxels(series, t=3)
    with pytest.raises(InputError, match="slab_vox"):
        mask_voxels(crack_step, slab_vox=0)


def test_write_voxels_round_trip(tmp_path, crack_step):
    flat = np.flatnonzero(crack_step)
    values = np.arange(1, flat.size + 1, dtype=np.int32)
    expected = np.zeros(SHAPE, np.int32)
    expected.ravel()[flat] = values

    out = np.full(SHAPE, 99, np.int32)                       # stale data everywhere
    write_voxels(out, flat, values, slab_vox=3)
    np.testing.assert_array_equal(out, expected)

    labels = zarr.create_array(str(tmp_path / "l.zarr"), shape=(2, *SHAPE),
                               chunks=(1, 4, 24, 24), dtype="int32")
    labels[...] = 7                                          # a previous run's leftovers
    write_voxels(labels, flat, values, t=1)
    np.testing.assert_array_equal(labels[1], expected)
    np.testing.assert_array_equal(labels[0], np.full(SHAPE, 7, np.int32))  # other step kept
    write_voxels(labels, flat[:0], values[:0], t=1)          # rerun with no cracks
    assert not labels[1].any()

    toa = zarr.create_array(str(tmp_path / "toa.zarr"), shape=SHAPE, chunks=(4, 24, 24),
                            dtype="int16", fill_value=-1)
    write_voxels(toa, flat, np.int16(2), fill=-1)            # one value for all voxels
    back = toa[...]
    assert (back.ravel()[flat] == 2).all() and (back >= 0).sum() == flat.size
    np.testing.assert_array_equal(mask_voxels(toa[...] >= 0), flat)

    with pytest.raises(InputError, match="fit"):
        write_voxels(np.zeros(SHAPE, np.uint8), flat, values + 300)
    with pytest.raises(InputError, match="fit"):
        write_voxels(np.zeros(SHAPE, np.uint8), flat, 1, fill=-1)
    with pytest.raises(InputError, match="aligned"):
        write_voxels(np.zeros(SHAPE, np.int32), flat, values[:-1])
    with pytest.raises(InputError, match="outside"):
        write_voxels(np.zeros((2, 2, 2), np.int32), flat, values)
