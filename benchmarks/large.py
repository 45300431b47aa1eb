"""``make bench-large``: a 4-step series of 512×1024×1024 uint16 scans, out of core.

Writes a synthetic series as a Zarr store (z-slab chunks, ``voxel_size_um`` and ``times_s``
attributes; 4 GB at full size) chunk by chunk, then runs it through the chunked crack filter
(:func:`dendritect.parallel.sheetness_chunked`) under a memory limit (default 3GB) inside
:func:`dendritect.parallel.compute_context`, storing a crack-candidate mask per step; and, when
``dendritect.pipeline.analyze`` accepts ``memory_limit``, the full analysis with the same limit
(with ``--in-memory`` also without it, steps held whole, where the machine holds a step's
working set: the ratio of the two times is the cost of running out of core, per voxel of the
same series, and the two runs' fronts, crack counts and span must agree).
Peak RSS of this process and throughput go to ``benchmarks/results/large.json``.

The cell: steel plungers, lithium electrodes (smaller than the pellet), a Li6PS5Cl-like
electrolyte pellet in a PEEK die, and vertical dark cracks that grow from the anode (low z)
one step after another until one spans the electrolyte at the last step.

Not run in CI (minutes to hours, depending on the machine). ``--scale 0.125`` makes a
64×128×128 series that checks the whole job in seconds.

Usage: ``python -m benchmarks.large [--scale 1] [--memory-limit 3GB] [--in-memory]
[--workers N] [--scheduler tcp://...] [--out DIR] [--keep]``
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np

from benchmarks.filter import machine, write_result

SIGMAS = (1.0, 1.5, 2.0)
FULL_SHAPE = (512, 1024, 1024)
N_STEPS = 4
VOXEL_UM = (0.65, 0.65, 0.65)
LEVELS = {"air": 1500, "peek": 6000, "lithium": 5000, "electrolyte": 20000, "steel": 45000,
          "void": 2500}


def _cracks(shape: tuple[int, int, int], n: int = 5, seed: int = 0) -> list[dict]:
    """Vertical crack planes near the electrode edge, each with its final depth fraction."""
    rng = np.random.default_rng(seed)
    _, ny, nx = shape
    out = []
    for k in range(n):
        ang = 2 * np.pi * k / n + rng.uniform(-0.3, 0.3)
        rad = 0.33 * min(ny, nx) * rng.uniform(0.75, 1.0)
        cy, cx = ny / 2 + rad * np.sin(ang), nx / 2 + rad * np.cos(ang)
        # the plane is roughly radial; its lateral half-length grows with depth
        nrm = ang + np.pi / 2 + rng.uniform(-0.4, 0.4)
        out.append({"cy": cy, "cx": cx, "ny": np.sin(nrm), "nx": np.cos(nrm),
                    "half_len": 0.08 * min(ny, nx) * rng.uniform(0.6, 1.2),
                    "final_depth": 1.0 if k == 0 else rng.uniform(0.3, 0.8)})
    return out


def _layout(nz: int) -> dict[str, float]:
    return {"plunger": 0.075 * nz, "anode": 0.16 * nz, "cathode": 0.84 * nz,
            "plunger2": 0.925 * nz}


def _block(t: int, shape: tuple[int, int, int], cracks: list[dict], block_info=None
           ) -> np.ndarray:
    """One z-slab of step ``t``, computed from its position alone (uint16)."""
    (z0, z1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
    nz, ny, nx = shape
    lay = _layout(nz)
    z = np.arange(z0, z1, dtype=np.float32)[:, None, None]
    y = np.arange(y0, y1, dtype=np.float32)[None, :, None]
    x = np.arange(x0, x1, dtype=np.float32)[None, None, :]
    r = np.hypot(y - ny / 2, x - nx / 2) / min(ny, nx)
    pellet = r < 0.42
    electrode = r < 0.35
    die = (r >= 0.42) & (r < 0.49)
    vol = np.full((z1 - z0, y1 - y0, x1 - x0), LEVELS["air"], np.float32)
    vol = np.where(die, LEVELS["peek"], vol)
    inside = (z >= lay["anode"]) & (z < lay["cathode"])
    vol = np.where(inside & pellet, LEVELS["electrolyte"], vol)
    elec = ((z >= lay["plunger"]) & (z < lay["anode"])) | ((z >= lay["cathode"])
                                                           & (z < lay["plunger2"]))
    vol = np.where(elec & electrode, LEVELS["lithium"], vol)
    steel = (z < lay["plunger"]) | (z >= lay["plunger2"])
    vol = np.where(steel & (r < 0.42), LEVELS["steel"], vol)
    thick = lay["cathode"] - lay["anode"]
    for c in cracks:
        depth = c["final_depth"] * thick * (t + 1) / N_STEPS
        across = (y - c["cy"]) * c["ny"] + (x - c["cx"]) * c["nx"]
        along = -(y - c["cy"]) * c["nx"] + (x - c["cx"]) * c["ny"]
        zz = z - lay["anode"]
        sheet = (np.abs(across) < 0.8) & (np.abs(along) < c["half_len"] * (0.5 + zz / thick))
        sheet = sheet & (zz >= 0) & (zz < depth) & pellet
        vol = np.where(sheet, LEVELS["void"], vol)
    seed = (t * 1_000_003 + z0 * 1009 + y0 * 31 + x0) % 2**32
    vol += np.random.default_rng(seed).normal(0.0, 600.0, vol.shape).astype(np.float32)
    return np.clip(vol, 0, 65535).astype(np.uint16)


def write_series(path: Path, shape: tuple[int, int, int], *, slab: int = 32,
                 n_steps: int = N_STEPS) -> float:
    """Write the series (``n_steps`` steps, 4 by default) to a Zarr store chunk by chunk;
    return the seconds it took."""
    import zarr

    t0 = time.perf_counter()
    cracks = _cracks(shape)
    arr = zarr.create_array(store=str(path), shape=(n_steps, *shape), dtype="uint16",
                            chunks=(1, min(slab, shape[0]), shape[1], shape[2]),
                            overwrite=True)
    arr.attrs["voxel_size_um"] = list(VOXEL_UM)
    arr.attrs["times_s"] = [600.0 * t for t in range(n_steps)]
    chunks = ((min(slab, shape[0]),) * (shape[0] // min(slab, shape[0]))
              + ((shape[0] % slab,) if shape[0] % slab else ()), (shape[1],), (shape[2],))
    steps = [da.map_blocks(_block, t, shape, cracks, chunks=chunks, dtype=np.uint16,
                           meta=np.empty((0, 0, 0), np.uint16)) for t in range(n_steps)]
    da.store(da.stack(steps), arr, lock=False)
    return time.perf_counter() - t0


class StepView:
    """One step of a (t, z, y, x) store as a 3D array-like read by slicing (nothing loaded)."""

    def __init__(self, store, t: int) -> None:
        self.store, self.t = store, int(t)
        self.shape = tuple(store.shape[1:])
        self.dtype = store.dtype
        self.chunks = tuple(store.chunks[1:])
        self.ndim = 3

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return self.store[(self.t, *key)]


def main(argv: list[str] | None = None) -> dict:
    from dendritect.parallel import compute_context, parse_memory_limit, sheetness_chunked
    from dendritect.parallel.memory import peak_rss_bytes

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="shape factor: 1 = 512x1024x1024, 0.125 = 64x128x128")
    ap.add_argument("--memory-limit", default="3GB")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--scheduler", default=None)
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: temporary)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--no-analyze", action="store_true")
    ap.add_argument("--in-memory", action="store_true",
                    help="also analyse without the memory limit and report the time ratio")
    ap.add_argument("--no-filter", action="store_true",
                    help="skip the filter-only pass (run analyze alone)")
    args = ap.parse_args(argv)
    if not 0 < args.scale <= 4:
        ap.error("--scale must be in (0, 4]")
    shape = tuple(max(24, round(s * args.scale)) for s in FULL_SHAPE)
    limit = parse_memory_limit(args.memory_limit)
    work = Path(args.out or tempfile.mkdtemp(prefix="dendritect-large-"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / "series.zarr"
    n_vox = math.prod(shape)
    print(f"shape {shape} x {N_STEPS} steps ({N_STEPS * n_vox * 2 / 1e9:.2f} GB uint16), "
          f"memory limit {limit / 1e9:.2f} GB, work folder {work}", flush=True)
    result: dict = {"benchmark": "large series, out of core", "machine": machine(),
                    "shape_zyx": list(shape), "n_steps": N_STEPS, "scale": args.scale,
                    "memory_limit_bytes": limit}
    try:
        result["write_seconds"] = write_series(store, shape)
        print(f"wrote {store} in {result['write_seconds']:.1f} s", flush=True)
        if not args.no_filter:
            rss_before = peak_rss_bytes()
            with compute_context(args.scheduler, args.workers, limit) as ctx:
                import zarr

                series = zarr.open_array(str(store), mode="r")
                masks = zarr.create_array(store=str(work / "candidates.zarr"),
                                          shape=series.shape, dtype="uint8",
                                          chunks=(1, *series.chunks[1:]), overwrite=True)
                rows = []
                t_all = time.perf_counter()
                for t in range(N_STEPS):
                    t0 = time.perf_counter()
                    # each task reads its own block and halo from the store
                    s = sheetness_chunked(StepView(series, t), SIGMAS,
                                          memory_limit=ctx.memory_per_task_bytes, n_parallel=1)
                    cand = (s > 0.3).astype(np.uint8)
                    da.store(cand[None], masks, regions=(slice(t, t + 1),), lock=False)
                    n_cand = int(da.from_zarr(masks)[t].sum().compute())
                    sec = time.perf_counter() - t0
                    rows.append({"t": t, "seconds": sec, "mvox_per_s": n_vox / sec / 1e6,
                                 "candidate_voxels": n_cand, "chunks": [c[0] for c in s.chunks]})
                    print(f"step {t}: {sec:7.1f} s  {n_vox / sec / 1e6:6.2f} Mvox/s  "
                          f"{n_cand} crack-candidate voxels  chunks {rows[-1]['chunks']}",
                          flush=True)
                result["filter"] = {"scheduler": ctx.kind, "n_parallel": ctx.n_parallel,
                                    "memory_per_task_bytes": ctx.memory_per_task_bytes,
                                    "seconds": time.perf_counter() - t_all, "steps": rows}
            result["peak_rss_mb"] = peak_rss_bytes() / 1e6
            result["peak_rss_before_filter_mb"] = rss_before / 1e6
            print(f"peak RSS {result['peak_rss_mb']:.0f} MB (limit {limit / 1e6:.0f} MB)",
                  flush=True)
        if not args.no_analyze:
            result["analyze"] = _analyze(store, work, limit, args.scale)
            if args.in_memory:
                free = _analyze(store, work, None, args.scale)
                result["analyze_in_memory"] = free
                limited = result["analyze"]
                if "error" not in free and "error" not in limited:
                    result["out_of_core_time_ratio"] = limited["seconds"] / free["seconds"]
                    result["same_results"] = all(
                        limited[k] == free[k] for k in ("span_index", "n_cracks",
                                                         "front_depth_um"))
                    print(f"out of core / in memory: {result['out_of_core_time_ratio']:.2f}x, "
                          f"same results: {result['same_results']}", flush=True)
    finally:
        if not args.keep and args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    write_result("large" if args.scale == 1 else f"large-scale{args.scale:g}", result)
    return result


def _analyze(store: Path, work: Path, limit: int | None, scale: float) -> dict:
    """``dendritect analyze`` with the memory limit (None: without), in its own process (its
    own peak RSS)."""
    import resource
    import subprocess
    import sys

    out_dir = work / "results"
    # the child reports its own peak: a child's ru_maxrss as seen from here also counts the
    # pages it shared with this process between fork and exec
    code = ("import resource, sys\nfrom dendritect.cli.main import main\nrc = main(sys.argv[1:])\n"
            "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "file=sys.stderr)\nraise SystemExit(rc)")
    cmd = [sys.executable, "-c", code, "analyze", str(store), "--out", str(out_dir),
           *([] if limit is None else ["--memory-limit", str(limit)]), "--quiet", "--overwrite"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sec = time.perf_counter() - t0
    peaks = [int(line.split()[1]) for line in proc.stderr.splitlines()
             if line.startswith("PEAK_KIB")]
    peak = (peaks[-1] if peaks else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
    if proc.returncode != 0:
        print(f"analyze failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return {"error": proc.stderr.strip()[-2000:], "seconds": sec}
    import json

    summary = json.loads((out_dir / "summary.json").read_text())
    import pandas as pd

    metrics = pd.read_csv(out_dir / "metrics.csv")
    out = {"seconds": sec, "memory_limit_bytes": limit, "peak_rss_mb": peak / 1e6,
           "mvox_per_s": N_STEPS * math.prod(summary["shape_zyx"]) / sec / 1e6,
           "span_index": summary.get("span_index"), "anode": summary.get("anode"),
           "n_cracks": metrics["n_cracks"].tolist(),
           "front_depth_um": metrics["front_depth_um"].round(2).tolist()}
    shown = "none" if limit is None else f"{limit / 1e6:.0f} MB"
    print(f"analyze: {sec:.1f} s, peak RSS {peak / 1e6:.0f} MB (limit {shown}), "
          f"span step {out['span_index']}, anode {out['anode']}, cracks {out['n_cracks']}, "
          f"front {out['front_depth_um']} um", flush=True)
    return out


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.1f} s")
