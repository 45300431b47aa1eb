"""napari reader: any input the library reads, lazily, at its voxel size; and results folders."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import dask.array as da

from dendritect import results as R

__all__ = ["get_reader", "read_results", "read_series", "results_layers", "scans_layer",
           "spatial_kwargs"]

LayerData = tuple[Any, dict[str, Any], str]

# What dendritect.io.open_series reads (docs/formats.md); folders are always offered.
SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5",
            ".nx", ".h5nx", ".zarr")
NAMES = ("dataset.json", "zarr.json", ".zarray", ".zgroup")


def _napari_supports_units() -> bool:
    """Layer ``units`` exist from napari 0.6; without napari installed, give them anyway."""
    try:
        ver = metadata.version("napari")
    except metadata.PackageNotFoundError:
        return True
    try:
        major, minor = (int(p) for p in ver.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (0, 6)


def spatial_kwargs(ndim: int, voxel_size_um: tuple[float, float, float]) -> dict[str, Any]:
    """``scale`` (and ``units``) for a layer whose last three axes are (z, y, x)."""
    lead = ndim - 3
    out: dict[str, Any] = {"scale": (1.0,) * lead + tuple(float(v) for v in voxel_size_um)}
    if _napari_supports_units():
        # The time axis counts steps: no physical unit (napari shows "pixel").
        out["units"] = (None,) * lead + ("um", "um", "um")
    if lead:
        out["axis_labels"] = ("t", "z", "y", "x")[-ndim:]
    return out


def _one_path(path: str | Path | list) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(path)


def _is_results(p: Path) -> bool:
    return p.is_dir() and (p / R.SUMMARY_JSON).is_file() and (p / R.CRACKS_ZARR).exists()


def get_reader(path: str | Path | list) -> Callable[[Any], list[LayerData]] | None:
    """Return a reader for ``path`` when dendritect can read it, else None (npe2 hook)."""
    p = _one_path(path)
    if p is None:
        return None
    if _is_results(p):
        return read_results
    if p.is_dir() or p.name.lower() in NAMES:
        return read_series
    name = p.name.lower()
    if any(name.endswith(s) for s in SUFFIXES):
        return read_series
    return None


def read_series(path: str | Path | list, **options: Any) -> list[LayerData]:
    """Open a CT series lazily as one image layer (t, z, y, x), scaled to micrometres.

    Parameters
    ----------
    path : str or Path
        Anything :func:`dendritect.io.open_series` reads.
    **options
        Passed to ``open_series`` (``dataset``, ``voxel_size``, ``times_s``, ``interval``).

    Returns
    -------
    list of (data, kwargs, "image")
        ``data`` is the series' dask array: nothing is read until napari shows a slice.
    """
    from dendritect.io import open_series

    p = _one_path(path)
    series = open_series(p, **options)
    data = series.data
    if data.shape[0] == 1:
        data = data[0]
    kwargs = {
        "name": Path(series.source).name or str(series.source),
        "metadata": {"dendritect_source": str(series.source),
                     "dendritect_options": {k: v for k, v in options.items() if v is not None},
                     "format": series.format,
                     "voxel_size_um": list(series.voxel_size_um),
                     "times_s": [float(t) for t in series.times_s]},
        "colormap": "gray",
        **spatial_kwargs(data.ndim, series.voxel_size_um),
    }
    return [(data, kwargs, "image")]


def _contrast_limits(data: Any) -> tuple[float, float]:
    """Contrast limits from a sample: the middle plane of the first and last step (a few
    planes read, not the series), 0.5 and 99.5 percentiles."""
    import numpy as np

    nt, nz = int(data.shape[0]), int(data.shape[1])
    planes = [np.asarray(data[t, nz // 2]) for t in sorted({0, nt - 1})]
    sample = np.concatenate([p.ravel() for p in planes])
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def scans_layer(data: Any, voxel_size_um: tuple[float, float, float], *,
                name: str = "scans (registered)",
                metadata: dict[str, Any] | None = None) -> LayerData:
    """An image layer of registered scans (t, z, y, x): lazy, contrast from a sample."""
    return (data, {"name": name, "colormap": "gray", "contrast_limits": _contrast_limits(data),
                   "metadata": dict(metadata or {}),
                   **spatial_kwargs(data.ndim, voxel_size_um)}, "image")


def results_layers(results_dir: str | Path, *, scans: bool = True) -> list[LayerData]:
    """The layers of a results folder: the registered scans (when the input can still be
    read; shifted plane by plane as napari shows them), the tracked crack labels (t, z, y, x),
    the first step's pores (z, y, x; hidden) and the time of arrival (z, y, x)."""
    import warnings

    import zarr

    from dendritect.errors import InputError

    root = Path(results_dir)
    summary = json.loads((root / R.SUMMARY_JSON).read_text(encoding="utf-8"))
    voxel = tuple(float(v) for v in summary.get("voxel_size_um", (1.0, 1.0, 1.0)))
    grp = zarr.open_group(str(root / R.CRACKS_ZARR), mode="r")
    layers: list[LayerData] = []
    if scans:
        from dendritect.reading import registered_scans

        try:
            data = registered_scans(root)
        except InputError as exc:
            warnings.warn(f"{root}: the registered scans are not shown ({exc})", UserWarning,
                          stacklevel=2)
        else:
            layers.append(scans_layer(data, voxel, metadata={
                "dendritect_results": str(root), "dendritect_input": summary.get("input"),
                "registration_shifts_vox": summary.get("registration_shifts_vox")}))
    if R.LABELS in grp:
        arr = grp[R.LABELS]
        data = da.from_array(arr, chunks=arr.chunks)
        layers.append((data, {"name": "cracks (tracked)", "opacity": 0.7,
                              "metadata": {"dendritect_results": str(root)},
                              **spatial_kwargs(data.ndim, voxel)}, "labels"))
    if R.PORES in grp:
        arr = grp[R.PORES]
        pores = da.from_array(arr, chunks=arr.chunks)
        # hidden at first: the pellet's porosity, beside the cracks
        layers.append((pores, {"name": "pores (first step)", "opacity": 0.5, "visible": False,
                               "metadata": {"dendritect_results": str(root)},
                               **spatial_kwargs(pores.ndim, voxel)}, "labels"))
    if R.TIME_OF_ARRIVAL in grp:
        arr = grp[R.TIME_OF_ARRIVAL]
        toa = da.from_array(arr, chunks=arr.chunks)
        n_steps = next((grp[k].shape[0] for k in (R.CRACK, R.LABELS) if k in grp), 2)
        n = max(int(n_steps) - 1, 1)
        # Additive blending over the scan: never-cracked voxels (-1) fall below the
        # contrast range and show as black, that is, not at all.
        layers.append((toa, {"name": "time of arrival (step)", "colormap": "turbo",
                             "contrast_limits": (0, n), "blending": "additive",
                             "metadata": {"dendritect_results": str(root)},
                             **spatial_kwargs(toa.ndim, voxel)}, "image"))
    return layers


def read_results(path: str | Path | list) -> list[LayerData]:
    """Open a results folder: registered scans (when the input is still there), tracked crack
    labels, the first step's pores (hidden) and time of arrival, at the voxel size."""
    p = _one_path(path)
    return results_layers(p)
