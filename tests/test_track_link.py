"""Tracking: ids kept across steps, merges keep the oldest id, branches the parent's."""

from __future__ import annotations

import numpy as np
import pytest

from dendritect.errors import InputError
from dendritect.track import time_of_arrival, track_cracks

SHAPE = (8, 16, 16)


def _box(z0, z1, y0, y1, x0, x1):
    m = np.zeros(SHAPE, np.uint8)
    m[z0:z1, y0:y1, x0:x1] = 1
    return m


def test_ids_persist_and_new_cracks_get_new_ids():
    a = _box(0, 2, 2, 4, 2, 4)
    b = _box(0, 2, 10, 12, 10, 12)
    steps = [a, a | _box(0, 4, 2, 4, 2, 4) | b, a | b | _box(5, 6, 0, 2, 14, 16)]
    labels = list(track_cracks(steps))
    assert labels[0].dtype == np.int32
    assert set(np.unique(labels[0])) == {0, 1}
    assert labels[1][1, 3, 3] == 1 and labels[1][3, 3, 3] == 1  # grown crack keeps id 1
    assert labels[1][0, 10, 10] == 2                             # appeared at step 1
    assert labels[2][0, 10, 10] == 2 and labels[2][0, 2, 2] == 1
    assert labels[2][5, 0, 15] == 3


def test_merge_keeps_oldest_id():
    a = _box(0, 2, 2, 4, 2, 4)
    b = _box(0, 2, 2, 4, 10, 12)
    bridge = _box(0, 1, 2, 4, 2, 12)
    labels = list(track_cracks([a, a | b, a | b | bridge]))
    assert labels[1][0, 2, 10] == 2
    merged = labels[2]
    assert set(np.unique(merged[merged > 0])) == {1}


def test_branches_keep_parent_id_and_closed_cracks_reopen_with_id():
    whole = _box(2, 3, 4, 6, 2, 14)
    split = whole.copy()
    split[:, :, 7:9] = 0  # the middle closes: two branches of crack 1
    other = _box(6, 7, 12, 14, 12, 14)
    steps = [whole | other, split | other, np.zeros(SHAPE, np.uint8) | other, whole | other]
    labels = list(track_cracks(steps))
    assert labels[1][2, 4, 2] == 1 and labels[1][2, 4, 13] == 1
    assert not (labels[2] == 1).any()
    assert (labels[3][whole > 0] == 1).all()  # reopened: same id, not a new one
    assert labels[3].max() == 2


def test_min_overlap():
    a = _box(0, 2, 2, 4, 2, 4)        # 8 voxels
    b = _box(1, 2, 3, 4, 3, 8)        # overlaps a in 1 voxel
    assert list(track_cracks([a, b], min_overlap_vox=1))[1].max() == 1
    assert list(track_cracks([a, b], min_overlap_vox=2))[1].max() == 2
    with pytest.raises(InputError):
        list(track_cracks([a], min_overlap_vox=0))


def test_streaming_generator_and_shape_check():
    def gen():
        yield _box(0, 1, 0, 1, 0, 1)
        yield np.zeros((2, 2, 2), np.uint8)

    it = track_cracks(gen())
    next(it)
    with pytest.raises(InputError, match="shape"):
        next(it)


def test_time_of_arrival():
    a = _box(0, 1, 0, 2, 0, 2)
    b = _box(0, 3, 0, 2, 0, 2)
    toa = time_of_arrival(iter([np.zeros(SHAPE, np.uint8), a, b, a]))
    assert toa.dtype == np.int16
    assert toa[0, 0, 0] == 1
    assert toa[2, 1, 1] == 2
    assert toa[5, 5, 5] == -1
    assert (toa >= 0).sum() == b.sum()
