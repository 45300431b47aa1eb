"""Bounded-memory preprocessing gives the answers of the whole-step functions.

The bounded paths are forced on small synthetic cells by a small ``max_voxels``; the binning
they then use (2 x 2 across) is what a 512 x 1024 x 1024 step gets under the default budget
(4 x 4 across on a 4x wider field of view).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import zarr
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.preprocess import (
    apply_shift,
    decide_anode,
    estimate_shift,
    find_cell,
    match_intensity,
)
from dendritect.preprocess.large import (
    MAX_WHOLE_VOXELS,
    align_step,
    bin_factor,
    binned,
    decide_anode_bounded,
    estimate_shift_bounded,
    find_cell_bounded,
    read_float32,
)
from dendritect.synthetic.twin import generate

SHAPE = (48, 128, 128)
SMALL = 2**18  # SHAPE has 786k voxels: binned (1, 2, 2) to 197k


@pytest.fixture(scope="module", params=["top", "bottom"])
def cell(request):
    return generate("demo", seed=3, shape_zyx=SHAPE, n_steps=3, anode=request.param)


def _zarr(a: np.ndarray, chunks=(8, None, None)) -> zarr.Array:
    ch = tuple(s if c is None else c for s, c in zip(a.shape, chunks, strict=True))
    z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=a.shape, dtype=a.dtype,
                          chunks=ch)
    z[...] = a
    return z


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# --- binning ------------------------------------------------------------------------------

def test_bin_factor():
    assert bin_factor((512, 1024, 1024), 2**25) == (1, 4, 4)  # 512 * 256 * 256 = 2**25
    assert bin_factor((512, 1024, 1024)) == (1, 12, 12)  # default: 512 * 86 * 86 <= 2**22
    assert bin_factor((64, 128, 128)) == (1, 1, 1)
    assert bin_factor(SHAPE, SMALL) == (1, 2, 2)
    assert bin_factor((48, 100, 90), 48 * 34 * 30) == (1, 3, 3)  # partial blocks count
    # z alone too big, or too few pixels left across: every axis is binned
    f = bin_factor((5000, 20, 20), 2000)
    assert f[0] == f[1] == f[2] > 1
    assert np.prod([-(-n // k) for n, k in zip((5000, 20, 20), f, strict=True)]) <= 2000
    with pytest.raises(InputError):
        bin_factor((10, 10), 100)
    with pytest.raises(InputError):
        bin_factor((10, 10, 10), 0)


@pytest.mark.parametrize(("factor", "slab"), [((3, 2, 5), 64), ((3, 2, 5), 2), ((1, 4, 4), 1),
                                              ((1, 1, 1), 5)])
def test_binned_is_block_means_with_partial_blocks(factor, slab):
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 60000, (11, 9, 13)).astype(np.uint16)
    before = vol.copy()
    got = binned(_zarr(vol, (4, None, None)), factor, slab_vox=slab)
    kz, ky, kx = factor
    want = np.array([[[vol[z:z + kz, y:y + ky, x:x + kx].mean()
                       for x in range(0, 13, kx)] for y in range(0, 9, ky)]
                     for z in range(0, 11, kz)])
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_array_equal(vol, before)
    with pytest.raises(InputError):
        binned(vol, (0, 1, 1))


def test_read_float32():
    vol = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    out = read_float32(_zarr(vol, (1, 3, 4)))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, vol)
    with pytest.raises(InputError, match="slabs"):
        read_float32(vol, max_voxels=10)
    with pytest.raises(InputError):
        read_float32(vol[0])
    with pytest.raises(InputError):
        read_float32(vol.astype(np.complex64))


# --- the cell -----------------------------------------------------------------------------

def test_find_cell_small_step_is_find_cell(cell):
    s0 = cell.scans[0]
    want = find_cell(np.asarray(s0, np.float32), cell.voxel_size_um)
    got = find_cell_bounded(s0, cell.voxel_size_um)
    for f in dataclasses.fields(want):
        a, b = getattr(want, f.name), getattr(got, f.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, f.name


def test_find_cell_bounded_matches_whole(cell):
    s0 = cell.scans[0]
    want = find_cell(np.asarray(s0, np.float32), cell.voxel_size_um)
    got = find_cell_bounded(_zarr(s0), cell.voxel_size_um, max_voxels=SMALL)
    assert got.anode == want.anode and got.flags == want.flags
    assert abs(got.z_anode_vox - want.z_anode_vox) < 0.5
    assert abs(got.z_cathode_vox - want.z_cathode_vox) < 0.5
    # the twin's truth interfaces, z_um / dz in voxel coordinates
    lo_um, hi_um = sorted(cell.truth["interfaces"].values())
    dz = cell.voxel_size_um[0]
    assert abs(min(got.z_range_vox) - lo_um / dz) < 0.5
    assert abs(max(got.z_range_vox) - hi_um / dz) < 0.5
    assert got.footprint.shape == want.footprint.shape == SHAPE[1:]
    assert _iou(got.footprint, want.footprint) >= 0.97
    assert _iou(got.electrode_footprint, want.electrode_footprint) >= 0.97
    assert _iou(got.counter_electrode_footprint, want.counter_electrode_footprint) >= 0.97
    # the electrode is on the anode's side and smaller than the pellet
    assert got.electrode_footprint.sum() < got.footprint.sum()
    for k, v in want.levels.items():
        assert abs(got.levels[k] - v) <= 0.02 * abs(v), k
    assert abs(got.noise - want.noise) <= 0.25 * want.noise
    mask = got.electrolyte_mask(SHAPE)
    assert _iou(mask, want.electrolyte_mask(SHAPE)) >= 0.95


def test_find_cell_bounded_refuses_what_find_cell_refuses():
    flat = np.full((40, 64, 64), 1000, np.uint16)
    with pytest.raises(InputError, match="no electrolyte layer"):
        find_cell_bounded(flat, where="flat.zarr step 0", max_voxels=2**14)
    with pytest.raises(InputError, match="anode"):
        find_cell_bounded(flat, anode="left")


def test_decide_anode_bounded_same_side(cell):
    s0, last = cell.scans[0], cell.scans[-1]
    geo = find_cell(np.asarray(s0, np.float32), cell.voxel_size_um)
    moved = apply_shift(last, estimate_shift(np.asarray(s0, np.float32),
                                             np.asarray(last, np.float32)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both decide confidently
        whole = decide_anode(np.asarray(s0, np.float32), moved, geo)
        small_path = decide_anode_bounded(s0, moved, geo)
        bounded = decide_anode_bounded(_zarr(s0), _zarr(moved), geo, max_voxels=SMALL)
    assert whole == small_path == bounded == cell.meta["anode"]
    with pytest.raises(InputError):
        decide_anode_bounded(s0, moved[:-1], geo)


# --- registration -------------------------------------------------------------------------

@pytest.mark.parametrize("true", [(0.6, -1.3, 2.4), (-2.35, 0.45, -0.8)])
def test_estimate_shift_bounded_recovers_imposed_shift(cell, true):
    ref = np.asarray(cell.scans[0], np.float32)
    rng = np.random.default_rng(1)
    # the content moved by -true; applying +true registers it
    moving = ndimage.shift(ref, -np.asarray(true), order=1, mode="nearest")
    moving += rng.normal(0, 200.0, ref.shape).astype(np.float32)
    got = estimate_shift_bounded(_zarr(ref), _zarr(moving), max_voxels=SMALL)
    assert np.abs(got - np.asarray(true)).max() <= 0.15


def test_estimate_shift_bounded_twin_drift(cell):
    s0, last = cell.scans[0], cell.scans[-1]
    true = -np.asarray(cell.meta["drift_shift_vox"][-1])
    got = estimate_shift_bounded(s0, last, max_voxels=SMALL)
    assert np.abs(got - true).max() <= 0.15
    # small steps: exactly estimate_shift
    np.testing.assert_array_equal(
        estimate_shift_bounded(s0, last),
        estimate_shift(np.asarray(s0, np.float32), np.asarray(last, np.float32)))


@pytest.mark.parametrize("max_voxels", [SMALL, 2**22])
def test_estimate_shift_bounded_reference_cache_same_shifts(cell, max_voxels):
    # what is kept of step 0 between steps (binned copy, spectra) changes no shift, bit for
    # bit, and is reused: later steps do not read the reference again, except the
    # full-resolution crops of a larger step when the coarse shift moved them
    s0 = np.asarray(cell.scans[0], np.float32)
    cache: dict = {}
    reads = []

    class Counted:
        shape, dtype, ndim = s0.shape, s0.dtype, 3

        def __getitem__(self, key):
            reads.append(key)
            return s0[key]

    for t in range(1, cell.scans.shape[0]):
        plain = estimate_shift_bounded(s0, cell.scans[t], max_voxels=max_voxels)
        n_before = len(reads)
        kept = estimate_shift_bounded(Counted(), cell.scans[t], max_voxels=max_voxels,
                                      reference_cache=cache)
        np.testing.assert_array_equal(kept, plain)
        again = reads[n_before:]
        if t > 1 and max_voxels >= s0.size:
            assert again == []
        elif t > 1:
            assert not any(isinstance(k, slice) for k in again)  # binned once, z-slab reads
            assert len(again) <= 2  # at most the two crops
    assert cache


# --- shift and grey levels, slab by slab ----------------------------------------------------

@pytest.mark.parametrize(("shift", "slab", "as_zarr"), [((0.37, -0.61, 1.23), 1, False),
                                                       ((0.37, -0.61, 1.23), 7, True),
                                                       ((-2.0, 1.0, 0.0), 3, True),
                                                       ((0.0, 0.0, 0.0), 7, False)])
def test_align_step_equals_whole_step(shift, slab, as_zarr):
    cell = generate("demo", seed=4, shape_zyx=(48, 96, 96), n_steps=2)
    s0, last = cell.scans[0], cell.scans[-1]
    s0_before, last_before = s0.copy(), last.copy()
    shape = s0.shape
    geo = find_cell(np.asarray(s0, np.float32), cell.voxel_size_um)
    mask = geo.electrolyte_mask(shape)
    zm = geo.z_mask(shape[0])
    want = match_intensity(apply_shift(last, shift), s0, mask=mask)
    src = _zarr(last, (5, None, None)) if as_zarr else last
    ref = _zarr(s0) if as_zarr else s0
    out = _zarr(np.zeros(shape, np.float32), (4, None, None)) if as_zarr \
        else np.zeros(shape, np.float32)
    gain, offset = align_step(src, ref, shift, out,
                              mask_fn=lambda z0, z1: zm[z0:z1, None, None] & geo.footprint[None],
                              slab_vox=slab)
    np.testing.assert_allclose(out[...], want, rtol=1e-5, atol=0)
    # the returned gain and offset are the ones applied
    np.testing.assert_allclose(apply_shift(last, shift) * np.float32(gain) + np.float32(offset),
                               want, rtol=1e-5)
    np.testing.assert_array_equal(s0, s0_before)
    np.testing.assert_array_equal(last, last_before)
    # the reference's samples kept from one step to the next give the same answer
    kept: dict = {}
    for _ in range(2):
        again = np.zeros(shape, np.float32)
        assert align_step(src, ref, shift, again, slab_vox=slab, reference_samples=kept,
                          mask_fn=lambda z0, z1: zm[z0:z1, None, None] & geo.footprint[None]
                          ) == (gain, offset)
        np.testing.assert_array_equal(again, np.asarray(out[...]))
    assert len(kept) == 1


@pytest.mark.parametrize("slab", [48, 7])
def test_align_step_fits_on_the_whole_steps_samples_exactly(slab):
    # smoothing only the box around the mask (and the shifted rows once) samples exactly the
    # values that smoothing the whole shifted step and the whole reference gives
    from dendritect.preprocess import normalise

    cell = generate("demo", seed=4, shape_zyx=(48, 96, 96), n_steps=2)
    s0, last = cell.scans[0], cell.scans[-1]
    geo = find_cell(np.asarray(s0, np.float32), cell.voxel_size_um)
    zm = geo.z_mask(s0.shape[0])
    mask = zm[:, None, None] & geo.footprint[None]
    assert 0 < mask.sum() < mask.size / 2  # a box well inside the step
    shift = (0.37, -0.61, 1.23)
    moved = apply_shift(last, shift)
    step = max(1, int(mask.sum()) // normalise.MAX_SAMPLES)
    x = ndimage.gaussian_filter(moved, normalise.SMOOTH_VOX)[mask][::step]
    y = ndimage.gaussian_filter(np.asarray(s0, np.float32), normalise.SMOOTH_VOX)[mask][::step]
    want = normalise.fit_samples(x.astype(np.float64), y.astype(np.float64))
    out = np.zeros(s0.shape, np.float32)
    got = align_step(last, s0, shift, out, slab_vox=slab,
                     mask_fn=lambda z0, z1: zm[z0:z1, None, None] & geo.footprint[None])
    assert got == want
    np.testing.assert_array_equal(out, moved * np.float32(want[0]) + np.float32(want[1]))


def test_align_step_subsampled_fit_and_no_mask():
    # more than 2e6 voxels: fit_gain_offset keeps every 2nd one; the slabs must pick the same
    rng = np.random.default_rng(5)
    shape = (40, 230, 230)
    ref = (ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 2.0) * 4000
           + 20000).astype(np.uint16)
    moving = (ref.astype(np.float32) * 1.07 + 150).astype(np.uint16)
    shift = (0.4, -1.7, 0.25)
    want = match_intensity(apply_shift(moving, shift), ref)
    out = np.zeros(shape, np.float32)
    gain, offset = align_step(moving, ref, shift, out, slab_vox=16)
    np.testing.assert_allclose(out, want, rtol=1e-5)
    assert 0.85 < gain < 1.0 and offset != 0.0


def test_align_step_bad_input():
    vol = np.ones((8, 10, 12), np.float32)
    with pytest.raises(InputError, match="shape"):
        align_step(vol, vol, (0, 0, 0), np.zeros((8, 10, 11), np.float32))
    with pytest.raises(InputError, match="mask_fn"):
        align_step(vol, vol, (0, 0, 0), np.zeros_like(vol),
                   mask_fn=lambda z0, z1: np.ones((z1 - z0, 10, 10), bool))
    with pytest.raises(InputError):
        align_step(vol, vol, (0, 0), np.zeros_like(vol))
    with pytest.raises(InputError):
        align_step(vol, vol[:-1], (0, 0, 0), np.zeros_like(vol))
    with pytest.raises(InputError, match="fewer than 100"):
        align_step(vol, vol, (0, 0, 0), np.zeros_like(vol),
                   mask_fn=lambda z0, z1: np.zeros((z1 - z0, 10, 12), bool))
    assert MAX_WHOLE_VOXELS == 2**22


def test_find_cell_bounded_footprint_stays_inside_the_pellet(cell):
    # 4x4 binning: a footprint upsampled from blocks would reach up to 3 voxels past the
    # pellet wall and take in the dark die, which the segmentation would read as a crack
    s0 = cell.scans[0]
    want = find_cell(np.asarray(s0, np.float32), cell.voxel_size_um)
    assert bin_factor(SHAPE, 2**16)[1] == 4
    got = find_cell_bounded(_zarr(s0), cell.voxel_size_um, max_voxels=2**16)
    assert _iou(got.footprint, want.footprint) >= 0.99
    assert not (got.footprint & ~ndimage.binary_dilation(want.footprint)).any()


def test_find_cell_bounded_anode_free_cell_matches_whole():
    """A cell on a bright collector through the binned path: the same collector side, no
    lithium level taken from the collector, the levels of the whole-step answer."""
    from tests.test_preprocess_cell import LEVELS, make_cell

    mu, _ = make_cell(noise=0.0, psf=0.0)
    _, ny, nx = mu.shape
    y, x = np.ogrid[:ny, :nx]
    mu[36:][:, np.hypot(y - (ny - 1) / 2, x - (nx - 1) / 2) <= 0.42 * nx] = LEVELS["steel"]
    rng = np.random.default_rng(5)
    vol = (ndimage.gaussian_filter(mu, 0.6) + rng.normal(0, 0.03, mu.shape)).astype(np.float32)
    want = find_cell(vol, 1.0)
    got = find_cell_bounded(_zarr(vol), 1.0, max_voxels=2**15)
    assert "collector-bottom" in want.flags and got.flags == want.flags
    assert abs(got.z_cathode_vox - want.z_cathode_vox) < 0.5
    assert abs(got.levels["lithium"] - LEVELS["lithium"]) < 0.05
    assert _iou(got.counter_electrode_footprint, want.counter_electrode_footprint) >= 0.9
