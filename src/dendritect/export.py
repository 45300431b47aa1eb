"""Results for other tools: OME-Zarr, ImageJ TIFF hyperstacks and crack surface meshes.

Function-first: :func:`write_ome_zarr`, :func:`write_imagej_tiff` and :func:`write_meshes` work
on plain arrays (numpy, dask or zarr) with a voxel size; :func:`export` reads a results folder
and writes one of them to a new path, atomically (built under a temporary name beside it, then
renamed), never inside the results folder.

Frame (docs/formats.md, "Exports"): voxel ``i`` along an axis of spacing ``d`` covers
``[i·d, (i+1)·d]`` µm. Meshes are the marching-cubes surface at 0.5 of the zero-padded mask
(:func:`dendritect.report.mesh.crack_mesh` at full resolution), so a mesh's bounding box runs
from the low face of its first crack voxel to the high face of its last. OME-Zarr puts voxel
centres at ``(i + ½)·d`` (a translation of half a voxel), ImageJ TIFFs have their origin at the
volume's corner: every export lies in the same micrometre frame.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from dendritect import results as R
from dendritect.atomic import TEMP_MARK
from dendritect.errors import InputError

__all__ = ["EXPORT_MARKER", "FORMATS", "export", "mesh_of_mask", "pyramid_factors",
           "write_imagej_tiff", "write_meshes", "write_ome_zarr"]

#: What ``dendritect export --format`` takes.
FORMATS = ("ome-zarr", "tiff", "stl", "vtk")
#: The file that makes a path a dendritect export (and lists what it holds).
EXPORT_MARKER = "dendritect-export.json"
#: The OME-Zarr pyramid halves z, y and x until no axis is longer than this.
PYRAMID_MAX_VOX = 512
_UNITS = {"t": "second", "z": "micrometer", "y": "micrometer", "x": "micrometer"}


def _as_dask(a: Any) -> da.Array:
    if isinstance(a, da.Array):
        return a
    chunks = getattr(a, "chunks", None)
    return da.from_array(a, chunks=chunks if chunks is not None else "auto")


def _time_scale(times_s: Sequence[float]) -> float:
    """The step interval for the NGFF ``t`` scale: the mean interval (exact when uniform)."""
    t = np.asarray(times_s, dtype=np.float64)
    if len(t) < 2:
        return 1.0
    step = float((t[-1] - t[0]) / (len(t) - 1))
    return step if step > 0 else 1.0


def _uniform(times_s: Sequence[float]) -> bool:
    t = np.asarray(times_s, dtype=np.float64)
    if len(t) < 2:
        return True
    d = np.diff(t)
    return bool(np.allclose(d, d[0], rtol=1e-6, atol=1e-9))


def pyramid_factors(shape_zyx: Sequence[int], max_vox: int = PYRAMID_MAX_VOX) -> list[int]:
    """Down-sampling factors (2, 4, ...) of the pyramid levels below full resolution: halve
    until no axis is longer than ``max_vox`` (none for a small step)."""
    out: list[int] = []
    f = 1
    while max(-(-int(n) // f) for n in shape_zyx) > max_vox and min(shape_zyx) // (2 * f) >= 1:
        f *= 2
        out.append(f)
    return out


def _half_voxel_centres(group: Any, voxel_size_um: Sequence[float]) -> None:
    """Shift every level's NGFF translation by half a level-0 voxel in z, y, x, so voxel
    centres sit at ``(i + 0.5) * d`` (the frame of the meshes and of ``read_results``)."""
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)
    for ms in ome.get("multiscales", []):
        names = [a["name"] for a in ms["axes"]]
        for ds in ms["datasets"]:
            tr = next((c for c in ds["coordinateTransformations"]
                       if c["type"] == "translation"), None)
            if tr is None:
                tr = {"type": "translation", "translation": [0.0] * len(names)}
                ds["coordinateTransformations"].append(tr)
            for i, name in enumerate(names):
                if name in "zyx":
                    tr["translation"][i] = float(tr["translation"][i]) + 0.5 * float(
                        voxel_size_um["zyx".index(name)])
    group.attrs.update(attrs)


def write_ome_zarr(path: str | Path, image: Any, voxel_size_um: Sequence[float],
                   times_s: Sequence[float], *, labels: dict[str, Any] | None = None,
                   name: str = "image", max_vox: int = PYRAMID_MAX_VOX,
                   attrs: dict[str, Any] | None = None) -> Path:
    """Write an OME-Zarr (NGFF 0.5, zarr v3) image (t, z, y, x) with label images.

    Parameters
    ----------
    path : str or Path
        The store to create (replaced if it exists).
    image : array-like (t, z, y, x)
        numpy, dask or zarr; written chunk by chunk.
    voxel_size_um : (dz, dy, dx)
    times_s : sequence of float
        One per step; the ``t`` scale is their mean interval (NGFF has no irregular axis), and
        the times themselves go into the ``dendritect`` attribute.
    labels : dict of name to array-like (t, z, y, x), optional
        Integer arrays written as NGFF label images under ``labels/NAME``.
    name : str
        The image's name in its metadata.
    max_vox : int
        Pyramid levels halve z, y and x until no axis is longer than this.
    attrs : dict, optional
        More JSON attributes under the root's ``dendritect`` key.

    Returns
    -------
    Path
    """
    import zarr
    from ome_zarr.writer import write_image, write_labels

    img = _as_dask(image)
    if img.ndim != 4:
        raise InputError(f"write_ome_zarr: need a (t, z, y, x) image, got shape {img.shape}")
    dz, dy, dx = (float(v) for v in voxel_size_um)
    scale = {"t": _time_scale(times_s), "z": dz, "y": dy, "x": dx}
    factors = [{"z": f, "y": f, "x": f} for f in pyramid_factors(img.shape[1:], max_vox)]
    common = {"axes": "tzyx", "scale": scale, "axes_units": dict(_UNITS)}
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    step_chunks = (1, *_plane_chunks(img.shape[1:], img.dtype.itemsize))
    write_image(img.rechunk(step_chunks), root, scale_factors=factors, name=name,
                method="nearest" if img.dtype.kind in "biu" else "local_mean",
                storage_options={"chunks": step_chunks}, **common)
    _half_voxel_centres(root, (dz, dy, dx))
    for label_name, arr in (labels or {}).items():
        lab = _as_dask(arr)
        chunks = (1, *_plane_chunks(lab.shape[1:], lab.dtype.itemsize))
        write_labels(lab.rechunk(chunks), root, name=label_name, scale_factors=factors,
                     scaler=None, method="nearest", storage_options={"chunks": chunks},
                     label_metadata={"source": {"image": "../../"}}, **common)
        _half_voxel_centres(root["labels"][label_name], (dz, dy, dx))
    extra = {"times_s": [float(t) for t in times_s],
             "voxel_size_um": [dz, dy, dx], **(attrs or {})}
    root.attrs.update({"dendritect": json.loads(json.dumps(extra))})
    return Path(path)


def _plane_chunks(shape_zyx: Sequence[int], itemsize: int,
                  target_bytes: int = 16 * 2**20) -> tuple[int, int, int]:
    """Chunks of whole (y, x) planes, about ``target_bytes`` each."""
    nz, ny, nx = (int(n) for n in shape_zyx)
    planes = max(1, min(nz, target_bytes // max(1, ny * nx * itemsize)))
    return planes, ny, nx


def _imagej_dtype(arr: Any) -> np.dtype:
    """The ImageJ pixel type (uint8, uint16 or float32) that holds ``arr``'s values."""
    dt = np.dtype(arr.dtype)
    if dt in (np.uint8, np.uint16, np.float32):
        return dt
    if dt.kind in "iu":
        lo, hi = (int(v) for v in da.compute(_as_dask(arr).min(), _as_dask(arr).max()))
        if lo >= 0 and hi <= np.iinfo(np.uint16).max:
            return np.dtype(np.uint16)
    return np.dtype(np.float32)


def write_imagej_tiff(path: str | Path, volume: Any, voxel_size_um: Sequence[float],
                      times_s: Sequence[float] | None = None, *,
                      info: dict[str, Any] | None = None) -> Path:
    """Write a (t, z, y, x) or (z, y, x) array as one ImageJ hyperstack, calibrated in µm.

    Planes are streamed from the array (numpy, dask or zarr), so the file may be larger than
    memory. The pixel type is the array's when ImageJ has it (uint8, uint16, float32), else
    uint16 for non-negative integers up to 65535, else float32 (``-1`` stays ``-1``).

    Parameters
    ----------
    path : str or Path
        The ``.tif`` file to write (replaced if it exists).
    volume : array-like
        ``(t, z, y, x)`` (axes ``TZYX``) or ``(z, y, x)`` (``ZYX``).
    voxel_size_um : (dz, dy, dx)
        Written as the resolution tags (pixels per µm), ``spacing`` and ``unit='um'``.
    times_s : sequence of float, optional
        One per step; their interval is ImageJ's ``finterval`` (seconds) when uniform; the
        times themselves are in the ``Info`` property (JSON).
    info : dict, optional
        More JSON for the ``Info`` property.
    """
    import tifffile

    arr = volume
    shape = tuple(int(n) for n in arr.shape)
    if len(shape) not in (3, 4):
        raise InputError(f"write_imagej_tiff: need 3 or 4 dimensions, got shape {shape}")
    dtype = _imagej_dtype(arr)
    dz, dy, dx = (float(v) for v in voxel_size_um)
    meta: dict[str, Any] = {"axes": "TZYX" if len(shape) == 4 else "ZYX", "spacing": dz,
                            "unit": "um"}
    note = {"voxel_size_um": [dz, dy, dx], **(info or {})}
    if times_s is not None and len(shape) == 4:
        times = [float(t) for t in times_s]
        note["times_s"] = times
        if len(times) > 1 and _uniform(times):
            meta["finterval"] = _time_scale(times)
            meta["tunit"] = "s"
    meta["Info"] = json.dumps(note)

    chunks = getattr(arr, "chunks", None)
    slab = 1
    if isinstance(chunks, tuple) and chunks and isinstance(chunks[0], int):
        slab = max(1, int(chunks[-3]))  # read whole zarr chunks, not a chunk per plane

    def planes():
        for lead in np.ndindex(*shape[:-3]):
            for z0 in range(0, shape[-3], slab):
                block = np.asarray(arr[(*lead, slice(z0, min(z0 + slab, shape[-3])))])
                yield from block.astype(dtype, copy=False)

    tifffile.imwrite(path, planes(), shape=shape, dtype=dtype, imagej=True,
                     resolution=(1.0 / dx, 1.0 / dy), metadata=meta)
    return Path(path)


def mesh_of_mask(mask: np.ndarray, voxel_size_um: Sequence[float], *,
                 arrival: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray] | None:
    """Surface of a 3D mask in µm, for mesh files: vertices (x, y, z), faces, arrival step.

    The surface is :func:`dendritect.report.mesh.crack_mesh` at full resolution (marching cubes
    at 0.5 on the zero-padded mask), computed on the mask's bounding box: its vertices' bounds
    are the crack voxels' extent, ``[i_min·d, (i_max + 1)·d]`` on every axis. Columns are put
    in (x, y, z) order; the faces are wound so that, in (x, y, z), normals point out of the
    crack (a closed surface has a positive signed volume).

    Parameters
    ----------
    mask : ndarray (z, y, x) bool
    voxel_size_um : (dz, dy, dx)
    arrival : ndarray (z, y, x) int, optional
        The time of arrival (step) at each voxel, to colour the vertices (0 when not given).

    Returns
    -------
    (verts_xyz_um float64 (n, 3), faces int64 (m, 3), arrival float32 (n,)) or None
        None when the mask is empty.
    """
    from scipy import ndimage

    from dendritect.report.mesh import crack_mesh

    m = np.asarray(mask).astype(bool, copy=False)
    if m.ndim != 3:
        raise InputError(f"mesh_of_mask: need a 3D (z, y, x) mask, got shape {m.shape}")
    boxes = ndimage.find_objects(m.astype(np.uint8))
    if not boxes or boxes[0] is None:
        return None
    box = boxes[0]
    sub = m[box]
    toa = np.full(sub.shape, -1, np.int16)
    if arrival is None:
        toa[sub] = 0
    else:
        toa[sub] = np.maximum(np.asarray(arrival)[box][sub], 0).astype(np.int16)
    spacing = np.asarray(voxel_size_um, dtype=np.float64)
    mesh = crack_mesh(toa, spacing, max_triangles=2**62, max_voxels=max(1, sub.size))
    if mesh is None:
        return None
    origin = np.array([s.start for s in box], dtype=np.float64) * spacing
    verts_zyx = mesh.verts_um.astype(np.float64) + origin
    return (np.ascontiguousarray(verts_zyx[:, ::-1]),
            np.ascontiguousarray(mesh.faces.astype(np.int64)),
            mesh.arrival.astype(np.float32))


def write_meshes(out_dir: str | Path, crack: Any, labels: Any, voxel_size_um: Sequence[float],
                 *, fmt: str = "stl", time_of_arrival: Any = None,
                 times_s: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Write the crack surfaces of every step, and of every tracked crack in it, as mesh files.

    Files: ``tSSS.EXT`` (all cracks of step ``SSS``) and ``tSSS_crackIIII.EXT`` (crack id
    ``IIII`` in that step), EXT ``stl`` (binary) or ``vtk`` (legacy VTK, with point data
    ``arrival_step``). Steps without cracks get no file. One step is read at a time.

    Parameters
    ----------
    out_dir : str or Path
        An existing folder.
    crack, labels : array-like (t, z, y, x)
        The crack mask and the tracked ids (``cracks.zarr``'s arrays).
    voxel_size_um : (dz, dy, dx)
    fmt : {"stl", "vtk"}
    time_of_arrival : array-like (z, y, x), optional
        Colours the vertices of the VTK meshes.
    times_s : sequence of float, optional

    Returns
    -------
    list of dict
        One per file: ``file``, ``t_index``, ``time_s``, ``crack_id`` (None for a whole step),
        ``n_vertices``, ``n_triangles``, ``bounds_um`` ``[[x0, y0, z0], [x1, y1, z1]]``.
    """
    import meshio
    from scipy import ndimage

    if fmt not in ("stl", "vtk"):
        raise InputError(f"write_meshes: format must be stl or vtk, got {fmt!r}")
    out = Path(out_dir)
    toa = None if time_of_arrival is None else np.asarray(time_of_arrival)
    n_steps = int(crack.shape[0])
    rows: list[dict[str, Any]] = []

    def save(name: str, mesh: tuple[np.ndarray, np.ndarray, np.ndarray], t: int,
             cid: int | None) -> None:
        verts, faces, arrival = mesh
        point_data = {"arrival_step": arrival} if fmt == "vtk" else {}
        m = meshio.Mesh(verts, [("triangle", faces)], point_data=point_data)
        if fmt == "stl":
            meshio.write(out / name, m, file_format="stl", binary=True)
        else:
            meshio.write(out / name, m, file_format="vtk", binary=True)
        rows.append({"file": name, "t_index": t,
                     "time_s": None if times_s is None else float(times_s[t]),
                     "crack_id": cid, "n_vertices": len(verts), "n_triangles": len(faces),
                     "bounds_um": [verts.min(axis=0).tolist(), verts.max(axis=0).tolist()]})

    for t in range(n_steps):
        step = np.asarray(crack[t]) > 0
        mesh = mesh_of_mask(step, voxel_size_um, arrival=toa)
        if mesh is None:
            continue
        save(f"t{t:03d}.{fmt}", mesh, t, None)
        lab = np.asarray(labels[t])
        for i, box in enumerate(ndimage.find_objects(lab), start=1):
            if box is None:
                continue
            sub = lab[box] == i
            cm = mesh_of_mask(sub, voxel_size_um,
                              arrival=None if toa is None else toa[box])
            if cm is None:
                continue
            shift = np.array([box[2].start, box[1].start, box[0].start], np.float64)
            verts = cm[0] + shift * np.asarray(voxel_size_um, np.float64)[::-1]
            save(f"t{t:03d}_crack{i:04d}.{fmt}", (verts, cm[1], cm[2]), t, i)
    return rows


# -- the results folder -> a new export path --------------------------------------------------

def _read_export_marker(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((path / EXPORT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("dendritect") == "export" else None


def _check_out(out: Path, results: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` inside the results, a file, or a folder that is not an export."""
    res = results.resolve()
    target = out.resolve()
    if target == res or res in target.parents:
        raise InputError(f"--out {out} is inside the results folder {results}; "
                         "export writes only outside its input")
    if target in res.parents:
        raise InputError(f"--out {out} holds the results folder {results}; give a new path")
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder written by dendritect export")
    entries = os.listdir(out)
    if not entries:
        return
    if _read_export_marker(out) is None:
        shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise InputError(f"--out {out} is not empty and is not a dendritect export (it holds "
                         f"{shown}); give a new or empty folder")
    if not overwrite:
        raise InputError(f"--out {out} already holds an export; pass --overwrite to replace it")


def export(results_dir: str | Path, fmt: str, out: str | Path, *, overwrite: bool = False,
           scans: bool = False, max_vox: int = PYRAMID_MAX_VOX) -> dict[str, Any]:
    """Export a results folder for another tool (docs/formats.md, "Exports").

    Parameters
    ----------
    results_dir : str or Path
        A folder written by ``dendritect analyze``; only read.
    fmt : {"ome-zarr", "tiff", "stl", "vtk"}
        ``ome-zarr``: ``out`` is an OME-Zarr store, image ``crack`` (or the registered scans
        with ``scans``), label images ``labels/cracks`` (tracked ids) and ``labels/lithium``.
        ``tiff``: ``out`` is a folder of ImageJ hyperstacks, one 4D (TZYX) file per volume:
        ``crack.tif``, ``labels.tif``, ``lithium.tif`` (when stored), ``scans.tif`` (with
        ``scans``), and ``time_of_arrival.tif`` (ZYX, float32, -1 never). ``stl`` / ``vtk``:
        ``out`` is a folder of meshes (:func:`write_meshes`).
    out : str or Path
        A new path, an empty folder, or an earlier export (replaced only with ``overwrite``).
    scans : bool
        Add the input scans registered onto step 0 (read from the input named in
        ``summary.json``, which must still be there).
    max_vox : int
        OME-Zarr pyramid: levels down to this many voxels along the longest axis.

    Returns
    -------
    dict
        What ``out/dendritect-export.json`` holds: format, source, voxel size, times, files.

    Raises
    ------
    InputError
        When the results folder cannot be read, the format is unknown, or ``out`` is refused.
    """
    from dendritect import __version__
    from dendritect.reading import open_results, registered_scans

    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root, summary, group = open_results(results_dir)
    if R.CRACK not in group:
        raise InputError(f"{root / R.CRACKS_ZARR} has no {R.CRACK} array")
    out = Path(out).expanduser()
    _check_out(out, root, overwrite)
    voxel = [float(v) for v in summary["voxel_size_um"]]
    n_steps = int(group[R.CRACK].shape[0])
    times = [float(t) for t in (summary.get("times_s") or range(n_steps))]
    if len(times) != n_steps:
        times = [float(t) for t in range(n_steps)]
    scan_data = registered_scans(root) if scans else None
    info: dict[str, Any] = {"dendritect": "export", "dendritect_version": __version__,
                            "format": fmt, "source": str(root.resolve()),
                            "voxel_size_um": voxel, "times_s": times,
                            "frame": "voxel i covers [i*d, (i+1)*d] um; step 0's frame"}

    def build(tmp: Path) -> None:
        arrays = {k: group[k] for k in (R.CRACK, R.LABELS, R.LITHIUM) if k in group}
        if fmt == "ome-zarr":
            image, name = (scan_data, "scans (registered)") if scans else (arrays[R.CRACK],
                                                                          "crack")
            labels = {"cracks": arrays[R.LABELS]} if R.LABELS in arrays else {}
            if R.LITHIUM in arrays:
                labels["lithium"] = arrays[R.LITHIUM]
            write_ome_zarr(tmp, image, voxel, times, labels=labels, name=name,
                           max_vox=max_vox, attrs={"source": info["source"]})
            info["image"] = name
            info["labels"] = sorted(labels)
            info["files"] = ["zarr.json"]
        elif fmt == "tiff":
            tmp.mkdir()
            files = []
            vols = dict(arrays)
            if scan_data is not None:
                vols["scans"] = scan_data
            for name, arr in vols.items():
                write_imagej_tiff(tmp / f"{name}.tif", arr, voxel, times)
                files.append(f"{name}.tif")
            if R.TIME_OF_ARRIVAL in group:
                toa = np.asarray(group[R.TIME_OF_ARRIVAL]).astype(np.float32)
                write_imagej_tiff(tmp / "time_of_arrival.tif", toa, voxel,
                                  info={"never": -1})
                files.append("time_of_arrival.tif")
            if R.PORES in group:
                write_imagej_tiff(tmp / "pores.tif", group[R.PORES], voxel, info={"pore": 1})
                files.append("pores.tif")
            info["files"] = files
        else:
            tmp.mkdir()
            labels = group[R.LABELS] if R.LABELS in group else np.zeros(group[R.CRACK].shape,
                                                                         np.int32)
            toa = group[R.TIME_OF_ARRIVAL] if R.TIME_OF_ARRIVAL in group else None
            rows = write_meshes(tmp, group[R.CRACK], labels, voxel, fmt=fmt,
                                time_of_arrival=toa, times_s=times)
            info["meshes"] = rows
            info["files"] = [r["file"] for r in rows]
        (tmp / EXPORT_MARKER).write_text(R.dumps_json(info), encoding="utf-8")

    _atomic_folder(out, build)
    return info


def _atomic_folder(out: Path, build: Callable[[Path], None]) -> None:
    """Build ``out`` under a temporary name beside it, then put it in place in one rename
    (an earlier export there is removed just before)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_parent = Path(tempfile.mkdtemp(prefix=f".{out.name}{TEMP_MARK}", dir=out.parent))
    tmp = tmp_parent / "out"
    try:
        build(tmp)
        if out.is_dir() and os.listdir(out):
            old = out.parent / f".{out.name}{TEMP_MARK}old-{os.getpid()}-{time.monotonic_ns()}"
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        elif out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp_parent)
