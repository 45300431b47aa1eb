"""napari widget: run the crack analysis on the open layer's source and show the results.

No ``from __future__ import annotations`` here: magicgui reads the widget's annotations as
real types, evaluated where the function is defined (after napari is imported).
"""

from pathlib import Path
from typing import Any

from dendritect.errors import InputError
from dendritect.napari._reader import LayerData, results_layers

__all__ = ["add_layers", "analysis_widget", "analyze_layer"]

_OPEN_OPTIONS = ("voxel_size", "dataset", "times_s", "interval")


def analyze_layer(layer: Any, out_dir: str | Path, *, anode: str = "auto",
                  echem: str | Path | None = None, overwrite: bool = False) -> list[LayerData]:
    """Analyse the series a layer was read from; return the result layers.

    Parameters
    ----------
    layer : napari.layers.Image
        Opened with the dendritect reader (its ``metadata["dendritect_source"]``), or any image
        layer napari read from a file (``layer.source.path``).
    out_dir : str or Path
        Results folder to write.
    anode, echem, overwrite
        As for ``dendritect analyze``.

    Returns
    -------
    list of layer data tuples
        Tracked crack labels and the time of arrival.
    """
    from dendritect.pipeline import analyze

    meta = dict(getattr(layer, "metadata", {}) or {})
    src = meta.get("dendritect_source") or getattr(getattr(layer, "source", None), "path", None)
    if not src:
        raise InputError(f"layer {getattr(layer, 'name', '?')!r} was not read from a file; "
                         "open the series with File > Open (dendritect reader) first")
    opts = {k: v for k, v in (meta.get("dendritect_options") or {}).items() if k in _OPEN_OPTIONS}
    echem_path = Path(echem) if echem not in (None, "") else None
    analyze(src, out_dir, anode=anode, echem=echem_path, overwrite=overwrite, progress=False,
            **opts)
    return results_layers(out_dir)


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
