"""Measure cracks: per-crack and per-step tables in micrometres.

:func:`measure_cracks` and :func:`measure_step` take whole-step arrays;
:func:`measure_cracks_voxels` and :func:`measure_step_voxels` give the same tables from the
crack voxels' flat indices. :func:`crack_fraction` gives the per-voxel crack fraction from the
grey-level deficit that the ``fraction`` argument of all four takes (volume and mean aperture
of sub-voxel cracks).
"""

from dendritect.measure.cracks import (
    CRACK_COLUMNS,
    STEP_COLUMNS,
    CrackHistory,
    measure_cracks,
    measure_step,
    root_tracks,
)
from dendritect.measure.deficit import aperture_from_volume, crack_fraction
from dendritect.measure.sparse import measure_cracks_voxels, measure_step_voxels

__all__ = [
    "CRACK_COLUMNS",
    "STEP_COLUMNS",
    "CrackHistory",
    "aperture_from_volume",
    "crack_fraction",
    "measure_cracks",
    "measure_cracks_voxels",
    "measure_step",
    "measure_step_voxels",
    "root_tracks",
]
