"""The report's view of a results folder: :func:`load_results` and :class:`Results`, from
:mod:`dendritect.results` (which owns the layout), and the z-slabs volumes are streamed in."""

from __future__ import annotations

from collections.abc import Iterator

from dendritect import results as R
from dendritect.results import Results, load_results

__all__ = ["SLAB_VOXELS", "Results", "iter_slabs", "load_results"]

#: Voxels the report's figures and mesh read at once (about 64 MB of int16); a test lowers it
#: to check that the slab size does not change what they show.
SLAB_VOXELS = R.SLAB_VOXELS


def iter_slabs(shape_zyx: tuple[int, ...], *, multiple: int = 1) -> Iterator[tuple[int, int]]:
    """``(z0, z1)`` ranges of z-slabs of about :data:`SLAB_VOXELS` voxels (a multiple of
    ``multiple`` planes), so a volume larger than memory is read piece by piece."""
    return R.iter_slabs(shape_zyx, multiple=multiple, voxels=SLAB_VOXELS)
