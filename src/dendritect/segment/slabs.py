"""z-slabs of one step: the segmentation's passes, chunk by chunk, with a halo.

A step too large for memory is segmented slab by slab: each slab of whole (y, x) planes is
read with a halo of neighbouring planes large enough for every local operation of a pass
(filters, openings, dilations), the pass is run on it and only the slab's own planes are
kept. At the ends of the volume the halo is simply cut, so the operations see the same edge
as on the whole volume and the result is the same. Steps that fit the memory budget are one
slab held in memory; larger ones keep their intermediate volumes in Zarr scratch arrays on
disk (uint8/uint16 flags and int32 labels), and peak memory follows the slab size.

The global decisions of the segmentation (which dark blob is a pore, which weak voxels join a
seeded crack, which component is flat enough) need connected components across slabs:
:func:`label` joins the slabs' labels (:func:`dendritect.parallel.label_chunked`; with z-slabs
its numbering equals :func:`scipy.ndimage.label`'s), and :func:`shape_moments` adds each
component's coordinate moments over the slabs, in two passes (means, then centred products)
as :func:`~dendritect.segment.cracks.component_shapes` does on a whole volume.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dask
import numpy as np
from scipy import ndimage

__all__ = ["Slabs", "plan_slabs", "slab_budget", "slab_parallelism"]

from dendritect.parallel.memory import (
    PROCESS_RESERVE_BYTES,
    STAGE_BYTES_PER_VOXEL,
    parallel_slabs,
    plan_z_slabs,
    work_bytes,
)

# Bytes per voxel of a slab (halo included) that the segmentation's first pass holds at once
# (the one table of stage costs: :data:`dendritect.parallel.memory.STAGE_BYTES_PER_VOXEL`).
SEGMENT_BYTES_PER_VOXEL = STAGE_BYTES_PER_VOXEL["segment"]

__all__ += ["PROCESS_RESERVE_BYTES", "SEGMENT_BYTES_PER_VOXEL"]


def slab_budget(memory_limit_bytes: int | None) -> int | None:
    """The part of a memory limit that slabs may use
    (:func:`dendritect.parallel.memory.work_bytes`)."""
    return work_bytes(memory_limit_bytes)


def plan_slabs(nz: int, plane_voxels: int, halo: int, memory_limit_bytes: int | None,
               n_parallel: int = 1) -> list[tuple[int, int]]:
    """Cut ``nz`` planes into slabs whose segmentation working set, halo included, fits
    ``memory_limit_bytes`` (already less the process's reserve: :func:`slab_budget`).

    :func:`dendritect.parallel.memory.plan_z_slabs` at :data:`SEGMENT_BYTES_PER_VOXEL`;
    one slab when ``memory_limit_bytes`` is None.
    """
    return plan_z_slabs(nz, plane_voxels, halo, memory_limit_bytes, SEGMENT_BYTES_PER_VOXEL,
                        n_parallel)


def slab_parallelism(plane_voxels: int, halo: int, memory_limit_bytes: int | None,
                     n_parallel: int) -> int:
    """Slabs to run at once (:func:`dendritect.parallel.memory.parallel_slabs` at
    :data:`SEGMENT_BYTES_PER_VOXEL`)."""
    return parallel_slabs(plane_voxels, halo, memory_limit_bytes, SEGMENT_BYTES_PER_VOXEL,
                          n_parallel)


class Slabs:
    """The z-slabs of a box and the scratch volumes of one step's segmentation.

    Parameters
    ----------
    shape : tuple of int
        ``(nz, ny, nx)`` of the box being segmented.
    slabs : sequence of (int, int)
        From :func:`plan_slabs`. One slab: scratch volumes are NumPy arrays in memory.
    scratch : path, optional
        Folder for the scratch Zarr arrays (default: a temporary folder, removed by
        :meth:`close`).
    """

    def __init__(self, shape: Sequence[int], slabs: Sequence[tuple[int, int]],
                 scratch: str | Path | None = None, n_parallel: int | None = None) -> None:
        self.n_parallel = n_parallel
        self.shape = tuple(int(s) for s in shape)
        self.slabs = [(int(a), int(b)) for a, b in slabs]
        self.in_memory = len(self.slabs) == 1
        self._own = False
        self.folder: Path | None = None
        if not self.in_memory:
            if scratch is None:
                self.folder = Path(tempfile.mkdtemp(prefix="dendritect-segment-"))
                self._own = True
            else:
                self.folder = Path(scratch)
                self.folder.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Remove the scratch arrays."""
        if self.folder is not None:
            if self._own:
                shutil.rmtree(self.folder, ignore_errors=True)
            else:
                for p in self.folder.glob("*.zarr"):
                    shutil.rmtree(p, ignore_errors=True)

    def __enter__(self) -> Slabs:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def new(self, name: str, dtype: Any) -> Any:
        """A zero-filled scratch volume of the box's shape (chunked by slab on disk)."""
        if self.in_memory:
            return np.zeros(self.shape, dtype=dtype)
        import zarr

        core = max(b - a for a, b in self.slabs)
        return zarr.create_array(store=str(self.folder / f"{name}.zarr"), shape=self.shape,
                                 dtype=dtype, chunks=(core, *self.shape[1:]), fill_value=0,
                                 overwrite=True)

    def run(self, fn: Callable[[int, int, int, int], Any], halo: int) -> list[Any]:
        """Call ``fn(lo, hi, z0, z1)`` for every slab ``z0..z1`` with its halo ``lo..hi``.

        ``fn`` reads planes ``lo..hi``, writes its result for planes ``z0..z1`` and returns
        something small. Slabs run as dask tasks on the active scheduler (one slab: directly).
        """
        nz = self.shape[0]
        calls = [(max(0, a - halo), min(nz, b + halo), a, b) for a, b in self.slabs]
        if len(calls) == 1:
            return [fn(*calls[0])]
        tasks = [dask.delayed(fn, pure=False)(*c) for c in calls]
        if self.n_parallel is None:
            return list(dask.compute(*tasks))
        # at most n_parallel slabs at once on the local schedulers (a cluster's workers
        # have their own memory limits)
        return list(dask.compute(*tasks, num_workers=int(self.n_parallel)))

    def label(self, mask: Any, name: str, *, connectivity: int,
              bit: int | None = None) -> tuple[Any, int]:
        """Connected components of a scratch mask (nonzero, or with ``bit`` set): int32
        labels (a scratch volume) and their count."""
        structure = ndimage.generate_binary_structure(3, connectivity)
        if self.in_memory:
            m = np.asarray(mask)
            m = (m & bit) != 0 if bit is not None else m != 0
            lab, n = ndimage.label(m, structure=structure)
            return lab.astype(np.int32, copy=False), int(n)
        import dask.array as da

        from dendritect.parallel.chunked import label_chunked

        src = da.from_zarr(mask)
        src = (src & bit) != 0 if bit is not None else src != 0
        lab, n = label_chunked(src, connectivity=connectivity)
        out = self.new(name, np.int32)
        da.store(lab, out, lock=False)
        return out, int(n)

    def shape_moments(self, labels: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Voxel count and coordinate covariance of every component of ``labels``.

        Returns
        -------
        size : numpy.ndarray
            float64 voxels per component, indexed by label - 1.
        cov : numpy.ndarray
            ``(n, 3, 3)`` covariance of the voxel coordinates: the centred second moments
            divided by the count (summed in the order
            :func:`~dendritect.segment.cracks.component_shapes` uses on one slab).
        """
        size = np.zeros(n)
        sums = np.zeros((3, n))
        cov = np.zeros((n, 3, 3))
        if n == 0:
            return size, cov

        def _coords(lo: int, hi: int) -> tuple[np.ndarray, list[np.ndarray]]:
            block = np.asarray(labels[lo:hi])
            idx = np.flatnonzero(block)
            lab = block.ravel()[idx].astype(np.int64) - 1
            zyx = list(np.unravel_index(idx, block.shape))
            zyx[0] = zyx[0] + lo
            return lab, zyx

        def _first(lo: int, hi: int, z0: int, z1: int) -> tuple[np.ndarray, np.ndarray]:
            lab, zyx = _coords(z0, z1)
            return (np.bincount(lab, minlength=n).astype(np.float64),
                    np.stack([np.bincount(lab, weights=c, minlength=n) for c in zyx]))

        for s, m in self.run(_first, 0):
            size += s
            sums += m
        mean = sums / np.maximum(size, 1)

        def _second(lo: int, hi: int, z0: int, z1: int) -> np.ndarray:
            lab, zyx = _coords(z0, z1)
            cen = [c - mean[i][lab] for i, c in enumerate(zyx)]
            out = np.zeros((3, 3, n))
            for i in range(3):
                for j in range(i, 3):
                    out[i, j] = np.bincount(lab, weights=cen[i] * cen[j], minlength=n)
            return out

        acc = np.zeros((3, 3, n))
        for part in self.run(_second, 0):
            acc += part
        for i in range(3):
            for j in range(i, 3):
                s = acc[i, j] / np.maximum(size, 1)
                cov[:, i, j] = s
                cov[:, j, i] = s
        return size, cov

    def labels_where(self, labels: Any, n: int, mask: Any | None = None,
                     value: int | None = None) -> np.ndarray:
        """bool per label (index 0 = background): the component has a voxel where ``mask``
        is nonzero (or equals ``value``). Without ``mask``: every label present.
        """
        hit = self.labels_count(labels, n, mask, value) > 0
        hit[0] = False
        return hit

    def labels_count(self, labels: Any, n: int, mask: Any | None = None,
                     value: int | None = None) -> np.ndarray:
        """Voxels per label (index 0 = background, counted as 0) where ``mask`` is nonzero
        (or equals ``value``); without ``mask``, every voxel of each label."""
        def _count(lo: int, hi: int, z0: int, z1: int) -> np.ndarray:
            lab = np.asarray(labels[z0:z1])
            # the labelled voxels are few: counting them alone spares an int64 copy of the
            # whole slab (bincount's input) and a count of its background
            if mask is None:
                sel = lab[lab != 0]
            else:
                m = np.asarray(mask[z0:z1])
                sel = lab[m == value] if value is not None else lab[m != 0]
                sel = sel[sel != 0]
            return np.bincount(sel, minlength=n + 1)[: n + 1]

        count = np.zeros(n + 1, np.int64)
        for part in self.run(_count, 0):
            count += part
        count[0] = 0
        return count
