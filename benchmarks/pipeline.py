"""End-to-end analysis against a plain scikit-image pipeline on the same simulated series.

``dendritect.pipeline.analyze`` (registration, normalisation, cell geometry, segmentation with
the sheetness filter, tracking, measurements, forecast; no report) runs on a series written by
``dendritect.synthetic.simulate``; the baseline is what one would write with scikit-image alone:
per step, ``frangi`` (the same three scales, dark ridges) + Otsu threshold + ``label`` +
``regionprops_table``. Each runs in its own subprocess (time and peak RSS are its own); the
analysis runs twice and the second run is reported (the first compiles the numba kernels when
their cache is cold; both are recorded).

The cost of the analysis is also given in **Gaussian-filter equivalents per step**: the
analysis time per step divided by the time of one ``scipy.ndimage.gaussian_filter(step, 1.0)``
(σ = 1 voxel, SciPy's defaults: ``truncate=4.0``, ``mode="reflect"``) of step 0 read as float32
(the output float32 too), timed in its own subprocess in the same run (the least of three
filters, before and after the analyses: the machine is shared). It is a measure of the machine
as much as of the code, so it travels between machines better than seconds do.

``--compare-src DIR`` also runs the analysis with ``DIR`` first on ``PYTHONPATH`` (another
checkout's ``src``, e.g. the code before a change), alternating with this one, so that both are
measured on the same machine in the same minutes. ``--no-skimage`` leaves out the scikit-image
baseline (about 30 minutes at 3 × 256×512×512 on 2 cores).

Usage: ``python -m benchmarks.pipeline [--shape 80,128,128] [--steps 6] [--repeat 1]
[--compare-src DIR] [--no-skimage] [--no-warm]``; the issue's size is ``--shape 256,512,512
--steps 3``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.filter import machine, run_child, write_result

_OURS = r"""
import json, resource, sys, time, shutil
from dendritect.pipeline import analyze
src, out, warm = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
first = None
if warm:
    t0 = time.perf_counter()
    analyze(src, out + "/warm", progress=False, report=False)
    first = time.perf_counter() - t0
    shutil.rmtree(out + "/warm")
t0 = time.perf_counter()
summary = analyze(src, out + "/run", progress=False, report=False)
sec = time.perf_counter() - t0
shutil.rmtree(out + "/run")
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


_GAUSS = r"""
import json, sys, time
from pathlib import Path
import numpy as np, tifffile
from scipy import ndimage
src, repeat = Path(sys.argv[1]), int(sys.argv[2])
vol = tifffile.imread(sorted((src / "scans").glob("t*.tif"))[0]).astype(np.float32)
out = np.empty_like(vol)
times = []
for _ in range(repeat):
    t0 = time.perf_counter()
    ndimage.gaussian_filter(vol, 1.0, output=out)
    times.append(time.perf_counter() - t0)
print(json.dumps({"method": "scipy.ndimage.gaussian_filter(step 0, sigma=1.0), float32",
                  "seconds": min(times), "all_seconds": times, "n_vox": int(vol.size)}))
"""


def _with_path(src: str | None) -> dict | None:
    """The environment of a child that imports ``dendritect`` from ``src`` first."""
    if src is None:
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(src).resolve()),
                                                    env.get("PYTHONPATH")) if p)
    return env


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="80,128,128", help="z,y,x of the simulated cell")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--repeat", type=int, default=1,
                    help="timed analyses of each code (the least is reported)")
    ap.add_argument("--compare-src", default=None,
                    help="also time the analysis with this directory first on PYTHONPATH")
    ap.add_argument("--no-skimage", action="store_true", help="leave out the skimage baseline")
    ap.add_argument("--no-warm", action="store_true",
                    help="no untimed first analysis (the numba cache is warm)")
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
        warm = "0" if args.no_warm else "1"
        gauss = [run_child(_GAUSS, data, 3)]
        codes = [("dendritect.analyze", None)]
        if args.compare_src is not None:
            codes.append((f"dendritect.analyze ({args.compare_src})", args.compare_src))
        timed: dict[str, list[dict]] = {name: [] for name, _ in codes}
        for _ in range(max(1, args.repeat)):  # alternate the codes: the same load on each
            for name, src in codes:
                timed[name].append(run_child(_OURS, data, tmp, warm, env=_with_path(src)))
        gauss.append(run_child(_GAUSS, data, 3))
        base = None if args.no_skimage else run_child(_SKIMAGE, data)
    n_vox = args.steps * shape[0] * shape[1] * shape[2]
    g = min(gauss, key=lambda r: r["seconds"])
    g["all_seconds"] = [t for r in gauss for t in r["all_seconds"]]
    rows = []
    for name, _ in codes:
        best = min(timed[name], key=lambda r: r["seconds"])
        best["method"] = name
        best["all_seconds"] = [r["seconds"] for r in timed[name]]
        best["gaussian_equivalents_per_step"] = best["seconds"] / args.steps / g["seconds"]
        rows.append(best)
    ours = rows[0]
    for r in [*rows, *([base] if base else [])]:
        r["mvox_per_s"] = n_vox / r["seconds"] / 1e6
    result = {
        "benchmark": "end-to-end analysis vs scikit-image frangi+threshold+label",
        "machine": machine(), "shape_zyx": list(shape), "n_steps": args.steps,
        "preset": args.preset, "simulate_seconds": sim_s,
        "gaussian_filter": g,
        "gaussian_equivalents_per_step": ours["gaussian_equivalents_per_step"],
        "target_gaussian_equivalents_per_step": 10.0,
        "speedup_vs_skimage": None if base is None else base["seconds"] / ours["seconds"],
        "memory_ratio_skimage_over_dendritect": (None if base is None else
                                                 base["peak_rss_mb"] / ours["peak_rss_mb"]),
        "target_speedup": 8.0, "rows": [*rows, *([base] if base else [])],
    }
    if len(rows) > 1:
        result["speedup_vs_compare_src"] = rows[1]["seconds"] / ours["seconds"]
    write_result("pipeline", result)
    print(f"{g['method']:28s} {g['seconds']:7.3f} s per step")
    for r in result["rows"]:
        eq = r.get("gaussian_equivalents_per_step")
        print(f"{r['method']:28s} {r['seconds']:7.2f} s  {r['mvox_per_s']:6.2f} Mvox/s  "
              f"peak RSS {r['peak_rss_mb']:7.1f} MB"
              + ("" if eq is None else f"  {eq:5.1f} Gaussian filters per step"))
    if base is not None:
        print(f"speed-up over scikit-image: x{result['speedup_vs_skimage']:.1f}")
    keys = ("gaussian_equivalents_per_step", "speedup_vs_skimage", "speedup_vs_compare_src")
    print(json.dumps({k: result[k] for k in keys if k in result}))
    return result


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"done in {time.perf_counter() - t0:.1f} s")
