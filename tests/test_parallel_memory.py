"""Memory budgets: parsing, and chunk sizes whose peak follows the chunk, not the volume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dendritect.errors import InputError
from dendritect.parallel.memory import (
    SHEETNESS_TEMPORARIES,
    block_bytes,
    chunks_for_memory,
    parse_memory_limit,
    peak_rss_bytes,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("4GB", 4_000_000_000), ("4 GB", 4_000_000_000), ("512MiB", 512 * 2**20),
    ("1.5GiB", int(1.5 * 2**30)), ("3e9", 3_000_000_000), (2**20, 2**20), (None, None),
])
def test_parse_memory_limit(text, expected):
    assert parse_memory_limit(text) == expected


@pytest.mark.parametrize("bad", ["four GB", "", "-1GB", "0", 0, float("nan"), True, "3 parsecs"])
def test_parse_memory_limit_rejects_nonsense(bad):
    with pytest.raises(InputError, match="--memory-limit"):
        parse_memory_limit(bad)


def test_block_bytes_counts_the_halo():
    assert block_bytes((10, 10, 10), np.float32, 1) == 4000
    assert block_bytes((10, 10, 10), np.float32, 2, depth=1) == 12**3 * 4 * 2
    assert block_bytes((4, 5), np.uint8, 3) == 60


@pytest.mark.parametrize("shape", [(512, 1024, 1024), (2048, 2048, 2048), (100, 300, 200),
                                   (37, 41, 43)])
@pytest.mark.parametrize("limit", [64 * 2**20, 512 * 2**20, 3 * 10**9])
@pytest.mark.parametrize("n_parallel", [1, 2, 16])
def test_chunks_fit_the_budget(shape, limit, n_parallel):
    depth = 7
    try:
        ch = chunks_for_memory(shape, np.float32, limit, SHEETNESS_TEMPORARIES, depth=depth,
                               n_parallel=n_parallel)
    except InputError as exc:  # only when even a minimal block does not fit
        minimal = block_bytes((depth,) * 3, np.float32, SHEETNESS_TEMPORARIES, depth)
        assert minimal * n_parallel > limit, exc
        return
    assert len(ch) == 3
    assert all(1 <= c <= s for c, s in zip(ch, shape, strict=True))
    # never thinner than the halo, unless the axis itself is
    assert all(c >= min(depth, s) for c, s in zip(ch, shape, strict=True))
    assert n_parallel * block_bytes(ch, np.float32, SHEETNESS_TEMPORARIES, depth) <= limit


def test_z_slabs_when_they_fit_blocks_otherwise():
    shape = (512, 1024, 1024)
    slab = chunks_for_memory(shape, np.float32, 3 * 10**9, 9, depth=7, n_parallel=2)
    assert slab[1:] == (1024, 1024) and 7 <= slab[0] < 512
    pieces = -(-512 // slab[0])
    assert pieces * slab[0] - 512 < pieces  # near-equal pieces, no thin trailing chunk
    blocks = chunks_for_memory(shape, np.float32, 200 * 2**20, 9, depth=7, n_parallel=2)
    assert blocks[1] < 1024 or blocks[2] < 1024


def test_peak_follows_chunk_not_volume():
    """Same budget, volumes 1x and 64x larger: the per-block peak stays under the budget."""
    limit = 256 * 2**20
    small = chunks_for_memory((256, 256, 256), np.float32, limit, 9, depth=7)
    large = chunks_for_memory((1024, 1024, 1024), np.float32, limit, 9, depth=7)
    b_small = block_bytes(small, np.float32, 9, 7)
    b_large = block_bytes(large, np.float32, 9, 7)
    assert b_large <= limit and b_small <= limit
    assert b_large < 2 * b_small  # not 64x


def test_budget_too_small_and_bad_arguments():
    with pytest.raises(InputError, match="too small"):
        chunks_for_memory((512, 512, 512), np.float32, 100_000, 9, depth=7)
    with pytest.raises(InputError, match="positive"):
        chunks_for_memory((10, 10, 10), np.float32, 0, 9)
    with pytest.raises(InputError, match="empty"):
        chunks_for_memory((0, 10, 10), np.float32, 10**6, 9)


def test_peak_rss_grows_with_an_allocation():
    before = peak_rss_bytes()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    after = peak_rss_bytes()
    assert block.sum() > 0
    assert after >= before
    assert after > 32 * 2**20  # an interpreter with numpy and this block


def test_plan_one_rule_for_what_fits():
    from dendritect.parallel.memory import (
        PROCESS_RESERVE_BYTES,
        STAGE_BYTES_PER_VOXEL,
        Plan,
        work_bytes,
    )

    shape = (64, 256, 256)
    n = 64 * 256 * 256
    unlimited = Plan(shape, np.uint16)
    assert unlimited.work_bytes is None and unlimited.fits(10**6)
    assert unlimited.hold_steps and unlimited.register_ahead
    assert unlimited.slabs(80, halo=8) == [(0, 64)]
    # the work budget is the limit less the reserve, at least a quarter of it
    assert Plan(shape, memory_limit_bytes="3GB").work_bytes == 3 * 10**9 - PROCESS_RESERVE_BYTES
    assert work_bytes(20 * 10**6) == 5 * 10**6
    c = STAGE_BYTES_PER_VOXEL
    hold = (c["hold"] + c["segment"]) * n
    just = Plan(shape, memory_limit_bytes=hold + PROCESS_RESERVE_BYTES)
    assert just.hold_steps and not just.register_ahead
    assert not Plan(shape, memory_limit_bytes=hold + PROCESS_RESERVE_BYTES - 1).hold_steps
    assert just.fits((40, 40), voxels=10) and not Plan(shape, memory_limit_bytes=4000).fits(
        (500, 501), voxels=1)


@pytest.mark.parametrize("limit", [50 * 2**20, 600 * 2**20, 2 * 10**9])
@pytest.mark.parametrize("halo", [0, 8])
def test_plan_slabs_cover_fit_and_are_never_thinner_than_the_halo(limit, halo):
    from dendritect.parallel.memory import Plan

    plan = Plan((300, 512, 512), np.uint16, limit, workers=2)
    slabs = plan.slabs(80, halo=halo)
    assert slabs[0][0] == 0 and slabs[-1][1] == 300
    assert all(a1 == b0 for (_, a1), (b0, _) in itertools.pairwise(slabs))
    core = max(b - a for a, b in slabs)
    assert core >= min(300, max(halo, 1))
    n_par = plan.slab_parallelism(80, halo=halo)
    assert 1 <= n_par <= 2
    if core > max(halo, 1):  # thicker than the floor: the budget holds them
        assert n_par * (core + 2 * halo) * 512 * 512 * 80 <= plan.work_bytes


def test_plan_from_context_and_bad_input():
    from dendritect.parallel.cluster import compute_context, current_context
    from dendritect.parallel.memory import Plan

    with compute_context(memory_limit="1GB"):
        plan = Plan.from_context((10, 20, 30), "uint16", current_context())
    assert plan.memory_limit_bytes == 10**9 and plan.device == "cpu"
    assert plan.dtype == np.uint16 and plan.voxels == 6000
    assert Plan.from_context((10, 20, 30), "uint16", None).memory_limit_bytes is None
    with pytest.raises(InputError, match="3D"):
        Plan((10, 20))
    with pytest.raises(InputError, match="workers"):
        Plan((10, 20, 30), workers=0)
    with pytest.raises(InputError, match="memory limit"):
        Plan((10, 20, 30), memory_limit_bytes="lots")


def test_freed_memory_goes_back_to_the_system():
    import sys

    from dendritect.parallel.memory import keep_allocations_returnable, release_memory

    applied = keep_allocations_returnable()
    assert applied == sys.platform.startswith("linux")  # glibc on the Linux test machines
    if not applied:
        return
    import psutil

    proc = psutil.Process()
    before = proc.memory_info().rss
    blocks = [np.ones(2**20, np.float64) for _ in range(32)]  # 32 blocks of 8 MiB
    held = proc.memory_info().rss
    del blocks
    release_memory()
    assert held - before >= 200 * 2**20
    assert proc.memory_info().rss - before < 64 * 2**20


def test_collections_inside_the_block_skip_older_objects_and_still_free_cycles():
    """Objects alive before the block are exempt from its collections (frozen), garbage made
    inside it is still collected, and leaving the block gives the old objects back."""
    import gc
    import weakref

    from dendritect.parallel.memory import collections_of_new_objects

    class Node:
        pass

    old = [Node() for _ in range(1000)]
    with collections_of_new_objects():
        assert gc.get_freeze_count() >= len(old)
        a, b = Node(), Node()
        a.other, b.other = b, a                 # a reference cycle: only gc frees it
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    assert gc.get_freeze_count() == 0
    del old
