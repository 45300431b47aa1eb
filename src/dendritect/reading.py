"""Reading a results folder back: an xarray Dataset of the volumes, and the registered scans.

The frame of every volume is the one of the first step (CONTRACT "Output frame"). Voxel ``i``
along an axis of spacing ``d`` covers ``[i·d, (i+1)·d]`` µm, so its centre is at ``(i + ½)·d``:
the coordinates :func:`read_results` gives, the meshes ``dendritect export`` writes and the
report's 3D view all use this frame (docs/formats.md, "Exports").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dendritect import results as R
from dendritect.errors import InputError

if TYPE_CHECKING:  # the heavy imports wait for a call: `import dendritect` stays light
    import dask.array as da
    import numpy as np
    import pandas as pd

__all__ = ["open_results", "read_results", "register_lazily", "registered_scans",
           "voxel_centres_um"]

#: Axes of the arrays a results folder's ``cracks.zarr`` may hold: those of
#: :data:`dendritect.results.DIMENSIONS` for :data:`dendritect.results.CRACK_ARRAYS`, in the
#: order the Dataset lists them.
VOLUMES: dict[str, tuple[str, ...]] = {
    name: R.DIMENSIONS[name]
    for name in (R.CRACK, R.LABELS, R.LITHIUM, R.FRACTION, R.TIME_OF_ARRIVAL, R.PORES)
}

_DESCRIPTIONS = {
    R.CRACK: "1 = crack (empty or lithium-filled), 0 = not",
    R.LABELS: "tracked crack id (the same id across steps), 0 = none",
    R.LITHIUM: "1 = lithium inside a crack, 0 = not",
    R.FRACTION: "crack fraction of the voxel from the grey-level deficit",
    R.TIME_OF_ARRIVAL: "first step (t_index) a voxel is crack, -1 never",
    R.PORES: "1 = pore of the first step (left out of the crack volume), 0 = not",
}


def open_results(results_dir: str | Path) -> tuple[Path, dict[str, Any], Any]:
    """Check that ``results_dir`` is a results folder; return it, its summary and its crack store.

    Parameters
    ----------
    results_dir : str or Path
        A folder written by ``dendritect analyze`` (or ``watch``).

    Returns
    -------
    root : Path
    summary : dict
        ``summary.json``.
    group : zarr.Group
        ``cracks.zarr``, opened read-only.

    Raises
    ------
    InputError
        When the folder, its ``summary.json`` (with a voxel size) or ``cracks.zarr`` is missing
        or unreadable.
    """
    import zarr

    root = Path(results_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"{root} is not a folder (give a results folder written by "
                         "`dendritect analyze`)")
    path = root / R.SUMMARY_JSON
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{root} is not a dendritect results folder "
                         f"(no {R.SUMMARY_JSON})") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} cannot be read: {exc}") from None
    voxel = summary.get("voxel_size_um") if isinstance(summary, dict) else None
    if (not isinstance(voxel, list) or len(voxel) != 3
            or not all(isinstance(v, (int, float)) and v > 0 for v in voxel)):
        raise InputError(f"{path} has no voxel_size_um [dz, dy, dx]")
    if not (root / R.CRACKS_ZARR).is_dir():
        raise InputError(f"{root} is not a dendritect results folder (no {R.CRACKS_ZARR})")
    try:
        group = zarr.open_group(str(root / R.CRACKS_ZARR), mode="r")
    except Exception as exc:  # zarr raises several types for a damaged store
        raise InputError(f"{root / R.CRACKS_ZARR} cannot be read: {exc}") from None
    return root, summary, group


def voxel_centres_um(n: int, spacing_um: float) -> np.ndarray:
    """Centres of ``n`` voxels of size ``spacing_um``: ``(i + 0.5) * spacing_um``, float64."""
    import numpy as np

    return (np.arange(int(n), dtype=np.float64) + 0.5) * float(spacing_um)


def _whole(shift: np.ndarray) -> bool:
    import numpy as np

    return bool(np.allclose(shift, np.round(shift), atol=1e-6))


#: At most this many bytes of float32 planes in one block of the registered scans.
BLOCK_BYTES = 64 * 2**20


def _read_planes(volume: Any, z0: int, z1: int) -> np.ndarray:
    """Planes ``z0:z1`` of ``volume`` as float32 (a dask array is read here, in this task)."""
    import dask.array as da
    import numpy as np

    block = volume[z0:z1]
    if isinstance(block, da.Array):  # read inside a dask task: no nested thread pool
        block = block.compute(scheduler="synchronous")
    return np.asarray(block, dtype=np.float32)


def _shifted_planes(volume: Any, z0: int, z1: int, shift: np.ndarray) -> np.ndarray:
    """Planes ``z0:z1`` of ``volume`` (z, y, x) shifted by ``shift`` voxels, as
    :func:`dendritect.preprocess.register.apply_shift` gives them, reading only the input
    planes they are interpolated from."""
    import numpy as np
    from scipy import ndimage

    nz = int(volume.shape[0])
    out_z = np.arange(z0, z1)
    if not shift.any():
        return _read_planes(volume, z0, z1)
    whole = _whole(shift)
    s = np.round(shift) if whole else shift
    zs = out_z - float(s[0])
    lo = np.floor(zs).astype(np.int64)
    w = (zs - lo).astype(np.float32)[:, None, None]
    a_idx = np.clip(lo, 0, nz - 1)
    b_idx = np.clip(lo + 1, 0, nz - 1)
    first, last = int(min(a_idx.min(), b_idx.min())), int(max(a_idx.max(), b_idx.max()))
    src = _read_planes(volume, first, last + 1)
    planes = src[a_idx - first]
    if not whole and w.any():
        planes = planes * (np.float32(1) - w) + src[b_idx - first] * w
    if not s[1:].any():
        return planes.astype(np.float32, copy=False)
    return ndimage.shift(planes, (0.0, *s[1:]), order=0 if whole else 1, mode="nearest",
                         prefilter=False)


def register_lazily(data: Any, shifts_vox: Sequence[Sequence[float]]) -> da.Array:
    """Shift each step of a series onto step 0, block of planes by block, when asked for.

    Parameters
    ----------
    data : array-like (t, z, y, x)
        The input series (a dask array is read only where a block needs it).
    shifts_vox : sequence of (dz, dy, dx)
        One shift per step (``summary.json``'s ``registration_shifts_vox``).

    Returns
    -------
    dask.array.Array
        float32 (t, z, y, x) in blocks of whole planes that follow the input's z chunks (at
        most :data:`BLOCK_BYTES`); a block reads only the input planes it is interpolated from
        (linear, edges repeated; whole-voxel shifts exact): the same values as
        :func:`dendritect.preprocess.register.apply_shift`.
    """
    import dask.array as da
    import numpy as np

    src = data if isinstance(data, da.Array) else da.from_array(data)
    if src.ndim != 4:
        raise InputError(f"register_lazily: need a (t, z, y, x) series, got shape {src.shape}")
    shifts = np.asarray(shifts_vox, dtype=np.float64).reshape(-1, 3)
    if len(shifts) != src.shape[0] or not np.isfinite(shifts).all():
        raise InputError(f"register_lazily: need {src.shape[0]} finite shifts (dz, dy, dx), "
                         f"got {len(shifts)}")
    nt, _, ny, nx = (int(n) for n in src.shape)
    cap = max(1, BLOCK_BYTES // max(1, ny * nx * 4))
    z_chunks: list[int] = []
    for c in src.chunks[1]:
        while c > 0:
            z_chunks.append(min(c, cap))
            c -= z_chunks[-1]
    starts = np.concatenate([[0], np.cumsum(z_chunks)]).astype(np.int64)

    def block(block_info: dict | None = None) -> np.ndarray:
        t, k = block_info[None]["chunk-location"][:2]
        z0, z1 = int(starts[k]), int(starts[k + 1])
        return _shifted_planes(src[t], z0, z1, shifts[t])[None]

    return da.map_blocks(block, dtype=np.float32,
                         chunks=((1,) * nt, tuple(z_chunks), (ny,), (nx,)),
                         meta=np.empty((0, 0, 0, 0), np.float32))


def _open_input(summary: dict[str, Any]) -> Any:
    from dendritect.io import open_series

    params = summary.get("parameters") or {}
    src = summary.get("input") or params.get("input")
    if not src:
        raise InputError(f"{R.SUMMARY_JSON} does not name the input series")
    opts = {k: params.get(k) for k in ("dataset", "voxel_size", "times_s", "interval")
            if params.get(k) is not None}
    return open_series(src, **opts)


def registered_scans(results_dir: str | Path) -> da.Array:
    """The input scans of a results folder in the frame of step 0, lazily.

    The input named in ``summary.json`` is opened with the options the analysis used and
    shifted by ``registration_shifts_vox``, block of planes by block, on demand
    (:func:`register_lazily`).

    Raises
    ------
    InputError
        When the input cannot be read any more (moved, deleted) or does not match the results.
    """
    root, summary, group = open_results(results_dir)
    series = _open_input(summary)
    shifts = summary.get("registration_shifts_vox") or [[0.0, 0.0, 0.0]] * series.n_steps
    shape = tuple(summary.get("shape_zyx") or group[R.CRACK].shape[1:])
    if tuple(series.data.shape[1:]) != shape or len(shifts) != series.n_steps:
        raise InputError(f"{series.source} does not match the results in {root} "
                         f"(shape {tuple(series.data.shape)}, results {shape} x {len(shifts)})")
    return register_lazily(series.data, shifts)


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        return pd.DataFrame()
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise InputError(f"{path} cannot be read: {exc}") from None


def read_results(results_dir: str | Path) -> Any:
    """A results folder as a lazy, dask-backed :class:`xarray.Dataset`.

    Parameters
    ----------
    results_dir : str or Path
        A folder written by ``dendritect analyze``.

    Returns
    -------
    xarray.Dataset
        Data variables (those stored): ``crack``, ``labels``, ``lithium`` (t, z, y, x) and
        ``fraction``, ``time_of_arrival`` (z, y, x); nothing is read until computed.
        Coordinates: ``t`` the acquisition times in seconds (``t_index`` beside it), ``z``,
        ``y``, ``x`` the voxel centres in micrometres, ``(i + 0.5) * d``. ``attrs``:
        ``voxel_size_um`` (dz, dy, dx), ``summary`` (``summary.json`` as a dict), ``metrics``
        and ``cracks`` (``metrics.csv`` and ``cracks.csv`` as pandas DataFrames). Drop these
        three before ``to_netcdf``/``to_zarr``, which store only plain attributes.

    Raises
    ------
    InputError
        When ``results_dir`` is not a readable results folder.
    """
    import dask.array as da
    import numpy as np
    import xarray as xr

    root, summary, group = open_results(results_dir)
    dz, dy, dx = (float(v) for v in summary["voxel_size_um"])
    metrics = _read_table(root / R.METRICS_CSV)
    cracks = _read_table(root / R.CRACKS_CSV)
    data_vars: dict[str, Any] = {}
    for name, dims in VOLUMES.items():
        if name not in group:
            continue
        arr = group[name]
        if len(arr.shape) != len(dims):
            continue
        data_vars[name] = xr.Variable(dims, da.from_array(arr, chunks=arr.chunks),
                                      attrs={"description": _DESCRIPTIONS[name]})
    if R.CRACK not in data_vars:
        raise InputError(f"{root / R.CRACKS_ZARR} has no {R.CRACK} array")
    nt, nz, ny, nx = (int(n) for n in group[R.CRACK].shape)
    times = summary.get("times_s")
    if times is None and "time_s" in metrics and len(metrics) == nt:
        times = metrics["time_s"].tolist()
    if times is None or len(times) != nt:
        times = list(range(nt))
    um = {"units": "micrometer"}
    coords = {
        "t": ("t", np.asarray(times, dtype=np.float64), {"units": "second",
                                                        "long_name": "acquisition time"}),
        "t_index": ("t", np.arange(nt, dtype=np.int64), {"long_name": "step"}),
        "z": ("z", voxel_centres_um(nz, dz), {**um, "long_name": "z (stacking axis)"}),
        "y": ("y", voxel_centres_um(ny, dy), um),
        "x": ("x", voxel_centres_um(nx, dx), um),
    }
    attrs = {"voxel_size_um": [dz, dy, dx], "source": str(root), "summary": summary,
             "metrics": metrics, "cracks": cracks}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)
