"""A series larger than the memory a process may use can be opened and one step read.

The files are sparse: 6 GiB logically, a few MiB on disk. Once the series is open, the reading
process limits its address space (``RLIMIT_AS``) to what it has mapped plus 1.5 GiB, well below
the file's logical size, so reading more than the requested step (or mapping the file) fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

SHAPE = (48, 32, 2048, 2048)  # uint8: 6 GiB logical; one step 128 MiB
LOGICAL = int(np.prod(SHAPE))
HEADROOM = int(1.5 * 2**30)  # above what the process has mapped once the series is open

# The limit is set after opening (imports and headers), from what the process then maps, so
# the check holds on machines whose libraries map more or less at start-up.
_READER = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from dendritect.io import open_series
    s = open_series(sys.argv[1])
    vm = [int(line.split()[1]) * 1024 for line in open("/proc/self/status")
          if line.startswith("VmSize:")][0]
    limit = vm + {headroom}
    assert limit < {logical}, (vm, limit)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    assert s.data.shape == {shape}, s.data.shape
    step = s.step(2)
    print(step.shape, int(step[5, 7, :5].sum()), int(step.sum(dtype=np.int64)))
""")

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="RLIMIT_AS and /proc are a Linux check")


def _run(path: Path) -> str:
    # Few threads: each thread's stack and malloc arena counts against the address space.
    env = dict(os.environ, MALLOC_ARENA_MAX="2", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", DASK_NUM_WORKERS="2")
    code = _READER.format(headroom=HEADROOM, logical=LOGICAL, shape=SHAPE)
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip()


def test_sparse_bigtiff_larger_than_address_space(tmp_path: Path) -> None:
    p = tmp_path / "big.tif"
    m = tifffile.memmap(p, shape=SHAPE, dtype="uint8", bigtiff=True, photometric="minisblack",
                        metadata={"axes": "TZYX"})
    m[2, 5, 7, :5] = np.arange(10, 15)
    m.flush()
    del m
    assert p.stat().st_size >= LOGICAL
    # Values written in step 2 only: 10+11+12+13+14 = 60.
    assert _run(p) == "(32, 2048, 2048) 60 60"


def test_sparse_chunked_hdf5_larger_than_address_space(tmp_path: Path) -> None:
    p = tmp_path / "big.h5"
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("scans", shape=SHAPE, dtype="u1", chunks=(1, 8, 2048, 2048),
                              fillvalue=1)
        ds[2, 5, 7, :5] = np.arange(10, 15)
    assert p.stat().st_size < 64 * 2**20
    n = int(np.prod(SHAPE[1:]))
    # Fill value 1 everywhere but the five written voxels.
    assert _run(p) == f"(32, 2048, 2048) 60 {n - 5 + 60}"
