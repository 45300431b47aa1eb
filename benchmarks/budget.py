"""``make bench``: the memory budget holds. Peak RSS of ``dendritect analyze`` per limit.

Writes a 3-step uint16 Zarr series of the ``benchmarks.large`` cell and runs ``dendritect
analyze --memory-limit L`` on it in a fresh interpreter for each limit, and once without a
limit; each process reports its own high-water mark (``VmHWM`` of ``/proc/self/status``: the
resident peak of the process image after ``exec``, none of the parent's pages). A process that
only imports what ``analyze`` imports gives the interpreter's share. The results of every
limited run are compared with the run without a limit (metrics, crack table, ``cracks.zarr``).
Results: ``benchmarks/results/budget.json``.

Usage: ``python -m benchmarks.budget [--shape 96,512,512] [--steps 3] [--limits 1GB,2GB]
[--keep DIR]`` (Linux).
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_REPORT_PEAK = """
import sys
{setup}
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
rc = {run}
print("PEAK_BYTES", _peak(), file=sys.stderr)
raise SystemExit(rc)
"""

#: What ``analyze`` imports: the interpreter's share of a run's peak.
IMPORTS = ("dendritect.cli.main", "dendritect.pipeline", "dendritect.segment.cracks",
           "dendritect.preprocess.large", "dendritect.measure.sparse",
           "dendritect.measure.deficit", "dendritect.track.sparse", "dendritect.io", "zarr")


def peak_command(argv: list[str] | None) -> list[str]:
    """A fresh interpreter that runs ``dendritect ARGV`` (``None``: only imports
    :data:`IMPORTS`) and prints its peak RSS on stderr (``PEAK_BYTES n``)."""
    if argv is None:
        setup, run = f"import {', '.join(IMPORTS)}", "0"
    else:
        setup, run = "from dendritect.cli.main import main", "main(sys.argv[1:])"
    return [sys.executable, "-c", _REPORT_PEAK.format(setup=setup, run=run), *(argv or [])]


def peak_of(returncode: int, stderr: str) -> int:
    """The peak RSS (bytes) a :func:`peak_command` process reported; it must have succeeded."""
    if returncode != 0:
        raise RuntimeError(f"exit status {returncode}: {stderr[-3000:]}")
    peaks = [int(line.split()[1]) for line in stderr.splitlines()
             if line.startswith("PEAK_BYTES")]
    if not peaks:
        raise RuntimeError(f"no peak reported: {stderr[-3000:]}")
    return peaks[-1]


def run_with_peak(argv: list[str] | None, *, env: dict | None = None) -> int:
    """Peak RSS (bytes) of :func:`peak_command` ``(argv)``, run to its end."""
    proc = subprocess.run(peak_command(argv), capture_output=True, text=True, env=env,
                          timeout=3600)
    return peak_of(proc.returncode, proc.stderr)


def analyze_argv(series: Path, out: Path, limit: int | str | None) -> list[str]:
    """``analyze SERIES --out OUT --quiet [--memory-limit LIMIT]``."""
    argv = ["analyze", str(series), "--out", str(out), "--quiet"]
    return argv if limit is None else [*argv, "--memory-limit", str(limit)]


def write_test_series(path: Path, shape: tuple[int, int, int], n_steps: int) -> Path:
    """The steel / lithium / electrolyte cell of :mod:`benchmarks.large`, growing cracks."""
    from benchmarks.large import write_series

    write_series(path, shape, n_steps=n_steps)
    return path


def same_results(a: Path, b: Path) -> list[str]:
    """Names of the results that differ between two results folders (none: identical)."""
    import zarr

    differ = [name for name in ("metrics.csv", "cracks.csv")
              if (a / name).read_text() != (b / name).read_text()]
    za = zarr.open_group(str(a / "cracks.zarr"), mode="r")
    zb = zarr.open_group(str(b / "cracks.zarr"), mode="r")
    differ += [f"cracks.zarr/{name}" for name in ("crack", "labels", "time_of_arrival")
               if not np.array_equal(za[name][...], zb[name][...])]
    return differ


def main(argv: list[str] | None = None) -> dict:
    from benchmarks.filter import machine, write_result
    from dendritect.parallel.memory import parse_memory_limit

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="96,512,512")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--limits", default="1GB")
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    work = Path(tempfile.mkdtemp(prefix="dendritect-budget-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        series = write_test_series(work / "series.zarr", shape, args.steps)
        imports = run_with_peak(None)
        t0 = time.perf_counter()
        unlimited = run_with_peak(analyze_argv(series, work / "unlimited", None))
        runs = [{"memory_limit_bytes": None, "peak_rss_bytes": unlimited,
                 "seconds": time.perf_counter() - t0}]
        for text in args.limits.split(","):
            limit = parse_memory_limit(text)
            t0 = time.perf_counter()
            peak = run_with_peak(analyze_argv(series, work / f"limit-{limit}", limit))
            runs.append({"memory_limit_bytes": limit, "peak_rss_bytes": peak,
                         "seconds": time.perf_counter() - t0,
                         "within_limit_plus_300MB": peak <= limit + 300 * 10**6,
                         "differs_from_unlimited": same_results(work / f"limit-{limit}",
                                                                work / "unlimited")})
        for r in runs:
            lim = r["memory_limit_bytes"]
            print(f"limit {'none' if lim is None else f'{lim / 1e9:.2f} GB'}: peak RSS "
                  f"{r['peak_rss_bytes'] / 1e9:.2f} GB, {r['seconds']:.0f} s", flush=True)
        result = {"machine": machine(), "shape_zyx": list(shape), "n_steps": args.steps,
                  "voxels_per_step": math.prod(shape),
                  "interpreter_peak_rss_bytes": imports, "runs": runs}
        write_result("budget", result)
        return result
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
