"""Peak memory of the chunked crack filter on volumes ten times larger than its memory limit.

For each memory limit, a uint16 volume whose float32 working copy would be ten times the limit
is written to a Zarr store in 32×64×64 storage chunks (by this process, never whole in memory;
Zarr decodes whole storage chunks, so these must be small beside the filter's blocks); a fresh
subprocess then filters it with :func:`dendritect.parallel.sheetness_chunked` (chunks from
:func:`dendritect.parallel.chunks_for_memory`, two blocks at a time on the threaded scheduler)
and reduces the result (sheet-voxel count, maximum), so that only the filter's working memory is
measured. The baseline is an idle interpreter with the same imports and warmed kernels, measured
in the same run; reported is the peak RSS over that baseline next to the limit and the
per-block estimate (:func:`dendritect.parallel.memory.block_bytes`). Two checks: the peak grows
with the limit (the chunk size), and the smallest limit on a volume twice as large gives the same
peak.

Usage: ``python -m benchmarks.memory [--limits-mb 16,32,64] [--factor 10]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.filter import machine, run_child, write_result

SIGMAS = (1.0, 1.5, 2.0)

_CHILD = r"""
import json, resource, sys, time
import numpy as np
import dask, zarr
from dendritect.parallel import sheetness_chunked, SHEETNESS_TEMPORARIES
from dendritect.parallel.chunked import sheetness_depth
from dendritect.parallel.memory import block_bytes
from dendritect.segment.hessian import sheetness
store, limit, n_par, idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
sigmas = (1.0, 1.5, 2.0)
sheetness(np.random.default_rng(0).random((16, 16, 16), np.float32), sigmas)  # warm kernels
src = zarr.open_array(store, mode="r")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
n_sheet = top = None
chunks = list(src.chunks)
if not idle:
    with dask.config.set(scheduler="threads", num_workers=n_par):
        s = sheetness_chunked(src, sigmas, contrast=12000.0, memory_limit=limit,
                              n_parallel=n_par)
        chunks = [c[0] for c in s.chunks]
        n_sheet, top = dask.compute((s > 0.3).sum(), s.max())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
depth = sheetness_depth(sigmas)
print(json.dumps({"limit_mb": limit / 1e6, "shape": list(src.shape), "chunks": chunks,
                  "volume_float32_mb": 4 * int(np.prod(src.shape)) / 1e6,
                  "seconds": time.perf_counter() - t0, "peak_rss_mb": peak / 1024,
                  "estimate_mb": n_par * block_bytes(chunks, np.float32, SHEETNESS_TEMPORARIES,
                                                     depth) / 1e6,
                  "sheet_voxels": None if n_sheet is None else int(n_sheet),
                  "max_sheetness": None if top is None else float(top)}))
"""


def _block(shape, block_info=None):
    loc = block_info[None]["array-location"]
    nz = shape[0]
    z, y, x = np.meshgrid(*[np.arange(a, b, dtype=np.float32) for a, b in loc], indexing="ij")
    seed = (loc[0][0] * 1_000_003 + loc[1][0] * 1009 + loc[2][0]) % 2**32
    v = np.random.default_rng(seed).normal(20000.0, 600.0, z.shape).astype(np.float32)
    v[np.abs(z - 0.05 * y - 0.03 * x - nz / 3) < 0.7] -= 12000.0  # an inclined empty crack
    return v.astype(np.uint16)


def write_volume(path: Path, volume_bytes: float, chunks_zyx: tuple[int, int, int] | None = None
                 ) -> tuple[int, int, int]:
    """A uint16 volume whose float32 copy is ``volume_bytes``, written slab by slab."""
    import dask.array as da
    import zarr

    ny = nx = 512
    shape = (max(16, round(volume_bytes / (4 * ny * nx))), ny, nx)
    # small storage chunks: a block read decodes little beyond its own region
    ch = chunks_zyx or (32, 64, 64)
    arr = zarr.create_array(store=str(path), shape=shape, dtype="uint16", chunks=ch,
                            overwrite=True)
    src = da.map_blocks(_block, shape, dtype=np.uint16,
                        chunks=da.core.normalize_chunks(ch, shape),
                        meta=np.empty((0, 0, 0), np.uint16))
    da.store(src, arr, lock=False)
    return shape


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limits-mb", default="16,32,64",
                    help="memory limits to try, MB (comma-separated)")
    ap.add_argument("--factor", type=float, default=10.0,
                    help="float32 volume size as a multiple of each limit")
    ap.add_argument("--parallel", type=int, default=2, help="blocks filtered at once")
    args = ap.parse_args(argv)
    limits = [int(float(v) * 1e6) for v in args.limits_mb.split(",") if v.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="dendritect-bench-memory-") as tmp:
        first = Path(tmp) / "v0.zarr"
        write_volume(first, args.factor * limits[0])
        idle = run_child(_CHILD, first, limits[0], args.parallel, 1)
        runs = [(lim, args.factor * lim) for lim in limits]
        runs.append((limits[0], 2 * args.factor * limits[0]))  # same chunks, twice the volume
        for i, (lim, vol_bytes) in enumerate(runs):
            path = first if i == 0 else Path(tmp) / f"v{i}.zarr"
            if i:
                write_volume(path, vol_bytes)
            r = run_child(_CHILD, path, lim, args.parallel, 0)
            r["rss_over_idle_mb"] = r["peak_rss_mb"] - idle["peak_rss_mb"]
            r["volume_over_limit"] = r["volume_float32_mb"] / r["limit_mb"]
            rows.append(r)
            print(f"limit {r['limit_mb']:6.0f} MB  volume {r['volume_float32_mb']:7.0f} MB "
                  f"float32 ({r['volume_over_limit']:4.1f}x)  chunks {r['chunks']}  "
                  f"peak RSS over idle {r['rss_over_idle_mb']:7.1f} MB  "
                  f"(block estimate {r['estimate_mb']:6.1f} MB)  {r['seconds']:6.1f} s",
                  flush=True)
    single, double = rows[0], rows[-1]
    result = {
        "benchmark": "peak RSS of chunked sheetness, volume 10x the memory limit",
        "machine": machine(), "sigmas": list(SIGMAS), "parallel_blocks": args.parallel,
        "idle_rss_mb": idle["peak_rss_mb"], "rows": rows[:-1], "double_volume": double,
        "peak_ratio_double_volume": double["rss_over_idle_mb"]
        / max(single["rss_over_idle_mb"], 1e-9),
        "peak_ratio_largest_to_smallest_limit": rows[-2]["rss_over_idle_mb"]
        / max(single["rss_over_idle_mb"], 1e-9),
    }
    write_result("memory", result)
    print(f"peak with twice the volume / peak: {result['peak_ratio_double_volume']:.2f}; "
          f"largest / smallest limit: {result['peak_ratio_largest_to_smallest_limit']:.2f}")
    return result


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.1f} s")
