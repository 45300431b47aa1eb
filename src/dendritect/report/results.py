"""Read a results folder written by ``dendritect analyze`` (CONTRACT "Results layout")."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dendritect.errors import InputError

__all__ = ["Results", "iter_slabs", "load_results"]

#: Voxels read at once when streaming a volume in z-slabs (about 64 MB of int16).
SLAB_VOXELS = 32 * 2**20


def iter_slabs(shape_zyx: tuple[int, ...], *, multiple: int = 1):
    """``(z0, z1)`` ranges of z-slabs of about :data:`SLAB_VOXELS` voxels (a multiple of
    ``multiple`` planes), so a volume larger than memory is read piece by piece."""
    nz = int(shape_zyx[0])
    plane = max(1, int(np.prod(shape_zyx[1:])))
    step = max(multiple, (SLAB_VOXELS // plane) // multiple * multiple)
    for z0 in range(0, nz, step):
        yield z0, min(nz, z0 + step)

_METRICS_REQUIRED = ("t_index", "time_s", "front_depth_um", "crack_volume_um3", "n_cracks")


@dataclass
class Results:
    """What the report shows, read from a results folder.

    Volumes stay as zarr arrays (read on demand); tables are pandas DataFrames.
    """

    root: Path
    summary: dict[str, Any]
    metrics: pd.DataFrame
    cracks: pd.DataFrame
    crack: Any | None = None            # zarr array (t,z,y,x) uint8, or None
    time_of_arrival: Any | None = None  # (z,y,x) int16, -1 never: zarr array (lazy) or ndarray
    previews: dict[str, np.ndarray] = field(default_factory=dict)   # yx, zx, zy: float32
    preview_index: dict[str, int] = field(default_factory=dict)     # slice position per view
    echem: pd.DataFrame | None = None   # the cycler record: time_s, voltage_V (full resolution)
    echem_source: str | None = None     # where it was read from

    @property
    def n_steps(self) -> int:
        return len(self.metrics)

    @property
    def times_s(self) -> np.ndarray:
        return self.metrics["time_s"].to_numpy(dtype=np.float64)

    @property
    def voxel_size_um(self) -> tuple[float, float, float]:
        v = self.summary.get("voxel_size_um") or [1.0, 1.0, 1.0]
        return (float(v[0]), float(v[1]), float(v[2]))

    @property
    def shape_zyx(self) -> tuple[int, int, int] | None:
        if self.time_of_arrival is not None:
            return tuple(int(s) for s in self.time_of_arrival.shape)  # type: ignore[return-value]
        if self.crack is not None:
            return tuple(int(s) for s in self.crack.shape[1:])  # type: ignore[return-value]
        return None

    @property
    def interfaces_um(self) -> tuple[float, float] | None:
        v = self.summary.get("electrolyte_interfaces_um")
        if not v or len(v) != 2 or v[0] is None or v[1] is None:
            return None
        return (float(v[0]), float(v[1]))

    @property
    def thickness_um(self) -> float | None:
        iface = self.interfaces_um
        return None if iface is None else abs(iface[1] - iface[0])

    def span_interval(self) -> tuple[int | None, int] | None:
        """The span happened between two scans: (last step without it, or None when the first
        scan already spans; first step with it). None when no scan spans."""
        i = self.summary.get("span_index")
        if i is None or not 0 <= int(i) < self.n_steps:
            return None
        i = int(i)
        return (i - 1 if i > 0 else None, i)

    def lithium(self) -> tuple[bool, str | None]:
        """Whether the lithium inside cracks was measured, and why not."""
        info = self.summary.get("lithium")
        if isinstance(info, dict) and "resolved" in info:
            return bool(info["resolved"]), info.get("reason")
        seg = self.summary.get("lithium_segmented")
        if seg is False:
            return False, ("lithium inside cracks could not be told apart from empty crack "
                           "in these scans")
        return True, None

    def span_time_s(self) -> float | None:
        i = self.summary.get("span_index")
        if i is None or not 0 <= int(i) < self.n_steps:
            return None
        return float(self.times_s[int(i)])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            out = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not isinstance(out, dict):
        raise InputError(f"{path}: expected a JSON object")
    return out


def _read_csv(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=list(required))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _preview_index(arr: Any, view: str, shape_zyx: tuple[int, int, int] | None,
                   summary: dict[str, Any]) -> int:
    """Where a preview slice was cut: from the array's attributes, else the documented default."""
    axis = {"yx": "z", "zx": "y", "zy": "x"}[view]
    attrs = dict(getattr(arr, "attrs", {}) or {})
    for key in (f"{axis}_index", "index", "slice_index", f"{axis}_vox"):
        if key in attrs:
            try:
                return round(float(attrs[key]))
            except (TypeError, ValueError):
                pass
    if shape_zyx is None:
        return -1
    n = shape_zyx["zyx".index(axis)]
    if axis == "z":
        # Mid-electrolyte (CONTRACT previews are taken there).
        iface = summary.get("electrolyte_interfaces_um")
        dz = float((summary.get("voxel_size_um") or [1.0])[0])
        if iface and len(iface) == 2 and None not in iface:
            return int(np.clip(round(0.5 * (iface[0] + iface[1]) / dz), 0, n - 1))
    return n // 2


def load_results(results_dir: str | Path) -> Results:
    """Read a results folder.

    Parameters
    ----------
    results_dir : str or Path
        Folder written by ``dendritect analyze``.

    Returns
    -------
    Results

    Raises
    ------
    InputError
        When the folder or one of its required files is missing or unreadable.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise InputError(f"results folder not found: {root}")
    if not (root / "summary.json").is_file():
        raise InputError(f"{root} is not a results folder: summary.json is missing")
    summary = _read_json(root / "summary.json")
    if not (root / "metrics.csv").is_file():
        raise InputError(f"{root} is not a results folder: metrics.csv is missing")
    metrics = _read_csv(root / "metrics.csv", _METRICS_REQUIRED)
    metrics = metrics.sort_values("t_index").reset_index(drop=True)
    cracks = (_read_csv(root / "cracks.csv") if (root / "cracks.csv").is_file()
              else pd.DataFrame())

    res = Results(root=root, summary=summary, metrics=metrics, cracks=cracks)
    import zarr

    if (root / "cracks.zarr").exists():
        try:
            grp = zarr.open_group(str(root / "cracks.zarr"), mode="r")
            if "crack" in grp:
                res.crack = grp["crack"]
            if "time_of_arrival" in grp:
                res.time_of_arrival = grp["time_of_arrival"]
        except Exception as exc:  # zarr raises several types for a damaged store
            raise InputError(f"cannot read {root / 'cracks.zarr'}: {exc}") from None
    if res.time_of_arrival is None and res.crack is not None:
        res.time_of_arrival = _arrival_from_masks(res.crack)
    res.echem, res.echem_source = _read_echem(root, summary)
    if (root / "previews.zarr").exists():
        try:
            grp = zarr.open_group(str(root / "previews.zarr"), mode="r")
            for view in ("yx", "zx", "zy"):
                if view in grp:
                    arr = grp[view]
                    res.previews[view] = np.asarray(arr[...], dtype=np.float32)
                    res.preview_index[view] = _preview_index(arr, view, res.shape_zyx, summary)
        except Exception as exc:
            raise InputError(f"cannot read {root / 'previews.zarr'}: {exc}") from None
    return res


def _read_echem(root: Path, summary: dict[str, Any]) -> tuple[pd.DataFrame | None, str | None]:
    """The full cycler record: the results' copy (echem.csv), else the file named in the
    parameters (read again), else None."""
    copy = root / "echem.csv"
    if copy.is_file():
        try:
            df = pd.read_csv(copy)
        except (OSError, ValueError):
            df = None
        if df is not None and {"time_s", "voltage_V"} <= set(df.columns):
            return df, "echem.csv"
    src = (summary.get("parameters") or {}).get("echem")
    if src and Path(str(src)).is_file():
        try:
            import warnings

            from dendritect.io.echem import read_echem

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return read_echem(src), str(src)
        except Exception:  # the report stands without the trace
            return None, None
    return None, None


def _arrival_from_masks(crack: Any) -> np.ndarray:
    """First step each voxel is crack (-1 never), read slab by slab."""
    toa = np.full(crack.shape[1:], -1, dtype=np.int16)
    for z0, z1 in iter_slabs(crack.shape[1:]):
        sub = toa[z0:z1]
        for t in range(crack.shape[0]):
            sub[(np.asarray(crack[t, z0:z1]) > 0) & (sub < 0)] = t
    return toa


