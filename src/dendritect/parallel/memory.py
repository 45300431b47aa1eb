"""Memory budgets: parse a limit, choose chunk sizes that keep a computation under it.

Out-of-core filtering keeps peak memory proportional to the *chunk* size, never to the series
size: each task holds one block plus its halo and the filter's temporaries. These helpers turn a
budget (``"3GB"``) into z-slab or block chunk sizes for :func:`dask.array.map_overlap`.

:class:`Plan` is the one rule for what fits: built once per analysis from the step's shape and
dtype, the budget, the device and the tasks that run at once, it decides for every stage
whether a step is held whole and how thick its slabs are, from the stage's bytes per voxel
(:data:`STAGE_BYTES_PER_VOXEL`). No stage's *result* depends on the plan.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from dask.utils import parse_bytes

from dendritect.errors import InputError

__all__ = [
    "MAX_WHOLE_VOXELS",
    "MMAP_THRESHOLD_BYTES",
    "PROCESS_RESERVE_BYTES",
    "SHEETNESS_TEMPORARIES",
    "STAGE_BYTES_PER_VOXEL",
    "Plan",
    "available_memory_bytes",
    "block_bytes",
    "chunks_for_memory",
    "collections_of_new_objects",
    "default_workers",
    "keep_allocations_returnable",
    "parallel_slabs",
    "parse_memory_limit",
    "peak_rss_bytes",
    "plan_z_slabs",
    "release_memory",
    "work_bytes",
]

# float32 arrays one sheetness block holds at its peak: the float32 copy of the input, the six
# partly filtered Hessian terms, the output, and the input block with its halo as dask
# concatenates it from the neighbouring chunks (see dendritect.segment.hessian).
SHEETNESS_TEMPORARIES = 9

MAX_WHOLE_VOXELS: int = 2**22
"""Work size of the preprocessing (find the cell, decide the anode, register), in voxels.

A step of up to this many voxels is processed whole; a larger one on a block-mean binned copy
of at most this many voxels, refined on full-resolution crops of at most this many voxels
(:mod:`dendritect.preprocess.large`). It is an algorithm parameter, not a memory decision: it
does not follow the budget, so that the results do not either. Its working set, about
:data:`STAGE_BYTES_PER_VOXEL` ``["register"]`` bytes per voxel (0.27 GB), is the floor of any
budget."""

#: Bytes per voxel each stage holds at its peak for the voxels it works on (tracemalloc, on a
#: 96 x 512 x 512 uint16 step read from Zarr; planned with room for what the allocator keeps):
#:
#: * ``"segment"``: one z-slab of the segmentation's first pass, halo included (input,
#:   smoothed, background, darkness, sheetness with its filter's temporaries, the axial-line
#:   filter; ~40-45 B as RSS growth; a full-size run planned at 64 B peaked at the limit);
#: * ``"align"``: one slab of the shift and grey-level match, halo included (the float32 read,
#:   the shifted and the smoothed copies, the mask; measured 19 B);
#: * ``"register"``: the phase correlation on the voxels it registers (measured 52 B, and
#:   63 B per work voxel on the bounded path, binned copies included);
#: * ``"deficit"``: one block of the crack fraction from the grey-level deficit
#:   (:mod:`dendritect.measure.deficit`, ~40 B by its own account);
#: * ``"hold"``: a step held whole in memory through the step loop: step 0, the registered
#:   step and the moving step as float32.
STAGE_BYTES_PER_VOXEL: dict[str, int] = {"segment": 80, "align": 24, "register": 64,
                                         "deficit": 40, "hold": 12}

#: Memory the process needs beside the stages' working sets, taken from the limit: readers'
#: and Zarr's buffers, the results being assembled, what the allocator keeps. The interpreter
#: with its libraries (~240 MB measured) is outside the limit.
PROCESS_RESERVE_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Plan:
    """How one analysis uses memory and compute; built once, passed to the stages.

    Parameters
    ----------
    shape : tuple of int
        ``(nz, ny, nx)`` of one step.
    dtype : numpy dtype
        The steps' dtype on disk.
    memory_limit_bytes : int or None
        The budget (``--memory-limit``); None: no limit, every step is held whole.
    device : str
        ``"cpu"`` or ``"gpu"``: where the kernels run.
    workers : int
        Tasks that run at once (threads times worker processes).

    Notes
    -----
    One rule decides what fits: a stage needing ``b`` bytes per voxel on ``n`` voxels fits
    when ``b * n <= work_bytes``, the limit less :data:`PROCESS_RESERVE_BYTES` (at least a
    quarter of it). The costs are :data:`STAGE_BYTES_PER_VOXEL`. Where a stage does not fit
    whole it runs in z-slabs of whole (y, x) planes, as thick as the budget allows and never
    thinner than their halo; every stage gives the same result for any slab size.
    """

    shape: tuple[int, int, int]
    dtype: Any = np.float32
    memory_limit_bytes: int | None = None
    device: str = "cpu"
    workers: int = 1

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"Plan: expected a 3D (z, y, x) shape, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        if self.memory_limit_bytes is not None:
            object.__setattr__(self, "memory_limit_bytes",
                               parse_memory_limit(self.memory_limit_bytes, name="memory limit"))
        if isinstance(self.workers, bool) or int(self.workers) < 1:
            raise InputError(f"Plan: workers must be a positive integer, got {self.workers!r}")
        object.__setattr__(self, "workers", int(self.workers))

    @classmethod
    def from_context(cls, shape: Sequence[int], dtype: Any, context: Any) -> Plan:
        """The plan for steps of ``shape`` under a compute context.

        Parameters
        ----------
        shape : sequence of int
            ``(nz, ny, nx)``.
        dtype : numpy dtype
            The steps' dtype.
        context : ComputeContext or None
            E.g. :func:`~dendritect.parallel.cluster.current_context` ``()``: its budget,
            device and tasks at once. None: no limit, the CPU and :func:`default_workers`
            tasks.
        """
        if context is None:
            return cls(tuple(shape), dtype, None, "cpu", default_workers())
        return cls(tuple(shape), dtype, context.memory_limit_bytes, context.device,
                   context.n_parallel)

    @property
    def voxels(self) -> int:
        """Voxels of one step."""
        return math.prod(self.shape)

    @property
    def work_bytes(self) -> int | None:
        """Bytes the stages' working sets may use (:func:`work_bytes`); None: no limit."""
        return work_bytes(self.memory_limit_bytes)

    def fits(self, bytes_per_voxel: int | Sequence[int], voxels: int | None = None) -> bool:
        """Whether ``voxels`` (default: a whole step) at ``bytes_per_voxel`` fit the budget.

        Parameters
        ----------
        bytes_per_voxel : int or sequence of int
            The stage's cost, or the costs of stages that run at the same time (summed).
        voxels : int, optional
            Default: one step.
        """
        if self.work_bytes is None:
            return True
        cost = (int(bytes_per_voxel) if isinstance(bytes_per_voxel, (int, np.integer))
                else int(sum(bytes_per_voxel)))
        n = self.voxels if voxels is None else int(voxels)
        return cost * n <= self.work_bytes

    @property
    def hold_steps(self) -> bool:
        """Whether steps are held whole in memory through the step loop (step 0, the
        registered step, the moving one) and registered, aligned and segmented whole."""
        c = STAGE_BYTES_PER_VOXEL
        return self.fits((c["hold"], c["segment"]))

    @property
    def register_ahead(self) -> bool:
        """Whether the next step may be registered and aligned (in a second buffer) while
        the current one is segmented."""
        c = STAGE_BYTES_PER_VOXEL
        return self.fits((2 * c["hold"], c["register"], c["align"], c["segment"]))

    def block_voxels(self, bytes_per_voxel: int) -> int | None:
        """Most voxels a stage of ``bytes_per_voxel`` may work on at once (at least one);
        None without a limit (the stage's own default)."""
        if self.work_bytes is None:
            return None
        return max(1, self.work_bytes // max(1, int(bytes_per_voxel)))

    def budget_after_held(self, held_bytes_per_voxel: int) -> int | None:
        """The limit to give a stage while ``held_bytes_per_voxel`` of each voxel of a step
        is held by others (e.g. step 0 and the registered step in memory); None without a
        limit."""
        if self.memory_limit_bytes is None:
            return None
        held = int(held_bytes_per_voxel) * self.voxels
        return max(int(self.memory_limit_bytes) // 4, int(self.memory_limit_bytes) - held)

    def slabs(self, bytes_per_voxel: int, *, halo: int = 0, plane_voxels: int | None = None,
              n_parallel: int | None = None, nz: int | None = None) -> list[tuple[int, int]]:
        """Equal z-slabs ``(start, stop)`` covering ``0..nz`` for a stage of
        ``bytes_per_voxel`` (:func:`plan_z_slabs` on :attr:`work_bytes`).

        Parameters
        ----------
        bytes_per_voxel : int
            The stage's cost (:data:`STAGE_BYTES_PER_VOXEL`).
        halo : int
            Planes read on each side of a slab.
        plane_voxels : int, optional
            Voxels per plane (default: a step's ``ny * nx``).
        n_parallel : int, optional
            Slabs that may run at once (default :attr:`workers`).
        nz : int, optional
            Planes to cut (default: a step's ``nz``).
        """
        return plan_z_slabs(self.shape[0] if nz is None else int(nz),
                            self.shape[1] * self.shape[2] if plane_voxels is None
                            else int(plane_voxels),
                            halo, self.work_bytes, bytes_per_voxel,
                            self.workers if n_parallel is None else n_parallel)

    def slab_parallelism(self, bytes_per_voxel: int, *, halo: int = 0,
                         plane_voxels: int | None = None, n_parallel: int | None = None) -> int:
        """Slabs to run at once (:func:`parallel_slabs` on :attr:`work_bytes`)."""
        return parallel_slabs(self.shape[1] * self.shape[2] if plane_voxels is None
                              else int(plane_voxels), halo, self.work_bytes, bytes_per_voxel,
                              self.workers if n_parallel is None else n_parallel)


def work_bytes(memory_limit_bytes: int | None) -> int | None:
    """The part of a memory limit the stages' working sets may use: the limit less
    :data:`PROCESS_RESERVE_BYTES`, and at least a quarter of it (None: no limit)."""
    if memory_limit_bytes is None:
        return None
    lim = int(memory_limit_bytes)
    return max(lim // 4, lim - PROCESS_RESERVE_BYTES)


def parallel_slabs(plane_voxels: int, halo: int, budget_bytes: int | None,
                   bytes_per_voxel: int, n_parallel: int) -> int:
    """Slabs to run at once: ``n_parallel``, fewer where ``budget_bytes`` would not give each
    a slab at least as thick as its halo, plus the halo on each side."""
    if budget_bytes is None:
        return max(1, int(n_parallel))
    per_plane = max(1, int(plane_voxels)) * int(bytes_per_voxel)
    fits = int(budget_bytes) // (3 * max(int(halo), 1) * per_plane)
    return int(max(1, min(int(n_parallel), fits)))


def plan_z_slabs(nz: int, plane_voxels: int, halo: int, budget_bytes: int | None,
                 bytes_per_voxel: int, n_parallel: int = 1) -> list[tuple[int, int]]:
    """Cut ``nz`` planes into equal slabs whose working sets, halo included, fit a budget.

    Parameters
    ----------
    nz : int
        Planes to cut.
    plane_voxels : int
        Voxels per plane.
    halo : int
        Planes read on each side of a slab.
    budget_bytes : int or None
        Bytes all slabs running at once may use (already less the process's reserve,
        :func:`work_bytes`); None: one slab.
    bytes_per_voxel : int
        The stage's cost per voxel of a slab with its halo.
    n_parallel : int
        Slabs that may run at once; the plan assumes :func:`parallel_slabs` of them.

    Returns
    -------
    list of (int, int)
        Half-open ``(start, stop)`` plane ranges, in order, covering ``0..nz``; a slab is
        never thinner than its halo (thinner ones spend most of their time on the halo).
    """
    nz = int(nz)
    if budget_bytes is None or nz <= 1:
        return [(0, nz)]
    n_par = parallel_slabs(plane_voxels, halo, budget_bytes, bytes_per_voxel, n_parallel)
    per_plane = max(1, int(plane_voxels)) * int(bytes_per_voxel)
    total = int(budget_bytes) // n_par // per_plane
    core = max(total - 2 * int(halo), int(halo), 1)
    if core >= nz:
        return [(0, nz)]
    n = -(-nz // core)
    core = -(-nz // n)  # equal slabs
    return [(z, min(nz, z + core)) for z in range(0, nz, core)]


#: Allocations of at least this size are mapped from and returned to the system on their own
#: (glibc's ``M_MMAP_THRESHOLD``) while a memory budget is kept.
MMAP_THRESHOLD_BYTES = 4 * 2**20


def keep_allocations_returnable(threshold_bytes: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Have glibc map every allocation of ``threshold_bytes`` or more on its own.

    By default glibc raises this threshold up to 32 MB as large blocks are freed, after which
    slabs of a few MB land in per-thread heaps that fragment and are not given back: on a
    3 x 192 x 256 x 256 series under a 600 MB limit the analysis peaked at 1.03 GB RSS, and at
    0.67 GB with a fixed 4 MiB threshold (0.73 GB with two arenas instead). Process-wide and
    lasting; a no-op (False) where the C library is not glibc.

    Returns
    -------
    bool
        Whether the setting was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_mmap_threshold = -3  # glibc's <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, int(threshold_bytes)))
    except (OSError, AttributeError):  # not glibc (musl)
        return False


@contextlib.contextmanager
def collections_of_new_objects() -> Iterator[None]:
    """Within the block, garbage collections look only at objects made inside it.

    Collects, then moves every object that survives to the permanent generation
    (:func:`gc.freeze`): what is alive when the analysis starts (the modules imported,
    about 100,000 objects after ``import dendritect.pipeline``; a full collection over them
    took 0.1 s) is no longer walked by each :func:`release_memory`. Modules imported inside
    the block are not frozen. Undone on leaving (:func:`gc.unfreeze`), so what became garbage
    meanwhile is collected later as usual.
    """
    import gc

    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def release_memory() -> None:
    """Give freed memory back to the operating system, between stages.

    Collects garbage, then, with glibc, trims the heap (``malloc_trim``): glibc keeps what
    NumPy frees in its per-thread arenas, and after a few stages that run on other threads
    the process holds several hundred MB it does not use (measured: 0.93 GB RSS between steps,
    0.64 GB after a trim). Elsewhere only the garbage collection.
    """
    import gc

    gc.collect()
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl)
            pass


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
