"""Where dask graphs run: threads, a local process cluster, or an existing distributed cluster.

One context manager covers the three cases, so that a lab runs the same analysis on a
workstation, on a cluster (a SLURM allocation via dask-jobqueue, see docs/scaling.md) or on a
laptop without changing a line:

>>> with compute_context(scheduler=None, workers=4, memory_limit="16GB") as ctx:
...     s = sheetness_chunked(volume, (1.0, 1.5, 2.0), memory_limit=ctx.memory_per_task_bytes,
...                           n_parallel=1).compute()
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask

from dendritect.errors import InputError
from dendritect.parallel.memory import (
    default_workers,
    keep_allocations_returnable,
    parse_memory_limit,
)

__all__ = ["WORKER_OVERHEAD_BYTES", "ComputeContext", "compute_context", "current_context"]

# What a worker process holds before any task (interpreter, numpy, scipy, numba, dask): a worker
# limit of only the task budget would pause the worker at 80 % of it and stall the computation.
WORKER_OVERHEAD_BYTES = 512 * 2**20

_SCHEMES = ("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")


@dataclass(frozen=True)
class ComputeContext:
    """What the active dask scheduler offers.

    Attributes
    ----------
    kind : str
        ``"threads"`` (the threaded scheduler of this process), ``"local"`` (a
        ``LocalCluster`` of worker processes started here) or ``"remote"`` (an existing
        scheduler).
    client : distributed.Client or None
        The client, for ``local`` and ``remote``.
    n_workers : int
        Worker processes (1 for ``threads``).
    threads_per_worker : int
        Tasks each worker runs at once.
    memory_limit_bytes : int or None
        The total budget given by the user (None: no limit).
    memory_per_task_bytes : int or None
        What one running task may use: the budget (or the workers' own limits) divided by the
        tasks that run at once (on a running cluster: each worker's limit less
        :data:`WORKER_OVERHEAD_BYTES`, at most half of it, per thread). Pass it to the chunked
        functions with ``n_parallel=1``.
    device : str
        ``"cpu"`` or ``"gpu"``: where the kernels run (resolved from ``auto``).
    """

    kind: str
    client: Any
    n_workers: int
    threads_per_worker: int
    memory_limit_bytes: int | None
    memory_per_task_bytes: int | None
    device: str = "cpu"

    @property
    def n_parallel(self) -> int:
        """Tasks running at once over the whole cluster."""
        return self.n_workers * self.threads_per_worker

    @property
    def dashboard_link(self) -> str | None:
        """The cluster's dashboard, when it has one."""
        if self.client is None:
            return None
        return getattr(self.client, "dashboard_link", None)


_CURRENT: contextvars.ContextVar[ComputeContext | None] = contextvars.ContextVar(
    "dendritect_compute_context", default=None)


def current_context() -> ComputeContext | None:
    """The innermost active :func:`compute_context`, or None outside any."""
    return _CURRENT.get()


@contextlib.contextmanager
def _activate(ctx: ComputeContext) -> Iterator[ComputeContext]:
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def _check_workers(workers: int | None) -> int | None:
    if workers is None:
        return None
    try:
        n = int(workers)
    except (TypeError, ValueError):
        raise InputError(f"--workers must be a whole number, got {workers!r}") from None
    if n < 1 or n != workers:
        raise InputError(f"--workers must be a whole number >= 1, got {workers!r}")
    return n


def _connect(scheduler: str, workers: int | None, timeout_s: float):
    from distributed import Client

    text = scheduler.strip()
    try:
        if text.endswith(".json"):
            # a scheduler file, as written by `dask scheduler --scheduler-file` or dask-mpi
            if not Path(text).is_file():
                raise InputError(f"--scheduler: scheduler file not found: {text}")
            client = Client(scheduler_file=text, timeout=f"{timeout_s}s")
        else:
            if not text.startswith(_SCHEMES):
                raise InputError(f"--scheduler must be an address such as tcp://host:8786 or a "
                                 f"scheduler file (.json), got {scheduler!r}")
            client = Client(text, timeout=f"{timeout_s}s")
    except InputError:
        raise
    except (OSError, TimeoutError) as exc:
        raise InputError(f"--scheduler {scheduler}: cannot connect ({exc})") from None
    if workers:
        try:
            client.wait_for_workers(workers, timeout=timeout_s)
        except (TimeoutError, OSError):
            client.close()
            raise InputError(f"--scheduler {scheduler}: fewer than {workers} workers joined "
                             f"within {timeout_s:g} s") from None
    return client


def _remote_budget(client: Any, limit: int | None) -> tuple[int, int, int | None]:
    """Workers, threads per worker and bytes per task of a running cluster."""
    info = client.scheduler_info().get("workers", {})
    if not info:
        return 1, 1, None if limit is None else limit
    threads = [max(1, int(w.get("nthreads", 1))) for w in info.values()]
    per_task = [max(int(w["memory_limit"]) - WORKER_OVERHEAD_BYTES, int(w["memory_limit"]) // 2)
                // t for w, t in zip(info.values(), threads, strict=True)
                if w.get("memory_limit")]
    total = sum(threads)
    budget = min(per_task) if per_task else None
    if limit is not None:
        budget = limit // total if budget is None else min(budget, limit // total)
    return len(info), max(1, math.ceil(total / len(info))), budget


@contextlib.contextmanager
def compute_context(scheduler: str | None = None, workers: int | None = None,
                    memory_limit: str | int | None = None, *, device: str = "cpu",
                    threads_per_worker: int | None = None, timeout_s: float = 30.0
                    ) -> Iterator[ComputeContext]:
    """Run the dask computations inside the block on threads, local processes or a cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (``tcp://host:8786``) or the path
        of its scheduler file (``.json``). With ``workers``, wait until that many have joined.
    workers : int, optional
        Without ``scheduler``: start a ``LocalCluster`` of this many worker processes on the
        loopback interface (no dashboard), closed when the block ends.
    memory_limit : str or int, optional
        Total memory budget for the tasks (``"3GB"``): split across the local workers (each
        worker's limit is its share plus :data:`WORKER_OVERHEAD_BYTES` for the process itself),
        and reported per task for choosing chunk sizes.
    device : {"cpu", "gpu", "auto"}
        Where the kernels run (:func:`dendritect.parallel.backend.get_backend`); checked here,
        so that a missing GPU is reported before any work.
    threads_per_worker : int, optional
        Threads per local worker (default: the cores divided among the workers).
    timeout_s : float
        How long to wait for a scheduler or its workers.

    Yields
    ------
    ComputeContext
        The scheduler in use and the memory each task may take.

    Raises
    ------
    InputError
        On a bad option, an unreachable scheduler, or a budget too small to split.

    Notes
    -----
    Neither ``scheduler`` nor ``workers``: dask's threaded scheduler, one task per core.
    """
    from dendritect.parallel.backend import get_backend

    limit = parse_memory_limit(memory_limit)
    if limit is not None:
        # large blocks go back to the system when freed, so the peak follows the budget
        keep_allocations_returnable()
    n_workers = _check_workers(workers)
    dev = get_backend(device).name
    cores = default_workers()
    if scheduler is not None and not str(scheduler).strip():
        raise InputError("--scheduler: empty address")

    if scheduler is not None:
        client = _connect(str(scheduler), n_workers, timeout_s)
        try:
            nw, tpw, per_task = _remote_budget(client, limit)
            with client.as_current(), dask.config.set(scheduler=client):
                with _activate(ComputeContext("remote", client, nw, tpw, limit, per_task,
                                              dev)) as ctx:
                    yield ctx
        finally:
            client.close()
        return

    if n_workers is not None:
        from distributed import Client, LocalCluster

        tpw = threads_per_worker or max(1, cores // n_workers)
        per_worker = None if limit is None else limit // n_workers
        if per_worker is not None and per_worker < 64 * 2**20:
            raise InputError(f"--memory-limit {memory_limit}: {n_workers} workers would get "
                             f"{per_worker / 2**20:.0f} MiB each; give at least 64 MiB per worker")
        worker_limit = "auto" if per_worker is None else per_worker + WORKER_OVERHEAD_BYTES
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=tpw, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               memory_limit=worker_limit)
        try:
            client = Client(cluster)
            try:
                per_task = None if limit is None else limit // (n_workers * tpw)
                with dask.config.set(scheduler=client), _activate(ComputeContext(
                        "local", client, n_workers, tpw, limit, per_task, dev)) as ctx:
                    yield ctx
            finally:
                client.close()
        finally:
            cluster.close()
        return

    n_threads = threads_per_worker or cores
    per_task = None if limit is None else limit // n_threads
    with dask.config.set(scheduler="threads", num_workers=n_threads), _activate(ComputeContext(
            "threads", None, 1, n_threads, limit, per_task, dev)) as ctx:
        yield ctx
