"""Zarr (v2 and v3) and OME-Zarr inputs.

An array at the store's root, or the array named by ``dataset``, or the only candidate (a
4D array, a group of 3D arrays, an OME-Zarr multiscale image) is read. OME-Zarr
(NGFF 0.4 ``multiscales`` attribute, 0.5 ``ome.multiscales``): level 0, with the axes' names
(``t``, ``c``, ``z``, ``y``, ``x``) and the ``scale`` transforms times the axes' units giving the
voxel size in µm and the step times. Plain arrays or groups may carry ``voxel_size_um`` and
``times_s`` attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr
from natsort import natsorted

from dendritect.errors import InputError
from dendritect.io._common import RawSeries, as_4d, chunk_nz, length_um, require_volume, time_s

__all__ = ["is_zarr_store", "read_zarr"]

_MARKERS = ("zarr.json", ".zarray", ".zgroup")


def is_zarr_store(path: Path) -> bool:
    """A folder that is a Zarr v2 or v3 store (array or group)."""
    return path.is_dir() and any((path / m).is_file() for m in _MARKERS)


def _attrs(node: Any) -> dict[str, Any]:
    try:
        return dict(node.attrs)
    except Exception:
        return {}


def _multiscales(node: Any) -> dict[str, Any] | None:
    a = _attrs(node)
    ms = a.get("multiscales", (a.get("ome") or {}).get("multiscales"))
    if isinstance(ms, list) and ms and isinstance(ms[0], dict) and ms[0].get("datasets"):
        return ms[0]
    return None


def _scale(transforms: Any, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    scale = np.ones(ndim)
    shift = np.zeros(ndim)
    for tr in transforms or []:
        if tr.get("type") == "scale" and len(tr.get("scale", [])) == ndim:
            scale = scale * np.asarray(tr["scale"], dtype=np.float64)
        elif tr.get("type") == "translation" and len(tr.get("translation", [])) == ndim:
            shift = shift + np.asarray(tr["translation"], dtype=np.float64)
    return scale, shift


def _ome(root: Any, group_path: str, ms: dict[str, Any], where: str) -> RawSeries:
    group = root[group_path] if group_path else root
    level = ms["datasets"][0]
    arr_z = group[level["path"]]
    axes_raw = ms.get("axes") or []
    names = [(a.get("name") if isinstance(a, dict) else str(a)).lower() for a in axes_raw]
    units = [(a.get("unit") if isinstance(a, dict) else None) for a in axes_raw]
    ndim = arr_z.ndim
    if len(names) != ndim:  # NGFF < 0.3 has no axes: t, c, z, y, x from the right
        names = ["t", "c", "z", "y", "x"][-ndim:]
        units = [None] * ndim
    s0, sh0 = _scale(level.get("coordinateTransformations"), ndim)
    s1, _ = _scale(ms.get("coordinateTransformations"), ndim)
    scale = s0 * s1
    zyx = [arr_z.shape[names.index(a)] if a in names else 1 for a in "zyx"]
    nz = chunk_nz(tuple(zyx), arr_z.dtype.itemsize)
    arr = da.from_zarr(arr_z, chunks=tuple(
        nz if n == "z" else -1 if n in ("y", "x") else 1 for n in names))
    for name in list(names):
        if name not in ("t", "z", "y", "x"):
            i = names.index(name)
            if arr.shape[i] != 1:
                raise InputError(f"{where}: axis {name!r} has {arr.shape[i]} entries; "
                                 "one channel is needed")
            arr = arr[tuple(0 if j == i else slice(None) for j in range(arr.ndim))]
            del names[i], units[i]
            scale = np.delete(scale, i)
            sh0 = np.delete(sh0, i)
    if "z" not in names or "y" not in names or "x" not in names:
        raise InputError(f"{where}: OME-Zarr axes {names}; z, y and x are needed")
    order = (["t"] if "t" in names else []) + ["z", "y", "x"]
    perm = [names.index(a) for a in order]
    arr = arr.transpose(perm)
    arr = as_4d(arr, where)
    sizes = [length_um(scale[names.index(a)], units[names.index(a)]) for a in "zyx"]
    voxel = None
    notes: list[str] = []
    if all(s is not None for s in sizes):
        voxel = (sizes[0], sizes[1], sizes[2])
    elif any(s is not None for s in sizes):
        notes.append("OME-Zarr gives units for only some axes; voxel size ignored")
    times = None
    if "t" in names:
        i = names.index("t")
        step = time_s(scale[i], units[i]) if units[i] else None
        start = time_s(sh0[i], units[i]) if units[i] else None
        if step is not None:
            times = (start or 0.0) + np.arange(arr.shape[0], dtype=np.float64) * step
    meta: dict[str, Any] = {"dataset": "/".join(p for p in (group_path, level["path"]) if p),
                            "axes": "".join(names), "ome_levels": len(ms["datasets"])}
    if notes:
        meta["notes"] = notes
    return RawSeries(arr, "ome-zarr", voxel, times, meta)


def _plain_meta(root: Any, path: str) -> tuple[tuple[float, float, float] | None,
                                                np.ndarray | None]:
    """``voxel_size_um`` / ``times_s`` attributes of the node or its parents."""
    voxel = times = None
    parts = [p for p in path.split("/") if p]
    for k in range(len(parts), -1, -1):
        node = root["/".join(parts[:k])] if k else root
        a = _attrs(node)
        if voxel is None and "voxel_size_um" in a:
            v = np.asarray(a["voxel_size_um"], dtype=np.float64).reshape(-1)
            v = np.repeat(v, 3) if v.size == 1 else v
            if v.size == 3 and np.all(np.isfinite(v)) and np.all(v > 0):
                voxel = (float(v[0]), float(v[1]), float(v[2]))
        if times is None and "times_s" in a:
            times = np.asarray(a["times_s"], dtype=np.float64).reshape(-1)
    return voxel, times


def _candidates(root: Any) -> tuple[list[str], set[str]]:
    """4D arrays, groups of 3D arrays (or a lone 3D array) and OME multiscale images."""
    four: list[str] = []
    three: dict[str, list[str]] = {}
    ome: set[str] = set()
    if _multiscales(root):
        return [""], {""}
    for name, node in root.members(max_depth=None):
        if isinstance(node, zarr.Group) and _multiscales(node):
            ome.add(name)
    for name, node in root.members(max_depth=None):
        if not isinstance(node, zarr.Array) or any(
                name == o or name.startswith(o + "/") for o in ome):
            continue
        if node.dtype.kind not in "uif":
            continue
        if node.ndim == 4:
            four.append(name)
        elif node.ndim == 3:
            three.setdefault(name.rsplit("/", 1)[0] if "/" in name else "", []).append(name)
    cands = four + sorted(ome)
    for group, names in three.items():
        cands.append(names[0] if len(names) == 1 else group)
    return natsorted(cands), ome


def read_zarr(path: Path, dataset: str | None = None) -> RawSeries:
    """A Zarr v2/v3 store (array or group) or an OME-Zarr image, opened lazily."""
    try:
        root = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a folder that is not a store
        raise InputError(f"{path}: cannot open Zarr store ({exc})") from None
    where = str(path)
    if isinstance(root, zarr.Array):
        if dataset not in (None, "", "/"):
            raise InputError(f"--dataset {dataset}: {path} is a single Zarr array")
        return _plain(root, root, "", where)
    cands, _ = _candidates(root)
    listing = ", ".join(c or "/" for c in cands) or "none"
    if dataset is not None:
        key = dataset.strip("/")
        if key and key not in root:
            raise InputError(f"--dataset {dataset}: not found in {path} (3D/4D arrays: "
                             f"{listing})")
    elif not cands:
        raise InputError(f"{path}: no 3D or 4D numeric array in this Zarr store")
    elif len(cands) > 1:
        raise InputError(f"{path}: several arrays could be the scans ({listing}); "
                         "choose one with --dataset")
    else:
        key = cands[0]
    node = root[key] if key else root
    if isinstance(node, zarr.Group):
        ms = _multiscales(node)
        if ms:
            return _ome(root, key, ms, f"{where}:{key or '/'}")
        names = natsorted(k for k, v in node.arrays() if v.ndim == 3 and v.dtype.kind in "uif")
        if not names:
            raise InputError(f"{path}: group {key or '/'} holds no 3D numeric arrays "
                             f"(3D/4D arrays: {listing})")
        arrs = [node[k] for k in names]
        ref = arrs[0]
        for k, a in zip(names, arrs, strict=True):
            if a.shape != ref.shape or a.dtype != ref.dtype:
                raise InputError(
                    f"{path}: steps of different shapes or types in {key or '/'}: {names[0]} is "
                    f"{ref.shape} {ref.dtype}, {k} is {a.shape} {a.dtype}"
                )
        nz = chunk_nz(ref.shape, ref.dtype.itemsize, multiple_of=ref.chunks[0])
        data = da.stack([da.from_zarr(a, chunks=(nz, -1, -1)) for a in arrs], axis=0)
        voxel, times = _plain_meta(root, key)
        meta = {"dataset": key or "/", "steps": names,
                "zarr_format": int(root.metadata.zarr_format)}
        return RawSeries(data, "zarr", voxel, times, meta)
    return _plain(root, node, key, where)


def _plain(root: Any, node: Any, key: str, where: str) -> RawSeries:
    if node.dtype.kind not in "uif":
        raise InputError(f"{where}: array {key or '/'} has type {node.dtype}; numbers are needed")
    require_volume(node.shape, where, f"array {key or '/'}")
    nz = chunk_nz(node.shape[-3:], node.dtype.itemsize, multiple_of=node.chunks[-3])
    chunks = (nz, -1, -1) if node.ndim == 3 else (1, nz, -1, -1)
    arr = as_4d(da.from_zarr(node, chunks=chunks), f"{where}:{key or '/'}")
    voxel, times = _plain_meta(root, key)
    meta = {"dataset": key or "/", "zarr_format": int(node.metadata.zarr_format)}
    return RawSeries(arr, "zarr", voxel, times, meta)
