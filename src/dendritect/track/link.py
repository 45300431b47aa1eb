"""Link crack components across time steps by voxel overlap.

Cracks in an operando series appear, grow, branch and merge, and almost never move: a crack
voxel at step ``t`` overlaps the same crack at step ``t - 1``. Linking by overlap is therefore
enough, and it streams: only the last known label of every voxel is kept in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy import ndimage as ndi

from dendritect.errors import InputError

__all__ = ["link_ids", "time_of_arrival", "track_cracks"]

# 26-connectivity: a crack one voxel thick running diagonally is still one crack.
_STRUCTURE = np.ones((3, 3, 3), dtype=bool)


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    structure = _STRUCTURE if mask.ndim == 3 else np.ones((3,) * mask.ndim, dtype=bool)
    cc, n = ndi.label(mask, structure=structure)
    return cc.astype(np.int32, copy=False), int(n)


def link_ids(n: int, comp: np.ndarray, old: np.ndarray, next_id: int, *,
             min_overlap_vox: int = 1) -> tuple[np.ndarray, int]:
    """Decide the tracked id of each of a step's ``n`` components from their overlaps.

    Parameters
    ----------
    n : int
        Number of components of the step (numbered 1..n in raster order of their first voxel).
    comp, old : ndarray of int
        For every voxel that is crack now and was crack before (aligned): its component now
        and its last known tracked id.
    next_id : int
        First id not given yet.
    min_overlap_vox : int
        Voxels a component must share with an old crack to inherit its id.

    Returns
    -------
    lut : ndarray of int32, shape (n + 1,)
        Tracked id of every component (``lut[0] == 0``).
    next_id : int
        First id not given yet, after this step's new cracks.
    """
    lut = np.zeros(n + 1, dtype=np.int32)
    if not n:
        return lut, next_id
    parent = np.zeros(n + 1, dtype=np.int64)
    if comp.size:
        pairs = np.stack([np.asarray(comp, dtype=np.int64), np.asarray(old, dtype=np.int64)])
        uniq, counts = np.unique(pairs, axis=1, return_counts=True)
        keep = counts >= int(min_overlap_vox)
        big = np.iinfo(np.int64).max
        parent[:] = big
        # The oldest (smallest) id among the cracks a component overlaps: merges keep it.
        np.minimum.at(parent, uniq[0, keep], uniq[1, keep])
        parent[parent == big] = 0
    lut[1:] = parent[1:]
    # New cracks numbered in raster order of their components: deterministic ids.
    new = np.flatnonzero(parent[1:] == 0) + 1
    lut[new] = np.arange(next_id, next_id + new.size, dtype=np.int32)
    return lut, next_id + int(new.size)


def track_cracks(crack_masks: Iterable[np.ndarray], *,
                 min_overlap_vox: int = 1) -> Iterator[np.ndarray]:
    """Give every crack an id that stays the same from step to step.

    Parameters
    ----------
    crack_masks : iterable of ndarray
        One crack mask per time step (any shape, all the same; nonzero = crack), in the frame of
        step 0. Read lazily: a generator of steps is fine.
    min_overlap_vox : int
        Voxels a component must share with a crack seen before to inherit its id.

    Yields
    ------
    ndarray of int32
        Labels of the step (0 = no crack). A component that overlaps cracks seen before takes the
        smallest (oldest) of their ids, so a merge keeps the oldest id and every branch of a crack
        keeps its parent's id. A crack that stalls, or partly closes for a step and opens again,
        keeps its id, because the last label of every voxel ever seen is remembered. A component
        that overlaps nothing known gets a new id (ids grow in order of appearance).

    Notes
    -----
    Memory: the current step plus one int32 volume of last-known labels.
    """
    if int(min_overlap_vox) < 1:
        raise InputError(f"min_overlap_vox must be at least 1, got {min_overlap_vox!r}")
    memory: np.ndarray | None = None
    next_id = 1
    for t, mask in enumerate(crack_masks):
        mask = np.asarray(mask)
        if memory is None:
            memory = np.zeros(mask.shape, dtype=np.int32)
        elif mask.shape != memory.shape:
            raise InputError(
                f"crack mask of step {t} has shape {mask.shape}, expected {memory.shape}")
        cc, n = _components(mask != 0)
        both = (cc > 0) & (memory > 0)
        lut, next_id = link_ids(n, cc[both], memory[both], next_id,
                                min_overlap_vox=min_overlap_vox)
        labels = lut[cc]
        np.copyto(memory, labels, where=labels > 0)
        yield labels


def time_of_arrival(crack_masks: Iterable[np.ndarray]) -> np.ndarray:
    """First step at which each voxel is crack.

    Parameters
    ----------
    crack_masks : iterable of ndarray
        One crack mask per step (nonzero = crack), streamed.

    Returns
    -------
    ndarray of int16
        Index of the first step where the voxel is crack; -1 where it never is.
    """
    toa: np.ndarray | None = None
    for t, mask in enumerate(crack_masks):
        mask = np.asarray(mask)
        if toa is None:
            toa = np.full(mask.shape, -1, dtype=np.int16)
        elif mask.shape != toa.shape:
            raise InputError(
                f"crack mask of step {t} has shape {mask.shape}, expected {toa.shape}")
        if t > np.iinfo(np.int16).max:
            raise InputError(f"more than {np.iinfo(np.int16).max + 1} steps do not fit int16")
        toa[(mask != 0) & (toa < 0)] = t
    if toa is None:
        raise InputError("time_of_arrival: no crack masks given")
    return toa
