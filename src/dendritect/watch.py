"""Live analysis of a CT series while it is acquired (``dendritect watch``).

Two pieces, usable on their own:

* :func:`complete_steps` looks at a growing input (a folder of 3D TIFFs, a folder of per-step
  slice folders, a ``dendritect simulate`` dataset folder, or an HDF5/NeXus file whose 4D
  dataset grows along t) and says how many scans, counted from the first, are complete. A scan
  counts only when its files did not change between two looks (size and modification time)
  and it parses whole with the shape of the first scan; a half-written file is never counted.
* :func:`watch` polls the input, analyses each new complete scan with the pipeline's stage
  functions (:mod:`dendritect.pipeline`, called as :func:`~dendritect.pipeline.analyze`
  calls them), and after every step publishes the results into ``DIR`` (a valid, finished
  results folder of the steps so far), rewrites ``DIR/status.json`` and, when the crack
  spans, is forecast to span within ``alarm_before_s`` or the cycler shows the short, raises
  the alarm once.

How a step is added (the stages are the batch ones, so the results are the same):

* The series the stages read is the first ``N`` complete scans (a folder of links to them, or
  a copy of the HDF5 file's complete steps), opened with the user's options and named after
  the real input; the settings recorded (and the resume record's fingerprint) are those of a
  batch run (:func:`~dendritect.pipeline.analysis_settings`).
* The run (:func:`~dendritect.pipeline.prepare_cell`: the cell on step 0, the anode side, the
  plan, the stores in ``DIR/.partial/watch/run``) is made once and kept in memory; for scan
  ``N + 1`` its stores grow by one step (:func:`~dendritect.pipeline.grow_run`), and
  :func:`~dendritect.pipeline.segment_steps` segments that step alone.
* Tracking and measurement are incremental: a :class:`~dendritect.pipeline.CrackTracker`
  kept in memory tracks and measures the new step only; the whole-track passes (time of
  arrival, rooting along tracks, the span, the forecast) then run over the tables kept, as in
  batch, where each of them depends only on the steps up to its own.
* The results are finished as ``analyze`` finishes them (:func:`dendritect.results.finish`)
  in a staging folder whose stores are trees of hard links to the run's, then moved into
  ``DIR``; then ``status.json``, the report and the marker.

Nothing of the pipeline is replaced while it runs; one process may run other analyses
beside a watch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import gc
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dendritect import results as R
from dendritect.atomic import file_signature
from dendritect.errors import InputError
from dendritect.measure.cracks import SPAN_TOLERANCE_VOX

__all__ = ["ALARM_ENV", "Alarm", "StepScan", "complete_steps", "watch"]

#: Where the watch keeps its own state inside the results folder (removed when it ends).
WATCH_DIR = "watch"
#: The status file the outside contract names.
STATUS = R.STATUS_JSON

#: Environment variables given to the --on-alarm command.
ALARM_ENV = {
    "DENDRITECT_ALARM_REASON": "the alarm's one-line reason",
    "DENDRITECT_ALARM_KIND": "span, forecast or short",
    "DENDRITECT_ALARM_TIME_S": "acquisition time of the latest scan when raised, s",
    "DENDRITECT_ALARM_STEP": "t_index of that scan",
    "DENDRITECT_FORECAST_SPAN_TIME_S": "forecast span time, s (empty when none)",
    "DENDRITECT_FORECAST_SPAN_SIGMA_S": "its one-sigma uncertainty, s (empty when none)",
    "DENDRITECT_SPAN_INDEX": "first spanning step (empty when none)",
    "DENDRITECT_SHORT_TIME_S": "short seen in the cycler data, s (empty when none)",
    "DENDRITECT_RESULTS": "the results folder",
    "DENDRITECT_STATUS": "path of status.json",
}

_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5", ".nx", ".h5nx")


# --------------------------------------------------------------------------------------------
# Which scans are complete
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StepScan:
    """One look at a growing input.

    Attributes
    ----------
    kind : str
        ``"tiff-files"``, ``"slice-folders"``, ``"simulate"`` or ``"hdf5"`` (``"empty"`` while
        nothing has arrived).
    names : tuple of str
        The steps seen, in order (file or folder names; ``"t=K"`` in an HDF5 dataset).
    signatures : tuple
        What each step looked like (sizes and modification times of its files).
    n_complete : int
        How many steps, counted from the first, are complete.
    waiting : str or None
        Why the next step does not count yet.
    parts : tuple
        The files of each step (a TIFF file, or a folder's slice files).
    shape_zyx : tuple of int or None
        The shape of the first complete step; every later step must have it.
    verified : dict
        Steps found to parse whole, by name, with the signature they had (not read again while
        it stays the same).
    looked_at : float
        ``time.monotonic()`` of this look.
    """

    kind: str
    names: tuple[str, ...]
    signatures: tuple[Any, ...]
    n_complete: int
    waiting: str | None = None
    parts: tuple[tuple[Path, ...], ...] = ()
    shape_zyx: tuple[int, int, int] | None = None
    verified: dict[str, Any] = dataclasses.field(default_factory=dict)
    looked_at: float = 0.0




def _is_hdf5(path: Path) -> bool:
    if path.suffix.lower() in _HDF5_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def _tiffs(folder: Path) -> list[Path]:
    from dendritect.io._common import is_tiff_name, list_dir

    try:
        return [p for p in list_dir(folder) if p.is_file() and is_tiff_name(p)]
    except InputError:
        return []


def _layout(path: Path) -> tuple[str, list[str], list[tuple[Path, ...]]]:
    """The kind of a growing input, and its steps so far: names and the files of each."""
    from dendritect.io._common import list_dir

    if path.is_file():
        if _is_hdf5(path):
            return "hdf5", [], []
        raise InputError(f"{path}: watch reads a folder of 3D TIFF files, a folder of per-step "
                         "slice folders, a dataset folder or an HDF5/NeXus file")
    if not path.is_dir():
        raise InputError(f"input not found: {path}")
    if (path / "dataset.json").is_file():
        files = _tiffs(path / "scans")
        return "simulate", [f.name for f in files], [(f,) for f in files]
    files = _tiffs(path)
    if files:
        return "tiff-files", [f.name for f in files], [(f,) for f in files]
    steps = []
    for d in list_dir(path):
        if d.is_dir():
            sl = _tiffs(d)
            if sl:
                steps.append((d.name, tuple(sl)))
    if steps:
        return "slice-folders", [n for n, _ in steps], [s for _, s in steps]
    return "empty", [], []


def _tiff_volume_shape(path: Path) -> tuple[int, int, int]:
    """The shape of a 3D TIFF that parses whole (header inside the file, every page decoded);
    InputError otherwise."""
    from dendritect.io import open_series

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        series = open_series(path)
    if series.n_steps != 1:
        raise InputError(f"{path}: {series.n_steps} steps in one file (a 3D volume is needed)")
    data = series.data[0]
    nz = int(data.shape[0])
    step = max(1, int(data.chunksize[0]))
    try:
        for z0 in range(0, nz, step):  # decode it all, a chunk of planes at a time
            np.asarray(data[z0:z0 + step])
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot decode ({exc})") from None
    return series.shape_zyx


def _slice_shape(path: Path) -> tuple[int, int]:
    import tifffile

    try:
        img = np.squeeze(tifffile.imread(path))
    except Exception as exc:
        raise InputError(f"{path}: cannot read slice ({exc})") from None
    if img.ndim != 2:
        raise InputError(f"{path}: a slice must be a 2D image, got shape {img.shape}")
    return (int(img.shape[0]), int(img.shape[1]))


def complete_steps(path: str | Path, *, dataset: str | None = None,
                   before: StepScan | None = None) -> StepScan:
    """How many scans of a growing input are complete.

    A step counts when (1) its files are the same (size and modification time) as at the
    previous look ``before``, (2) it parses whole: a TIFF's header lies within the file and every
    page decodes, a slice folder has the slice count of the first step (the first step: its
    count did not change between the looks) and every slice reads, an HDF5 step lies within the
    dataset, all its chunks are stored and it reads; (3) its shape is that of the first step;
    and (4) every step before it counts. Steps found whole are not read again while their files
    stay the same.

    Parameters
    ----------
    path : str or Path
        The growing input.
    dataset : str, optional
        The 4D dataset inside an HDF5/NeXus file (found when there is only one).
    before : StepScan, optional
        The previous look; without it nothing counts yet (a file is complete only once seen
        unchanged across a poll).

    Returns
    -------
    StepScan
        Pass it as ``before`` to the next call.

    Raises
    ------
    InputError
        When the input does not exist or is of a kind that cannot grow (a single TIFF).
    """
    path = Path(path)
    now = time.monotonic()
    kind, names, parts = _layout(path)
    if kind == "hdf5":
        return _complete_hdf5(path, dataset, before, now)
    sigs = tuple(tuple(file_signature(f) for f in files) for files in parts)
    prev = {} if before is None or before.kind != kind else dict(zip(before.names,
                                                                  before.signatures,
                                                                  strict=True))
    verified = {} if before is None or before.kind != kind else dict(before.verified)
    shape = None if before is None or before.kind != kind else before.shape_zyx
    n = 0
    waiting = None if names else "no scan yet"
    for name, files, sig in zip(names, parts, sigs, strict=True):
        if any(s is None for s in sig):
            waiting = f"{name}: a file went away while looked at"
            break
        if prev.get(name) != sig:
            waiting = f"{name}: still being written (changed since the last look)"
            break
        if verified.get(name) != sig:
            try:
                if kind == "slice-folders":
                    got = _slice_step_shape(files, shape)
                else:
                    got = _tiff_volume_shape(files[0])
            except InputError as exc:
                waiting = f"{name}: not whole yet ({exc})"
                break
            if shape is not None and got != shape:
                waiting = f"{name}: shape {got} differs from the first scan's {shape}"
                break
            shape = got if shape is None else shape
            verified[name] = sig
        n += 1
    return StepScan(kind, tuple(names), sigs, n, waiting, tuple(parts), shape, verified, now)


def _slice_step_shape(files: tuple[Path, ...], shape: tuple[int, int, int] | None
                      ) -> tuple[int, int, int]:
    if shape is not None and len(files) != shape[0]:
        raise InputError(f"{len(files)} of {shape[0]} slices")
    yx = None
    for f in files:
        s = _slice_shape(f)
        if yx is not None and s != yx:
            raise InputError(f"{f}: slice of shape {s} differs from the others' {yx}")
        yx = s
    assert yx is not None
    return (len(files), *yx)


def _hdf5_dataset(f: Any, dataset: str | None, path: Path) -> Any:
    import h5py

    if dataset is not None:
        obj = f.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            raise InputError(f"--dataset {dataset}: no such dataset in {path}")
        return obj
    found: list[Any] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim == 4 and obj.dtype.kind in "uif":
            found.append(obj)

    f.visititems(visit)
    if not found:
        return None  # none written yet
    if len(found) > 1:
        raise InputError(f"{path}: {len(found)} 4D datasets; name the growing one with --dataset")
    return found[0]


def _chunks_stored(ds: Any, t: int) -> bool:
    """Whether every chunk of step ``t`` of a chunked dataset has been written."""
    if ds.chunks is None:
        return True
    try:
        per = [int(np.ceil(s / c)) for s, c in zip(ds.shape[1:], ds.chunks[1:], strict=True)]
        t0 = (t // ds.chunks[0]) * ds.chunks[0]
        for idx in np.ndindex(*per):
            off = (t0, *(i * c for i, c in zip(idx, ds.chunks[1:], strict=True)))
            info = ds.id.get_chunk_info_by_coord(off)
            if info.byte_offset is None:
                return False
    except Exception:
        return True
    return True


def _complete_hdf5(path: Path, dataset: str | None, before: StepScan | None,
                   now: float) -> StepScan:
    import h5py

    sig = file_signature(path)
    prev_sig = None if before is None or before.kind != "hdf5" or not before.signatures \
        else before.signatures[0]
    shape = None
    names: list[str] = []
    n = 0
    waiting = None
    try:
        with h5py.File(path, "r", locking=False) as f:
            ds = _hdf5_dataset(f, dataset, path)
            if ds is None:
                return StepScan("hdf5", (), (sig,), 0, f"{path}: no 4D dataset yet", (), None,
                                {}, now)
            nt = int(ds.shape[0])
            names = [f"t={k}" for k in range(nt)]
            shape = tuple(int(s) for s in ds.shape[1:])
            if sig != prev_sig:
                waiting = "the file changed since the last look"
            else:
                for k in range(nt):
                    if not _chunks_stored(ds, k):
                        waiting = f"t={k}: not all of its chunks are written yet"
                        break
                    np.asarray(ds[k, -1])  # the last plane reads
                    n += 1
                if n == nt and not waiting:
                    waiting = None
    except InputError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        waiting = f"{path}: cannot be read now ({exc})"
        n = 0
    return StepScan("hdf5", tuple(names), (sig,) * max(1, len(names)), n, waiting,
                    (), shape, {}, now)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# The series the analysis sees: the complete scans only
# --------------------------------------------------------------------------------------------

def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)


def _hdf5_view(input_path: Path, dataset: str | None, n: int, view: Path) -> Path:
    """A copy of the HDF5 file that the analysis reads in place of the live one: the same
    groups, attributes and small datasets, and the growing dataset with the first ``n`` steps
    copied (one new step at a time). The analysis then never opens the file a writer holds
    (HDF5 locks a file it reads), and never reads a step the writer is still changing."""
    import gc

    import h5py

    gc.collect()  # the previous analysis' handles on the view: closed before it is changed
    target = view / "live.h5"
    progress = view / "copied.json"
    view.mkdir(parents=True, exist_ok=True)
    try:
        copied = int(json.loads(progress.read_text(encoding="utf-8"))["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        copied = 0
        target.unlink(missing_ok=True)
    with h5py.File(input_path, "r", locking=False) as src, \
            h5py.File(target, "a", locking=False) as dst:
        grow = _hdf5_dataset(src, dataset, input_path)
        if grow is None:
            raise InputError(f"{input_path}: no 4D dataset")
        dst.attrs.update(dict(src.attrs))

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Group):
                g = dst.require_group(name)
                g.attrs.update(dict(obj.attrs))
            elif isinstance(obj, h5py.Dataset) and obj.name != grow.name:
                if name in dst and dst[name].shape == obj.shape:
                    return
                if name in dst:
                    del dst[name]
                parent = name.rpartition("/")[0]
                src.copy(obj, dst.require_group(parent) if parent else dst,
                         name.rpartition("/")[2])

        src.visititems(visit)
        key = grow.name.lstrip("/")
        if key not in dst:
            parent = key.rpartition("/")[0]
            (dst.require_group(parent) if parent else dst).create_dataset(
                key.rpartition("/")[2], shape=grow.shape, maxshape=grow.maxshape,
                chunks=grow.chunks, dtype=grow.dtype, fillvalue=grow.fillvalue)
            dst[key].attrs.update(dict(grow.attrs))
            copied = 0
        out = dst[key]
        if out.shape != grow.shape:
            out.resize(grow.shape)
        for k in range(copied, n):
            out[k] = grow[k]
    R.atomic_write_json(progress, {"steps": n})
    return target


def _build_view(scan: StepScan, input_path: Path, n: int, view: Path,
                dataset: str | None = None) -> Path:
    """A folder that the readers open as the first ``n`` steps of ``input_path`` (links to its
    files); for an HDF5 input, a copy of the file with its first ``n`` steps (cut to ``n``
    steps when opened)."""
    if scan.kind == "hdf5":
        return _hdf5_view(input_path, dataset, n, view)
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    if scan.kind == "tiff-files":
        for files in scan.parts[:n]:
            _link(files[0], view / files[0].name)
    elif scan.kind == "slice-folders":
        for name, files in zip(scan.names[:n], scan.parts[:n], strict=True):
            for f in files:
                _link(f, view / name / f.name)
    elif scan.kind == "simulate":
        info = json.loads((input_path / "dataset.json").read_text(encoding="utf-8"))
        if isinstance(info, dict):
            for key in ("times_s",):
                if isinstance(info.get(key), list) and len(info[key]) > n:
                    info[key] = info[key][:n]
            if "n_steps" in info:
                info["n_steps"] = n
        (view / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
        for files in scan.parts[:n]:
            _link(files[0], view / "scans" / files[0].name)
    else:
        raise InputError(f"{input_path}: nothing to analyse yet")
    return view


def _open_steps(scan: StepScan, input_path: Path, n: int, view: Path,
                options: dict[str, Any]) -> Any:
    """The first ``n`` complete steps of the input as the analysis reads them: the series
    :func:`dendritect.io.open_series` opens with the analysis options, cut to ``n`` steps
    (read from a view of the complete steps, :func:`_build_view`) and named after the input."""
    from dendritect.io import open_series

    view_path = _build_view(scan, input_path, n, view, options.get("dataset"))
    ts = options.get("times_s")
    kwargs = {"dataset": options.get("dataset"), "voxel_size": options.get("voxel_size"),
              "interval": options.get("interval"), "times_s": None}
    if ts is not None:
        ts = list(ts)
        if len(ts) < n:
            raise InputError(f"--times-s gives {len(ts)} times; scan {len(ts)} has none")
        if scan.kind != "hdf5":
            kwargs["times_s"] = ts[:n]  # an HDF5 view may hold more steps: applied after the cut
    series = open_series(view_path, **kwargs)
    if series.n_steps < n:
        raise InputError(f"{input_path}: {series.n_steps} steps readable, {n} expected")
    times = np.asarray(series.times_s, dtype=np.float64)[:n]
    if scan.kind == "hdf5" and ts is not None:
        times = np.asarray(ts[:n], dtype=np.float64)
    return dataclasses.replace(series, data=series.data[:n], times_s=times,
                               source=str(input_path))


# --------------------------------------------------------------------------------------------
# The run: the pipeline's stage functions, step by step, with their state kept in memory
# --------------------------------------------------------------------------------------------

class _Run:
    """The analysis of the complete steps, in ``work``: the pipeline's stage functions
    (:mod:`dendritect.pipeline`) called as :func:`~dendritect.pipeline.analyze` calls them,
    with what they found kept between steps.

    * ``work / "run"``: the run's stores and resume record (:class:`AnalysisRun` ``partial``),
      grown by one step per scan (:func:`~dendritect.pipeline.grow_run`); only the new step is
      segmented (:func:`~dendritect.pipeline.segment_steps`).
    * The cell found on step 0, the plan and the tracking state
      (:class:`~dendritect.pipeline.CrackTracker`: ids, time of arrival, each step's tables)
      stay in memory: a new step is tracked and measured alone, then the whole-track passes
      run over the tables kept.
    * ``work / "stage"``: the results of the steps so far, finished as ``analyze`` finishes
      them (:func:`dendritect.results.finish`; the stores as trees of hard links to the run's,
      so a published chunk never changes: the run writes a chunk under a new name and renames
      it), then moved into the results folder by :meth:`publish`.
    """

    def __init__(self, input_path: Path, work: Path, options: dict[str, Any]) -> None:
        from dendritect.pipeline import analysis_settings

        self.input = input_path
        self.work = work
        self.dir = work / "run"
        self.stage = work / "stage"
        self.view = work / "view"
        self.options = options
        o = options
        self.settings, self.fingerprint = analysis_settings(
            input_path, voxel_size=o.get("voxel_size"), dataset=o.get("dataset"),
            times_s=o.get("times_s"), interval=o.get("interval"), anode=o.get("anode", "auto"),
            echem=o.get("echem"), params=o.get("params"),
            min_overlap_vox=o.get("min_overlap_vox", 1),
            span_tolerance_vox=o.get("span_tolerance_vox", SPAN_TOLERANCE_VOX),
            ring_correction=bool(o.get("ring_correction", False)))
        self.run: Any = None       # AnalysisRun of the steps so far
        self.tracker: Any = None   # CrackTracker over them
        self.summary: dict[str, Any] | None = None
        self.staged = False
        self.trashed = 0
        self.decided_at: int | None = None

    def done(self) -> list[int]:
        """The steps segmented so far."""
        state = self.run.state if self.run is not None else R.read_state(self.dir)
        return [] if not state else [int(t) for t in state.get("done", [])]

    def _series(self, scan: StepScan, n: int) -> Any:
        if scan.kind == "hdf5" and self.run is not None:
            # the view file is extended in place: no handle of ours on it may stay open
            self.run.series = None
            if not isinstance(self.run.reference, np.ndarray):
                self.run.reference = None
            _settle_memory()  # collected even if held when the last step was frozen
        return _open_steps(scan, self.input, n, self.view, self.options)

    def _start(self, series: Any) -> None:
        from dendritect.pipeline import grow_run, prepare_cell

        state = R.read_state(self.dir)  # a resumed watch continues its run
        if state is not None and state.get("fingerprint") != self.fingerprint:
            state = None
        if state is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        # the scans the anode side was decided on (None: by an earlier watch, resumed)
        self.decided_at = int(series.n_steps) if state is None else None
        o = self.options
        self.run = prepare_cell(series, self.dir, anode=o.get("anode", "auto"), state=state,
                                fingerprint=self.fingerprint,
                                ring_correction=bool(o.get("ring_correction", False)),
                                force_units=bool(o.get("force_units", False)), name=self.input)
        if state is not None:
            grow_run(self.run, series)  # its stores may be of the steps of an earlier look

    def advance(self, scan: StepScan, n: int, *, refresh: bool = False) -> dict[str, Any]:
        """Analyse the first ``n`` steps (the new ones only) and stage their results.

        ``refresh``: finish again when nothing is new (the cycler file changed since)."""
        from dendritect.pipeline import (
            CrackTracker,
            echem_at_scans,
            finish_cracks_store,
            grow_run,
            segment_steps,
            write_tables,
        )
        from dendritect.plausible import check_units

        if (self.summary is not None and self.run is not None and self.run.n_steps == n
                and not refresh):
            return self.summary
        o = self.options
        series = self._series(scan, n)
        times = np.asarray(series.times_s, dtype=np.float64)
        force = bool(o.get("force_units", False))
        # what analyze does, in its order (the warnings and summary.json come out the same)
        notes: list[str] = list(check_units(tuple(float(s) for s in series.voxel_size_um),
                                            times, series.shape_zyx, force=force))
        shutil.rmtree(self.stage, ignore_errors=True)
        staged = self.stage / R.PARTIAL
        staged.mkdir(parents=True)
        echem = o.get("echem")
        sampled = short = None
        if echem is not None:
            sampled, short, enotes = echem_at_scans(echem, times, copy_to=staged / R.ECHEM_CSV)
            notes.extend(enotes)
        if self.run is None:
            self._start(series)
        else:
            grow_run(self.run, series)
        run = self.run
        notes.extend(run.notes)
        looked = bool(run.state.get("second_look"))
        segment_steps(run, o.get("params"))
        if not looked and run.state.get("second_look") and self.tracker is not None:
            # step 1 gave step 0 its second look: step 0's cracks may have changed
            self.tracker = None
        if self.tracker is None:
            self.tracker = CrackTracker(
                run, min_overlap_vox=o.get("min_overlap_vox", 1),
                span_tolerance_vox=o.get("span_tolerance_vox", SPAN_TOLERANCE_VOX))
        for t in range(self.tracker.n_steps, n):
            self.tracker.add(t)
        metrics, cracks = self.tracker.results()
        summary = write_tables(run, metrics, cracks, staged, sampled=sampled, echem=echem,
                               short=short, input_path=self.input, settings=self.settings,
                               notes=notes)
        for name in (R.CRACKS_ZARR, R.PREVIEWS_ZARR):
            _link_tree(self.dir / name, staged / name)
        import zarr

        finish_cracks_store(zarr.open_group(str(staged / R.CRACKS_ZARR), mode="r+"),
                            lithium=bool(run.lithium_steps))
        R.finish(self.stage, staged, summary)
        self.summary = summary
        self.staged = True
        return summary

    def publish(self, out: Path) -> None:
        """Move the staged results into ``out`` in the order the analysis does (summary
        last); a Zarr store is swapped in whole, the one it replaces put aside for
        :meth:`clean` (removing a store's folders takes longer than the swap)."""
        if not self.staged:
            return
        trash = self.work / "trash"
        for name in R.RESULT_NAMES:
            src, dst = self.stage / name, out / name
            if not src.exists():
                continue
            if src.is_dir():
                if dst.exists():
                    trash.mkdir(parents=True, exist_ok=True)
                    self.trashed += 1
                    os.replace(dst, trash / f"{self.trashed}-{name}")
                os.replace(src, dst)
            else:
                os.replace(src, dst)
        self.staged = False

    def clean(self) -> None:
        """Remove what :meth:`publish` put aside (after the step's status is written)."""
        shutil.rmtree(self.work / "trash", ignore_errors=True)

    def reset(self) -> None:
        """Forget the run (it is analysed again from step 0)."""
        self.run = self.tracker = self.summary = None
        self.decided_at = None
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.stage, ignore_errors=True)
        self.staged = False

    def anode_of_series(self, scan: StepScan, n: int) -> str:
        """The anode side a batch run on the first ``n`` steps decides: the cell found on
        step 0 and judged on the later steps, as :func:`~dendritect.pipeline.prepare_cell`
        judges it for the whole series."""
        from dendritect.pipeline import prepare_cell

        check = self.work / "anode-check"
        series = self._series(scan, n)
        o = self.options
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                decided = str(prepare_cell(
                    series, check, anode="auto",
                    ring_correction=bool(o.get("ring_correction", False)),
                    force_units=bool(o.get("force_units", False)),
                    name=self.input).state["anode"])
        finally:
            del series
            gc.collect()
            shutil.rmtree(check, ignore_errors=True)
        return decided


# --------------------------------------------------------------------------------------------
# Publishing the run into the results folder
# --------------------------------------------------------------------------------------------

def _link_tree(src: Path, dst: Path) -> None:
    """``dst``: a copy of folder ``src`` made of hard links (copies where links fail). The
    analysis rewrites a Zarr chunk under a new name and renames it, so a linked file never
    changes under the published store."""
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for f in files:
            s, d = Path(root) / f, dst / rel / f
            try:
                os.link(s, d)
            except OSError:
                shutil.copy2(s, d)


# --------------------------------------------------------------------------------------------
# The alarm
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Alarm:
    """Why the watch warns that the short is near.

    Attributes
    ----------
    kind : str
        ``"span"`` (a crack connects both interfaces), ``"forecast"`` (the forecast span time
        minus its sigma falls within the lead time of the latest scan) or ``"short"`` (the
        cycler shows the voltage collapse).
    reason : str
        One line for people.
    time_s : float
        Acquisition time of the latest scan when raised.
    t_index : int
        That scan's step.
    """

    kind: str
    reason: str
    time_s: float
    t_index: int

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "time_s": self.time_s,
                "t_index": self.t_index}


def check_alarm(summary: dict[str, Any], alarm_before_s: float | None,
                short_time_s: float | None = None) -> Alarm | None:
    """The alarm the results of the steps so far call for, or None.

    Parameters
    ----------
    summary : dict
        ``summary.json`` of the steps so far.
    alarm_before_s : float or None
        Lead time: alarm when the forecast span time minus its sigma is at most this long after
        the latest scan. None: the last interval between scans (the span may come before the
        next scan).
    short_time_s : float, optional
        A short found in the cycler data since (overrides the summary's).

    Returns
    -------
    Alarm or None
    """
    times = [float(t) for t in summary.get("times_s", [])]
    if not times:
        return None
    k = len(times) - 1
    latest = times[-1]
    sc = summary.get("short_circuit") or {}
    span = summary.get("span_index")
    if span is not None:
        return Alarm("span", f"crack spans the electrolyte at step {span} "
                     f"(t = {times[int(span)]:.0f} s)", latest, k)
    short = short_time_s if short_time_s is not None else sc.get("echem_time_s")
    if short is not None:
        return Alarm("short", f"cycler voltage collapsed at t = {float(short):.0f} s", latest, k)
    fc, sig = sc.get("forecast_time_s"), sc.get("forecast_sigma_s")
    if fc is None:
        return None
    lead = alarm_before_s
    if lead is None:
        lead = times[-1] - times[-2] if len(times) > 1 else 0.0
    low = float(fc) - float(sig or 0.0)
    if low <= latest + lead:
        pm = "" if sig is None else f" ± {float(sig):.0f}"
        return Alarm("forecast", f"crack front forecast to span at t = {float(fc):.0f}{pm} s, "
                     f"within {lead:.0f} s of the latest scan (step {k}, t = {latest:.0f} s)",
                     latest, k)
    return None


def _alarm_env(alarm: Alarm, summary: dict[str, Any], out: Path) -> dict[str, str]:
    sc = summary.get("short_circuit") or {}

    def txt(v: Any) -> str:
        return "" if v is None else f"{v:.9g}" if isinstance(v, float) else str(v)

    env = dict(os.environ)
    env.update({
        "DENDRITECT_ALARM_REASON": alarm.reason,
        "DENDRITECT_ALARM_KIND": alarm.kind,
        "DENDRITECT_ALARM_TIME_S": txt(float(alarm.time_s)),
        "DENDRITECT_ALARM_STEP": str(alarm.t_index),
        "DENDRITECT_FORECAST_SPAN_TIME_S": txt(sc.get("forecast_time_s")),
        "DENDRITECT_FORECAST_SPAN_SIGMA_S": txt(sc.get("forecast_sigma_s")),
        "DENDRITECT_SPAN_INDEX": txt(summary.get("span_index")),
        "DENDRITECT_SHORT_TIME_S": txt(sc.get("echem_time_s")),
        "DENDRITECT_RESULTS": str(out),
        "DENDRITECT_STATUS": str(out / STATUS),
    })
    return env


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------

def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _echem_short(path: Path) -> float | None:
    """The short in the cycler file as it is now (None when none, or not readable now)."""
    from dendritect.io.echem import read_echem
    from dendritect.predict.short import detect_short

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            short = detect_short(read_echem(path))
    except (InputError, OSError, ValueError):
        return None
    t = getattr(short, "time_s", None)
    return None if t is None else float(t)


def watch(input: str | Path, out_dir: str | Path, *, poll_s: float = 5.0,
          alarm_before_s: float | None = None, on_alarm: str | None = None,
          idle_timeout_s: float | None = None, resume: bool = False, overwrite: bool = False,
          echo: Callable[[str], None] | None = None, report: bool = True,
          max_polls: int | None = None, **options: Any) -> dict[str, Any]:
    """Analyse a CT series step by step while it is acquired; alarm before the short.

    Parameters
    ----------
    input : str or Path
        A growing input (see :func:`complete_steps`).
    out_dir : str or Path
        The results folder: after every step a finished results folder of the steps so far,
        with ``status.json``; at the end the same results as ``analyze`` on the final series.
    poll_s : float
        Seconds between two looks at the input.
    alarm_before_s : float, optional
        Lead time of the forecast alarm (see :func:`check_alarm`).
    on_alarm : str, optional
        Shell command run once when the alarm is raised (environment: :data:`ALARM_ENV`).
    idle_timeout_s : float, optional
        Stop when no new scan has become complete for this long (None: run until interrupted).
    resume : bool
        Continue a watch that was stopped, from the steps it had analysed.
    overwrite : bool
        Replace what dendritect wrote in ``out_dir``.
    echo : callable, optional
        Where the console lines go (``print`` by default).
    report : bool
        Refresh ``report.html`` after every step (reloads itself in a browser while watching).
    max_polls : int, optional
        Stop after this many looks (tests).
    **options
        The options of :func:`dendritect.pipeline.analyze` (``voxel_size``, ``dataset``,
        ``times_s``, ``interval``, ``anode``, ``echem``, ``params``, ``min_overlap_vox``,
        ``span_tolerance_vox``, ``memory_limit``, ``workers``, ``scheduler``, ``device``,
        ``force_units``, ``ring_correction``), with the same meaning: the stage functions
        get them as ``analyze`` gives them; the compute context is entered once for the
        whole watch.

    Returns
    -------
    dict
        The final ``status.json``.
    """
    from dendritect.lock import results_lock

    say = echo or (lambda line: print(line, flush=True))
    input_path = Path(input)
    out = Path(out_dir)
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    inp, res = input_path.resolve(), out.resolve()
    if res == inp or (inp.is_dir() and res.is_relative_to(inp)):
        raise InputError(f"--out {out} lies inside the input {input_path}; "
                         "results are never written into an input")
    if poll_s <= 0:
        raise InputError(f"--poll must be a positive duration, got {poll_s} s")
    echem = options.get("echem")
    if echem is not None and not Path(echem).is_file():
        raise InputError(f"--echem file not found: {echem}")
    _layout(input_path)  # a kind of input that can grow
    from dendritect.parallel.cluster import compute_context

    # as in analyze: the compute context first (a bad --scheduler or --device leaves nothing
    # behind), then the folder's lock; both held for the whole watch
    with compute_context(options.get("scheduler"), options.get("workers"),
                         options.get("memory_limit"), device=options.get("device", "cpu")), \
            results_lock(out, "watch"):
        return _watch(input_path, out, poll_s=poll_s, alarm_before_s=alarm_before_s,
                      on_alarm=on_alarm, idle_timeout_s=idle_timeout_s, resume=resume,
                      overwrite=overwrite, say=say, report=report, max_polls=max_polls,
                      options=options)


def _watch(input_path: Path, out: Path, *, poll_s: float, alarm_before_s: float | None,
           on_alarm: str | None, idle_timeout_s: float | None, resume: bool, overwrite: bool,
           say: Callable[[str], None], report: bool, max_polls: int | None,
           options: dict[str, Any]) -> dict[str, Any]:
    old_status = _read_status(out) if resume else None
    partial, _phase = R.prepare(out, resume=resume, overwrite=overwrite)
    work = partial / WATCH_DIR
    if not resume:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    live = _Live(input_path, out, work, options, poll_s=poll_s, alarm_before_s=alarm_before_s,
                 on_alarm=on_alarm, say=say, report=report, old_status=old_status)
    live.write_status()
    say(f"watching {input_path} -> {out} (poll {poll_s:g} s"
        + (f", idle timeout {idle_timeout_s:g} s" if idle_timeout_s else "") + ")")
    polls = 0
    try:
        while True:
            new = live.look()
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            if not new and idle_timeout_s is not None \
                    and time.monotonic() - live.last_new > idle_timeout_s:
                say(f"no new scan for {idle_timeout_s:g} s: stopping")
                break
            # the next look one poll after this one: a file counts once unchanged across it
            assert live.scan is not None
            time.sleep(max(0.0, poll_s - (time.monotonic() - live.scan.looked_at)))
    except KeyboardInterrupt:
        live.stop(interrupted=True)
        raise
    finally:
        gc.unfreeze()
    live.stop(interrupted=False)
    live.final()
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):
        partial.rmdir()  # only when empty: a finished folder has no .partial
    say(f"stopped: {live.status['steps_done']} steps analysed; results in {out}")
    return live.status


class _Live:
    """The state of one watch: the run, what was published, the alarm, ``status.json``."""

    def __init__(self, input_path: Path, out: Path, work: Path, options: dict[str, Any], *,
                 poll_s: float, alarm_before_s: float | None, on_alarm: str | None,
                 say: Callable[[str], None], report: bool,
                 old_status: dict[str, Any] | None) -> None:
        self.input, self.out, self.work, self.options = input_path, out, work, options
        self.alarm_before_s, self.on_alarm, self.say, self.report = (alarm_before_s, on_alarm,
                                                                     say, report)
        self.run = _Run(input_path, work, options)
        self.anode = options.get("anode", "auto")
        echem = options.get("echem")
        self.echem = None if echem is None else Path(echem)
        # the anode side is decided from the change between scans: wait for two
        self.first_needed = 2 if self.anode == "auto" else 1
        self.status: dict[str, Any] = {
            "steps_done": 0, "alarm": None, "state": "watching",
            "input": str(input_path.resolve()), "results": str(out.resolve()),
            "started": _now_iso(), "updated": _now_iso(), "poll_s": poll_s,
            "alarm_before_s": alarm_before_s,
            "steps": [], "analysed_steps": [], "waiting": None, "on_alarm": None,
        }
        for key in ("alarm", "steps", "analysed_steps", "on_alarm", "started", "steps_done"):
            if old_status and key in old_status:
                self.status[key] = old_status[key]
        if self.status["steps_done"] and not (out / R.SUMMARY_JSON).is_file():
            self.status["steps_done"] = 0
        self.proc: subprocess.Popen | None = None
        self.complete_at: dict[int, float] = {}   # monotonic clock
        self.complete_wall: dict[int, float] = {}  # epoch seconds, for status.json
        self.summary: dict[str, Any] | None = None
        self.scan: StepScan | None = None
        self.last_new = time.monotonic()
        self.report_due = False
        self.echem_sig: Any = None
        self.echem_sig_run: Any = None
        self.echem_short: float | None = None
        self.warned: set[str] = set()

    # -- status and alarm ---------------------------------------------------------------
    def write_status(self) -> None:
        self.status["updated"] = _now_iso()
        R.atomic_write_json(self.out / STATUS, self.status)

    def raise_alarm(self, alarm: Alarm) -> None:
        self.status["alarm"] = {**alarm.as_dict(), "raised": _now_iso()}
        self.say(f"ALARM at step {alarm.t_index} (t = {alarm.time_s:.0f} s): {alarm.reason}")
        if not self.on_alarm:
            return
        env = _alarm_env(alarm, self.summary or {}, self.out)
        try:
            self.proc = subprocess.Popen(self.on_alarm, shell=True, env=env)
        except OSError as exc:
            self.status["on_alarm"] = {"command": self.on_alarm, "error": str(exc)}
            self.say(f"warning: --on-alarm could not be started: {exc}")
            return
        self.status["on_alarm"] = {"command": self.on_alarm, "pid": self.proc.pid,
                                   "returncode": None}

    def _check_proc(self, wait_s: float | None = None) -> None:
        if self.proc is None or self.status["on_alarm"].get("returncode") is not None:
            return
        try:
            rc = self.proc.poll() if wait_s is None else self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return
        if rc is not None:
            self.status["on_alarm"]["returncode"] = rc
            self.write_status()

    # -- one look -----------------------------------------------------------------------
    def look(self) -> bool:
        """Look at the input; analyse and publish new complete steps. True when there were."""
        before = self.scan
        self.scan = scan = complete_steps(self.input, dataset=self.options.get("dataset"),
                                          before=before)
        now = time.monotonic()
        if before is None or (scan.names, scan.signatures) != (before.names, before.signatures):
            self.last_new = now  # something arrived (a scan being written counts)
        for k in range(scan.n_complete):
            if k not in self.complete_at:
                self.complete_at[k] = now
                self.complete_wall[k] = time.time()
        done = int(self.status["steps_done"])
        new = scan.n_complete > done and scan.n_complete >= self.first_needed
        if new:
            self._step(scan, done, scan.n_complete)
        elif self.status["waiting"] != scan.waiting:
            self.status["waiting"] = scan.waiting
            self.write_status()
        self._check_echem()
        self._check_proc()
        if self.report_due and not new:
            # while watching, the page without the movie (written when the watch ends)
            _report(self.out, live=True)
            R.mark_finished(self.out)
            self.report_due = False
            _settle_memory()
        if new or time.monotonic() - now > 1.0:
            self.last_new = max(self.last_new, time.monotonic())  # our own work is not idle
        return new

    def _advance(self, scan: StepScan, n: int, *, refresh: bool = False) -> dict[str, Any]:
        self.echem_sig_run = None if self.echem is None else file_signature(self.echem)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            summary = self.run.advance(scan, n, refresh=refresh)
        for w in caught:
            msg = str(w.message)
            if issubclass(w.category, UserWarning) and msg not in self.warned:
                self.warned.add(msg)
                print(f"warning: {msg}", file=sys.stderr, flush=True)
        return summary

    def _step(self, scan: StepScan, done: int, ready: int) -> None:
        before = set(self.run.done())
        self.summary = summary = self._advance(scan, ready)
        self.run.publish(self.out)
        written = time.monotonic()
        analysed = sorted(set(self.run.done()) - before)
        self.status["analysed_steps"] = list(self.status["analysed_steps"]) + analysed
        times = [float(t) for t in summary.get("times_s", [])]
        for k in range(done, ready):
            self.status["steps"].append({
                "t_index": k, "time_s": times[k],
                "complete_unix_s": round(self.complete_wall.get(k, time.time()), 3),
                "analysed_with": analysed,  # the steps segmented in the pass that published it
                "written_unix_s": round(time.time(), 3),
                "latency_s": round(written - self.complete_at.get(k, written), 3)})
        sc = summary.get("short_circuit") or {}
        self.status.update({
            "steps_done": ready, "waiting": scan.waiting,
            "latest": {"t_index": ready - 1, "time_s": times[ready - 1]},
            "forecast": {"span_time_s": sc.get("forecast_time_s"),
                         "span_sigma_s": sc.get("forecast_sigma_s"),
                         "from_index": sc.get("forecast_from_index")},
            "span_index": summary.get("span_index"),
            "short_time_s": sc.get("echem_time_s"),
        })
        _say_steps(self.say, self.out, summary, done, ready,
                   written - self.complete_at.get(ready - 1, written))
        if self.status["alarm"] is None:
            alarm = check_alarm(summary, self.alarm_before_s, self.echem_short)
            if alarm is not None:
                self.raise_alarm(alarm)
        self.write_status()
        R.mark_finished(self.out)
        self.run.clean()
        _settle_memory()
        self.report_due = self.report

    def _check_echem(self) -> None:
        if self.echem is None:
            return
        sig = file_signature(self.echem)
        if sig == self.echem_sig:
            return
        self.echem_sig = sig
        self.echem_short = _echem_short(self.echem)
        if self.echem_short is not None and self.status["alarm"] is None \
                and self.summary is not None:
            alarm = check_alarm(self.summary, self.alarm_before_s, self.echem_short)
            if alarm is not None:
                self.raise_alarm(alarm)
                self.write_status()

    # -- the end ------------------------------------------------------------------------
    def stop(self, *, interrupted: bool) -> None:
        self._check_proc(wait_s=5.0 if interrupted else 60.0)
        self.status["state"] = "interrupted" if interrupted else "finishing"
        with contextlib.suppress(Exception):
            self.write_status()

    def final(self) -> None:
        """Leave the results a batch run on the final series gives."""
        scan, n = self.scan, int(self.status["steps_done"])
        if self.summary is None or scan is None or n == 0:
            self.status["state"] = "stopped"
            self.write_status()
            return
        redo = refresh = False
        if self.anode == "auto" and self.run.decided_at != n:
            # decided on fewer scans (or by a watch before a --resume): check on them all
            decided = self.run.anode_of_series(scan, n)
            if decided != self.summary.get("anode"):
                first = ("the scans analysed first" if self.run.decided_at is None
                         else f"the first {self.run.decided_at} scans")
                self.say(f"the whole series puts the anode at the {decided} ({first}: "
                         f"{self.summary.get('anode')}); analysing the {n} scans again")
                self.run.reset()
                redo = True
        if not redo and self.echem is not None and file_signature(self.echem) != self.echem_sig_run:
            refresh = True  # the cycler file grew since: finish again with all of it
        if redo or refresh:
            self.summary = self._advance(scan, n, refresh=refresh)
            self.run.publish(self.out)
        if self.report:
            _report(self.out, live=False)
        self.status["state"] = "stopped"
        self.write_status()
        R.mark_finished(self.out)


def _say_steps(say: Callable[[str], None], out: Path, summary: dict[str, Any], done: int,
               ready: int, latency_s: float) -> None:
    import csv

    try:
        with open(out / R.METRICS_CSV, newline="", encoding="utf-8") as fh:
            rows = {int(r["t_index"]): r for r in csv.DictReader(fh)}
    except (OSError, ValueError, KeyError):
        rows = {}
    for k in range(done, ready):
        row = rows.get(k, {})
        front = row.get("front_depth_um") or None
        say(f"step {k} (t = {float(row.get('time_s') or 0):.0f} s): "
            + ("" if front is None else f"front {float(front):.1f} um, ")
            + f"{row.get('n_cracks', '?')} cracks"
            + (", SPANNING" if row.get("spanning") == "1" else ""))
    sc = summary.get("short_circuit") or {}
    fc, sig = sc.get("forecast_time_s"), sc.get("forecast_sigma_s")
    say(f"  written {latency_s:.1f} s after the scan was complete; forecast span: "
        + ("none" if fc is None else f"{fc:.0f}" + ("" if sig is None else f" ± {sig:.0f}")
           + " s"))


def _settle_memory() -> None:
    """Between two steps: collect the garbage of the step just finished, then exempt what
    survives from later collections (:func:`gc.freeze`), so that the collections the stages
    make to give memory back (``release_memory``) look at the new step's objects only, not
    at everything the watch holds (0.5 s a step on the twin of docs/watch.md). Undone
    (:func:`gc.unfreeze`) before the next such collection and when the watch ends, so
    nothing is kept that became garbage since."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _report(out: Path, *, live: bool) -> None:
    try:
        from dendritect.report import write_report
    except ImportError:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if live:
                for name in (R.MOVIE_GIF, R.MOVIE_MP4):  # not kept stale beside a live page
                    (out / name).unlink(missing_ok=True)
            write_report(out, live=live, movie=not live)
    except InputError as exc:
        print(f"warning: {R.REPORT_HTML} not written: {exc}", file=sys.stderr)


def _read_status(out: Path) -> dict[str, Any] | None:
    try:
        s = json.loads((out / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return s if isinstance(s, dict) else None
