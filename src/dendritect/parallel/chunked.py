"""Out-of-core building blocks: the crack filter and connected components on chunked volumes.

A 2048³ uint16 scan is 16 GB, and the sheetness filter holds about nine float32 copies of what
it filters: a whole scan cannot be filtered in memory on a workstation. Here the volume is a
:class:`dask.array.Array` cut into chunks; each chunk is filtered with a halo borrowed from its
neighbours (:func:`dask.array.map_overlap`) that is wide enough for the filter's largest
Gaussian kernel, and the outer faces are extended with the nearest value exactly as
:mod:`dendritect.segment.hessian` extends them. The result equals the whole-volume filter to float
rounding, while peak memory follows the chunk size (see :mod:`dendritect.parallel.memory`).

The graphs run on whatever dask scheduler is active: threads by default, a local or remote
``dask.distributed`` cluster inside :func:`dendritect.parallel.cluster.compute_context`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np

from dendritect.errors import InputError
from dendritect.parallel.memory import SHEETNESS_TEMPORARIES, chunks_for_memory

__all__ = [
    "global_contrast",
    "label_auto",
    "label_chunked",
    "resolve_budget",
    "sheetness_auto",
    "sheetness_block",
    "sheetness_chunked",
    "sheetness_depth",
]

# int32 labels, the bool mask and scipy's working copy, per voxel of a labelling block
_LABEL_TEMPORARIES = 3

# numba's fallback "workqueue" threading layer must not be entered from two threads at once
_WORKQUEUE_LOCK = threading.Lock()


def _sigmas(sigmas_vox) -> list[float]:
    sig = [float(s) for s in np.atleast_1d(np.asarray(sigmas_vox, dtype=np.float64))]
    if not sig or any(not np.isfinite(s) or s <= 0 for s in sig):
        raise InputError(f"sheetness: sigmas must be positive numbers, got {sigmas_vox!r}")
    return sig


def sheetness_depth(sigmas_vox: float | Sequence[float]) -> int:
    """Halo (voxels) a chunk needs so that chunked sheetness equals the whole-volume filter.

    The radius of the Gaussian derivative kernels that
    :func:`dendritect.segment.hessian.sheetness` uses for its largest scale, plus one.

    Parameters
    ----------
    sigmas_vox : float or sequence of float
        Gaussian scales in voxels.

    Returns
    -------
    int
        Halo width in voxels.
    """
    from dendritect.segment import hessian

    radius = max((hessian.gaussian_kernels(s)[0].size - 1) // 2 for s in _sigmas(sigmas_vox))
    return int(radius) + 1


def global_contrast(volume: da.Array | np.ndarray) -> float:
    """The default contrast of :func:`~dendritect.segment.hessian.sheetness`, for a whole volume.

    Each chunk would see its own intensity range, so the chunked filter computes the contrast
    once, with the whole-volume filter's own rule
    (:func:`~dendritect.segment.hessian.default_contrast`).
    """
    from dendritect.segment.hessian import default_contrast

    return default_contrast(volume)


def _needs_lock() -> bool:
    import numba

    try:
        return numba.threading_layer() not in ("omp", "tbb")
    except ValueError:  # no parallel kernel has run yet in this process: be safe once
        return True


def sheetness_block(block: np.ndarray, *, sigmas: list[float], dark: bool, contrast: float,
                     alpha: float, threads: int | None, device: str) -> np.ndarray:
    """Filter one block (with its halo) on the chosen device."""
    vol = np.asarray(block, dtype=np.float32)
    if device == "gpu":
        from dendritect.parallel.backend import get_backend

        return get_backend("gpu").sheetness(vol, sigmas, dark=dark, contrast=contrast,
                                            alpha=alpha)
    import numba

    from dendritect.segment.hessian import sheetness

    before = numba.get_num_threads()
    if threads is not None:
        # dask already runs one task per core: more kernel threads per task oversubscribe
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        if _needs_lock():
            with _WORKQUEUE_LOCK:
                return sheetness(vol, sigmas, dark=dark, contrast=contrast, alpha=alpha)
        return sheetness(vol, sigmas, dark=dark, contrast=contrast, alpha=alpha)
    finally:
        numba.set_num_threads(before)


def _as_dask(volume, chunks) -> da.Array:
    if isinstance(volume, da.Array):
        arr = volume
        if chunks is not None:
            arr = arr.rechunk(chunks)
    else:
        arr = da.from_array(np.asarray(volume), chunks=chunks if chunks is not None else "auto")
    if arr.ndim != 3:
        raise InputError(f"expected a 3D (z, y, x) volume, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError("empty volume")
    return arr


def _merge_thin(chunks: tuple, shape: tuple, depth: int) -> tuple:
    """Chunk tuples with none thinner than the halo (a halo reaches one chunk only)."""
    new = []
    for n, cs in zip(shape, chunks, strict=True):
        if min(cs) >= min(depth, n):
            new.append(tuple(cs))
            continue
        size = max(cs[0], min(depth, n))
        k = max(1, n // size)
        base, extra = divmod(n, k)
        new.append(tuple(base + (1 if i < extra else 0) for i in range(k)))
    return tuple(new)


def _min_chunks(arr: da.Array, depth: int) -> da.Array:
    new = _merge_thin(arr.chunks, arr.shape, depth)
    return arr if new == arr.chunks else arr.rechunk(new)


def _is_store(volume) -> bool:
    """An array-like read by slicing (zarr, h5py, memmap), not held in memory or by dask."""
    return (not isinstance(volume, (da.Array, np.ndarray))
            and all(hasattr(volume, a) for a in ("shape", "dtype", "__getitem__")))


def _store_block(*, source, depth: int, block_info=None, **kwargs) -> np.ndarray:
    """Read one block plus its halo straight from the store, pad the outer faces, filter."""
    loc = block_info[None]["array-location"]
    shape = source.shape
    sl = tuple(slice(max(0, a - depth), min(n, b + depth))
               for (a, b), n in zip(loc, shape, strict=True))
    data = np.asarray(source[sl])
    # the outer faces are extended with the nearest value, as the whole-volume filter does
    pad = [(depth - (a - s.start), depth - (s.stop - b))
           for (a, b), s in zip(loc, sl, strict=True)]
    if any(p != (0, 0) for p in pad):
        data = np.pad(data, pad, mode="edge")
    out = sheetness_block(data, **kwargs)
    return out[(slice(depth, -depth),) * out.ndim] if depth else out


def sheetness_chunked(volume: da.Array | np.ndarray, sigmas_vox: float | Sequence[float], *,
                      dark: bool = True, chunks=None, contrast: float | None = None,
                      alpha: float = 0.5, memory_limit: int | None = None,
                      n_parallel: int | None = None, threads: int | None = None,
                      device: str = "cpu") -> da.Array:
    """Multiscale sheetness of a volume too large for memory, chunk by chunk.

    Equal (to float rounding) to :func:`dendritect.segment.hessian.sheetness` on the whole
    volume: each chunk is filtered with a halo of :func:`sheetness_depth` voxels taken from
    its neighbours, the outer faces are extended with the nearest value (as the whole-volume
    filter does), and the contrast scale is computed once for the whole volume.

    Parameters
    ----------
    volume : dask.array.Array, numpy.ndarray or array-like store
        3D (z, y, x) volume, any real dtype (each block is filtered in float32). A store read
        by slicing (:class:`zarr.Array`, :class:`h5py.Dataset`, :class:`numpy.memmap`) is read
        block by block, each task reading its own block and halo: the lowest peak memory.
        With a dask array, dask's overlap step may hold a layer of neighbouring input chunks
        at once: prefer z-slab chunks (whole y, x) there.
    sigmas_vox : float or sequence of float
        Gaussian scales in voxels.
    dark : bool
        Look for dark sheets (cracks) rather than bright ones.
    chunks : tuple or str, optional
        Chunk sizes. Default: chosen from ``memory_limit`` when given, else those of the
        input (a dask array's or a store's chunks), else dask's ``"auto"``.
    contrast : float, optional
        Intensity drop of an empty crack. Default: :func:`global_contrast` (one extra pass over
        a sub-sample of the data).
    alpha : float
        Tolerance on the plate ratio (see :func:`~dendritect.segment.hessian.sheetness`).
    memory_limit : int, optional
        Bytes all blocks running at once may use; chooses the chunks
        (:func:`~dendritect.parallel.memory.chunks_for_memory`) when ``chunks`` is not given.
    n_parallel : int, optional
        Blocks that run at the same time (default: dask's ``num_workers`` or the core count).
    threads : int, optional
        Kernel threads per block. Default: the ``dendritect.block-threads`` dask setting,
        else the cores divided by the blocks that run at once (dask already runs one block
        per core; a single block gets them all).
    device : {"cpu", "gpu", "auto"}
        Where each block is filtered (see :func:`dendritect.parallel.backend.get_backend`).

    Returns
    -------
    dask.array.Array
        Lazy float32 sheetness in [0, 1], same shape and chunks as the (re)chunked input.
    """
    from dendritect.parallel.backend import get_backend
    from dendritect.parallel.memory import default_workers

    sig = _sigmas(sigmas_vox)
    if alpha <= 0:
        raise InputError(f"sheetness: alpha must be positive, got {alpha}")
    depth = sheetness_depth(sig)
    dev = get_backend(device).name  # fails early, in the caller, when the GPU is missing
    if n_parallel is None:
        n_parallel = int(dask.config.get("num_workers", None) or default_workers())
    if chunks is None and memory_limit is not None:
        chunks = chunks_for_memory(volume.shape, np.float32, int(memory_limit),
                                   SHEETNESS_TEMPORARIES, depth=depth, n_parallel=n_parallel)
    store = _is_store(volume)
    if store:
        if chunks is None:
            chunks = getattr(volume, "chunks", None) or "auto"
        if len(volume.shape) != 3 or min(volume.shape) < 1:
            raise InputError(f"expected a non-empty 3D (z, y, x) volume, got shape "
                             f"{tuple(volume.shape)}")
        shape = tuple(int(n) for n in volume.shape)
        dtype = np.dtype(volume.dtype)
        block_chunks = _merge_thin(da.core.normalize_chunks(chunks, shape, dtype=np.float32),
                                   shape, depth)
    else:
        arr = _min_chunks(_as_dask(volume, chunks), depth)
        shape, dtype, block_chunks = arr.shape, arr.dtype, arr.chunks
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise InputError(f"sheetness: expected a real-valued volume, got dtype {dtype}")
    if contrast is None:
        contrast = global_contrast(volume if store else arr)
    contrast = float(contrast)
    if not np.isfinite(contrast) or contrast <= 0:
        # a constant volume holds no sheet (as the whole-volume filter answers)
        return da.zeros(shape, dtype=np.float32, chunks=block_chunks)
    if threads is None:
        threads = dask.config.get("dendritect.block-threads", None)
    if threads is None:
        # dask runs up to n_parallel blocks at once: share the cores among them
        n_blocks = math.prod(len(c) for c in block_chunks)
        threads = max(1, default_workers() // max(1, min(int(n_parallel), n_blocks)))
    kwargs = {"sigmas": sig, "dark": bool(dark), "contrast": contrast, "alpha": float(alpha),
              "threads": threads, "device": dev}
    if store:
        # each task reads its own block and halo: nothing but that block is ever held
        return da.map_blocks(_store_block, source=volume, depth=depth, chunks=block_chunks,
                             dtype=np.float32, meta=np.empty((0, 0, 0), np.float32), **kwargs)
    return da.map_overlap(
        sheetness_block, arr, depth=depth, boundary="nearest", trim=True,
        dtype=np.float32, meta=np.empty((0, 0, 0), np.float32), **kwargs)


def _structure(ndim: int, connectivity: int) -> np.ndarray:
    from scipy import ndimage

    if not 1 <= int(connectivity) <= ndim:
        raise InputError(f"label_chunked: connectivity must be 1..{ndim}, got {connectivity}")
    return ndimage.generate_binary_structure(ndim, int(connectivity))


def _label_block(block: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    lab, n = ndimage.label(np.asarray(block).astype(bool, copy=False), structure=structure,
                           output=np.int32)
    return lab, int(n)


def _summarise_block(block: np.ndarray, structure: np.ndarray) -> dict:
    """Label count and the outer planes (local labels) of one block: all later steps need."""
    lab, n = _label_block(block, structure)
    faces = {}
    for ax in range(lab.ndim):
        lo = np.take(lab, 0, axis=ax)
        hi = np.take(lab, lab.shape[ax] - 1, axis=ax)
        faces[ax] = (np.ascontiguousarray(lo), np.ascontiguousarray(hi))
    return {"n": n, "faces": faces}


def _count(summary: dict) -> int:
    return summary["n"]


def _boundary_pairs(lower: list, upper: list, axis: int, grid_shape: tuple[int, ...],
                    positions: list, structure: np.ndarray) -> np.ndarray:
    """Label pairs that touch across one chunk boundary, as (block << 32 | local) keys.

    ``lower``/``upper`` are the summaries of the blocks on either side of the boundary, for
    every block position across it; the planes are assembled whole so that neighbours across
    an edge or a corner of four blocks are found too (connectivity 2 and 3).
    """
    def plane(summaries: list, side: int) -> np.ndarray:
        rows = []
        for pos, summ in zip(positions, summaries, strict=True):
            bid = int(np.ravel_multi_index(pos[side], grid_shape))
            face = summ["faces"][axis][1 - side].astype(np.int64)
            rows.append((pos[side], np.where(face > 0, (bid << 32) | face, 0)))
        return _assemble(rows, axis)

    a = plane(lower, 0)
    b = plane(upper, 1)
    # in-plane offsets allowed by the structure one step along `axis`
    st = np.take(structure, 2, axis=axis)
    pairs = []
    for off in zip(*np.nonzero(st), strict=True):
        d = [int(o) - 1 for o in off]
        sa = tuple(slice(max(0, -k), n - max(0, k)) for k, n in zip(d, a.shape, strict=True))
        sb = tuple(slice(max(0, k), n - max(0, -k)) for k, n in zip(d, a.shape, strict=True))
        x, y = a[sa], b[sb]
        keep = (x > 0) & (y > 0)
        if keep.any():
            pairs.append(np.stack([x[keep], y[keep]]))
    if not pairs:
        return np.zeros((2, 0), np.int64)
    return np.unique(np.concatenate(pairs, axis=1), axis=1)


def _assemble(rows: list, axis: int) -> np.ndarray:
    """Tile per-block face planes (keyed by block position) into the whole boundary plane."""
    grid = {}
    for pos, face in rows:
        key = tuple(p for i, p in enumerate(pos) if i != axis)
        grid[key] = face
    keys = sorted(grid)
    ndim = len(keys[0])
    shape = tuple(max(k[i] for k in keys) + 1 for i in range(ndim))
    nested = np.empty(shape, dtype=object)
    for k in keys:
        nested[k] = grid[k]
    return np.block(nested.tolist()) if ndim else nested[()]


def _relabel_block(block: np.ndarray, structure: np.ndarray, lut: np.ndarray) -> np.ndarray:
    lab, _ = _label_block(block, structure)
    return lut[lab]


def label_chunked(mask: da.Array | np.ndarray, *, connectivity: int = 1, chunks=None,
                  method: str = "faces") -> tuple[da.Array, int]:
    """Connected components of a chunked binary volume, joined across chunk faces.

    Each chunk is labelled alone (:func:`scipy.ndimage.label`); labels that touch across a
    chunk boundary (per the connectivity, so across edges and corners too) are merged with a
    union of the touching pairs (:func:`scipy.sparse.csgraph.connected_components`). The
    partition equals :func:`scipy.ndimage.label`'s on the whole volume; the numbering may
    differ. Peak memory follows the chunk size; only the boundary planes and the label table
    are gathered.

    ``method="dask-image"`` uses :func:`dask_image.ndmeasure.label` instead (same partition
    for face connectivity; its graph grows faster than linearly with the number of chunks, so
    it suits a few dozen chunks at most).

    Parameters
    ----------
    mask : dask.array.Array or numpy.ndarray
        Binary volume (nonzero = foreground), any number of dimensions.
    connectivity : int
        1 (faces), 2 (faces and edges) or ``mask.ndim`` (also corners), as in
        :func:`scipy.ndimage.generate_binary_structure`.
    chunks : tuple or str, optional
        Rechunk to these sizes first.
    method : {"faces", "dask-image"}
        The merging algorithm.

    Returns
    -------
    labels : dask.array.Array
        Lazy int32 labels, 0 = background, numbered 1..n.
    n : int
        The number of components.

    Notes
    -----
    The mask is computed twice (once to count and join labels, once to write them): store an
    expensive mask (e.g. :meth:`dask.array.Array.to_zarr`) before labelling it.
    """
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    if isinstance(mask, da.Array):
        arr = mask if chunks is None else mask.rechunk(chunks)
    else:
        arr = da.from_array(np.asarray(mask), chunks=chunks if chunks is not None else "auto")
    if arr.ndim < 1 or arr.size == 0:
        raise InputError(f"label_chunked: empty mask of shape {arr.shape}")
    structure = _structure(arr.ndim, connectivity)
    if method == "dask-image":
        from dask_image.ndmeasure import label

        labels, n = label(arr.astype(bool), structure=structure)
        return labels.astype(np.int32), int(n.compute())
    if method != "faces":
        raise InputError(f"label_chunked: method must be 'faces' or 'dask-image', got {method!r}")

    grid = arr.numblocks
    blocks = arr.to_delayed()
    summ = np.empty(grid, dtype=object)
    for idx in np.ndindex(*grid):
        summ[idx] = dask.delayed(_summarise_block, pure=True)(blocks[idx], structure)
    counts = [dask.delayed(_count)(summ[idx]) for idx in np.ndindex(*grid)]
    boundaries = []
    for ax in range(arr.ndim):
        for i in range(grid[ax] - 1):
            lower, upper, positions = [], [], []
            for idx in np.ndindex(*grid):
                if idx[ax] != i:
                    continue
                nxt = tuple(i + 1 if k == ax else v for k, v in enumerate(idx))
                lower.append(summ[idx])
                upper.append(summ[nxt])
                positions.append((idx, nxt))
            boundaries.append(dask.delayed(_boundary_pairs)(lower, upper, ax, grid, positions,
                                                            structure))
    counts, pairs = dask.compute(counts, boundaries)
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    total = int(counts.sum())
    if total >= 2**31 - 1:
        raise InputError(f"label_chunked: {total} labels do not fit in int32")
    # union of labels that touch across a boundary, in the global numbering
    edges = np.concatenate(pairs, axis=1) if pairs else np.zeros((2, 0), np.int64)
    glob = offsets[edges >> 32] + (edges & 0xFFFFFFFF)
    graph = sparse.coo_matrix((np.ones(glob.shape[1], np.int8), (glob[0], glob[1])),
                              shape=(total + 1, total + 1))
    _, comp = connected_components(graph, directed=False)
    lut = np.zeros(total + 1, np.int32)
    n = 0
    if total:
        # number the components 1..n in the order of their first chunk label
        _, first, inverse = np.unique(comp[1:], return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))
        lut[1:] = rank[inverse] + 1
        n = int(first.size)
    out = np.empty(grid, dtype=object)
    for flat, idx in enumerate(np.ndindex(*grid)):
        sl = lut[offsets[flat]: offsets[flat] + counts[flat] + 1].copy()
        sl[0] = 0  # local label 0 is background
        shape = tuple(arr.chunks[k][idx[k]] for k in range(arr.ndim))
        out[idx] = da.from_delayed(dask.delayed(_relabel_block, pure=True)(
            blocks[idx], structure, sl), shape=shape, dtype=np.int32,
            meta=np.empty((0,) * arr.ndim, np.int32))
    return da.block(out.tolist()), n


def resolve_budget(memory_limit: str | int | None, device: str | None
                   ) -> tuple[int | None, str, int]:
    """``(limit_bytes, device, n_parallel)``: the arguments where given, else the active
    :func:`~dendritect.parallel.cluster.compute_context`'s (no limit, the CPU and
    :func:`~dendritect.parallel.memory.default_workers` tasks outside any)."""
    from dendritect.parallel.cluster import current_context
    from dendritect.parallel.memory import default_workers, parse_memory_limit

    ctx = current_context()
    limit = parse_memory_limit(memory_limit)
    if limit is None and ctx is not None:
        limit = ctx.memory_limit_bytes
    if device is None:
        device = ctx.device if ctx is not None else "cpu"
    n_par = ctx.n_parallel if ctx is not None else default_workers()
    return limit, device, n_par


def sheetness_auto(volume: da.Array | np.ndarray, sigmas_vox: float | Sequence[float], *,
                   dark: bool = True, contrast: float | None = None, alpha: float = 0.5,
                   memory_limit: str | int | None = None, device: str | None = None
                   ) -> np.ndarray:
    """Sheetness of a volume in memory: whole when its working set fits, chunked otherwise.

    A drop-in for :func:`dendritect.segment.hessian.sheetness` that honours the memory limit
    and device of the active :func:`~dendritect.parallel.cluster.compute_context` (or the
    arguments). The result is the same either way (to float rounding).

    Parameters
    ----------
    volume : numpy.ndarray or dask.array.Array
        3D (z, y, x) volume.
    sigmas_vox, dark, contrast, alpha
        As :func:`~dendritect.segment.hessian.sheetness`.
    memory_limit : str or int, optional
        Budget for the filter's working memory (default: the context's; none: whole volume).
    device : {"cpu", "gpu", "auto"}, optional
        Default: the context's, else ``cpu``.

    Returns
    -------
    numpy.ndarray
        float32 sheetness in [0, 1].
    """
    from dendritect.parallel.backend import get_backend

    limit, device, n_par = resolve_budget(memory_limit, device)
    need = int(np.prod(volume.shape)) * 4 * SHEETNESS_TEMPORARIES
    if limit is None or need <= limit:
        vol = volume.compute() if isinstance(volume, da.Array) else volume
        return get_backend(device).sheetness(vol, sigmas_vox, dark=dark, contrast=contrast,
                                             alpha=alpha)
    out = sheetness_chunked(volume, sigmas_vox, dark=dark, contrast=contrast, alpha=alpha,
                            memory_limit=limit, n_parallel=n_par, device=device)
    return np.asarray(out.compute())


def label_auto(mask: da.Array | np.ndarray, *, connectivity: int = 1,
               memory_limit: str | int | None = None, device: str | None = None
               ) -> tuple[np.ndarray, int]:
    """Connected components of a mask in memory: whole when it fits, chunked otherwise.

    A drop-in for :func:`scipy.ndimage.label` (int32 labels and their count) that honours
    the memory limit and device of the active
    :func:`~dendritect.parallel.cluster.compute_context` (or the arguments). The partition is
    the same either way; the numbering may differ.
    """
    from dendritect.parallel.backend import get_backend

    limit, device, n_par = resolve_budget(memory_limit, device)
    shape = tuple(int(s) for s in mask.shape)
    need = int(np.prod(shape)) * 4 * _LABEL_TEMPORARIES
    if limit is None or need <= limit:
        m = mask.compute() if isinstance(mask, da.Array) else mask
        return get_backend(device).label(m, connectivity=connectivity)
    chunks = chunks_for_memory(shape, np.int32, limit, _LABEL_TEMPORARIES, n_parallel=n_par)
    labels, n = label_chunked(mask, connectivity=connectivity, chunks=chunks)
    return np.asarray(labels.compute()), n

