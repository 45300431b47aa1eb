"""napari widget: run the crack analysis on the data of an image layer and show the results.

No ``from __future__ import annotations`` here: magicgui reads the widget's annotations as
real types, evaluated where the function is defined (after napari is imported).
"""

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dendritect import results as R
from dendritect.errors import InputError
from dendritect.napari._reader import LayerData, results_layers, scans_layer

__all__ = ["add_layers", "analysis_widget", "analyze_layer", "layer_series"]


def _layer_array(layer: Any) -> Any:
    """The layer's data as a dask array (t, z, y, x): level 0 of a multiscale layer."""
    import dask.array as da

    data = getattr(layer, "data", None)
    if data is None:
        raise InputError(f"layer {getattr(layer, 'name', '?')!r} holds no data")
    if getattr(layer, "multiscale", False) or isinstance(data, (list, tuple)):
        data = data[0]
    arr = data if isinstance(data, da.Array) else da.from_array(data)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise InputError(f"layer {getattr(layer, 'name', '?')!r} is not a (t,) z, y, x volume "
                         f"(shape {tuple(arr.shape)})")
    return arr


def layer_series(layer: Any) -> tuple[Any, tuple[float, float, float], list[float] | None]:
    """What the analysis reads from a layer: its data (t, z, y, x), voxel size (µm, from the
    layer's scale) and step times (s, from the dendritect reader's metadata, else None)."""
    arr = _layer_array(layer)
    scale = [float(v) for v in (getattr(layer, "scale", None) if getattr(layer, "scale", None)
                                is not None else (1.0, 1.0, 1.0))]
    voxel = tuple(scale[-3:]) if len(scale) >= 3 else (1.0, 1.0, 1.0)
    meta = dict(getattr(layer, "metadata", {}) or {})
    times = meta.get("times_s")
    if times is not None and len(times) != arr.shape[0]:
        times = None
    return arr, voxel, None if times is None else [float(t) for t in times]


def analyze_layer(layer: Any, out_dir: str | Path, *, anode: str = "auto",
                  echem: str | Path | None = None, overwrite: bool = False) -> list[LayerData]:
    """Analyse the data of an image layer (as shown, not the file it was read from).

    The layer's data (level 0 of a multiscale layer; a 3D layer is one step) is written, step
    by step, into a temporary Zarr store with the layer's voxel size (its ``scale``) and step
    times (``metadata["times_s"]`` of the dendritect reader, else the step index), which the
    analysis reads; the store is removed afterwards.

    Parameters
    ----------
    layer : napari.layers.Image
        Any image layer of a (t, z, y, x) series or a (z, y, x) scan.
    out_dir : str or Path
        Results folder to write.
    anode, echem, overwrite
        As for ``dendritect analyze``.

    Returns
    -------
    list of layer data tuples
        The layer's data registered onto step 0, the tracked crack labels and the time of
        arrival.
    """
    import zarr

    from dendritect.pipeline import analyze
    from dendritect.reading import register_lazily

    arr, voxel, times = layer_series(layer)
    echem_path = Path(echem) if echem not in (None, "") else None
    work = Path(tempfile.mkdtemp(prefix="dendritect-layer-"))
    try:
        store = work / "layer.zarr"
        dtype = arr.dtype if arr.dtype.kind in "biuf" else "float32"
        z = zarr.create_array(store=str(store), shape=arr.shape, dtype=dtype,
                              chunks=(1, 1, *arr.shape[2:]))
        attrs = {"voxel_size_um": list(voxel)}
        if times is not None:
            attrs["times_s"] = times
        z.attrs.update(attrs)
        arr.astype(dtype).rechunk((1, 1, *arr.shape[2:])).store(z, lock=False)
        analyze(store, out_dir, voxel_size=",".join(f"{v:g}" for v in voxel) + "um",
                times_s=times, anode=anode, echem=echem_path, overwrite=overwrite,
                progress=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = json.loads((Path(out_dir) / R.SUMMARY_JSON).read_text(encoding="utf-8"))
    shifts = summary.get("registration_shifts_vox") or [[0.0, 0.0, 0.0]] * arr.shape[0]
    name = f"{getattr(layer, 'name', 'scans')} (registered)"
    registered = scans_layer(register_lazily(arr, shifts), voxel, name=name,
                             metadata={"dendritect_results": str(out_dir)})
    return [registered, *results_layers(out_dir, scans=False)]


def add_layers(viewer: Any, layers: list[LayerData]) -> list[Any]:
    """Add layer data tuples to a viewer, replacing layers of the same name."""
    from napari.layers import Layer

    added = []
    for data, kwargs, kind in layers:
        name = kwargs.get("name")
        if name in viewer.layers:
            viewer.layers.remove(name)
        added.append(viewer.add_layer(Layer.create(data, kwargs, kind)))
    return added


def _make_widget():
    import napari
    from magicgui import magic_factory

    @magic_factory(
        call_button="Analyse",
        image={"label": "CT series"},
        out_dir={"label": "results folder", "mode": "d"},
        anode={"choices": ["auto", "top", "bottom"],
               "tooltip": "Plated electrode: top (low z), bottom (high z) or auto"},
        echem={"label": "cycler file", "tooltip": "optional .csv/.mpr/.mpt"},
        overwrite={"tooltip": "Replace a finished run in the results folder"},
    )
    def widget(viewer: napari.viewer.Viewer, image: napari.layers.Image,
               out_dir: Path = Path("dendritect-results"), anode: str = "auto",
               echem: str = "", overwrite: bool = False) -> None:
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error, show_info

        @thread_worker
        def work() -> list[LayerData]:
            return analyze_layer(image, out_dir, anode=anode, echem=echem, overwrite=overwrite)

        worker = work()
        worker.returned.connect(lambda layers: (add_layers(viewer, layers),
                                                show_info(f"results written to {out_dir}")))
        worker.errored.connect(lambda exc: show_error(f"analysis failed: {exc}"))
        worker.start()
        show_info(f"analysing {image.name} ...")

    return widget


def analysis_widget(*args: Any, **kwargs: Any) -> Any:
    """The dock widget (npe2 command): a magicgui form over :func:`analyze_layer`."""
    return _make_widget()(*args, **kwargs)
