"""The analysis on a LocalCluster against the same analysis in one process.

With ``--workers N`` (``analyze(..., workers=N)``) the later steps of a series are read,
registered onto step 0 and aligned by the cluster's worker processes, as many at once as there
are workers, while the main process segments, tracks and measures the steps in order; the
slabs of a step's segmentation run on the cluster too. This benchmark simulates a series,
analyses it both ways in the same run (each in its own subprocess), checks that the crack
masks and tables are identical, and summarises the cluster run's dask task stream: per
worker, its tasks and busy seconds by kind. ``--report FILE`` also writes the dask
performance report (HTML) of the cluster run.

Usage: ``python -m benchmarks.scaleout [--shape 96,192,192] [--steps 8] [--workers 2]
[--report FILE]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.filter import machine, write_result

_RUN = r"""
import contextlib, hashlib, json, sys, time
from pathlib import Path

import numpy as np
import zarr


def digest(out):
    h = hashlib.sha256()
    z = zarr.open(str(Path(out) / "cracks.zarr"), mode="r")
    for name in ("crack", "labels"):
        h.update(np.ascontiguousarray(np.asarray(z[name])).tobytes())
    for name in ("metrics.csv", "cracks.csv"):
        h.update((Path(out) / name).read_bytes())
    return h.hexdigest()


def main():
    src, out, workers, report = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    from dendritect.pipeline import analyze

    kw = {}
    stream = {}
    if workers > 1:
        from distributed import get_task_stream, performance_report

        import dendritect.parallel.cluster as cluster

        real = cluster.compute_context

        @contextlib.contextmanager
        def recorded(*a, **k):
            with real(*a, **k) as ctx, contextlib.ExitStack() as st:
                if report != "-":
                    st.enter_context(performance_report(filename=report))
                ts = st.enter_context(get_task_stream(ctx.client))
                yield ctx
            stream["tasks"] = [{"key": str(t["key"]), "worker": t["worker"],
                                "s": sum(x["stop"] - x["start"] for x in t["startstops"]
                                         if x["action"] == "compute")} for t in ts.data]

        cluster.compute_context = recorded
        kw = {"workers": workers, "memory_limit": "6GB"}
    t0 = time.perf_counter()
    analyze(src, out, progress=False, report=False, **kw)
    sec = time.perf_counter() - t0
    print(json.dumps({"workers": workers, "seconds": sec, "digest": digest(out), **stream}))


if __name__ == "__main__":
    main()
"""


def _kind(key: str) -> str:
    if "dendritect-align-step" in key:
        return "read, register, align a step"
    return "segmentation slabs and chunked filters"


def summarise(tasks: list[dict]) -> list[dict]:
    """Per worker: tasks and busy seconds by kind."""
    rows: dict[tuple[str, str], dict] = {}
    for t in tasks:
        k = (t["worker"], _kind(t["key"]))
        r = rows.setdefault(k, {"worker": t["worker"], "kind": k[1], "tasks": 0, "busy_s": 0.0})
        r["tasks"] += 1
        r["busy_s"] += float(t["s"])
    return [dict(r, busy_s=round(r["busy_s"], 2)) for r in sorted(rows.values(),
                                                                  key=lambda r: (r["worker"],
                                                                                 r["kind"]))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="96,192,192")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--report", default=None, help="Write the cluster run's dask report here.")
    args = ap.parse_args(argv)
    from dendritect.synthetic import simulate

    shape = tuple(int(s) for s in args.shape.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        simulate(data, args.preset, seed=0, shape_zyx=shape, n_steps=args.steps,
                 overwrite=True)
        script = Path(tmp) / "run.py"
        script.write_text(_RUN)
        runs = []
        for workers in (1, args.workers):
            out = Path(tmp) / f"out-{workers}"
            # a script file, not ``-c``: the cluster's spawned workers import its main module
            proc = subprocess.run([sys.executable, str(script), str(data), str(out),
                                   str(workers), args.report or "-"], capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"run failed: {proc.stderr.strip()[-2000:]}")
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    one, many = runs
    result = {
        "benchmark": "scaleout", "shape_zyx": list(shape), "n_steps": args.steps,
        "workers": args.workers, "machine": machine(),
        "one_process_s": round(one["seconds"], 2),
        "cluster_s": round(many["seconds"], 2),
        "identical": one["digest"] == many["digest"],
        "per_worker": summarise(many.get("tasks", [])),
    }
    write_result("scaleout", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
