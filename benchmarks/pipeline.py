"""End-to-end analysis against a plain scikit-image pipeline on the same simulated series.

``dendritect.pipeline.analyze`` (registration, normalisation, cell geometry, segmentation with
the sheetness filter, tracking, measurements, forecast; no report) runs on a series written by
``dendritect.synthetic.simulate``; the baseline is what one would write with scikit-image alone:
per step, ``frangi`` (the same three scales, dark ridges) + Otsu threshold + ``label`` +
``regionprops_table``. Each runs in its own subprocess (time and peak RSS are its own); the
analysis runs twice and the second run is reported (the first compiles the numba kernels when
their cache is cold; both are recorded).

Usage: ``python -m benchmarks.pipeline [--shape 80,128,128] [--steps 6]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

from benchmarks.filter import machine, run_child, write_result

_OURS = r"""
import json, resource, sys, time, shutil
from dendritect.pipeline import analyze
src, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
analyze(src, out + "/warm", progress=False, report=False)
first = time.perf_counter() - t0
t0 = time.perf_counter()
summary = analyze(src, out + "/run", progress=False, report=False)
sec = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"method": "dendritect.analyze", "seconds": sec, "first_run_seconds": first,
                  "peak_rss_mb": peak / 1024, "n_steps": summary.get("n_steps"),
                  "span_index": summary.get("span_index")}))
"""

_SKIMAGE = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, tifffile
from skimage.filters import frangi, threshold_otsu
from skimage.measure import label, regionprops_table
src = Path(sys.argv[1])
files = sorted((src / "scans").glob("t*.tif"))
t0 = time.perf_counter()
n_objects = []
for f in files:
    vol = tifffile.imread(f).astype(np.float32)
    resp = frangi(vol, sigmas=(1.0, 1.5, 2.0), black_ridges=True)
    mask = resp > threshold_otsu(resp)
    lab = label(mask)
    props = regionprops_table(lab, properties=("label", "area", "bbox"))
    n_objects.append(len(props["label"]))
sec = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"method": "skimage frangi+otsu+label", "seconds": sec,
                  "peak_rss_mb": peak / 1024, "n_steps": len(files), "n_objects": n_objects}))
"""


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="80,128,128", help="z,y,x of the simulated cell")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--preset", default="demo")
    args = ap.parse_args(argv)
    if importlib.util.find_spec("dendritect.pipeline") is None:
        print("skipped: dendritect.pipeline is not importable yet")
        return None
    try:
        from dendritect.pipeline import analyze  # noqa: F401
        from dendritect.synthetic import simulate
    except ImportError as exc:
        print(f"skipped: {exc}")
        return None
    shape = tuple(int(s) for s in args.shape.split(","))
    with tempfile.TemporaryDirectory(prefix="dendritect-bench-") as tmp:
        data = Path(tmp) / "series"
        t0 = time.perf_counter()
        simulate(data, args.preset, seed=0, shape_zyx=shape, n_steps=args.steps)
        sim_s = time.perf_counter() - t0
        ours = run_child(_OURS, data, tmp)
        base = run_child(_SKIMAGE, data)
    n_vox = args.steps * shape[0] * shape[1] * shape[2]
    for r in (ours, base):
        r["mvox_per_s"] = n_vox / r["seconds"] / 1e6
    result = {
        "benchmark": "end-to-end analysis vs scikit-image frangi+threshold+label",
        "machine": machine(), "shape_zyx": list(shape), "n_steps": args.steps,
        "preset": args.preset, "simulate_seconds": sim_s,
        "speedup_vs_skimage": base["seconds"] / ours["seconds"],
        "memory_ratio_skimage_over_dendritect": base["peak_rss_mb"] / ours["peak_rss_mb"],
        "target_speedup": 5.0, "rows": [ours, base],
    }
    write_result("pipeline", result)
    for r in (ours, base):
        print(f"{r['method']:28s} {r['seconds']:7.2f} s  {r['mvox_per_s']:6.2f} Mvox/s  "
              f"peak RSS {r['peak_rss_mb']:7.1f} MB")
    print(f"speed-up over scikit-image: x{result['speedup_vs_skimage']:.1f}")
    print(json.dumps({k: result[k] for k in ("speedup_vs_skimage",)}))
    return result


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.1f} s")
