"""``dendritect analyze``: from a CT series to the results folder.

Stages, one step at a time::

    open_series -> find_cell (step 0) -> per step: check, register onto step 0, match intensity,
    segment -> track -> time of arrival -> measure -> span, forecast, short -> results folder

One :class:`~dendritect.parallel.memory.Plan` (the step's shape and dtype, the memory budget,
the device, the tasks at once) is built when a run starts and passed to the stages: a step that
fits the budget is held whole; a larger one is read plane by plane, registered into a scratch
store in z-slabs and segmented in z-slabs (``preprocess.large``, ``segment.slabs``), with the
same results. The per-step loop writes each step's masks into
``DIR/.partial/cracks.zarr`` (z-slab chunks) and records the step in
``DIR/.partial/state.json``; ``resume=True`` continues from the last recorded step. Tracking
and measuring then stream over the stored masks, working on each step's crack voxels. The
results are moved into ``DIR`` at the end, ``summary.json`` last.

:func:`analyze` is a short script of public stage functions that a notebook may call one by
one, with the same results::

    run = prepare_cell(series, partial)            # cell on step 0, anode side, the stores
    segment_steps(run, params)                     # every step: register, segment, record
                                                   # (step 0 again once step 1 is in)
    metrics, cracks = track_and_measure(run)       # time of arrival, tracks, measurements
    prediction = predict_short(metrics, run.times_s, run.thickness_um)
    summary = build_summary(run, metrics, prediction, input_path=path)

A series that grows (``dendritect watch``) keeps the run between scans: ``grow_run(run,
series)`` resizes the stores for the new scan, ``segment_steps`` segments it alone, and a
:class:`CrackTracker` kept beside the run tracks and measures the new step only
(``track_and_measure`` is a tracker fed every step). ``analysis_settings``,
``echem_at_scans`` and ``add_echem_columns`` are the rest of what :func:`analyze` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from dendritect import __version__
from dendritect import results as R
from dendritect.errors import InputError, check_stop
from dendritect.measure.cracks import (
    CRACK_COLUMNS,
    ROOT_REACH_VOX,
    SPAN_TOLERANCE_VOX,
    CrackHistory,
    cathode_tolerance_vox,
    front_cracks,
    root_tracks,
)
from dendritect.predict.forecast import forecast_span
from dendritect.results import METRIC_COLUMNS  # the schema of metrics.csv; kept importable here

__all__ = [
    "METRIC_COLUMNS",
    "AnalysisRun",
    "CrackTracker",
    "add_echem_columns",
    "analysis_settings",
    "analyze",
    "build_summary",
    "echem_at_scans",
    "finish_cracks_store",
    "grow_run",
    "predict_short",
    "prepare_cell",
    "second_look",
    "segment_steps",
    "track_and_measure",
    "write_tables",
]


def _check_paths(input_path: Path, out_dir: Path) -> None:
    if not input_path.exists():
        raise InputError(f"input not found: {input_path}")
    inp = input_path.resolve()
    out = out_dir.resolve()
    if out == inp or (inp.is_dir() and out.is_relative_to(inp)):
        raise InputError(f"--out {out_dir} lies inside the input {input_path}; "
                         "results are never written into an input")


def _params_dict(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if dataclasses.is_dataclass(params):
        return dataclasses.asdict(params)
    return dict(params)


def _fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(R.dumps_json(settings).encode()).hexdigest()


def _preview_index(geometry: Any, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Slice positions through the cell centre: mid-electrolyte z, footprint centroid y, x."""
    zc = 0.5 * (float(geometry.z_anode_vox) + float(geometry.z_cathode_vox))
    fp = np.asarray(getattr(geometry, "footprint", np.ones(shape[1:], bool)), dtype=bool)
    if fp.any():
        yy, xx = np.nonzero(fp)
        yc, xc = float(yy.mean()), float(xx.mean())
    else:
        yc, xc = (shape[1] - 1) / 2, (shape[2] - 1) / 2
    return (int(np.clip(round(zc), 0, shape[0] - 1)), int(np.clip(round(yc), 0, shape[1] - 1)),
            int(np.clip(round(xc), 0, shape[2] - 1)))


class _Stages:
    """The preprocessing and segmentation stages, imported when a run starts."""

    def __init__(self, ring_correction: bool = False) -> None:
        from dendritect.io.readers import check_volume
        from dendritect.preprocess.cell import anode_from_evidence
        from dendritect.preprocess.large import (
            align_step,
            anode_evidence_bounded,
            estimate_shift_bounded,
            find_cell_bounded,
        )
        from dendritect.preprocess.rings import remove_rings_lazy
        from dendritect.segment.cracks import SegmentParams, segment_step

        self.check_volume = check_volume
        self.remove_rings = remove_rings_lazy if ring_correction else None
        self.find_cell = find_cell_bounded
        self.anode_evidence = anode_evidence_bounded
        self.anode_from_evidence = anode_from_evidence
        self.estimate_shift = estimate_shift_bounded
        self.align_step = align_step
        self.segment_step = segment_step
        self.SegmentParams = SegmentParams


class _StepView:
    """Step ``t`` of a (t, z, y, x) Zarr array, sliced like a 3D array (nothing loaded)."""

    def __init__(self, arr: Any, t: int) -> None:
        self.arr, self.t = arr, int(t)
        self.shape = tuple(arr.shape[1:])
        self.dtype = arr.dtype
        self.ndim = 3

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        return self.arr[(self.t, *key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        key = key if isinstance(key, tuple) else (key,)
        self.arr[(self.t, *key)] = value


class _Discard:
    """Accepts writes and keeps nothing (the pores of later steps: the first step's are kept)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _step(series: Any, t: int, stages: _Stages) -> Any:
    """Step ``t``, lazy (read plane by plane by the stages), after the input checks."""
    vol = series.data[t]
    stages.check_volume(vol, f"{series.source} step {t}")
    # rings stay with the detector while the sample drifts: removed before registration
    remove = getattr(stages, "remove_rings", None)
    return vol if remove is None else remove(vol)


def _plane_chunk(shape: tuple[int, int, int]) -> int:
    """Planes per chunk of the stored masks: whole steps when small, ~16 MB of uint8 else."""
    return int(max(1, min(shape[0], 2**24 // max(1, shape[1] * shape[2]))))


#: Planes of electrode beyond each interface that the grey-level match is fitted on too.
_MATCH_ELECTRODE_VOX = 4.0


def _mask_fn(geometry: Any, shape: tuple[int, int, int]):
    """The voxels of planes ``z0..z1`` that grey levels are matched on: the electrolyte and
    a few planes of the electrodes beside it. Two grey levels fix gain and offset; the
    electrolyte alone (one level, its texture and the noise) leaves the gain to chance, and
    a wrong gain moves the dark levels of voids and lithium by a tenth of the contrast."""

    def mask(z0: int, z1: int) -> np.ndarray:
        return geometry.inside(z0, z1, margin_vox=_MATCH_ELECTRODE_VOX)

    return mask


def _align_slab_vox(plan: Any, shift: np.ndarray) -> int:
    """Planes per slab of the shift and grey-level match under the plan (its halo: the
    shift's reach, ceil(|dz|) + 1, plus the smoothing's radius, 6)."""
    from dendritect.parallel.memory import STAGE_BYTES_PER_VOXEL

    halo = int(np.ceil(abs(float(shift[0])))) + 1 + 6
    return max(b - a for a, b in plan.slabs(STAGE_BYTES_PER_VOXEL["align"], halo=halo,
                                            n_parallel=1))


def _registration_memo(plan: Any) -> dict[str, dict]:
    """What registering onto step 0 keeps from one step to the next: the reference's
    grey-level samples, the shift of every step registered (deciding the anode registers
    some steps that are segmented later: each is registered once) and, when steps are held
    whole, what registration computes from step 0 alone (its binned copy and spectra,
    about 0.1 GB, :func:`~dendritect.preprocess.large.estimate_shift_bounded`)."""
    return {"samples": {}, "shifts": {},
            "reference": {} if plan.hold_steps else None}


def _aligned(series: Any, t: int, reference: Any, geometry: Any, out: Any,
             stages: _Stages, plan: Any, memo: dict[str, dict] | None = None
             ) -> tuple[Any, np.ndarray]:
    """Step ``t`` registered onto step 0 and intensity-matched to it (written into ``out``);
    and the shift used. Step 0 is the reference itself. ``memo`` (:func:`_registration_memo`)
    keeps what is the same from one step to the next. Registration works on at most
    ``MAX_WHOLE_VOXELS`` voxels whatever the plan; alignment runs in the plan's slabs."""
    if t == 0:
        return reference, np.zeros(3)
    moving = _step(series, t, stages)
    kwargs: dict[str, Any] = {}
    if isinstance(out, np.ndarray):
        # the step fits the budget: read it once
        moving = np.asarray(moving, dtype=np.float32)
    memo = _registration_memo(plan) if memo is None else memo
    kwargs["reference_samples"] = memo["samples"]
    shift = memo["shifts"].get(t)
    if shift is None:
        shift = np.asarray(stages.estimate_shift(reference, moving,
                                                 reference_cache=memo["reference"]),
                           dtype=np.float64)
        memo["shifts"][t] = shift
    stages.align_step(moving, reference, shift, out,
                      mask_fn=_mask_fn(geometry, tuple(reference.shape)),
                      slab_vox=_align_slab_vox(plan, shift), **kwargs)
    del moving
    from dendritect.parallel.memory import release_memory

    release_memory()
    return out, shift


def _registers_ahead(aligned: Any, todo: list[int], plan: Any) -> bool:
    """Whether the next step is registered in a second buffer while one is segmented: steps
    held in memory, two or more to do, and a budget that holds both buffers."""
    return isinstance(aligned, np.ndarray) and len(todo) >= 2 and bool(plan.register_ahead)


def _ahead_on_cluster(aligned: Any, todo: list[int], plan: Any) -> Any:
    """The active cluster's client when later steps are registered and aligned on its workers
    ahead of the step being segmented; else None. Needs a cluster of two or more worker
    processes, steps held in memory, two or more steps to do, and a worker's share of the
    budget holding a step's registration and alignment."""
    from dendritect.parallel import current_context
    from dendritect.parallel.memory import STAGE_BYTES_PER_VOXEL, Plan

    ctx = current_context()
    if (ctx is None or ctx.client is None or ctx.n_workers < 2 or len(todo) < 2
            or not isinstance(aligned, np.ndarray)):
        return None
    share = (None if ctx.memory_limit_bytes is None
             else ctx.memory_limit_bytes // ctx.n_workers)
    c = STAGE_BYTES_PER_VOXEL
    worker = Plan(plan.shape, plan.dtype, share, "cpu", 1)
    return ctx.client if worker.fits((c["hold"], c["register"], c["align"])) else None


def _align_step_task(series: Any, t: int, reference: np.ndarray, geometry: Any,
                    stages: _Stages, shift: Any, path: str) -> list[float]:
    """Register and align step ``t`` onto ``reference`` (as :func:`segment_steps` does) in a
    worker process and save it to ``path`` (``.npy``, written atomically); returns the shift.
    ``shift``, when known (the anode decision registered the step), is used as it is."""
    import os

    import dask

    from dendritect.parallel.memory import Plan

    # reads of the lazy input run here, not as tasks of the cluster this task runs on
    with dask.config.set(scheduler="sync"):
        plan = Plan(tuple(reference.shape), np.dtype(np.float32), None, "cpu", 1)
        memo = _registration_memo(plan)
        if shift is not None:
            memo["shifts"][t] = np.asarray(shift)
        out = np.empty(reference.shape, np.float32)
        vol, used = _aligned(series, t, reference, geometry, out, stages, plan, memo)
        tmp = f"{path}.part.npy"
        np.save(tmp, np.asarray(vol, dtype=np.float32))
        os.replace(tmp, path)
    return [float(x) for x in used]


def _aligned_steps_on_cluster(series: Any, todo: list[int], reference: Any, geometry: Any,
                              aligned: np.ndarray, stages: _Stages, memo: dict[str, dict],
                              client: Any, scratch: Path) -> Iterator[tuple[Any, np.ndarray]]:
    """The steps of ``todo`` registered and intensity-matched, in order, each computed by a
    worker of ``client`` (:func:`_align_step_task`) while earlier steps are segmented here:
    as many steps in flight as the cluster has workers. Each is loaded into ``aligned`` when
    its turn comes; the caller must be done with the previous one by then."""
    from dendritect.parallel.memory import release_memory

    scratch.mkdir(parents=True, exist_ok=True)
    ref = np.asarray(reference, dtype=np.float32)
    ref_f = client.scatter(ref, broadcast=True)
    window = max(2, len(client.scheduler_info().get("workers", {})))
    futures: dict[int, Any] = {}
    pending = [t for t in todo if t != 0]

    def submit() -> None:
        while pending and len(futures) < window:
            t = pending.pop(0)
            futures[t] = client.submit(
                _align_step_task, series, t, ref_f, geometry, stages, memo["shifts"].get(t),
                str(scratch / f"aligned-{t}.npy"), key=f"dendritect-align-step-{t}-{id(memo)}",
                pure=False)

    submit()
    try:
        for t in todo:
            if t == 0:
                yield reference, np.zeros(3)
                continue
            shift = np.asarray(futures.pop(t).result(), dtype=np.float64)
            memo["shifts"][t] = shift
            path = scratch / f"aligned-{t}.npy"
            # copied from the file's pages: no second step-sized array here
            aligned[...] = np.load(path, mmap_mode="r")
            path.unlink()
            submit()
            release_memory()
            yield aligned, shift
    finally:
        for f in futures.values():
            f.cancel()
        client.cancel(ref_f)


def _aligned_steps(series: Any, todo: list[int], reference: Any, geometry: Any, aligned: Any,
                   stages: _Stages, plan: Any, memo: dict[str, dict] | None = None,
                   pool: Any = None) -> Iterator[tuple[Any, np.ndarray]]:
    """The steps of ``todo`` registered and intensity-matched, in order.

    When a step fits the budget (``aligned`` in memory), the next step is registered in a
    second buffer while the caller segments the current one: registration is mostly SciPy and
    FFT code that releases the GIL, segmentation mostly numba, so the two overlap on the cores.
    Otherwise (larger steps, or a budget that would not hold both) steps are registered one
    after the other. ``pool`` (one thread) runs the registration ahead when given: work the
    caller submits to it before taking the next step runs before the step after next is
    registered into the buffer of the step just taken.
    """
    memo = _registration_memo(plan) if memo is None else memo
    # registering and aligning in a second buffer beside segmenting must fit the budget too
    if not _registers_ahead(aligned, todo, plan):
        for t in todo:
            yield _aligned(series, t, reference, geometry, aligned, stages, plan, memo)
        return
    with contextlib.ExitStack() as stack:
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        buffers = (aligned, np.zeros_like(aligned))
        nxt = pool.submit(_aligned, series, todo[0], reference, geometry, buffers[0], stages,
                          plan, memo)
        for i in range(len(todo)):
            cur = nxt.result()
            if i + 1 < len(todo):
                nxt = pool.submit(_aligned, series, todo[i + 1], reference, geometry,
                                  buffers[(i + 1) % 2], stages, plan, memo)
            yield cur


def _anode_steps(n: int) -> list[int]:
    """Later steps to judge the anode side on, best first: the last, then halving toward the
    first (the last may be spanned, which darkens both sides alike)."""
    out: list[int] = []
    t = n - 1
    while t > 0:
        out.append(t)
        t //= 2
    return out


def _decide_anode(stages: _Stages, series: Any, reference: Any, geometry: Any,
                  aligned: Any, plan: Any, memo: dict[str, dict] | None = None) -> str:
    """The anode side from the first step against later ones, registered one at a time and
    only as many as needed; a tilted cell held in memory is judged on its flattened view."""
    flat = None
    if geometry.tilted and isinstance(reference, np.ndarray):
        from dendritect.preprocess.tilt import Flattened

        flat = Flattened(geometry)
        first = np.asarray(flat.view(reference))

    def evidence() -> Iterator[dict]:
        for i, t in enumerate(_anode_steps(series.n_steps)):
            later, _ = _aligned(series, t, reference, geometry, aligned, stages, plan, memo)
            # only the latest step's dark sheets can break a tie (anode_from_evidence)
            if flat is not None:
                yield stages.anode_evidence(first, np.asarray(flat.view(np.asarray(later))),
                                            flat.geometry, sheets=i == 0)
            else:
                yield stages.anode_evidence(reference, later, geometry, sheets=i == 0)

    return stages.anode_from_evidence(evidence())


def _merged_ids(flat0: np.ndarray, ids0: np.ndarray, flat1: np.ndarray,
                ids1: np.ndarray) -> dict[int, int]:
    """Ids of one step that do not go on to the next, mapped to the id they merged into there
    (the next step's id at their voxels; flat indices sorted, as ``mask_voxels`` gives)."""
    gone = np.setdiff1d(np.unique(ids0), np.unique(ids1))
    if not gone.size or not flat1.size:
        return {}
    sel = np.isin(ids0, gone)
    f0, old = flat0[sel], ids0[sel]
    pos = np.minimum(np.searchsorted(flat1, f0), flat1.size - 1)
    hit = flat1[pos] == f0
    out: dict[int, int] = {}
    for o, n_ in zip(old[hit].tolist(), ids1[pos[hit]].tolist(), strict=True):
        out.setdefault(int(o), int(n_))
    return out


def _rooted_by_history(row: dict[str, Any], tracked: pd.DataFrame) -> None:
    """Front, lithium front and span of a step's row with the tracked cracks that stay rooted
    at the anode (:class:`~dendritect.measure.CrackHistory`), in place."""
    rooted = front_cracks(tracked)
    if not len(rooted):
        return
    row["front_depth_um"] = max(float(row["front_depth_um"]),
                                float(rooted["front_depth_um"].max()))
    row["spanning"] = int(bool(row["spanning"]) or bool(rooted["spanning"].any()))
    li = rooted["li_front_depth_um"].to_numpy(np.float64)
    if np.isfinite(row["li_front_depth_um"]) and np.isfinite(li).any():
        row["li_front_depth_um"] = max(float(row["li_front_depth_um"]), float(np.nanmax(li)))


def _lithium_summary(known: set[int], reasons: dict[str, str],
                     n_cracks: np.ndarray) -> dict[str, Any]:
    """``summary.json``'s word on lithium inside cracks: resolved (told apart in a step that
    has cracks) or not, the steps where it is not known, and the commonest reason why."""
    unknown = [t for t in range(n_cracks.size) if t not in known]
    why = [reasons[str(t)] for t in unknown if str(t) in reasons]
    resolved = any(t in known and n_cracks[t] > 0 for t in range(n_cracks.size))
    if not resolved and not why:
        why = ["no crack in any scan"]
    return {"resolved": resolved, "reason": max(set(why), key=why.count) if why else None,
            "steps_unresolved": unknown, "steps_resolved": sorted(known)}


def _segment(stages: _Stages, vol: Any, geometry: Any, *, reference: Any, previous: Any,
             params: Any, out: dict, scratch: Path, plan: Any, following: Any = None) -> Any:
    """Segment one registered step into ``out`` (arrays of the step's shape), in the slabs
    that the plan's budget leaves beside what is held (step 0 and the step, when in memory).

    A tilted cell is segmented on sheared views in which its interfaces are flat
    (:mod:`dendritect.preprocess.tilt`); the masks are written back exactly in the step's frame.
    """
    targets = dict(out)
    if geometry.tilted:
        from dendritect.preprocess.tilt import Flattened

        flat = Flattened(geometry)
        nz = int(vol.shape[0])
        geometry = flat.geometry
        vol, reference, previous = flat.view(vol), flat.view(reference), flat.view(previous)
        following = flat.view(following)
        out = {k: flat.writer(v, nz) for k, v in out.items()}
    from dendritect.parallel.memory import STAGE_BYTES_PER_VOXEL

    held = STAGE_BYTES_PER_VOXEL["hold"] if isinstance(vol, np.ndarray) else 0
    seg = stages.segment_step(vol, geometry, reference=reference, previous=previous,
                              following=following, params=params, out=out, scratch=scratch,
                              memory_limit=plan.budget_after_held(held))
    for name in ("crack", "lithium"):
        got = getattr(seg, name)
        if got is not None and got is not out[name]:
            targets[name][...] = np.asarray(got, dtype=np.uint8)
    return seg


def _store_fraction(volume: Any, crack: Any, geometry: Any, out: Any, *, t: int,
                    lithium: Any, plan: Any, pores: Any = None) -> None:
    """:func:`~dendritect.measure.deficit.store_crack_fraction`, in blocks of the plan's size
    (the fraction does not depend on the block size)."""
    from dendritect.measure.deficit import crack_fraction_voxels, store_crack_fraction
    from dendritect.parallel.memory import STAGE_BYTES_PER_VOXEL
    from dendritect.track.sparse import write_voxels

    block = plan.block_voxels(STAGE_BYTES_PER_VOXEL["deficit"])
    if block is None:
        store_crack_fraction(volume, crack, geometry, out, t=t, lithium=lithium, pores=pores)
        return
    flat, frac = crack_fraction_voxels(volume, crack, geometry, lithium=lithium, pores=pores,
                                       block_vox=block)
    write_voxels(out, flat, frac, t=t, fill=0.0)


def _plane(vol: Any, key: Any) -> np.ndarray:
    return np.asarray(vol[key], dtype=np.float32)


def _aligned_store(work: Path, plan: Any) -> Any:
    """Where each registered step is written: memory when the plan holds steps whole (or no
    budget is set), else a float32 Zarr array of z-slabs in the run's scratch folder."""
    shape = plan.shape
    if plan.hold_steps:
        return np.zeros(shape, np.float32)
    work.mkdir(parents=True, exist_ok=True)
    return zarr.create_array(store=str(work / "aligned.zarr"), shape=shape, dtype="float32",
                             chunks=(_plane_chunk(shape) // 4 or 1, *shape[1:]),
                             overwrite=True)


def _progress(enabled: bool):
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True)


def analyze(input: str | Path, out_dir: str | Path, *, voxel_size: Any = None,
            dataset: str | None = None, times_s: Any = None, interval: Any = None,
            anode: str = "auto", echem: str | Path | None = None, resume: bool = False,
            overwrite: bool = False, progress: bool = True, params: Any = None,
            min_overlap_vox: int = 1, span_tolerance_vox: float = SPAN_TOLERANCE_VOX,
            report: bool = True, memory_limit: str | int | None = None,
            workers: int | None = None, scheduler: str | None = None,
            device: str = "cpu", force_units: bool = False,
            ring_correction: bool = False) -> dict[str, Any]:
    """Segment, track and measure the cracks of a CT series; write the results folder.

    Parameters
    ----------
    input : str or Path
        Any input :func:`dendritect.io.open_series` reads.
    out_dir : str or Path
        Results folder (CONTRACT "Results layout"); never inside the input.
    voxel_size, dataset, times_s, interval
        Passed to :func:`dendritect.io.open_series` (override the metadata).
    anode : {"auto", "top", "bottom"}
        Which interface is the plated anode; ``auto`` decides from the data.
    echem : str or Path, optional
        Cycler file: adds ``voltage_V``/``charge_mAh`` to ``metrics.csv`` and the short time.
    resume : bool
        Continue an interrupted run in ``out_dir`` (same settings), or return a finished one.
    overwrite : bool
        Replace a finished run.
    progress : bool
        Show a progress bar on stderr.
    params : SegmentParams, optional
        Segmentation settings (defaults when None).
    min_overlap_vox : int
        Overlap needed to link a crack to one seen before (tracking).
    span_tolerance_vox : float
        How close (voxels) a crack's faces must come to an interface to touch it (a spanning
        crack touches both).
    report : bool
        Write ``report.html`` afterwards when :mod:`dendritect.report` is installed.
    memory_limit : str or int, optional
        Memory budget for the filters (``"3GB"``): above it they run chunk by chunk
        (:mod:`dendritect.parallel`). Results do not depend on it.
    workers, scheduler : optional
        Run the chunked filters on a local cluster of ``workers`` processes, or on the
        ``dask.distributed`` scheduler at ``scheduler`` (``tcp://host:port``); there the
        later steps are read, registered and aligned by the workers while earlier ones are
        segmented (the same results).
    device : {"cpu", "gpu", "auto"}
        Where the filters run; ``gpu`` needs CuPy and a CUDA device.
    force_units : bool
        Accept implausible voxel sizes, times or cell thickness (with a warning) instead of
        refusing them (:mod:`dendritect.plausible`).
    ring_correction : bool
        Remove ring artefacts from each slice before registration
        (:mod:`dendritect.preprocess.rings`), about the slice centre. Off by default: a thin
        feature concentric with the axis (the gap between a centred pellet and its die, a
        phase fringe at its wall) is indistinguishable from a ring in one slice and would
        be removed with it.

    Returns
    -------
    dict
        The content of ``summary.json``.
    """
    if anode not in ("auto", "top", "bottom"):
        raise InputError(f"--anode must be top, bottom or auto, got {anode!r}")
    input_path = Path(input)
    out = Path(out_dir)
    _check_paths(input_path, out)
    if echem is not None and not Path(echem).is_file():
        raise InputError(f"--echem file not found: {echem}")
    from dendritect.parallel.cluster import compute_context

    # Entered before any folder is made, so a bad --scheduler or --device leaves nothing behind;
    # left in the finally below. Execution settings are not in the fingerprint: they do not
    # change results, so a run may be resumed on other hardware.
    compute = contextlib.ExitStack()
    compute.enter_context(compute_context(scheduler, workers, memory_limit, device=device))
    try:
        # One run per results folder, taken before anything is written into it.
        from dendritect.lock import results_lock

        compute.enter_context(results_lock(out, "analyze"))
        from dendritect.parallel.memory import collections_of_new_objects

        compute.enter_context(collections_of_new_objects())
        return _analyze(input_path, out, voxel_size=voxel_size, dataset=dataset,
                        times_s=times_s, interval=interval, anode=anode, echem=echem,
                        resume=resume, overwrite=overwrite, progress=progress, params=params,
                        min_overlap_vox=min_overlap_vox, span_tolerance_vox=span_tolerance_vox,
                        report=report, force_units=force_units,
                        ring_correction=ring_correction)
    finally:
        compute.close()


@dataclasses.dataclass
class AnalysisRun:
    """One analysis in the making: the series, the cell found on step 0, and the stores in
    ``partial`` that the stage functions fill (what :func:`prepare_cell` gives).

    Attributes
    ----------
    series : Series
        The input, lazy (:func:`dendritect.io.open_series`).
    partial : Path
        Folder the results are built in (``DIR/.partial`` in :func:`analyze`).
    geometry : CellGeometry
        The cell found on step 0, with the anode side decided.
    reference : array
        Step 0, the frame every step is registered onto: float32 in memory when a step fits
        the plan, else read plane by plane.
    plan : Plan
        The run's memory and compute plan (:class:`~dendritect.parallel.memory.Plan`).
    aligned : array
        Where each registered step is written: memory, or a Zarr store in ``partial/work``.
    state : dict
        The resume record (``partial/state.json``): settings fingerprint, anode side, steps
        done, registration shifts, lithium steps; updated and written after every step.
    cracks, previews : zarr.Group
        ``partial/cracks.zarr`` (crack, lithium, labels, fraction, time of arrival) and
        ``partial/previews.zarr`` (three slices through the cell centre per step).
    preview_index : tuple of int
        ``(z, y, x)`` of the preview slices.
    notes : list of str
        Warnings found while preparing (implausible thickness, one step only).
    stages : object
        The preprocessing and segmentation functions the run uses.
    memo : dict
        What registration keeps between steps (the shifts found, what depends on step 0
        alone); the same results without it, only slower.
    """

    series: Any
    partial: Path
    geometry: Any
    reference: Any
    plan: Any
    aligned: Any
    state: dict[str, Any]
    cracks: Any
    previews: Any
    preview_index: tuple[int, int, int]
    notes: list[str]
    stages: Any
    memo: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return self.series.n_steps

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return self.series.shape_zyx

    @property
    def voxel_size_um(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.series.voxel_size_um)

    @property
    def times_s(self) -> np.ndarray:
        return np.asarray(self.series.times_s, dtype=np.float64)

    @property
    def thickness_um(self) -> float:
        """Electrolyte thickness (µm) of the cell found on step 0."""
        return float(self.geometry.thickness_vox) * self.voxel_size_um[0]

    @property
    def work(self) -> Path:
        """Scratch folder of the segmentation (removed once every step is segmented)."""
        return self.partial / "work"

    @property
    def lithium_steps(self) -> set[int]:
        """Steps in which lithium inside cracks was told apart from empty crack."""
        return set(int(t) for t in self.state.get("lithium_steps", []))

    @property
    def lithium_reasons(self) -> dict[str, str]:
        """Why lithium is not known, by step (``str(t)``)."""
        return dict(self.state.get("lithium_reasons", {}))


def _create_stores(partial: Path, n: int, shape: tuple[int, int, int]) -> None:
    """The empty arrays of ``cracks.zarr`` and ``previews.zarr`` in ``partial`` (replaced)."""
    cz = zarr.open_group(str(partial / R.CRACKS_ZARR), mode="w")
    chunks = (1, _plane_chunk(shape), *shape[1:])
    R.create_array(cz, R.CRACK, (n, *shape), "uint8", chunks=chunks)
    R.create_array(cz, R.LITHIUM, (n, *shape), "uint8", chunks=chunks)
    R.create_array(cz, R.LABELS, (n, *shape), "int32", chunks=chunks)
    R.create_array(cz, R.TIME_OF_ARRIVAL, shape, "int16", chunks=chunks[1:], fill_value=-1)
    R.create_array(cz, R.PORES, shape, "uint8", chunks=chunks[1:])
    pz = zarr.open_group(str(partial / R.PREVIEWS_ZARR), mode="w")
    R.create_array(pz, R.PREVIEW_YX, (n, shape[1], shape[2]), "float32",
                   chunks=(1, shape[1], shape[2]), fill_value=0.0)
    R.create_array(pz, R.PREVIEW_ZX, (n, shape[0], shape[2]), "float32",
                   chunks=(1, shape[0], shape[2]), fill_value=0.0)
    R.create_array(pz, R.PREVIEW_ZY, (n, shape[0], shape[1]), "float32",
                   chunks=(1, shape[0], shape[1]), fill_value=0.0)


def prepare_cell(series: Any, partial: str | Path, *, anode: str = "auto",
                 state: dict[str, Any] | None = None, fingerprint: str = "",
                 ring_correction: bool = False, force_units: bool = False,
                 name: str | Path | None = None) -> AnalysisRun:
    """Find the cell on step 0, decide the anode side, and create (or reopen) the stores.

    The first stage of :func:`analyze`. Nothing is segmented yet; the memory plan is built
    from the current compute context (:func:`dendritect.parallel.cluster.compute_context`).

    Parameters
    ----------
    series : Series
        The input, from :func:`dendritect.io.open_series`.
    partial : str or Path
        Folder to build the results in (made when missing).
    anode : {"auto", "top", "bottom"}
        The plated interface; ``auto`` judges it on later steps registered onto step 0.
    state : dict, optional
        The resume record of an unfinished run in ``partial``
        (:func:`dendritect.results.read_state`) to continue: its anode side and stores are
        kept. None starts afresh: the stores are created (replacing any) and the record
        written.
    fingerprint : str
        Recorded in a new resume record (:func:`analyze` puts its settings' hash here).
    ring_correction : bool
        Remove ring artefacts from each slice before registration.
    force_units : bool
        Accept an implausible cell thickness with a warning instead of refusing it.
    name : str or Path, optional
        How the input is named in messages; default ``series.source``.

    Returns
    -------
    AnalysisRun
        What the later stages take.
    """
    if anode not in ("auto", "top", "bottom"):
        raise InputError(f"--anode must be top, bottom or auto, got {anode!r}")
    from dendritect.parallel.cluster import current_context
    from dendritect.parallel.memory import Plan
    from dendritect.plausible import check_thickness

    partial = Path(partial)
    partial.mkdir(parents=True, exist_ok=True)
    name = series.source if name is None else name
    stages = _Stages(ring_correction=ring_correction)
    n = series.n_steps
    shape = series.shape_zyx
    spacing = tuple(float(s) for s in series.voxel_size_um)
    notes: list[str] = []
    # Nothing below holds a whole step in float32 unless it fits the memory budget: steps
    # are read plane by plane, the aligned step goes to a scratch store, and tracking and
    # measuring work on the crack voxels.
    reference = _step(series, 0, stages)
    geometry = stages.find_cell(reference, spacing, anode=anode, where=f"{name} step 0")
    notes.extend(check_thickness(geometry, spacing, force=force_units))
    # the one plan of memory and compute for the whole run, passed to every stage
    plan = Plan.from_context(shape, series.data.dtype, current_context())
    aligned = _aligned_store(partial / "work", plan)
    memo = _registration_memo(plan)
    if isinstance(aligned, np.ndarray):
        # the step fits the budget: read step 0 once
        reference = np.asarray(reference, dtype=np.float32)
    if state is None:
        decided = anode
        if anode == "auto":
            if n > 1:
                decided = _decide_anode(stages, series, reference, geometry, aligned, plan,
                                        memo)
            else:
                decided = str(geometry.anode)
        state = {"fingerprint": fingerprint, "anode": decided, "done": [], "shifts": {}}
        _create_stores(partial, n, shape)
        R.write_state(partial, state)
    if anode == "auto" and n == 1:
        notes.append(f"{name} has one step only: the anode side cannot be decided from "
                     f"changes; assumed {state['anode']} (set --anode)")
    if anode == "auto":
        if hasattr(geometry, "with_anode"):
            geometry = geometry.with_anode(state["anode"])
        elif state["anode"] != geometry.anode:
            geometry = stages.find_cell(reference, spacing, anode=state["anode"],
                                        where=f"{name} step 0")
    zi, yi, xi = _preview_index(geometry, shape)
    cz = zarr.open_group(str(partial / R.CRACKS_ZARR), mode="r+")
    if R.FRACTION not in cz:
        # crack fraction from the grey-level deficit (measure.deficit), at crack voxels
        R.create_array(cz, R.FRACTION, (n, *shape), "float32", chunks=cz[R.CRACK].chunks,
                       fill_value=0.0)
    pz = zarr.open_group(str(partial / R.PREVIEWS_ZARR), mode="r+")
    if not pz[R.PREVIEW_YX].attrs.get("z_index") == zi:
        pz[R.PREVIEW_YX].attrs["z_index"] = zi
        pz[R.PREVIEW_ZX].attrs["y_index"] = yi
        pz[R.PREVIEW_ZY].attrs["x_index"] = xi
    return AnalysisRun(series=series, partial=partial, geometry=geometry, reference=reference,
                       plan=plan, aligned=aligned, state=state, cracks=cz, previews=pz,
                       preview_index=(zi, yi, xi), notes=notes, stages=stages, memo=memo)


def grow_run(run: AnalysisRun, series: Any) -> AnalysisRun:
    """The run of a series that grew by steps at its end (a scan acquired since), in place.

    The cell, the anode side, the plan and the resume record are kept; the stores are
    resized to the new number of steps (the steps done keep their data, the new ones are
    empty, as :func:`prepare_cell` would have created them) and the run reads ``series``
    from now on, so that :func:`segment_steps` segments the new steps only. ``dendritect
    watch`` calls it for every new scan.

    Parameters
    ----------
    run : AnalysisRun
        From :func:`prepare_cell` (on the steps so far).
    series : Series
        The same input with as many steps or more: every step of ``run.series`` unchanged,
        of the same shape.

    Returns
    -------
    AnalysisRun
        ``run``.

    Raises
    ------
    InputError
        When ``series`` has fewer steps than segmented, or steps of another shape.
    """
    n = int(series.n_steps)
    have = tuple(int(s) for s in run.cracks[R.CRACK].shape[1:])  # run.series may be let go
    if tuple(series.shape_zyx) != have:
        raise InputError(f"{series.source}: steps of shape {tuple(series.shape_zyx)}, the run's "
                         f"are {have}")
    done = [int(t) for t in run.state.get("done", [])]
    if done and max(done) >= n:
        raise InputError(f"{series.source}: {n} steps, but step {max(done)} is segmented")
    for group, ndim in ((run.cracks, 4), (run.previews, 3)):
        for name in list(group.array_keys()):
            arr = group[name]
            if arr.ndim == ndim and int(arr.shape[0]) != n:
                arr.resize((n, *arr.shape[1:]))
    run.series = series
    if not isinstance(run.reference, np.ndarray):
        run.reference = _step(series, 0, run.stages)  # read lazily from the new series
    if not isinstance(run.aligned, np.ndarray):
        run.aligned = _aligned_store(run.work, run.plan)  # the scratch folder is gone
    return run


def segment_steps(run: AnalysisRun, params: Any = None, *, progress: bool = False,
                  tracker: CrackTracker | None = None) -> list[int]:
    """Register, intensity-match and segment every step not done yet, in order.

    Each step's crack and lithium masks, its crack fraction (where the grey-level deficit can
    be measured) and its preview slices go into the run's stores; the step is then recorded
    in ``run.state`` (done, shift, lithium) and the record written, so that an interrupted
    run continues from the next step. Once step 1 is recorded, step 0 has its
    :func:`second_look` (step 1's cracks as seeds); the tracker is fed step 0 after it. The
    scratch folder is removed at the end.

    Parameters
    ----------
    run : AnalysisRun
        From :func:`prepare_cell`.
    params : SegmentParams, optional
        Segmentation settings (defaults when None).
    progress : bool
        Show a progress bar on stderr.
    tracker : CrackTracker, optional
        Fed every step once it is recorded (and the steps recorded before, first), so that
        tracking and measuring run while later steps are segmented (:func:`track_and_measure`
        with the same tracker then only finishes); the same tables as tracking afterwards.

    Returns
    -------
    list of int
        The steps segmented by this call.
    """
    from dendritect.measure.deficit import can_measure
    from dendritect.parallel.memory import release_memory

    stages, geometry, reference, plan = run.stages, run.geometry, run.reference, run.plan
    if params is None:
        params = stages.SegmentParams()
    state, cz, pz, work = run.state, run.cracks, run.previews, run.work
    zi, yi, xi = run.preview_index
    # lithium inside cracks is known step by step: where the scan tells it apart (a step
    # without cracks holds none), and unknown, with the reason, elsewhere
    li_steps = run.lithium_steps
    li_reasons = run.lithium_reasons

    done = set(int(t) for t in state["done"])
    todo = [t for t in range(run.n_steps) if t not in done]
    # the pores of the first step stay out of every step's crack volume (results written
    # before they were kept have none: their volumes are measured as then)
    pores = cz[R.PORES] if R.PORES in cz else None

    def finish(t: int, vol: Any, shift: np.ndarray, lithium: Any, li_known: list[int],
               reasons: dict[str, str]) -> None:
        """What follows a step's segmentation: its crack fraction, previews and record."""
        if can_measure(geometry):
            _store_fraction(vol, _StepView(cz[R.CRACK], t), geometry, cz[R.FRACTION], t=t,
                            lithium=lithium, plan=plan, pores=pores)
            state["fraction"] = sorted(set(state.get("fraction", [])) | {t})
        pz[R.PREVIEW_YX][t] = _plane(vol, zi)
        pz[R.PREVIEW_ZX][t] = _plane(vol, (slice(None), yi))
        pz[R.PREVIEW_ZY][t] = _plane(vol, (slice(None), slice(None), xi))
        release_memory()
        state["done"] = sorted(done | {t})
        done.add(t)
        state["shifts"][str(t)] = [round(float(s), 6) for s in shift]
        state["lithium_steps"] = li_known
        state["lithium_reasons"] = reasons
        R.write_state(run.partial, state)
        if bar:
            bar.advance(task)
        if tracker is not None:
            _track_recorded(tracker, done, run)

    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(_progress(progress))
        task = bar.add_task("segmenting", total=run.n_steps, completed=len(done)) if bar else None
        # With the next step registered ahead, the thread that registers it also finishes
        # each step (crack fraction, previews, record) while the next one is segmented; one
        # thread, in order, so a step's buffer is read before the step after next is
        # registered into it, and the record is written step after step.
        pool = None
        client = _ahead_on_cluster(run.aligned, todo, plan)
        if client is not None:
            # later steps are registered and aligned on the cluster's workers, as many at
            # once as there are workers, while this process segments in order
            steps = _aligned_steps_on_cluster(run.series, todo, reference, geometry,
                                              run.aligned, stages, run.memo or
                                              _registration_memo(plan), client,
                                              work / "ahead")
        else:
            if _registers_ahead(run.aligned, todo, plan):
                from concurrent.futures import ThreadPoolExecutor

                pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))
            steps = _aligned_steps(run.series, todo, reference, geometry, run.aligned, stages,
                                   plan, run.memo or None, pool=pool)
        pending = None
        if _second_look_due(run):  # an interrupted run: step 1 was recorded before it
            second_look(run, params, tracker=tracker)
            li_steps, li_reasons = run.lithium_steps, run.lithium_reasons  # step 0's may change
        for t, (vol, shift) in zip(todo, steps, strict=True):
            check_stop()
            crack_t = _StepView(cz[R.CRACK], t)
            li_t = _StepView(cz[R.LITHIUM], t)
            seg = _segment(
                stages, vol, geometry, reference=None if t == 0 else reference,
                previous=None if t == 0 else _StepView(cz[R.CRACK], t - 1), params=params,
                out={"crack": crack_t, "lithium": li_t,
                     "pores": pores if t == 0 and pores is not None else _Discard()},
                scratch=work / "segment", plan=plan)
            if seg.lithium is not None:
                li_steps.add(t)
            else:
                li_reasons[str(t)] = getattr(seg, "lithium_reason", None) or (
                    "lithium not segmented")
            release_memory()
            args = (t, vol, shift, None if seg.lithium is None else li_t, sorted(li_steps),
                    dict(li_reasons))
            if pending is not None:
                pending.result()  # the previous step's errors, here
            if pool is None:
                finish(*args)
            else:
                pending = pool.submit(finish, *args)
            if t == 1 and pending is not None:
                pending.result()  # step 1 is recorded before step 0 changes
                pending = None
            if _second_look_due(run):
                second_look(run, params, tracker=tracker)
                li_steps, li_reasons = run.lithium_steps, run.lithium_reasons
        if pending is not None:
            pending.result()
    shutil.rmtree(work, ignore_errors=True)
    return todo


def _second_look_due(run: AnalysisRun) -> bool:
    """Whether step 1 is recorded and step 0 has not had its second look yet."""
    return 1 in set(int(t) for t in run.state["done"]) and not run.state.get("second_look")


def second_look(run: AnalysisRun, params: Any = None, *,
                tracker: CrackTracker | None = None) -> bool:
    """Segment step 0 again with step 1's cracks as a hint, and add what it finds to step 0.

    A crack already in the first scan is often fainter there than it will be (thinner,
    lithium-filled): the first step has no earlier scan to compare with, so only its own
    sheetness and darkness find it. Step 1 sees it once it has opened; step 1's crack voxels
    that are weak sheet evidence in step 0 seed it there
    (:func:`~dendritect.segment.segment_step` with ``following``). Step 0's crack voxels are
    the union of both looks; its lithium is the second look's where that one tells it. When
    step 1's cracks all lie in step 0's, the second look would find the same: it is skipped.
    Step 1 was segmented against step 0's first look, before this, in every run
    (:func:`segment_steps` calls it once step 1 is recorded, and again on resuming if it was
    interrupted): the results do not depend on where a run stopped, nor on how many scans a
    ``watch`` had when step 1 landed.

    Returns
    -------
    bool
        Whether step 0's masks changed.
    """
    cz, state = run.cracks, run.state
    if params is None:
        params = run.stages.SegmentParams()
    shape = tuple(int(s) for s in cz[R.CRACK].shape[1:])
    crack0, li0 = _StepView(cz[R.CRACK], 0), _StepView(cz[R.LITHIUM], 0)
    crack1 = _StepView(cz[R.CRACK], 1)
    step = _plane_chunk(shape)
    if any((np.asarray(crack1[z0:z0 + step]) > np.asarray(crack0[z0:z0 + step])).any()
           for z0 in range(0, shape[0], step)):
        changed = _look_again(run, params, crack0, li0, crack1)
    else:
        changed = False
    state["second_look"] = True
    R.write_state(run.partial, state)
    if tracker is not None:
        _track_recorded(tracker, set(int(t) for t in state["done"]), run)
    return changed


def _look_again(run: AnalysisRun, params: Any, crack0: _StepView, li0: _StepView,
                crack1: _StepView) -> bool:
    """:func:`second_look`'s segmentation and union, and step 0's crack fraction and
    lithium record after it (in ``run.state``, not yet written)."""
    from dendritect.measure.deficit import can_measure
    from dendritect.parallel.memory import release_memory

    stages, geometry, plan, cz, state = run.stages, run.geometry, run.plan, run.cracks, run.state
    shape = tuple(int(s) for s in crack0.shape)
    step = _plane_chunk(shape)
    work = run.work / "second-look"
    if plan.hold_steps:
        tmp = {k: np.zeros(shape, np.uint8) for k in ("crack", "lithium")}
    else:
        work.mkdir(parents=True, exist_ok=True)
        tmp = {k: zarr.create_array(store=str(work / f"{k}.zarr"), shape=shape, dtype="uint8",
                                    chunks=(step, *shape[1:]), overwrite=True)
               for k in ("crack", "lithium")}
    seg = _segment(stages, run.reference, geometry, reference=None, previous=None,
                   following=crack1, params=params,
                   out={**tmp, "pores": _Discard()}, scratch=work / "segment", plan=plan)
    changed = False
    for z0 in range(0, shape[0], step):
        z = slice(z0, min(shape[0], z0 + step))
        first = np.asarray(crack0[z]) > 0
        again = np.asarray(tmp["crack"][z]) > 0
        if (again & ~first).any():
            changed = True
            crack0[z] = (first | again).astype(np.uint8)
        if seg.lithium is not None:
            li_first = np.asarray(li0[z])
            li = np.where(again, np.asarray(tmp["lithium"][z]), li_first).astype(np.uint8)
            if (li != li_first).any():
                changed = True
                li0[z] = li
    del tmp
    li_steps, li_reasons = run.lithium_steps, run.lithium_reasons
    if seg.lithium is not None:
        li_steps.add(0)
        li_reasons.pop("0", None)
    if changed and can_measure(geometry):
        pores = cz[R.PORES] if R.PORES in cz else None
        _store_fraction(run.reference, crack0, geometry, cz[R.FRACTION], t=0,
                        lithium=li0 if 0 in li_steps else None, plan=plan, pores=pores)
    state["lithium_steps"] = sorted(li_steps)
    state["lithium_reasons"] = li_reasons
    shutil.rmtree(work, ignore_errors=True)
    release_memory()
    return changed


def _track_recorded(tracker: CrackTracker, done: set[int], run: AnalysisRun) -> None:
    """Feed ``tracker`` the steps recorded so far that it has not had, in order; step 0
    once it has had its second look (or when it is the only step)."""
    if tracker.n_steps == 0 and run.n_steps > 1 and not run.state.get("second_look"):
        return
    while tracker.n_steps in done and tracker.n_steps < tracker.run.n_steps:
        tracker.add(tracker.n_steps)


def track_and_measure(run: AnalysisRun, *, min_overlap_vox: int = 1,
                      span_tolerance_vox: float = SPAN_TOLERANCE_VOX,
                      tracker: CrackTracker | None = None,
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time of arrival, tracking and measurements, from the stored crack masks.

    Streams over the steps' crack voxels (flat indices, read plane by plane): writes
    ``time_of_arrival`` and the tracked ``labels`` into ``run.cracks``, measures every crack
    and step, roots at all steps of its track a crack rooted at any
    (:func:`~dendritect.measure.cracks.root_tracks`), and takes the rooted cracks into each
    step's front, lithium front and span. Without lithium in any step, the ``lithium``
    array is dropped from the store (with a note in its attributes,
    :func:`finish_cracks_store`). The work is a :class:`CrackTracker` fed every step.

    Parameters
    ----------
    run : AnalysisRun
        Every step segmented (:func:`segment_steps`).
    min_overlap_vox : int
        Overlap needed to link a crack to one seen before.
    span_tolerance_vox : float
        How close (voxels) a crack's faces must come to an interface to touch it.
    tracker : CrackTracker, optional
        One already fed some steps (given to :func:`segment_steps`, with these settings):
        it is fed the rest. Default: a new one.

    Returns
    -------
    metrics : DataFrame
        One row per step, :data:`METRIC_COLUMNS` (``metrics.csv`` without cycler columns).
    cracks : DataFrame
        One row per crack and step (``cracks.csv``).
    """
    if tracker is None:
        tracker = CrackTracker(run, min_overlap_vox=min_overlap_vox,
                               span_tolerance_vox=span_tolerance_vox)
    for t in range(tracker.n_steps, run.n_steps):
        check_stop()
        tracker.add(t)
    metrics, cracks = tracker.results()
    finish_cracks_store(run.cracks, lithium=bool(run.lithium_steps))
    return metrics, cracks


class _Feed:
    """An iterator over a queue that the caller fills one item before each ``next`` of the
    generator that consumes it (so a generator over the steps can be kept between steps)."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> Any:
        if not self.items:
            raise StopIteration
        return self.items.pop(0)


class CrackTracker:
    """Tracking and measuring step by step, with its state kept between steps.

    What :func:`track_and_measure` does, one step at a time: a series that grows
    (``dendritect watch``) measures only its new step and then runs the whole-track passes
    over the tables kept in memory. Feed the steps in order with :meth:`add`, each once it
    is segmented; :meth:`results` then gives what :func:`track_and_measure` gives for the
    steps added so far (the same tables; tracking, arrival and the measurement of a step
    depend only on the steps up to it).

    Parameters
    ----------
    run : AnalysisRun
        The run whose stored crack masks are tracked (:func:`prepare_cell`); it may grow
        between two :meth:`add` (:func:`grow_run`).
    min_overlap_vox : int
        Overlap needed to link a crack to one seen before.
    span_tolerance_vox : float
        How close (voxels) a crack's faces must come to an interface to touch it.

    Notes
    -----
    Memory: the last id of every voxel ever crack, the first step of each (time of
    arrival), and one crack table and metrics row per step.
    """

    def __init__(self, run: AnalysisRun, *, min_overlap_vox: int = 1,
                 span_tolerance_vox: float = SPAN_TOLERANCE_VOX) -> None:
        from dendritect.track.sparse import track_voxels

        if int(min_overlap_vox) < 1:
            raise InputError(f"min_overlap_vox must be at least 1, got {min_overlap_vox!r}")
        self.run = run
        self.span_tolerance_vox = span_tolerance_vox
        spacing = run.voxel_size_um
        self._thick_um = float(run.geometry.thickness_vox) * spacing[0]
        self._span_from_um = self._thick_um - cathode_tolerance_vox(span_tolerance_vox) * spacing[0]
        self._history = CrackHistory(span_from_um=self._span_from_um,
                                     thickness_um=self._thick_um)
        self._feed = _Feed()
        self._tracks = track_voxels(self._feed, run.shape_zyx, min_overlap_vox=min_overlap_vox)
        self._tables: list[pd.DataFrame] = []
        self._rows: list[dict[str, Any]] = []
        self._merges: dict[int, int] = {}
        self._before: tuple[np.ndarray, np.ndarray] | None = None
        self._seen = np.zeros(0, dtype=np.int64)   # every voxel ever crack, sorted
        self._first = np.zeros(0, dtype=np.int16)  # the first step it was crack at

    @property
    def n_steps(self) -> int:
        """The steps added so far."""
        return len(self._rows)

    def add(self, t: int | None = None) -> None:
        """Track and measure the next step (``t``, when given, must be it); writes its tracked
        ``labels`` into the run's store.

        Raises
        ------
        InputError
            When ``t`` is not the next step, or is not segmented yet.
        """
        from dendritect.measure.deficit import values_at
        from dendritect.measure.sparse import measure_cracks_voxels, measure_step_voxels
        from dendritect.track.sparse import mask_voxels, write_voxels

        run = self.run
        k = self.n_steps
        if t is not None and int(t) != k:
            raise InputError(f"CrackTracker: step {t} given, step {k} is next")
        if k not in set(int(s) for s in run.state.get("done", [])):
            raise InputError(f"CrackTracker: step {k} is not segmented yet")
        if k > np.iinfo(np.int16).max:
            raise InputError(f"more than {np.iinfo(np.int16).max + 1} steps do not fit int16")
        shape, spacing, geometry, cz = run.shape_zyx, run.voxel_size_um, run.geometry, run.cracks
        time_s = float(run.times_s[k])
        flat = mask_voxels(_StepView(cz[R.CRACK], k))
        # time of arrival: the voxels crack for the first time
        new = flat[~np.isin(flat, self._seen, assume_unique=True)]
        if new.size:
            seen = np.concatenate([self._seen, new])
            first = np.concatenate([self._first, np.full(new.size, k, dtype=np.int16)])
            order = np.argsort(seen, kind="stable")
            self._seen, self._first = seen[order], first[order]
        self._feed.items.append(flat)
        labels = next(self._tracks)
        write_voxels(cz[R.LABELS], flat, labels, t=k)
        if self._before is not None:
            self._merges.update(_merged_ids(*self._before, flat, labels))
        self._before = (flat, labels)
        lith = None
        if k in run.lithium_steps:
            li_flat = mask_voxels(_StepView(cz[R.LITHIUM], k))
            lith = np.isin(flat, li_flat, assume_unique=True)
        with_fraction = set(int(s) for s in run.state.get("fraction", []))
        frac = values_at(cz[R.FRACTION], flat, t=k) if k in with_fraction else None
        table = measure_cracks_voxels(flat, labels, shape, geometry, spacing, lithium=lith,
                                      fraction=frac, time_s=time_s, t_index=k,
                                      span_tolerance_vox=self.span_tolerance_vox)
        self._tables.append(self._history.update(table))
        row = {"t_index": k, "time_s": time_s}
        row.update(measure_step_voxels(flat, shape, geometry, spacing, lithium=lith,
                                       fraction=frac,
                                       span_tolerance_vox=self.span_tolerance_vox))
        row.update(zip(("shift_dz_vox", "shift_dy_vox", "shift_dx_vox"),
                       run.state["shifts"][str(k)], strict=True))
        self._rows.append(row)

    def results(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The metrics and crack tables of the steps added so far (as
        :func:`track_and_measure`); writes ``time_of_arrival`` of those steps into the run's
        store. The tables kept are not changed: call again after more steps."""
        from dendritect.track.sparse import write_voxels

        if not self._rows:
            raise InputError("CrackTracker: no steps added")
        write_voxels(self.run.cracks[R.TIME_OF_ARRIVAL], self._seen, self._first, fill=-1)
        # a crack rooted at any step of its track is rooted at all of them
        crack_tables = root_tracks(self._tables, span_from_um=self._span_from_um,
                                   thickness_um=self._thick_um, merges=self._merges,
                                   max_gap_um=ROOT_REACH_VOX * self.run.voxel_size_um[0])
        metric_rows = [dict(row) for row in self._rows]
        for row, table in zip(metric_rows, crack_tables, strict=True):
            _rooted_by_history(row, table)
        metrics = pd.DataFrame(metric_rows, columns=METRIC_COLUMNS)
        nonempty = [c for c in crack_tables if len(c)]
        cracks = (pd.concat(nonempty, ignore_index=True) if nonempty
                  else pd.DataFrame(columns=CRACK_COLUMNS))
        return metrics, cracks


def finish_cracks_store(cracks: Any, *, lithium: bool) -> None:
    """``cracks.zarr`` as the results hold it: without any step in which lithium was told
    apart (``lithium=False``), its ``lithium`` array is removed and the group's attributes
    say why. :func:`track_and_measure` calls it on the run's store; ``dendritect watch`` on
    the copy it publishes (its own store keeps the array for the steps to come).

    Parameters
    ----------
    cracks : zarr.Group
        The store (``cracks.zarr``), opened for writing.
    lithium : bool
        Whether any step had lithium told apart (``bool(run.lithium_steps)``).
    """
    if not lithium:
        cracks.attrs["lithium"] = ("not segmented: lithium in cracks cannot be told from "
                                   "empty crack")
        if R.LITHIUM in cracks:
            del cracks[R.LITHIUM]


def predict_short(metrics: pd.DataFrame, times_s: Any, thickness_um: float, *,
                  echem_short_s: float | None = None) -> dict[str, Any]:
    """The first spanning step, the span forecast from the steps before it, the short.

    Parameters
    ----------
    metrics : DataFrame
        One row per step, with ``spanning`` and ``front_depth_um`` (:func:`track_and_measure`).
    times_s : array_like
        Scan times (s), one per row.
    thickness_um : float
        Electrolyte thickness (µm), what the front must cross.
    echem_short_s : float, optional
        When the cycler record shows the short (s), if it does.

    Returns
    -------
    dict
        ``span_index`` and ``span_time_s`` (None without a span), and ``short_circuit``: the
        cycler's short time, the forecast span time, its σ and method, the last step it was
        fitted on, and the lag from span to short (s).
    """
    times = np.asarray(times_s, dtype=np.float64)
    span = np.flatnonzero(metrics["spanning"].to_numpy() > 0)
    span_index = int(span[0]) if span.size else None
    use = times.size if span_index is None else span_index
    forecast = None
    if use >= 1 and np.all(np.diff(times[:use]) > 0):
        forecast = forecast_span(times[:use], metrics["front_depth_um"].to_numpy()[:use],
                                 thickness_um)
    forecast_from = use - 1 if forecast is not None and forecast.time_s is not None else None
    span_time = None if span_index is None else float(times[span_index])
    return {
        "span_index": span_index,
        "span_time_s": span_time,
        "short_circuit": {
            "echem_time_s": None if echem_short_s is None else float(echem_short_s),
            "forecast_time_s": None if forecast is None else forecast.time_s,
            "forecast_sigma_s": None if forecast is None else forecast.sigma_s,
            "forecast_method": None if forecast is None else forecast.method,
            "forecast_from_index": forecast_from,
            "span_to_short_lag_s": (None if echem_short_s is None or span_time is None
                                    else float(echem_short_s) - span_time),
        },
    }


def build_summary(run: AnalysisRun, metrics: pd.DataFrame, prediction: dict[str, Any], *,
                  input_path: str | Path, settings: dict[str, Any] | None = None,
                  notes: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The content of ``summary.json``, as JSON gives it back (sorted keys, no NaN).

    Parameters
    ----------
    run : AnalysisRun
        Every step segmented (:func:`segment_steps`).
    metrics : DataFrame
        From :func:`track_and_measure`.
    prediction : dict
        From :func:`predict_short`.
    input_path : str or Path
        The input, as recorded (resolved).
    settings : dict, optional
        The run's settings, recorded as ``parameters``.
    notes : list of str
        Warnings, recorded as ``warnings``.
    """
    state, geometry = run.state, run.geometry
    dz = run.voxel_size_um[0]
    summary = {
        "dendritect_version": __version__,
        "input": str(Path(input_path).resolve()),
        "format": run.series.format,
        "n_steps": run.n_steps,
        "shape_zyx": list(run.shape_zyx),
        "times_s": run.times_s,
        "voxel_size_um": list(run.voxel_size_um),
        "anode": state["anode"],
        "electrolyte_interfaces_um": [float(geometry.z_anode_vox) * dz,
                                      float(geometry.z_cathode_vox) * dz],
        "electrolyte_thickness_um": run.thickness_um,
        "interface_tilt_deg": float(geometry.tilt_deg()),
        "registration_shifts_vox": [state["shifts"][str(t)] for t in range(run.n_steps)],
        "span_index": prediction["span_index"],
        "span_time_s": prediction["span_time_s"],
        "lithium_segmented": bool(run.lithium_steps),
        "lithium": _lithium_summary(run.lithium_steps, run.lithium_reasons,
                                    metrics["n_cracks"].to_numpy()),
        "short_circuit": prediction["short_circuit"],
        "parameters": {} if settings is None else settings,
        "warnings": list(notes),
    }
    return json.loads(R.dumps_json(summary))


def write_tables(run: AnalysisRun, metrics: pd.DataFrame, cracks: pd.DataFrame,
                 folder: str | Path, *, sampled: pd.DataFrame | None, echem: str | Path | None,
                 short: Any, input_path: str | Path, settings: dict[str, Any],
                 notes: list[str]) -> dict[str, Any]:
    """``metrics.csv`` (with the cycler's columns, :func:`add_echem_columns`) and
    ``cracks.csv`` written into ``folder``, the short predicted (:func:`predict_short`), the
    notes warned once, and the summary (:func:`build_summary`) returned."""
    add_echem_columns(metrics, sampled, echem)
    R.write_csv(Path(folder) / R.METRICS_CSV, metrics)
    R.write_csv(Path(folder) / R.CRACKS_CSV, cracks)
    prediction = predict_short(metrics, run.times_s, run.thickness_um,
                               echem_short_s=None if short is None
                               else getattr(short, "time_s", None))
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=3)
    return build_summary(run, metrics, prediction, input_path=input_path, settings=settings,
                         notes=notes)


def analysis_settings(input_path: str | Path, *, voxel_size: Any = None,
                      dataset: str | None = None, times_s: Any = None, interval: Any = None,
                      anode: str = "auto", echem: str | Path | None = None, params: Any = None,
                      min_overlap_vox: int = 1, span_tolerance_vox: float = SPAN_TOLERANCE_VOX,
                      ring_correction: bool = False) -> tuple[dict[str, Any], str]:
    """The settings :func:`analyze` records for these options (``summary.json``
    ``parameters``) and their fingerprint (kept in the resume record, it guards
    ``--resume``). The options are :func:`analyze`'s; ``params`` None is the default
    segmentation settings.

    Returns
    -------
    settings : dict
    fingerprint : str
    """
    if params is None:
        params = _Stages(ring_correction=ring_correction).SegmentParams()
    settings = {
        "input": str(Path(input_path).resolve()),
        "voxel_size": voxel_size if voxel_size is None else str(voxel_size),
        "dataset": dataset,
        "times_s": None if times_s is None else [str(t) for t in np.atleast_1d(times_s)],
        "interval": None if interval is None else str(interval),
        "anode": anode,
        "echem": None if echem is None else str(Path(echem).resolve()),
        "segment": _params_dict(params),
        "min_overlap_vox": int(min_overlap_vox),
        "span_tolerance_vox": float(span_tolerance_vox),
        "ring_correction": bool(ring_correction),
    }
    return settings, _fingerprint(settings)


def echem_at_scans(echem: str | Path, times_s: Any, *, copy_to: str | Path | None = None
                   ) -> tuple[pd.DataFrame | None, Any, list[str]]:
    """The cycler file as :func:`analyze` reads it: voltage and charge at the scan times (NaN
    outside the record), the short seen in it
    (:func:`~dendritect.predict.short.detect_short`) and warnings; the whole record
    (decimated) is written to ``copy_to`` (``echem.csv`` of the results) when given.

    Returns
    -------
    sampled : DataFrame
        ``voltage_V`` and ``charge_mAh``, one row per scan (:func:`add_echem_columns`).
    short : object
        The short found (its ``time_s`` is None when there is none).
    notes : list of str
    """
    times_s = np.asarray(times_s, dtype=np.float64)
    copy_to = None if copy_to is None else Path(copy_to)
    from dendritect.io.echem import read_echem, sample_at
    from dendritect.predict.short import detect_short

    notes: list[str] = []
    df = read_echem(echem)
    if copy_to is not None:
        R.write_echem_copy(copy_to, df)
    t = df["time_s"].to_numpy(dtype=np.float64)
    with warnings.catch_warnings():
        # Scans outside the record are reported below, once, in words that name the option.
        warnings.simplefilter("ignore")
        sampled = sample_at(df, times_s)
    inside = sampled["in_record"].to_numpy(dtype=bool)
    if not inside.any():
        notes.append(f"--echem {echem}: the cycler record ({np.nanmin(t):g}..{np.nanmax(t):g} s) "
                     f"does not overlap the scan times ({times_s.min():g}..{times_s.max():g} s); "
                     "voltage and charge are left empty")
    elif not inside.all():
        notes.append(f"--echem {echem}: {int((~inside).sum())} scan time(s) lie outside the "
                     "cycler record; their voltage and charge are left empty")
    sampled = sampled[["voltage_V", "charge_mAh"]].where(
        np.repeat(inside[:, None], 2, axis=1)).reset_index(drop=True)
    return sampled, detect_short(df), notes


def add_echem_columns(metrics: pd.DataFrame, sampled: pd.DataFrame | None,
                      echem: str | Path | None) -> None:
    """``voltage_V`` and ``charge_mAh`` of :func:`echem_at_scans` as columns of ``metrics``
    (``metrics.csv``), in place; empty columns when a cycler file was given but not
    sampled, none without one."""
    if sampled is not None:
        metrics["voltage_V"] = sampled["voltage_V"].to_numpy()
        metrics["charge_mAh"] = sampled["charge_mAh"].to_numpy()
    elif echem is not None:
        metrics["voltage_V"] = np.nan
        metrics["charge_mAh"] = np.nan


def _analyze(input_path: Path, out: Path, *, voxel_size: Any, dataset: str | None,
             times_s: Any, interval: Any, anode: str, echem: str | Path | None, resume: bool,
             overwrite: bool, progress: bool, params: Any, min_overlap_vox: int,
             span_tolerance_vox: float, report: bool,
             force_units: bool = False, ring_correction: bool = False) -> dict[str, Any]:
    """The body of :func:`analyze`, run inside its compute context and the folder's lock."""
    from dendritect.io import open_series
    from dendritect.plausible import check_units

    partial, phase = R.prepare(out, resume=resume, overwrite=overwrite)
    if phase == "finished":
        return json.loads((out / R.SUMMARY_JSON).read_text(encoding="utf-8"))
    if phase == "finishing":  # computed before a kill: only the moves and the report are left
        summary = R.read_summary(out, partial)
        _complete(out, partial, summary, report)
        return summary

    try:
        if params is None:
            params = _Stages(ring_correction=ring_correction).SegmentParams()
        series = open_series(input_path, dataset=dataset, voxel_size=voxel_size, times_s=times_s,
                             interval=interval)
        times = np.asarray(series.times_s, dtype=np.float64)
        settings, fp = analysis_settings(
            input_path, voxel_size=voxel_size, dataset=dataset, times_s=times_s,
            interval=interval, anode=anode, echem=echem, params=params,
            min_overlap_vox=min_overlap_vox, span_tolerance_vox=span_tolerance_vox,
            ring_correction=ring_correction)
        notes: list[str] = []
        notes.extend(check_units(tuple(float(s) for s in series.voxel_size_um), times,
                                 series.shape_zyx, force=force_units))

        # Echem first: an unreadable cycler file must fail before hours of segmentation.
        sampled = short = None
        if echem is not None:
            sampled, short, enotes = echem_at_scans(echem, times, copy_to=partial / R.ECHEM_CSV)
            notes.extend(enotes)

        state = R.read_state(partial) if resume else None
        if state is not None and state.get("fingerprint") != fp:
            raise InputError(f"--resume: the unfinished run in {out} used other settings; "
                             "run again with the same options, or without --resume")

        run = prepare_cell(series, partial, anode=anode, state=state, fingerprint=fp,
                           ring_correction=ring_correction, force_units=force_units,
                           name=input_path)
        notes.extend(run.notes)
        # tracked step by step while later steps are segmented (the same tables)
        tracker = CrackTracker(run, min_overlap_vox=min_overlap_vox,
                               span_tolerance_vox=span_tolerance_vox)
        segment_steps(run, params, progress=progress, tracker=tracker)
        metrics, cracks = track_and_measure(run, min_overlap_vox=min_overlap_vox,
                                            span_tolerance_vox=span_tolerance_vox,
                                            tracker=tracker)
        summary = write_tables(run, metrics, cracks, partial, sampled=sampled, echem=echem,
                               short=short, input_path=input_path, settings=settings,
                               notes=notes)
        _complete(out, partial, summary, report)
        return summary

    except InputError:
        # Bad input found before any step was analysed: leave no half-made folder behind.
        st = R.read_state(partial)
        if st is None or not st.get("done"):
            R.abandon(out, partial)
        raise


def _complete(out: Path, partial: Path, summary: dict[str, Any], report: bool) -> None:
    """Move the results into place, write the report, then mark the run finished: a kill at
    any moment here leaves a folder that ``--resume`` completes (R.finish is idempotent)."""
    R.finish(out, partial, summary)
    if report:
        _write_report(out)
    R.mark_finished(out)

def _write_report(out: Path) -> None:
    """Write ``report.html`` when the report module is installed; the results stand without it."""
    try:
        from dendritect.report import write_report
    except ImportError:
        return
    try:
        write_report(out)
    except InputError as exc:
        warnings.warn(f"report.html not written: {exc}", UserWarning, stacklevel=2)
