"""Triangle mesh of the cracks, coloured by arrival step, for the interactive 3D view."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.measure import block_reduce, marching_cubes

from dendritect.report.results import iter_slabs

__all__ = ["CrackMesh", "crack_mesh", "downsample_arrival"]


@dataclass(frozen=True)
class CrackMesh:
    """A surface mesh in micrometres, (z, y, x) vertex order.

    Attributes
    ----------
    verts_um : ndarray, float32 (n, 3)
    faces : ndarray, int32 (m, 3)
    arrival : ndarray, float32 (n,)
        Step in which the crack voxel under each vertex first appeared.
    factor : int
        Downsampling factor used along every axis.
    """

    verts_um: np.ndarray
    faces: np.ndarray
    arrival: np.ndarray
    factor: int

    @property
    def n_triangles(self) -> int:
        return len(self.faces)


def downsample_arrival(time_of_arrival: Any, factor: int) -> np.ndarray:
    """Coarsen a time-of-arrival volume by ``factor``: a block is crack if any voxel is,
    and arrives with its earliest voxel (-1 where none), so thin cracks are never lost.

    ``time_of_arrival`` may be a zarr array larger than memory: it is read in z-slabs.
    """
    if factor <= 1:
        return np.asarray(time_of_arrival[...]).astype(np.int16, copy=True)
    big = np.iinfo(np.int16).max
    parts = []
    for z0, z1 in iter_slabs(time_of_arrival.shape, multiple=factor):
        slab = np.asarray(time_of_arrival[z0:z1])
        t = np.where(slab < 0, big, slab).astype(np.int16)
        parts.append(block_reduce(t, block_size=(factor,) * 3, func=np.min, cval=big))
    out = np.concatenate(parts, axis=0)
    return np.where(out == big, -1, out).astype(np.int16)


def _mesh_at(toa: np.ndarray, factor: int, spacing: np.ndarray) -> CrackMesh | None:
    small = downsample_arrival(toa, factor)
    mask = small >= 0
    if not mask.any():
        return None
    # Pad so surfaces touching the volume's edge close.
    padded = np.pad(mask, 1).astype(np.float32)
    verts, faces, _, _ = marching_cubes(padded, level=0.5, spacing=tuple(spacing * factor),
                                        allow_degenerate=False)
    verts = verts - spacing * factor  # undo the padding offset
    # Colour each vertex by when the crack first reached its neighbourhood (the earliest step
    # within one voxel), so later widening of a crack does not speckle its surface; vertices
    # lie between voxels, so look that up at the nearest crack voxel.
    big = np.iinfo(np.int16).max
    earliest = ndimage.minimum_filter(np.where(mask, small, big), size=3, mode="nearest")
    earliest = np.where(mask, np.minimum(earliest, small), -1)
    _, idx = ndimage.distance_transform_edt(~mask, return_indices=True)
    nearest = earliest[tuple(idx)]
    vox = np.clip(np.rint(verts / (spacing * factor)).astype(np.int64), 0,
                  np.array(small.shape) - 1)
    arrival = nearest[vox[:, 0], vox[:, 1], vox[:, 2]].astype(np.float32)
    # Voxel centres sit at (i + 0.5) * size in micrometres.
    verts_um = (verts + 0.5 * spacing * factor).astype(np.float32)
    return CrackMesh(verts_um, faces.astype(np.int32), arrival, factor)


def crack_mesh(time_of_arrival: Any, voxel_size_um: Sequence[float], *,
               max_triangles: int = 40_000, max_voxels: int = 4_000_000) -> CrackMesh | None:
    """Mesh the cracks of a time-of-arrival volume with marching cubes.

    The volume is first coarsened so it holds at most ``max_voxels`` voxels; when the mesh still
    has more than ``max_triangles`` triangles, the grid is coarsened further (triangle count
    falls with the square of the factor) until it fits.

    Parameters
    ----------
    time_of_arrival : array-like (z, y, x) int
        First step each voxel is crack, -1 never; a zarr array is read in z-slabs.
    voxel_size_um : sequence of 3 floats
        ``(dz, dy, dx)``.
    max_triangles, max_voxels : int
        Budgets for the browser view.

    Returns
    -------
    CrackMesh or None
        None when there is no crack voxel.
    """
    toa = time_of_arrival if hasattr(time_of_arrival, "shape") else np.asarray(time_of_arrival)
    if len(toa.shape) != 3:
        raise ValueError(f"time_of_arrival must be 3D (z,y,x), got shape {toa.shape}")
    spacing = np.asarray(voxel_size_um, dtype=np.float64)
    factor = max(1, math.ceil((math.prod(toa.shape) / max_voxels) ** (1 / 3)))
    for _ in range(8):
        mesh = _mesh_at(toa, factor, spacing)
        if mesh is None or mesh.n_triangles <= max_triangles:
            return mesh
        factor = max(factor + 1, math.ceil(factor * math.sqrt(mesh.n_triangles / max_triangles)))
    return mesh
