"""The 4D series: a lazy (t, z, y, x) dask array with its voxel size and times."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np

__all__ = ["Series"]


@dataclass(frozen=True)
class Series:
    """A time series of 3D scans, read lazily.

    Attributes
    ----------
    data : dask.array.Array
        Shape ``(t, z, y, x)``; nothing is read until a chunk is computed.
    voxel_size_um : tuple of float
        ``(dz, dy, dx)`` in micrometres.
    times_s : numpy.ndarray
        Acquisition time of each step, seconds (float64, length ``t``).
    source : str
        Where the series came from (a path).
    format : str
        A short name of the input format (``"tiff-4d"``, ``"hdf5"``, ``"simulate"``...).
    meta : dict
        Anything else the reader found (dataset path, anode side, ...).
    """

    data: da.Array
    voxel_size_um: tuple[float, float, float]
    times_s: np.ndarray
    source: str
    format: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return int(self.data.shape[0])

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape[1:])  # type: ignore[return-value]

    def step(self, t: int) -> np.ndarray:
        """Read one step into memory as a numpy array (its own dtype)."""
        return np.asarray(self.data[t].compute())

