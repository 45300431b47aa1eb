"""Memory budgets: parse a limit, choose chunk sizes that keep a computation under it.

Out-of-core filtering keeps peak memory proportional to the *chunk* size, never to the series
size: each task holds one block plus its halo and the filter's temporaries. These helpers turn a
budget (``"3GB"``) into z-slab or block chunk sizes for :func:`dask.array.map_overlap`.
"""

from __future__ import annotations

import math
import os
import resource
import sys
from collections.abc import Sequence

import numpy as np
from dask.utils import parse_bytes

from dendritect.errors import InputError

__all__ = [
    "SHEETNESS_TEMPORARIES",
    "available_memory_bytes",
    "block_bytes",
    "chunks_for_memory",
    "default_workers",
    "parse_memory_limit",
    "peak_rss_bytes",
]

# float32 arrays one sheetness block holds at its peak: the float32 copy of the input, the six
# partly filtered Hessian terms, the output, and the input block with its halo as dask
# concatenates it from the neighbouring chunks (see dendritect.segment.hessian).
SHEETNESS_TEMPORARIES = 9


def parse_memory_limit(value: str | int | float | None, *, name: str = "--memory-limit"
                       ) -> int | None:
    """Parse a memory size (``"4GB"``, ``"512 MiB"``, ``3e9``) into bytes.

    Parameters
    ----------
    value : str, int, float or None
        What the user gave. Decimal (``kB``, ``MB``, ``GB``) and binary (``KiB``, ``MiB``,
        ``GiB``) prefixes are understood, as by :func:`dask.utils.parse_bytes`; a bare number
        is bytes. ``None`` means no limit.
    name : str
        The option's name, used in error messages.

    Returns
    -------
    int or None
        Bytes, or None when ``value`` is None.

    Raises
    ------
    InputError
        When the text is not a size, or the size is not positive.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"{name}: expected a memory size such as 4GB, got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        n = float(value)
    else:
        text = str(value).strip().replace(" ", "")
        if not text:
            raise InputError(f"{name}: empty value; give a memory size such as 4GB")
        try:
            n = float(parse_bytes(text))
        except (ValueError, TypeError, KeyError):
            raise InputError(f"{name}: cannot read {value!r} as a memory size "
                             "(examples: 4GB, 512MiB, 3e9)") from None
    if not math.isfinite(n) or n < 1:
        raise InputError(f"{name}: must be a positive memory size, got {value!r}")
    return int(n)


def block_bytes(chunks: Sequence[int], dtype, n_temporaries: int, depth: int = 0) -> int:
    """Bytes one task holds for a block of ``chunks`` with a halo of ``depth`` on every side.

    Parameters
    ----------
    chunks : sequence of int
        Block shape without the halo.
    dtype : numpy dtype
        dtype of the working arrays (float32 for the sheetness filter).
    n_temporaries : int
        Number of block-sized working arrays alive at the peak.
    depth : int
        Halo width in voxels.

    Returns
    -------
    int
        Bytes.
    """
    n_vox = math.prod(int(c) + 2 * int(depth) for c in chunks)
    return int(n_vox * np.dtype(dtype).itemsize * int(n_temporaries))


def _even(n: int, c: int) -> int:
    """Largest chunk size <= c that splits n into equal pieces (no thin trailing chunk)."""
    c = max(1, min(int(c), n))
    return math.ceil(n / math.ceil(n / c))


def chunks_for_memory(shape: Sequence[int], dtype, memory_limit_bytes: int,
                      n_temporaries: int, *, depth: int = 0, n_parallel: int = 1
                      ) -> tuple[int, ...]:
    """Chunk sizes such that ``n_parallel`` blocks at once fit in ``memory_limit_bytes``.

    Whole ``(y, x)`` slabs along z are preferred (they match how scans are stored and need no
    halo exchange in y and x); when even the thinnest slab does not fit, the volume is cut into
    near-cubic blocks. Chunks are made equal along each axis and never thinner than ``depth``
    (an overlap can only borrow from its direct neighbour).

    Parameters
    ----------
    shape : sequence of int
        Array shape, e.g. ``(z, y, x)``.
    dtype : numpy dtype
        dtype of the working arrays (float32 for the sheetness filter).
    memory_limit_bytes : int
        Budget for all blocks processed at the same time.
    n_temporaries : int
        Block-sized working arrays alive at the peak of one task (e.g.
        :data:`SHEETNESS_TEMPORARIES`).
    depth : int
        Halo width the filter needs on every side, in voxels.
    n_parallel : int
        Tasks that run at the same time (threads times worker processes).

    Returns
    -------
    tuple of int
        Chunk size along each axis.

    Raises
    ------
    InputError
        When the budget cannot hold even the smallest useful block.
    """
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise InputError(f"chunks_for_memory: empty shape {shape}")
    if memory_limit_bytes is None or memory_limit_bytes <= 0:
        raise InputError(f"chunks_for_memory: memory limit must be positive, "
                         f"got {memory_limit_bytes!r}")
    if n_temporaries < 1 or n_parallel < 1 or depth < 0:
        raise InputError("chunks_for_memory: n_temporaries and n_parallel must be >= 1, "
                         "depth >= 0")
    d = int(depth)
    per_vox = np.dtype(dtype).itemsize * int(n_temporaries)
    max_vox = int(memory_limit_bytes) // int(n_parallel) // per_vox
    thinnest = max(1, d)
    # z-slabs: whole planes, halo on every side (the outer boundary is padded too)
    plane = math.prod(s + 2 * d for s in shape[1:])
    cz = max_vox // plane - 2 * d
    if cz >= min(thinnest, shape[0]):
        return (_even(shape[0], cz), *shape[1:])
    # blocks: cut the leading axes first, keep the last (contiguous) axis as long as possible
    side = math.floor(max_vox ** (1.0 / len(shape))) - 2 * d
    if side < thinnest:
        need = block_bytes([thinnest] * len(shape), dtype, n_temporaries, d) * n_parallel
        raise InputError(f"memory limit {memory_limit_bytes / 1e6:.0f} MB is too small: one block "
                         f"with its {d}-voxel halo needs at least {need / 1e6:.1f} MB "
                         f"({n_parallel} at a time)")
    chunks = [min(side, s) for s in shape]
    # grow the trailing axes into what is left of the budget (fewer, longer rows read faster)
    for ax in range(len(shape) - 1, 0, -1):
        rest = math.prod(c + 2 * d for i, c in enumerate(chunks) if i != ax)
        chunks[ax] = max(chunks[ax], min(shape[ax], max_vox // rest - 2 * d))
    return tuple(_even(s, c) for s, c in zip(shape, chunks, strict=True))


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far, in bytes (``getrusage`` high-water mark)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes
    return int(peak if sys.platform == "darwin" else peak * 1024)


def available_memory_bytes() -> int:
    """Memory the operating system can give this process now (cgroup limits included)."""
    import psutil

    avail = int(psutil.virtual_memory().available)
    try:  # a container's limit may be lower than what the host reports
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            text = fh.read().strip()
        if text.isdigit():
            avail = min(avail, int(text))
    except OSError:
        pass
    return avail


def default_workers() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
