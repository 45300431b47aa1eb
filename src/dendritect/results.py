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

This module owns the layout of a results folder: the names of its files and of the arrays of
its zarr stores (the constants below), the columns its readers rely on, the writer (above)
and the reader (:func:`load_results`). Every other module names a result through these.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dendritect.atomic import atomic_write_bytes, remove_temporaries
from dendritect.errors import InputError
from dendritect.faults import checkpoint
from dendritect.lock import LOCK_NAME

if TYPE_CHECKING:  # imported where used: the names stay cheap to import (napari, and
    # `import dendritect`, whose reader takes its array names from here)
    import numpy as np
    import pandas as pd
    import zarr

__all__ = [
    "CRACK",
    "CRACKS_CSV",
    "CRACKS_ZARR",
    "CRACK_ARRAYS",
    "DIMENSIONS",
    "ECHEM_COLUMNS",
    "ECHEM_CSV",
    "ECHEM_REQUIRED",
    "FIGURES_DIR",
    "FIT_JSON",
    "FRACTION",
    "LABELS",
    "LATER_NAMES",
    "LITHIUM",
    "MARKER",
    "METRICS_CSV",
    "METRICS_REQUIRED",
    "METRIC_COLUMNS",
    "MOVIE_GIF",
    "MOVIE_MP4",
    "OWN_NAMES",
    "PARTIAL",
    "PORES",
    "PREVIEWS_ZARR",
    "PREVIEW_ARRAYS",
    "PREVIEW_YX",
    "PREVIEW_ZX",
    "PREVIEW_ZY",
    "REPORT_FIGURES",
    "REPORT_FIGURE_NAMES",
    "REPORT_FIGURE_PREFIX",
    "REPORT_HTML",
    "REPORT_NAMES",
    "RESULT_NAMES",
    "SLAB_VOXELS",
    "STATE",
    "STATUS_JSON",
    "SUMMARY_JSON",
    "TIME_OF_ARRIVAL",
    "Results",
    "abandon",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "create_array",
    "decimate_echem",
    "dumps_json",
    "finish",
    "is_finished",
    "iter_slabs",
    "load_results",
    "mark_finished",
    "note_report",
    "note_written",
    "prepare",
    "read_marker",
    "read_state",
    "read_summary",
    "remove_own",
    "write_csv",
    "write_echem_copy",
    "write_state",
]

# -- the layout: file names ---------------------------------------------------------------------

#: The run in progress is built in this subfolder (with its resume record, :data:`STATE`).
PARTIAL = ".partial"
STATE = "state.json"
MARKER = ".dendritect.json"
#: What the run found: settings, geometry, span, forecast (JSON).
SUMMARY_JSON = "summary.json"
#: One row per step (:data:`METRICS_REQUIRED` and more).
METRICS_CSV = "metrics.csv"
#: One row per crack and step.
CRACKS_CSV = "cracks.csv"
#: The cycler record, decimated (:func:`write_echem_copy`; columns :data:`ECHEM_COLUMNS`).
ECHEM_CSV = "echem.csv"
#: The volumes (:data:`CRACK_ARRAYS`).
CRACKS_ZARR = "cracks.zarr"
#: The slices through the cell at every step (:data:`PREVIEW_ARRAYS`).
PREVIEWS_ZARR = "previews.zarr"
REPORT_HTML = "report.html"
MOVIE_GIF = "movie.gif"
MOVIE_MP4 = "movie.mp4"
#: The report's figures: ``figures/report_<name>.png`` and ``.svg`` (``fit``: the model vs
#: measurement panel, drawn when :data:`FIT_JSON` is there).
FIGURES_DIR = "figures"
REPORT_FIGURE_PREFIX = "report_"
REPORT_FIGURE_NAMES = ("arrival", "front", "growth", "slices", "fit")
#: ``dendritect fit``'s result.
FIT_JSON = "fit.json"
#: ``dendritect watch``'s progress, rewritten after every step.
STATUS_JSON = "status.json"

# -- the layout: array names --------------------------------------------------------------------

#: Arrays of :data:`CRACKS_ZARR`: the crack mask (t, z, y, x; 1 crack), the lithium inside
#: cracks (1 lithium), the tracked crack ids, the crack fraction from the grey-level deficit,
#: the first step each voxel is crack (z, y, x; -1 never), and the pores of the first step
#: (z, y, x; 1 pore), which the crack-volume measurement leaves out.
CRACK = "crack"
LITHIUM = "lithium"
LABELS = "labels"
FRACTION = "fraction"
TIME_OF_ARRIVAL = "time_of_arrival"
PORES = "pores"
CRACK_ARRAYS = (CRACK, LITHIUM, LABELS, FRACTION, TIME_OF_ARRIVAL, PORES)
#: Arrays of :data:`PREVIEWS_ZARR`: the plane through the cell cut across z, y and x.
PREVIEW_YX = "yx"
PREVIEW_ZX = "zx"
PREVIEW_ZY = "zy"
PREVIEW_ARRAYS = (PREVIEW_YX, PREVIEW_ZX, PREVIEW_ZY)

# -- the layout: columns the readers rely on ----------------------------------------------------

#: The columns of :data:`METRICS_CSV`, in order, as the analysis writes it (cycler columns
#: follow them when there is a cycler record).
METRIC_COLUMNS = [
    "t_index", "time_s", "front_depth_um", "front_depth_any_um", "li_front_depth_um",
    "crack_volume_um3", "crack_area_um2", "projected_area_um2", "n_cracks", "spanning",
    "shift_dz_vox", "shift_dy_vox", "shift_dx_vox",
]
#: Columns every :data:`METRICS_CSV` has (the report refuses one without them).
METRICS_REQUIRED = ("t_index", "time_s", "front_depth_um", "crack_volume_um3", "n_cracks")
#: Columns :data:`ECHEM_CSV` keeps of the cycler table (those it has).
ECHEM_COLUMNS = ("time_s", "voltage_V", "current_mA", "charge_mAh")
#: Columns without which the report does not draw the cycler trace.
ECHEM_REQUIRED = ("time_s", "voltage_V")

# -- the layout: what each command writes ---------------------------------------------------------

#: What the analysis moves from ``.partial`` into the folder, in this order (summary last).
RESULT_NAMES = (CRACKS_ZARR, PREVIEWS_ZARR, METRICS_CSV, CRACKS_CSV, ECHEM_CSV, SUMMARY_JSON)


def _figure_files(names: tuple[str, ...]) -> tuple[str, ...]:
    """The PNG and SVG file of each report figure named, as paths in a results folder."""
    return tuple(f"{FIGURES_DIR}/{REPORT_FIGURE_PREFIX}{name}.{ext}"
                 for name in names for ext in ("png", "svg"))


#: The figures the report saves (PNG and SVG of each).
REPORT_FIGURES = _figure_files(REPORT_FIGURE_NAMES)
#: What the report writes.
REPORT_NAMES = (REPORT_HTML, MOVIE_GIF, MOVIE_MP4, *REPORT_FIGURES)
#: What later commands add to a results folder (`dendritect fit`, `dendritect watch`).
LATER_NAMES = (FIT_JSON, STATUS_JSON)
#: Everything dendritect may write into a results folder (the marker lists these).
OWN_NAMES = (PARTIAL, *RESULT_NAMES, *REPORT_NAMES, *LATER_NAMES)
#: What versions before the marker wrote (folders with summary.json and no marker; the fit
#: figure came later).
_LEGACY_NAMES = (PARTIAL, CRACKS_ZARR, PREVIEWS_ZARR, METRICS_CSV, CRACKS_CSV, SUMMARY_JSON,
                 REPORT_HTML, MOVIE_GIF, MOVIE_MP4,
                 *_figure_files(("arrival", "front", "growth", "slices")))
#: Names that do not make a folder "not empty" (the lock of this very run).
_IGNORED = (LOCK_NAME, LOCK_NAME + ".takeover")


def _clean(obj: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null, tuples to lists."""
    import numpy as np

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
    CRACK: ("t", "z", "y", "x"), LITHIUM: ("t", "z", "y", "x"),
    LABELS: ("t", "z", "y", "x"), FRACTION: ("t", "z", "y", "x"),
    TIME_OF_ARRIVAL: ("z", "y", "x"), PORES: ("z", "y", "x"),
    PREVIEW_YX: ("t", "y", "x"), PREVIEW_ZX: ("t", "z", "x"), PREVIEW_ZY: ("t", "z", "y"),
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


def _version() -> str:
    """The installed package's version, read as ``dendritect.__version__`` is.

    Not imported from the package: the package imports the reader (:mod:`dendritect.reading`),
    which names its files from here, and the import would close a cycle.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dendritect")
    except PackageNotFoundError:  # pragma: no cover - a source tree without install
        return "0.0.0+unknown"


def _write_marker(out_dir: Path, state: str, files: list[str]) -> None:
    atomic_write_json(out_dir / MARKER, {"dendritect": "results", "marker_version": 1,
                                         "dendritect_version": _version(), "state": state,
                                         "files": sorted(set(files))})


def _present(out_dir: Path, names: tuple[str, ...] | list[str]) -> list[str]:
    return [n for n in names if n != PARTIAL and (out_dir / n).exists()]


def _legacy(out_dir: Path) -> bool:
    """A folder written before the marker existed: its summary.json, or its resume record."""
    try:
        summary = json.loads((out_dir / SUMMARY_JSON).read_text(encoding="utf-8"))
        if isinstance(summary, dict) and "dendritect_version" in summary:
            return True
    except (OSError, ValueError):
        pass
    return (out_dir / PARTIAL / STATE).is_file()


def is_finished(out_dir: str | Path) -> bool:
    """Whether ``out_dir`` holds a finished run: its marker says so and every file it lists is
    there (or, for a folder written before the marker, summary.json is there). The files of
    later commands (:data:`LATER_NAMES`) are not part of the run: one removed leaves it whole."""
    out_dir = Path(out_dir)
    marker = read_marker(out_dir)
    if marker is None:
        return (out_dir / SUMMARY_JSON).is_file() and _legacy(out_dir)
    if marker.get("state") != "finished":
        return False
    return all((out_dir / n).exists() for n in marker.get("files", ()) if n not in LATER_NAMES)


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
    for folder in (out_dir, out_dir / FIGURES_DIR):
        remove_temporaries(folder)
    with contextlib.suppress(OSError):
        (out_dir / FIGURES_DIR).rmdir()  # only when empty: the user's own figures stay
    (out_dir / MARKER).unlink(missing_ok=True)


def _computed(out_dir: Path, partial: Path) -> bool:
    """Whether an unfinished run got as far as its summary (only moves and the report left)."""
    return (partial / SUMMARY_JSON).is_file() or (out_dir / SUMMARY_JSON).is_file()


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
    for path in (out_dir / SUMMARY_JSON, partial / SUMMARY_JSON):
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    raise InputError(f"--resume: {out_dir} has no {SUMMARY_JSON} to finish from")


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
    import zarr

    for name in (CRACKS_ZARR, PREVIEWS_ZARR):
        if (partial / name).is_dir():
            zarr.open_group(str(partial / name), mode="r+").attrs.update(_clean(attrs))


#: A chunk zarr's local store was writing when the run was killed: ``<key>.<uuid hex>.partial``.
_STORE_TEMPORARY = re.compile(r"\.[0-9a-f]{32}\.partial$")


def remove_store_temporaries(store: str | Path) -> list[Path]:
    """Remove the half-written chunk files a kill left inside a zarr store (zarr writes a
    chunk to a temporary file and renames it; a resume rewrites the chunk, not the file)."""
    store = Path(store)
    if not store.is_dir():
        return []
    stray = [q for q in store.rglob("*.partial") if q.is_file() and _STORE_TEMPORARY.search(q.name)]
    for q in stray:
        q.unlink(missing_ok=True)
    return stray


def finish(out_dir: Path, partial: Path, summary: dict[str, Any]) -> None:
    """Move the finished files into ``out_dir`` (``summary.json`` last) and drop ``.partial``.

    Idempotent: run again after a kill at any moment, it completes the moves left.
    """
    if not (out_dir / SUMMARY_JSON).exists():
        _describe_stores(partial, summary)
        atomic_write_json(partial / SUMMARY_JSON, summary)
    for name in RESULT_NAMES:
        src = partial / name
        dst = out_dir / name
        if not src.exists():
            continue  # moved already (or not written by this run)
        remove_store_temporaries(src)
        _remove(dst)
        checkpoint(f"finish:{name}")
        os.replace(src, dst)
    checkpoint("finish:partial")
    shutil.rmtree(partial, ignore_errors=True)


def note_written(out_dir: str | Path, names: tuple[str, ...] | list[str]) -> None:
    """Record in the marker those of ``names`` that are in ``out_dir`` (its state unchanged),
    so that ``--overwrite`` removes them: what a command run after the analysis wrote.

    A folder without a marker is left as it is.
    """
    out_dir = Path(out_dir)
    marker = read_marker(out_dir)
    if marker is None:
        return
    files = [str(n) for n in marker.get("files", ())]
    files += _present(out_dir, names)
    _write_marker(out_dir, str(marker.get("state", "running")), files)


def note_report(out_dir: str | Path) -> None:
    """Record the report's files in the marker (its state unchanged); remove stray temporaries.

    The later commands' files are recorded too: the report draws :data:`FIT_JSON`, which a
    version that did not record it may have left unlisted.
    """
    out_dir = Path(out_dir)
    for folder in (out_dir, out_dir / FIGURES_DIR):
        remove_temporaries(folder)
    note_written(out_dir, (*REPORT_NAMES, *LATER_NAMES))


def mark_finished(out_dir: str | Path) -> None:
    """The last step of a run: no temporary file left, the marker says finished and lists
    exactly the files written."""
    out_dir = Path(out_dir)
    checkpoint("mark_finished")
    for folder in (out_dir, out_dir / FIGURES_DIR):
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
    import numpy as np

    cols = [c for c in ECHEM_COLUMNS if c in df]
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
    """:data:`ECHEM_CSV` of a results folder: the cycler table (decimated to at most
    :data:`ECHEM_MAX_ROWS` rows), so the report draws the full-resolution trace."""
    return write_csv(path, decimate_echem(df))


# -- the reader ---------------------------------------------------------------------------------

#: Voxels read at once when streaming a volume in z-slabs (about 64 MB of int16).
SLAB_VOXELS = 32 * 2**20


def iter_slabs(shape_zyx: tuple[int, ...], *, multiple: int = 1,
               voxels: int | None = None) -> Iterator[tuple[int, int]]:
    """``(z0, z1)`` ranges of z-slabs of about ``voxels`` voxels (:data:`SLAB_VOXELS` by
    default; a multiple of ``multiple`` planes), so a volume larger than memory is read piece
    by piece."""
    import numpy as np

    voxels = SLAB_VOXELS if voxels is None else int(voxels)
    nz = int(shape_zyx[0])
    plane = max(1, int(np.prod(shape_zyx[1:])))
    step = max(multiple, (voxels // plane) // multiple * multiple)
    for z0 in range(0, nz, step):
        yield z0, min(nz, z0 + step)


@dataclass
class Results:
    """What a results folder holds, read by :func:`load_results`.

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
        import numpy as np

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
    import pandas as pd

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
    import numpy as np

    axis = {PREVIEW_YX: "z", PREVIEW_ZX: "y", PREVIEW_ZY: "x"}[view]
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
    import numpy as np
    import pandas as pd
    import zarr

    root = Path(results_dir)
    if not root.is_dir():
        raise InputError(f"results folder not found: {root}")
    if not (root / SUMMARY_JSON).is_file():
        raise InputError(f"{root} is not a results folder: {SUMMARY_JSON} is missing")
    summary = _read_json(root / SUMMARY_JSON)
    if not (root / METRICS_CSV).is_file():
        raise InputError(f"{root} is not a results folder: {METRICS_CSV} is missing")
    metrics = _read_csv(root / METRICS_CSV, METRICS_REQUIRED)
    metrics = metrics.sort_values("t_index").reset_index(drop=True)
    cracks = (_read_csv(root / CRACKS_CSV) if (root / CRACKS_CSV).is_file()
              else pd.DataFrame())

    res = Results(root=root, summary=summary, metrics=metrics, cracks=cracks)
    if (root / CRACKS_ZARR).exists():
        try:
            grp = zarr.open_group(str(root / CRACKS_ZARR), mode="r")
            if CRACK in grp:
                res.crack = grp[CRACK]
            if TIME_OF_ARRIVAL in grp:
                res.time_of_arrival = grp[TIME_OF_ARRIVAL]
        except Exception as exc:  # zarr raises several types for a damaged store
            raise InputError(f"cannot read {root / CRACKS_ZARR}: {exc}") from None
    if res.time_of_arrival is None and res.crack is not None:
        res.time_of_arrival = _arrival_from_masks(res.crack)
    res.echem, res.echem_source = _read_echem(root, summary)
    if (root / PREVIEWS_ZARR).exists():
        try:
            grp = zarr.open_group(str(root / PREVIEWS_ZARR), mode="r")
            for view in PREVIEW_ARRAYS:
                if view in grp:
                    arr = grp[view]
                    res.previews[view] = np.asarray(arr[...], dtype=np.float32)
                    res.preview_index[view] = _preview_index(arr, view, res.shape_zyx, summary)
        except Exception as exc:
            raise InputError(f"cannot read {root / PREVIEWS_ZARR}: {exc}") from None
    return res


def _read_echem(root: Path, summary: dict[str, Any]) -> tuple[pd.DataFrame | None, str | None]:
    """The full cycler record: the results' copy (echem.csv), else the file named in the
    parameters (read again), else None."""
    import pandas as pd

    copy = root / ECHEM_CSV
    if copy.is_file():
        try:
            df = pd.read_csv(copy)
        except (OSError, ValueError):
            df = None
        if df is not None and set(ECHEM_REQUIRED) <= set(df.columns):
            return df, ECHEM_CSV
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
    import numpy as np

    toa = np.full(crack.shape[1:], -1, dtype=np.int16)
    for z0, z1 in iter_slabs(crack.shape[1:]):
        sub = toa[z0:z1]
        for t in range(crack.shape[0]):
            sub[(np.asarray(crack[t, z0:z1]) > 0) & (sub < 0)] = t
    return toa
