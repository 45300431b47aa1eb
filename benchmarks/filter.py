"""Crack filter throughput and peak memory against scikit-image's ridge filters.

Each method runs in its own subprocess so that its peak resident memory (``ru_maxrss``) is its
own; the growth over an idle interpreter with the same imports is reported too. Numbers are
ratios against the scikit-image baselines measured in the same run, because the machines these
run on are shared and noisy. All methods use the same three scales (σ = 1, 1.5, 2 voxels) on the
same float32 volume (noise plus a dark sheet), and each result is checked to find that sheet.

Rows: ``dendritect`` (:func:`dendritect.segment.hessian.sheetness`, whole volume),
``dendritect.chunked`` (:func:`dendritect.parallel.sheetness_chunked`, 64³ chunks, threads),
``skimage.sato`` and ``skimage.frangi`` (``black_ridges=True``).

Usage: ``python -m benchmarks.filter [--size 128] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIGMAS = (1.0, 1.5, 2.0)
RESULTS = Path(__file__).parent / "results"

_CHILD = r"""
import json, resource, sys, time
import numpy as np
method, size, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
vol = rng.normal(0.5, 0.05, (size, size, size)).astype(np.float32)
vol[size // 2, :, :] -= 0.3  # a dark sheet so the filters have something to find
sigmas = (1.0, 1.5, 2.0)
warm = True
if method == "dendritect":
    from dendritect.segment.hessian import sheetness
    run = lambda: sheetness(vol, sigmas, dark=True)
elif method == "dendritect.chunked":
    from dendritect.parallel import sheetness_chunked
    run = lambda: sheetness_chunked(vol, sigmas, dark=True, chunks=64).compute()
elif method == "skimage.sato":
    from skimage.filters import sato
    run = lambda: sato(vol, sigmas=sigmas, black_ridges=True)
    warm = False  # nothing to compile
elif method == "skimage.frangi":
    from skimage.filters import frangi
    run = lambda: frangi(vol, sigmas=sigmas, black_ridges=True)
    warm = False
elif method == "idle":
    import dendritect.segment.hessian, dendritect.parallel, skimage.filters, dask.array
    run = lambda: vol
    warm = False
else:
    raise SystemExit(f"unknown method {method}")
base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if warm:
    run()  # warm-up (numba compilation, caches)
times = []
for _ in range(repeat if warm else 1):
    t0 = time.perf_counter(); out = np.asarray(run()); times.append(time.perf_counter() - t0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
mid = size // 2
found = bool(out[mid, 8:-8, 8:-8].mean() > 4 * np.abs(out[mid // 2, 8:-8, 8:-8]).mean())
print(json.dumps({"method": method, "seconds": min(times), "n_vox": vol.size,
                  "peak_rss_mb": peak / 1024, "rss_growth_mb": (peak - base_rss) / 1024,
                  "out_dtype": str(out.dtype), "finds_sheet": found}))
"""


def machine() -> dict:
    """Where the numbers were measured."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count()
    return {"platform": platform.platform(), "processor": platform.processor() or None,
            "python": platform.python_version(), "cores": cores}


def run_child(code: str, *args: object, env: dict | None = None, timeout: float | None = None
              ) -> dict:
    """Run ``code`` in a fresh interpreter; return the JSON object on its last stdout line."""
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_result(name: str, result: dict, out: Path | None = None) -> Path:
    """Write ``results/NAME.json`` atomically."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def run_method(method: str, size: int, repeat: int) -> dict:
    """Run one filter in a fresh interpreter and return its timing and memory."""
    return run_child(_CHILD, method, size, repeat)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "filter.json")
    args = ap.parse_args(argv)
    idle = run_method("idle", args.size, 1)
    rows = [run_method(m, args.size, args.repeat)
            for m in ("dendritect", "dendritect.chunked", "skimage.sato", "skimage.frangi")]
    by = {r["method"]: r for r in rows}
    ours = by["dendritect"]
    for r in rows:
        r["mvox_per_s"] = r["n_vox"] / r["seconds"] / 1e6
        r["rss_over_idle_mb"] = r["peak_rss_mb"] - idle["peak_rss_mb"]
        r["time_vs_dendritect"] = r["seconds"] / ours["seconds"]
        r["memory_vs_dendritect"] = r["rss_over_idle_mb"] / max(ours["rss_over_idle_mb"], 1e-9)
    result = {
        "benchmark": "crack filter, 3 scales", "volume": [args.size] * 3,
        "sigmas": list(SIGMAS), "machine": machine(), "idle_rss_mb": idle["peak_rss_mb"],
        "speedup_vs_skimage_frangi": by["skimage.frangi"]["seconds"] / ours["seconds"],
        "speedup_vs_skimage_sato": by["skimage.sato"]["seconds"] / ours["seconds"],
        "targets": {"mvox_per_s": 10.0, "speedup_vs_skimage": 30.0},
        "rows": rows,
    }
    write_result("filter", result, args.out)
    for r in rows:
        print(f"{r['method']:20s} {r['mvox_per_s']:8.2f} Mvox/s  {r['seconds']:7.2f} s  "
              f"x{r['time_vs_dendritect']:6.1f} the time of dendritect  "
              f"peak RSS {r['peak_rss_mb']:7.1f} MB ({r['rss_over_idle_mb']:+.1f} over idle)  "
              f"finds sheet: {r['finds_sheet']}")
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.1f} s")
