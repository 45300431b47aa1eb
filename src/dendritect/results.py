"""Writing a results folder: atomic files, the zarr stores, the marker and the resume record.

The life of a results folder ``DIR`` (each step survives a kill at any moment):

1. ``DIR/.dendritect.lock`` is taken (:mod:`dendritect.lock`): one run per folder.
2. ``DIR/.dendritect.json``, the marker, is written first, ``"state": "running"``, listing every
   file dendritect may write there. It is what makes ``DIR`` a dendritect results folder:
   ``analyze`` writes only into a new folder, an empty one or one with this marker, and
   ``--overwrite`` removes only the files the marker lists.
3. The run is built in ``DIR/.partial/``; ``DIR/.partial/state.json`` records the settings and
   every finished step so that an interrupted run resumes and gives the same bytes.
4. :func:`finish` writes ``.partial/summary.json``, then moves the results into ``DIR``,
   ``summary.json`` last, and drops ``.partial``. It is idempotent: a resume redoes any move
   a kill interrupted.
5. The report (``report.html``, ``figures/``, the movie) is written, each file under a temporary
   name and renamed.
6. :func:`mark_finished` removes stray temporary files and rewrites the marker with
   ``"state": "finished"`` and the files written. Only then does the run count as finished.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from dendritect.atomic import atomic_write_bytes, remove_temporaries
from dendritect.errors import InputError
from dendritect.faults import checkpoint
from dendritect.lock import LOCK_NAME

__all__ = [
    "DIMENSIONS",
    "MARKER",
    "OWN_NAMES",
    "PARTIAL",
    "REPORT_NAMES",
    "RESULT_NAMES",
    "abandon",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "create_array",
    "decimate_echem",
    "dumps_json",
    "finish",
    "is_finished",
    "mark_finished",
    "note_report",
    "prepare",
    "read_marker",
    "read_state",
    "write_csv",
    "write_echem_copy",
    "write_state",
]

PARTIAL = ".partial"
STATE = "state.json"
MARKER = ".dendritect.json"
#: What the analysis moves from ``.partial`` into the folder, in this order (summary last).
RESULT_NAMES = ("cracks.zarr", "previews.zarr", "metrics.csv", "cracks.csv", "echem.csv",
                "summary.json")
#: The figures the report saves (PNG and SVG of each).
REPORT_FIGURES = tuple(f"figures/report_{name}.{ext}"
                       for name in ("arrival", "front", "growth", "slices")
                       for ext in ("png", "svg"))
#: What the report writes.
REPORT_NAMES = ("report.html", "movie.gif", "movie.mp4", *REPORT_FIGURES)
#: What later commands add to a results folder (`dendritect fit`, `dendritect watch`).
LATER_NAMES = ("fit.json", "status.json")
#: Everything dendritect may write into a results folder (the marker lists these).
OWN_NAMES = (PARTIAL, *RESULT_NAMES, *REPORT_NAMES, *LATER_NAMES)
#: What versions before the marker wrote (folders with summary.json and no marker).
_LEGACY_NAMES = (PARTIAL, "cracks.zarr", "previews.zarr", "metrics.csv", "cracks.csv",
                 "summary.json", "report.html", "movie.gif", "movie.mp4", *REPORT_FIGURES)
#: Names that do not make a folder "not empty" (the lock of this very run).
_IGNORED = (LOCK_NAME, LOCK_NAME + ".takeover")


def _clean(obj: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any) -> str:
    """Stable JSON text (sorted keys, no NaN)."""
    return json.dumps(_clean(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomic UTF-8 text write."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomic, sorted-key JSON write."""
    return atomic_write_text(path, dumps_json(obj))


def write_csv(path: str | Path, table: pd.DataFrame) -> Path:
    """Atomic CSV write with a fixed float format (same data, same bytes)."""
    text = table.to_csv(index=False, float_format="%.9g", lineterminator="\n")
    return atomic_write_text(path, text)


#: The axes of the arrays of ``cracks.zarr`` and ``previews.zarr``, stored as each array's zarr
#: v3 ``dimension_names`` (so ``xarray.open_zarr`` names them).
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "crack": ("t", "z", "y", "x"), "lithium": ("t", "z", "y", "x"),
    "labels": ("t", "z", "y", "x"), "fraction": ("t", "z", "y", "x"),
    "time_of_arrival": ("z", "y", "x"),
    "yx": ("t", "y", "x"), "zx": ("t", "z", "x"), "zy": ("t", "z", "y"),
}


def create_array(group: zarr.Group, name: str, shape: tuple[int, ...], dtype: Any, *,
                 chunks: tuple[int, ...], fill_value: Any = 0,
                 attrs: dict[str, Any] | None = None,
                 dimension_names: tuple[str, ...] | None = None) -> zarr.Array:
    """Create (or replace) an array in a zarr v3 group, zstd-compressed by zarr's default.

    ``dimension_names`` defaults to :data:`DIMENSIONS` for the results' array names.
    """
    if dimension_names is None:
        dimension_names = DIMENSIONS.get(name)
    if dimension_names is not None and len(dimension_names) != len(shape):
        dimension_names = None
    arr = group.create_array(name, shape=shape, dtype=dtype, chunks=chunks,
                             fill_value=fill_value, overwrite=True,
                             dimension_names=dimension_names)
    if attrs:
        arr.attrs.update(_clean(attrs))
    return arr


def read_state(partial: Path) -> dict[str, Any] | None:
    """The resume record of an unfinished run, or None."""
    path = partial / STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_state(partial: Path, state: dict[str, Any]) -> None:
    atomic_write_json(partial / STATE, state)


def read_marker(out_dir: str | Path) -> dict[str, Any] | None:
    """The marker of a results folder, or None when there is none (or it is unreadable)."""
    try:
        info = json.loads((Path(out_dir) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("dendritect") == "results" else None


def _write_marker(out_dir: Path, state: str, files: list[str]) -> None:
    from dendritect import __version__

    atomic_write_json(out_dir / MARKER, {"dendritect": "results", "marker_version": 1,
                                         "dendritect_version": __version__, "state": state,
                                         "files": sorted(set(files))})


def _present(out_dir: Path, names: tuple[str, ...] | list[str]) -> list[str]:
    return [n for n in names if n != PARTIAL and (out_dir / n).exists()]


def _legacy(out_dir: Path) -> bool:
    """A folder written before the marker existed: its summary.json, or its resume record."""
    try:
        summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
        if isinstance(summary, dict) and "dendritect_version" in summary:
            return True
    except (OSError, ValueError):
        pass
    return (out_dir / PARTIAL / STATE).is_file()


def is_finished(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a finished run: its marker says so and every file it lists is
    there (or, for a folder written before the marker, summary.json is there)."""
    out_dir = Path(out_dir)
    marker = read_marker(out_dir)
    if marker is None:
        return (out_dir / "summary.json").is_file() and _legacy(out_dir)
    if marker.get("state") != "finished":
        return False
    return all((out_dir / n).exists() for n in marker.get("files", ()))


def _entries(out_dir: Path) -> list[str]:
    return sorted(n for n in os.listdir(out_dir) if n not in _IGNORED)


def _own_names(out_dir: Path) -> list[str]:
    marker = read_marker(out_dir)
    names = list(_LEGACY_NAMES) if marker is None else [str(n) for n in marker.get("files", ())]
    return [PARTIAL, *names]


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def remove_own(out_dir: str | Path) -> None:
    """Remove what dendritect wrote into ``out_dir`` (the marker's list), nothing else."""
    out_dir = Path(out_dir)
    for name in _own_names(out_dir):
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:  # a damaged marker never reaches outside
            continue
        _remove(out_dir / rel)
    for folder in (out_dir, out_dir / "figures"):
        remove_temporaries(folder)
    with contextlib.suppress(OSError):
        (out_dir / "figures").rmdir()  # only when empty: the user's own figures stay
    (out_dir / MARKER).unlink(missing_ok=True)


def _computed(out_dir: Path, partial: Path) -> bool:
    """Whether an unfinished run got as far as its summary (only moves and the report left)."""
    return (partial / "summary.json").is_file() or (out_dir / "summary.json").is_file()


def prepare(out_dir: Path, *, resume: bool, overwrite: bool) -> tuple[Path, str]:
    """Make ``out_dir`` and ``out_dir/.partial`` ready, under the folder's lock.

    Returns
    -------
    partial : Path
    phase : {"run", "finishing", "finished"}
        ``finished``: ``resume`` is set and ``out_dir`` already holds a finished run;
        ``finishing``: ``resume`` is set and the run was computed, only its last moves and the
        report are left (:func:`finish`, then the report); ``run``: analyse (from the steps
        recorded, when resuming).

    Raises
    ------
    InputError
        When ``out_dir`` is a file, holds files that are not dendritect's, or holds a finished
        run and neither ``resume`` nor ``overwrite`` is given.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / PARTIAL
    entries = _entries(out_dir)
    if entries and read_marker(out_dir) is None and not _legacy(out_dir):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise InputError(f"--out {out_dir} is not empty and is not a dendritect results folder "
                         f"(it holds {shown}); give a new or empty folder")
    phase = "run"
    if entries and is_finished(out_dir):
        if resume and not overwrite:
            return partial, "finished"
        if not overwrite:
            raise InputError(f"--out {out_dir} already holds a finished analysis; pass "
                             "--overwrite to replace it, or --resume to keep it")
        remove_own(out_dir)
    elif entries and (overwrite or not resume):
        # --overwrite, or an interrupted run that the user chose not to resume: start again.
        remove_own(out_dir)
    elif entries and _computed(out_dir, partial):
        phase = "finishing"
    # The marker first, listing everything this run may write, so that whatever moment the
    # run is stopped at, the folder is known as dendritect's and --overwrite knows its files.
    _write_marker(out_dir, "running", list(OWN_NAMES))
    partial.mkdir(parents=True, exist_ok=True)
    return partial, phase


def read_summary(out_dir: Path, partial: Path) -> dict[str, Any]:
    """The summary of a computed run (in ``.partial`` or already moved into ``out_dir``)."""
    for path in (out_dir / "summary.json", partial / "summary.json"):
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    raise InputError(f"--resume: {out_dir} has no summary.json to finish from")


def _describe_stores(partial: Path, summary: dict[str, Any]) -> None:
    """Voxel size, step times and axis units as attributes of the zarr groups in ``partial``
    (only their group metadata is rewritten; no array changes)."""
    voxel = summary.get("voxel_size_um")
    if voxel is None:
        return
    attrs = {"voxel_size_um": [float(v) for v in voxel],
             "axes_units": {"t": "second", "z": "micrometer", "y": "micrometer",
                            "x": "micrometer"}}
    if summary.get("times_s") is not None:
        attrs["times_s"] = [float(t) for t in summary["times_s"]]
    for name in ("cracks.zarr", "previews.zarr"):
        if (partial / name).is_dir():
            zarr.open_group(str(partial / name), mode="r+").attrs.update(_clean(attrs))


def finish(out_dir: Path, partial: Path, summary: dict[str, Any]) -> None:
    """Move the finished files into ``out_dir`` (``summary.json`` last) and drop ``.partial``.

    Idempotent: run again after a kill at any moment, it completes the moves left.
    """
    if not (out_dir / "summary.json").exists():
        _describe_stores(partial, summary)
        atomic_write_json(partial / "summary.json", summary)
    for name in RESULT_NAMES:
        src = partial / name
        dst = out_dir / name
        if not src.exists():
            continue  # moved already (or not written by this run)
        _remove(dst)
        checkpoint(f"finish:{name}")
        os.replace(src, dst)
    checkpoint("finish:partial")
    shutil.rmtree(partial, ignore_errors=True)


def note_report(out_dir: str | Path) -> None:
    """Record the report's files in the marker (its state unchanged); remove stray temporaries."""
    out_dir = Path(out_dir)
    for folder in (out_dir, out_dir / "figures"):
        remove_temporaries(folder)
    marker = read_marker(out_dir)
    if marker is None:
        return
    files = [str(n) for n in marker.get("files", ())]
    files += _present(out_dir, REPORT_NAMES)
    _write_marker(out_dir, str(marker.get("state", "running")), files)


def mark_finished(out_dir: str | Path) -> None:
    """The last step of a run: no temporary file left, the marker says finished and lists
    exactly the files written."""
    out_dir = Path(out_dir)
    checkpoint("mark_finished")
    for folder in (out_dir, out_dir / "figures"):
        remove_temporaries(folder)
    _write_marker(out_dir, "finished", _present(out_dir, OWN_NAMES))


def abandon(out_dir: str | Path, partial: Path) -> None:
    """Undo a run refused before any step was analysed: no ``.partial``, and no marker when the
    folder holds nothing else (a new folder is then removed by its lock on the way out)."""
    out_dir = Path(out_dir)
    shutil.rmtree(partial, ignore_errors=True)
    with contextlib.suppress(OSError):
        if _entries(out_dir) == [MARKER]:
            (out_dir / MARKER).unlink()


#: Rows kept in the results' copy of the cycler data.
ECHEM_MAX_ROWS = 20_000


def decimate_echem(df: pd.DataFrame, max_rows: int = ECHEM_MAX_ROWS) -> pd.DataFrame:
    """At most ``max_rows`` rows of a cycler table that keep its shape: in each of
    ``max_rows // 6`` equal runs of rows, the first and last rows, those of lowest and highest
    voltage, and the two rows either side of the largest voltage jump, so that a sharp drop
    (a short) stays as sharp as it was recorded."""
    cols = [c for c in ("time_s", "voltage_V", "current_mA", "charge_mAh") if c in df]
    table = df[cols].reset_index(drop=True)
    n = len(table)
    if n <= max_rows:
        return table
    buckets = max(1, max_rows // 6)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    v = table["voltage_V"].to_numpy(dtype=np.float64)
    jump = np.abs(np.diff(v, append=v[-1]))   # jump[i]: from row i to row i + 1
    jump[~np.isfinite(jump)] = 0.0
    keep = np.zeros(n, bool)
    for a, b in itertools.pairwise(edges.tolist()):
        if b <= a:
            continue
        seg = v[a:b]
        keep[[a, b - 1]] = True
        if np.isfinite(seg).any():
            keep[a + int(np.nanargmin(seg))] = True
            keep[a + int(np.nanargmax(seg))] = True
        j = a + int(np.argmax(jump[a:b]))
        keep[j] = True
        keep[min(j + 1, n - 1)] = True
    return table[keep].reset_index(drop=True)


def write_echem_copy(path: str | Path, df: pd.DataFrame) -> Path:
    """``echem.csv`` of a results folder: the cycler table (decimated to at most
    :data:`ECHEM_MAX_ROWS` rows), so the report draws the full-resolution trace."""
    return write_csv(path, decimate_echem(df))
