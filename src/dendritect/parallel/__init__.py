"""Scale: out-of-core chunked filters, dask.distributed clusters and an optional GPU backend.

* :mod:`~dendritect.parallel.chunked`: :func:`sheetness_chunked`, :func:`label_chunked` on
  dask arrays larger than memory, equal to the whole-volume results;
* :mod:`~dendritect.parallel.memory`: memory budgets and chunk sizes that respect them;
* :mod:`~dendritect.parallel.cluster`: :func:`compute_context` (threads, local processes or an
  existing ``dask.distributed`` scheduler);
* :mod:`~dendritect.parallel.backend`: :func:`get_backend` (CPU, or CUDA through CuPy).
"""

from __future__ import annotations

from dendritect.parallel.backend import get_backend, gpu_available
from dendritect.parallel.chunked import (
    global_contrast,
    label_auto,
    label_chunked,
    sheetness_auto,
    sheetness_chunked,
    sheetness_depth,
)
from dendritect.parallel.cluster import ComputeContext, compute_context, current_context
from dendritect.parallel.memory import (
    SHEETNESS_TEMPORARIES,
    chunks_for_memory,
    parse_memory_limit,
    peak_rss_bytes,
)

__all__ = [
    "SHEETNESS_TEMPORARIES",
    "ComputeContext",
    "chunks_for_memory",
    "compute_context",
    "current_context",
    "get_backend",
    "global_contrast",
    "gpu_available",
    "label_auto",
    "label_chunked",
    "parse_memory_limit",
    "peak_rss_bytes",
    "sheetness_auto",
    "sheetness_chunked",
    "sheetness_depth",
]
