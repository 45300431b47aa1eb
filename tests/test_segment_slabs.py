"""Segmentation in z-slabs equals the whole-step segmentation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import zarr
from scipy import ndimage

from dendritect.preprocess.cell import find_cell
from dendritect.segment.cracks import component_shapes, segment_step
from dendritect.segment.slabs import (
    SEGMENT_BYTES_PER_VOXEL,
    Slabs,
    plan_slabs,
    slab_budget,
)
from tests.test_preprocess_cell import make_cell
from tests.test_segment_cracks import PORES, _cell_with_pore_and_crack


def _limit(vol, planes: int) -> int:
    """A budget that gives slabs of about ``planes`` planes plus halo (one task at a time)."""
    return 4 * (planes + 16) * vol.shape[1] * vol.shape[2] * SEGMENT_BYTES_PER_VOXEL


def _same(a, b) -> None:
    np.testing.assert_array_equal(np.asarray(a.crack), np.asarray(b.crack))
    np.testing.assert_array_equal(np.asarray(a.pores), np.asarray(b.pores))


@pytest.mark.parametrize("planes", [3, 7])
def test_slabs_equal_whole_step(planes):
    ref, _ = make_cell(pores=PORES, noise=0.04, seed=3)
    vol, _ = make_cell(pores=PORES, cracks=[(40, 12, 1.0), (22, 20, 1.5)], noise=0.04,
                           seed=4)
    geo = find_cell(ref, 1.0, anode="top")
    first = segment_step(ref, geo)
    whole = segment_step(vol, geo, reference=ref, previous=first.crack)
    assert whole.crack.sum() > 100  # a real crack, not an empty answer both ways
    lim = _limit(vol, planes)
    assert len(plan_slabs(vol.shape[0], vol.shape[1] * vol.shape[2], 8, slab_budget(lim),
                          1)) > 3
    sl_first = segment_step(ref, geo, memory_limit=lim)
    _same(first, sl_first)
    sliced = segment_step(vol, geo, reference=ref, previous=sl_first.crack, memory_limit=lim)
    _same(whole, sliced)


def test_slabs_from_and_into_zarr(tmp_path):
    # a crack root beside a pore: the pore/crack split needs the blob's shape across slabs
    vol, _ = _cell_with_pore_and_crack(10, seed=2)
    ref, _ = _cell_with_pore_and_crack(3, seed=1)
    geo = find_cell(ref, 1.0, anode="top")
    whole = segment_step(vol, geo, reference=ref)
    src = zarr.create_array(store=str(tmp_path / "v.zarr"), shape=vol.shape, dtype="float32",
                            chunks=(5, *vol.shape[1:]))
    src[...] = vol
    before = vol.copy()
    out = {k: zarr.create_array(store=str(tmp_path / f"{k}.zarr"), shape=vol.shape,
                                dtype="uint8", chunks=(4, *vol.shape[1:]), fill_value=0)
           for k in ("crack", "lithium", "pores")}
    seg = segment_step(src, geo, reference=ref, memory_limit=_limit(vol, 4), out=out,
                       scratch=tmp_path / "scratch")
    assert seg.crack is out["crack"]
    _same(whole, seg)
    np.testing.assert_array_equal(vol, before)
    assert not list((tmp_path / "scratch").glob("*.zarr"))  # scratch volumes removed


def test_lithium_in_slabs_matches_whole_step():
    vol, _ = make_cell(cracks=[(30, 12, 3.0)], crack_li=True, noise=0.01, psf=0.3)
    geo = find_cell(vol, 1.0, anode="top")
    whole = segment_step(vol, geo)
    sliced = segment_step(vol, geo, memory_limit=_limit(vol, 4))
    assert whole.lithium is not None and sliced.lithium is not None
    np.testing.assert_array_equal(whole.crack, sliced.crack)
    # nearest resolved voxel: the k-d tree and the distance transform may pick different
    # voxels among equally near ones, nowhere else
    differ = (whole.lithium != sliced.lithium).sum()
    assert differ <= 0.01 * whole.crack.sum()


def test_shape_moments_over_slabs_equal_component_shapes(tmp_path):
    rng = np.random.default_rng(0)
    mask = ndimage.binary_opening(rng.random((30, 20, 24)) > 0.6)
    lab, n = ndimage.label(mask)
    whole = component_shapes(lab, n)
    slabs = Slabs(lab.shape, plan_slabs(30, 20 * 24, 0, 20 * 24 * SEGMENT_BYTES_PER_VOXEL * 4),
                  tmp_path)
    assert len(slabs.slabs) > 5
    stored = slabs.new("lab", np.int32)
    stored[...] = lab
    size, cov = slabs.shape_moments(stored, n)
    np.testing.assert_array_equal(size, whole["size"])
    from dendritect.segment.cracks import _shapes

    got = _shapes(size, cov)
    for k in ("planarity", "normal_z", "thickness"):
        np.testing.assert_allclose(got[k], whole[k], rtol=1e-9, atol=1e-12)
    relab, n2 = slabs.label(stored, "relab", connectivity=1)
    assert n2 == n
    np.testing.assert_array_equal(np.asarray(relab[...]), lab)  # same numbering
    slabs.close()


def test_plan_slabs_covers_and_fits():
    plan = plan_slabs(100, 1000, 8, 60 * 1000 * SEGMENT_BYTES_PER_VOXEL, 2)
    assert plan[0][0] == 0 and plan[-1][1] == 100
    assert all(a[1] == b[0] for a, b in itertools.pairwise(plan))
    assert max(b - a for a, b in plan) + 16 <= 30  # two slabs and their halos in the budget
    # below that, slabs stay as thick as their halo (else the halo is most of the work)
    assert max(b - a for a, b in plan_slabs(100, 1000, 8, 1000, 2)) >= 8
    assert plan_slabs(100, 1000, 8, None) == [(0, 100)]
    # the process itself is budgeted outside the slabs
    assert slab_budget(3 * 10**9) == 3 * 10**9 - 512 * 2**20
    assert slab_budget(20 * 10**6) == 5 * 10**6
    assert slab_budget(None) is None


def test_slabs_on_a_local_cluster_equal_whole_step(tmp_path):
    """Slab tasks run in two worker processes (a real scheduler on loopback)."""
    pytest.importorskip("distributed")
    from dendritect.parallel import compute_context

    ref, _ = make_cell(pores=PORES, noise=0.04, seed=3)
    vol, _ = make_cell(pores=PORES, cracks=[(40, 12, 1.0)], noise=0.04, seed=4)
    geo = find_cell(ref, 1.0, anode="top")
    whole = segment_step(vol, geo, reference=ref)
    with compute_context(workers=2, memory_limit="256MB") as ctx:
        assert ctx.kind == "local" and ctx.n_workers == 2
        sliced = segment_step(vol, geo, reference=ref, memory_limit=_limit(vol, 4),
                              scratch=tmp_path / "scratch")
    _same(whole, sliced)
