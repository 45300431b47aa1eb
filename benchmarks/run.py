"""Run every benchmark (``make bench``); results go to ``benchmarks/results/``."""

from __future__ import annotations

import importlib
import sys

# Each entry is a module with a ``main(argv)`` function.
BENCHMARKS = ["benchmarks.filter", "benchmarks.pipeline", "benchmarks.memory",
              "benchmarks.budget", "benchmarks.accuracy"]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        try:
            importlib.import_module(name).main([])
        except Exception as exc:  # report and go on: one broken benchmark must not hide the rest
            print(f"{name} failed: {exc!r}", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
