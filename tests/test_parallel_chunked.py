"""Out-of-core sheetness and labelling equal the whole-volume results."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.parallel.chunked import (
    global_contrast,
    label_chunked,
    sheetness_chunked,
    sheetness_depth,
)
from dendritect.parallel.memory import SHEETNESS_TEMPORARIES, block_bytes
from dendritect.segment.hessian import sheetness

SIGMAS = (1.0, 1.5, 2.0)


def _cracked_volume(shape=(40, 44, 48), seed=0) -> np.ndarray:
    """Noisy electrolyte with dark sheets that cross chunk borders along every axis."""
    rng = np.random.default_rng(seed)
    v = rng.normal(0.6, 0.03, shape).astype(np.float32)
    z, y, x = np.indices(shape)
    v[np.abs(z - 0.4 * y - 5) < 0.7] -= 0.3      # an inclined sheet
    v[:, shape[1] // 2 - 3, :] -= 0.25            # a sheet normal to y, near a border
    v[(x == 17) & (z > 8)] -= 0.2                 # a sheet normal to x, ending inside
    v[:, :, : shape[2] // 4] += 0.2               # brighter quarter: local contrast differs
    return v


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images split the foreground into the same components."""
    if not np.array_equal(a > 0, b > 0):
        return False
    fa, fb = a[a > 0], b[b > 0]
    pairs = np.unique(np.stack([fa, fb]), axis=1)
    # one-to-one: each label of a meets exactly one of b and vice versa
    return (len(np.unique(pairs[0])) == pairs.shape[1]
            and len(np.unique(pairs[1])) == pairs.shape[1])


def test_depth_is_largest_kernel_radius_plus_one():
    # hessian.py truncates its kernels at int(3σ + 0.5) samples
    assert sheetness_depth(SIGMAS) == int(3 * 2.0 + 0.5) + 1 == 7
    assert sheetness_depth(1.0) == 4
    assert sheetness_depth([0.5, 3.2]) == int(3 * 3.2 + 0.5) + 1


@pytest.mark.parametrize("chunks", [(16, 16, 16), (13, 20, 11), (8, 44, 48), (40, 9, 48)])
def test_chunked_sheetness_equals_whole_volume(chunks):
    vol = _cracked_volume()
    ref = sheetness(vol, SIGMAS)
    assert (ref > 0.3).sum() > 500  # the sheets are found at all
    out = sheetness_chunked(vol, SIGMAS, chunks=chunks)
    assert out.dtype == np.float32
    n_chunks = np.prod(out.numblocks)
    assert n_chunks > 1
    got = out.compute(scheduler="threads")
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_chunked_sheetness_dask_uint16_bright_and_sync_scheduler():
    vol = (_cracked_volume(seed=3) * 4000).astype(np.uint16)
    arr = da.from_array(vol, chunks=(12, 15, 17))
    for dark in (True, False):
        ref = sheetness(vol, (1.0, 2.0), dark=dark)
        with dask.config.set(scheduler="synchronous"):
            got = sheetness_chunked(arr, (1.0, 2.0), dark=dark).compute()
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    assert not np.array_equal(vol, 0)  # input untouched by the cast to float32


def test_halo_and_global_contrast_matter():
    """Without the halo or with per-chunk contrast the result differs: the test can fail."""
    vol = _cracked_volume()
    ref = sheetness(vol, SIGMAS)
    no_halo = da.from_array(vol, chunks=16).map_blocks(
        lambda b: sheetness(b, SIGMAS, contrast=global_contrast(vol)), dtype=np.float32)
    assert np.abs(no_halo.compute() - ref).max() > 0.05
    per_chunk = da.map_overlap(lambda b: sheetness(b, SIGMAS), da.from_array(vol, chunks=16),
                               depth=sheetness_depth(SIGMAS), boundary="nearest",
                               dtype=np.float32)
    assert np.abs(per_chunk.compute() - ref).max() > 0.05


def test_memory_limit_chooses_chunks_and_keeps_result():
    vol = _cracked_volume((48, 40, 40))
    limit = 6 * 2**20
    out = sheetness_chunked(vol, SIGMAS, memory_limit=limit, n_parallel=2)
    ch = tuple(c[0] for c in out.chunks)
    assert out.numblocks[0] > 1
    assert 2 * block_bytes(ch, np.float32, SHEETNESS_TEMPORARIES, sheetness_depth(SIGMAS)) <= limit
    np.testing.assert_allclose(out.compute(), sheetness(vol, SIGMAS), rtol=0, atol=1e-6)


def test_thin_chunks_are_merged_to_the_halo_width():
    vol = _cracked_volume((30, 20, 20))
    out = sheetness_chunked(vol, SIGMAS, chunks=(3, 20, 20))
    assert min(out.chunks[0]) >= sheetness_depth(SIGMAS)
    np.testing.assert_allclose(out.compute(), sheetness(vol, SIGMAS), rtol=0, atol=1e-6)


def test_constant_volume_gives_zero_and_bad_input_raises():
    out = sheetness_chunked(np.full((12, 12, 12), 7, np.uint8), SIGMAS, chunks=6).compute()
    assert out.dtype == np.float32 and not out.any()
    with pytest.raises(InputError, match="3D"):
        sheetness_chunked(np.zeros((5, 5)), SIGMAS)
    with pytest.raises(InputError, match="sigmas"):
        sheetness_chunked(np.zeros((5, 5, 5)), [1.0, -2.0])
    bad = _cracked_volume((10, 10, 10))
    bad[3, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        sheetness_chunked(bad, SIGMAS, chunks=5)


def _blobs(shape=(36, 30, 34), seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    return noise > 0.05


@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_label_chunked_matches_scipy_partition(connectivity):
    mask = _blobs()
    st = ndimage.generate_binary_structure(3, connectivity)
    ref, n_ref = ndimage.label(mask, structure=st)
    assert n_ref > 5
    labels, n = label_chunked(da.from_array(mask, chunks=(10, 11, 9)),
                              connectivity=connectivity)
    assert labels.numblocks == (4, 3, 4)
    got = labels.compute()
    assert got.dtype == np.int32
    assert n == n_ref
    assert sorted(np.unique(got)) == list(range(n_ref + 1))
    assert _same_partition(got, ref)
    # labelling each chunk alone would split components at the faces: that is detected
    split = ref.copy()
    big = np.bincount(ref.ravel())[1:].argmax() + 1
    split[(ref == big) & (np.indices(ref.shape)[2] >= 9)] = n_ref + 1
    assert not _same_partition(got, split)


def test_label_chunked_random_mask_many_chunks():
    mask = np.random.default_rng(5).random((30, 28, 26)) > 0.7
    for conn in (1, 3):
        st = ndimage.generate_binary_structure(3, conn)
        ref, n_ref = ndimage.label(mask, structure=st)
        labels, n = label_chunked(mask, chunks=(4, 5, 6), connectivity=conn)
        assert n == n_ref
        assert _same_partition(labels.compute(), ref)


def test_label_chunked_joins_across_block_corners():
    """Two voxels that meet only at a corner shared by eight blocks."""
    mask = np.zeros((8, 8, 8), bool)
    mask[3, 3, 3] = mask[4, 4, 4] = True
    for conn, expected in ((1, 2), (2, 2), (3, 1)):
        labels, n = label_chunked(mask, chunks=4, connectivity=conn)
        assert n == expected == ndimage.label(
            mask, ndimage.generate_binary_structure(3, conn))[1]
        got = labels.compute()
        assert (got[3, 3, 3] == got[4, 4, 4]) == (expected == 1)


def test_label_chunked_dask_image_method_agrees():
    pytest.importorskip("dask_image")
    mask = _blobs((20, 18, 16), seed=2)
    ref, n_ref = ndimage.label(mask)
    labels, n = label_chunked(mask, chunks=10, method="dask-image")
    assert n == n_ref
    assert _same_partition(labels.compute(), ref)


def test_label_chunked_numpy_input_and_errors():
    mask = np.zeros((20, 20, 20), bool)
    mask[2:18, 5, 5] = True  # one line through several chunks
    labels, n = label_chunked(mask, chunks=4)
    assert n == 1
    assert np.unique(labels.compute()[mask]).tolist() == [1]
    empty, n0 = label_chunked(np.zeros((6, 6, 6), bool), chunks=3)
    assert n0 == 0 and not empty.compute().any()
    with pytest.raises(InputError, match="connectivity"):
        label_chunked(mask, connectivity=4)
    with pytest.raises(InputError, match="method"):
        label_chunked(mask, method="magic")


def test_store_input_is_read_block_by_block(tmp_path):
    zarr = pytest.importorskip("zarr")
    vol = _cracked_volume()
    store = zarr.create_array(store=str(tmp_path / "v.zarr"), shape=vol.shape, dtype="f4",
                              chunks=(10, 22, 24))
    store[:] = vol
    ref = sheetness(vol, SIGMAS)
    for chunks in (None, (16, 16, 16), (3, 44, 48)):
        out = sheetness_chunked(store, SIGMAS, chunks=chunks)
        assert out.numblocks[0] > 1
        np.testing.assert_allclose(out.compute(), ref, rtol=0, atol=1e-6)
    assert np.array_equal(store[:], vol)  # the input is only read


def test_auto_variants_switch_to_chunks_over_budget():
    from dendritect.parallel import compute_context, label_auto, sheetness_auto

    vol = _cracked_volume()
    ref = sheetness(vol, SIGMAS)
    np.testing.assert_array_equal(sheetness_auto(vol, SIGMAS), ref)  # no budget: whole volume
    small = vol.size * 4 * 9 // 2  # half of what the whole-volume filter needs: chunked
    np.testing.assert_allclose(sheetness_auto(vol, SIGMAS, memory_limit=small), ref,
                               rtol=0, atol=1e-6)
    mask = _blobs(vol.shape)
    st_ref, n_ref = ndimage.label(mask)
    with compute_context(memory_limit=small) as ctx:
        assert ctx.device == "cpu"
        np.testing.assert_allclose(sheetness_auto(vol, SIGMAS), ref, rtol=0, atol=1e-6)
        lab, n = label_auto(mask, memory_limit=mask.size * 4)  # under the 12 B/voxel needed
    assert n == n_ref and _same_partition(lab, st_ref)
    lab, n = label_auto(mask, memory_limit="1GB")
    assert n == n_ref and np.array_equal(lab, st_ref)
