"""The dataset folder written by ``dendritect simulate`` (``dataset.json`` + ``scans/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from dendritect.errors import InputError
from dendritect.io._common import RawSeries, is_tiff_name, list_dir
from dendritect.io._tiff import read_tiff_files
from dendritect.io._zarr import is_zarr_store, read_zarr

__all__ = ["is_dataset_folder", "read_dataset_folder"]


def is_dataset_folder(path: Path) -> bool:
    return path.is_dir() and (path / "dataset.json").is_file()


def read_dataset_folder(folder: Path, dataset: str | None = None) -> RawSeries:
    """Scans from ``scans/t000.tif``... or ``scans/scans.zarr``; voxel size and times from json."""
    jpath = folder / "dataset.json"
    try:
        info: dict[str, Any] = json.loads(jpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{jpath}: cannot read JSON ({exc})") from None
    if not isinstance(info, dict):
        raise InputError(f"{jpath}: expected a JSON object")
    scans = folder / "scans"
    zpath = scans / "scans.zarr"
    if is_zarr_store(zpath):
        raw = read_zarr(zpath, dataset)
        layout = "scans/scans.zarr"
    else:
        files = [p for p in list_dir(scans) if p.is_file() and is_tiff_name(p)] \
            if scans.is_dir() else []
        if not files:
            raise InputError(f"{folder}: dataset.json found but no scans "
                             "(expected scans/t000.tif... or scans/scans.zarr)")
        raw = read_tiff_files(scans, files)
        layout = "scans/*.tif"

    voxel = raw.voxel_size_um
    if "voxel_size_um" in info:
        v = np.asarray(info["voxel_size_um"], dtype=np.float64).reshape(-1) \
            if _numbers(info["voxel_size_um"]) else np.array([])
        if v.size == 1:
            v = np.repeat(v, 3)
        if v.size != 3 or not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise InputError(f"{jpath}: voxel_size_um must be one or three positive numbers "
                             f"(z, y, x), got {info['voxel_size_um']!r}")
        voxel = (float(v[0]), float(v[1]), float(v[2]))
    times = raw.times_s
    if "times_s" in info:
        if not _numbers(info["times_s"]):
            raise InputError(f"{jpath}: times_s must be a list of numbers")
        times = np.asarray(info["times_s"], dtype=np.float64).reshape(-1)
        if times.size != raw.data.shape[0]:
            raise InputError(f"{jpath}: times_s has {times.size} entries but {layout} holds "
                             f"{raw.data.shape[0]} steps")
    meta = dict(raw.meta)
    meta.update({"scans": layout, "scans_format": raw.format, "dataset_json": info})
    for key in ("anode", "electrolyte", "current_density_mA_cm2", "seed", "preset"):
        if key in info:
            meta[key] = info[key]
    return RawSeries(raw.data, "simulate", voxel, times, meta)


def _numbers(v: Any) -> bool:
    try:
        np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True
