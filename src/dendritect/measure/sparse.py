"""Crack measurements from the cracks' voxels (flat indices), without whole-step arrays.

The same numbers as :func:`dendritect.measure.measure_cracks` and
:func:`dendritect.measure.measure_step`: each crack's bounding-box sub-volume is rebuilt from its
own voxels only (what :func:`scipy.ndimage.find_objects` would cut from the dense labels) and
measured by the same per-crack code. Memory: the step's crack voxels plus the largest crack's
bounding box.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dendritect.errors import InputError
from dendritect.measure.cracks import (
    CRACK_COLUMNS,
    SPAN_TOLERANCE_VOX,
    StepFrame,
    crack_row,
    link_chains,
    spacing_um,
    step_metrics,
)
from dendritect.track.sparse import check_voxels, label_voxels, shape_zyx_of

__all__ = ["measure_cracks_voxels", "measure_step_voxels"]


def _aligned(values: Any, flat: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != flat.shape:
        raise InputError(f"{name} of shape {arr.shape} is not aligned with {flat.size} crack "
                         "voxels")
    return arr


def measure_cracks_voxels(flat: Any, labels: Any, shape: Any, geometry: Any,
                          voxel_size_um: Any, *, lithium: Any = None, fraction: Any = None,
                          time_s: float = 0.0, t_index: int = 0,
                          span_tolerance_vox: float = SPAN_TOLERANCE_VOX) -> pd.DataFrame:
    """Measure every labelled crack of one step, given by its voxels.

    Parameters
    ----------
    flat : array_like of int
        Sorted unique C-order flat indices of the step's crack voxels.
    labels : array_like of int
        Crack id of each voxel of ``flat`` (e.g. from
        :func:`dendritect.track.track_voxels`); voxels labelled 0 are ignored.
    shape : (z, y, x)
        Shape of the step.
    geometry : CellGeometry
        Cell geometry of step 0 (interfaces, electrode footprint, ``depth_vox``).
    voxel_size_um : float or (dz, dy, dx)
        Voxel size in micrometres.
    lithium : array_like of bool, optional
        Aligned with ``flat``: nonzero where the crack voxel holds lithium; gives
        ``li_front_depth_um`` (NaN without it).
    fraction : array_like of float, optional
        Aligned with ``flat``: the crack fraction of each crack voxel
        (:func:`dendritect.measure.deficit.crack_fraction_voxels`); gives ``volume_um3`` and
        ``aperture_mean_um`` from the grey-level deficit.
    time_s, t_index : float, int
        Written into every row.
    span_tolerance_vox : float
        How close (voxels) a crack's faces must come to an interface to touch it.

    Returns
    -------
    pandas.DataFrame
        Equal to :func:`dendritect.measure.measure_cracks` on the dense labels (columns
        :data:`~dendritect.measure.CRACK_COLUMNS`, one row per id, sorted by id).
    """
    shape = shape_zyx_of(shape)
    flat = check_voxels(flat, shape)
    labels = _aligned(labels, flat, "labels")
    if labels.size and labels.dtype.kind not in "iu":
        raise InputError(f"labels must be integer crack ids, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise InputError("labels must not be negative")
    if lithium is not None:
        lithium = _aligned(lithium, flat, "lithium")
    if fraction is not None:
        fraction = _aligned(fraction, flat, "fraction")
    spacing = spacing_um(voxel_size_um)
    frame = StepFrame.of(shape, geometry, spacing, time_s=time_s, t_index=t_index,
                          span_tolerance_vox=span_tolerance_vox)
    # Voxels grouped by id; a stable sort keeps each crack's voxels in raster order, the order
    # np.nonzero gives on its bounding box.
    order = np.argsort(labels, kind="stable")
    ids, starts = np.unique(labels[order], return_index=True)
    stops = np.append(starts[1:], order.size) if ids.size else starts
    rows, voxels = [], {}
    for cid, a, b in zip(ids.tolist(), starts.tolist(), stops.tolist(), strict=True):
        if cid == 0:
            continue
        idx = order[a:b]
        z, y, x = np.unravel_index(flat[idx], shape)
        lo = (int(z[0]), int(y.min()), int(x.min()))   # z is sorted: flat is in raster order
        hi = (int(z[-1]) + 1, int(y.max()) + 1, int(x.max()) + 1)
        sub = np.zeros(tuple(h - low for h, low in zip(hi, lo, strict=True)), dtype=bool)
        sub[z - lo[0], y - lo[1], x - lo[2]] = True
        li = None if lithium is None else lithium[idx] != 0
        fr = None if fraction is None else fraction[idx]
        rows.append(crack_row(cid, sub, lo, li, frame, fr))
        voxels[cid] = np.stack([z, y, x], axis=1)
    table = pd.DataFrame(rows, columns=CRACK_COLUMNS)
    link_chains(table, voxels)
    return table


def measure_step_voxels(flat: Any, shape: Any, geometry: Any, voxel_size_um: Any, *,
                        lithium: Any = None, fraction: Any = None,
                        span_tolerance_vox: float = SPAN_TOLERANCE_VOX) -> dict[str, float | int]:
    """Whole-step metrics (one row of ``metrics.csv``) from a step's crack voxels.

    Parameters
    ----------
    flat : array_like of int
        Sorted unique C-order flat indices of the step's crack voxels.
    shape : (z, y, x)
        Shape of the step.
    geometry : CellGeometry
        Cell geometry of step 0.
    voxel_size_um : float or (dz, dy, dx)
        Voxel size in micrometres.
    lithium : array_like of bool, optional
        Aligned with ``flat``: nonzero where the crack voxel holds lithium.
    fraction : array_like of float, optional
        Aligned with ``flat``: the crack fraction of each crack voxel; ``crack_volume_um3`` is
        then the sum of the cracks' deficit volumes.
    span_tolerance_vox : float
        How close (voxels) a connected crack must come to an interface to touch it.

    Returns
    -------
    dict
        Equal to :func:`dendritect.measure.measure_step` on the dense mask: the same keys
        and values (26-connected components).
    """
    shape = shape_zyx_of(shape)
    flat = check_voxels(flat, shape)
    if lithium is not None:
        lithium = _aligned(lithium, flat, "lithium")
    if fraction is not None:
        fraction = _aligned(fraction, flat, "fraction")
    spacing = spacing_um(voxel_size_um)
    labels, n = label_voxels(flat, shape, connectivity=3)
    table = measure_cracks_voxels(flat, labels, shape, geometry, spacing, lithium=lithium,
                                  fraction=fraction, span_tolerance_vox=span_tolerance_vox)
    n_projected = int(np.unique(flat % (shape[1] * shape[2])).size)
    return step_metrics(table, n_cracks=n, n_voxels=int(flat.size), n_projected=n_projected,
                         spacing=spacing, lithium_known=lithium is not None,
                         fraction_known=fraction is not None)
