"""Track cracks across time steps: the same crack keeps the same id.

:mod:`~dendritect.track.link` works on whole-step arrays; :mod:`~dendritect.track.sparse` gives
the same results from the crack voxels' flat indices, in memory O(crack voxels).
"""

from dendritect.track.link import time_of_arrival, track_cracks
from dendritect.track.sparse import (
    arrival_voxels,
    check_voxels,
    label_voxels,
    mask_voxels,
    track_voxels,
    write_voxels,
)

__all__ = [
    "arrival_voxels",
    "check_voxels",
    "label_voxels",
    "mask_voxels",
    "time_of_arrival",
    "track_cracks",
    "track_voxels",
    "write_voxels",
]
