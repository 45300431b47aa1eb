"""napari: follow a live results folder (``dendritect watch``), re-reading its layers as steps
are added.

:class:`LiveResults` needs neither Qt nor a window (a ``napari.components.ViewerModel`` will
do): :meth:`LiveResults.refresh` re-reads the folder's layers (:func:`results_layers`) when
``status.json`` says more steps are done or ``summary.json`` was replaced, and updates the
viewer's layers of the same names in place (their data; the colours, opacity and visibility
the user set stay), adding those not shown yet. The dock widget (:func:`live_widget`) does it
on a button and, with "follow" ticked, on a timer.

No ``from __future__ import annotations`` here: magicgui reads the widget's annotations as
real types, evaluated where the function is defined (after napari is imported).
"""

import json
from pathlib import Path
from typing import Any

from dendritect import results as R
from dendritect.atomic import file_signature
from dendritect.napari._reader import LayerData, results_layers

__all__ = ["POLL_S", "LiveResults", "follow_results", "live_widget", "update_layers"]

#: Seconds between two looks at the folder while the widget follows it.
POLL_S = 2.0




def update_layers(viewer: Any, layers: list[LayerData]) -> list[Any]:
    """Put layer data tuples into a viewer: a layer of the same name and kind gets the new
    data (and metadata) in place, keeping what the user set on it; others are added. The time
    of arrival's contrast limits follow the number of steps. Returns the layers touched."""
    from napari.layers import Layer

    out = []
    for data, kwargs, kind in layers:
        name = kwargs.get("name")
        layer = viewer.layers[name] if name in viewer.layers else None
        if layer is None or type(layer).__name__.lower() != kind:
            if layer is not None:
                viewer.layers.remove(name)
            out.append(viewer.add_layer(Layer.create(data, kwargs, kind)))
            continue
        layer.data = data
        layer.metadata.update(kwargs.get("metadata", {}))
        if kind == "image" and name == "time of arrival (step)" and "contrast_limits" in kwargs:
            layer.contrast_limits = kwargs["contrast_limits"]
        out.append(layer)
    return out


class LiveResults:
    """A results folder shown in a viewer, re-read when it changes.

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
        Where the layers go.
    results_dir : str or Path
        A results folder, live (``dendritect watch``: ``status.json`` beside the results) or
        finished.
    scans : bool
        Show the registered scans too (when the input can be read and matches the results).
    """

    def __init__(self, viewer: Any, results_dir: str | Path, *, scans: bool = True) -> None:
        self.viewer = viewer
        self.root = Path(results_dir)
        self.scans = scans
        self.key: Any = None        # what the layers shown were read from
        self.steps_done: int | None = None

    def status(self) -> dict[str, Any] | None:
        """``status.json`` of a live folder (None when there is none, or it is unreadable)."""
        try:
            s = json.loads((self.root / R.STATUS_JSON).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return s if isinstance(s, dict) else None

    def _key(self) -> Any:
        status = self.status()
        done = None if status is None else status.get("steps_done")
        return (done, file_signature(self.root / R.SUMMARY_JSON))

    def changed(self) -> bool:
        """Whether the folder holds other results than those shown (more steps done, or a
        new ``summary.json``)."""
        return self._key() != self.key

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the layers when the folder changed (always with ``force``) and update the
        viewer; True when they were re-read. A folder with no results yet (a watch waiting for
        its first scans) is left for a later look."""
        import warnings

        key = self._key()
        if not force and key == self.key:
            return False
        if key[1] is None:  # no summary.json: nothing published yet
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the scans of a folder ahead of its input
            layers = results_layers(self.root, scans=self.scans)
        update_layers(self.viewer, layers)
        self.key = key
        status = self.status()
        self.steps_done = None if status is None else status.get("steps_done")
        return True

    def describe(self) -> str:
        """One line on what is shown."""
        status = self.status()
        if status is None:
            return f"{self.root.name}: finished results" if self.key else f"{self.root}: none"
        alarm = status.get("alarm")
        return (f"{self.root.name}: {status.get('steps_done', 0)} steps, "
                f"{status.get('state', '?')}" + (" - ALARM" if alarm else ""))


#: The folder each viewer follows (by ``id`` of the viewer; one per viewer).
_FOLLOWED: dict[int, LiveResults] = {}


def follow_results(viewer: Any, results_dir: str | Path, *, force: bool = False) -> LiveResults:
    """The :class:`LiveResults` of ``viewer`` for ``results_dir`` (a new one when the viewer
    followed another folder), refreshed."""
    root = Path(results_dir)
    live = _FOLLOWED.get(id(viewer))
    if live is None or live.root != root or live.viewer is not viewer:
        live = _FOLLOWED[id(viewer)] = LiveResults(viewer, root)
    live.refresh(force=force)
    return live


def _make_live_widget():
    import napari
    from magicgui import magic_factory

    def init(fgui: Any) -> None:
        from qtpy.QtCore import QTimer

        def tick() -> None:
            if not fgui.follow.value:
                return
            try:
                viewer = fgui.viewer.value
            except Exception:  # not docked in a window yet
                return
            if viewer is not None and id(viewer) in _FOLLOWED:
                _refresh(viewer, fgui.results_dir.value, force=False)

        timer = QTimer(fgui.native)  # stops with the widget
        timer.setInterval(int(POLL_S * 1000))
        timer.timeout.connect(tick)
        timer.start()
        fgui.dendritect_timer = timer

    @magic_factory(
        call_button="Open / refresh",
        widget_init=init,
        results_dir={"label": "results folder", "mode": "d"},
        follow={"tooltip": "Re-read the layers when the watch has added a step "
                           f"({R.STATUS_JSON}, looked at every {POLL_S:g} s)"},
    )
    def widget(viewer: napari.viewer.Viewer, results_dir: Path = Path("dendritect-results"),
               follow: bool = True) -> None:
        _refresh(viewer, results_dir, force=True)

    return widget


def _refresh(viewer: Any, results_dir: Any, *, force: bool) -> None:
    from napari.utils.notifications import show_error, show_info

    from dendritect.errors import InputError

    try:
        live = follow_results(viewer, results_dir, force=force)
    except (InputError, OSError, ValueError, KeyError) as exc:
        if force:
            show_error(f"{results_dir}: not read ({exc})")
        return
    if force:
        show_info(live.describe())


def live_widget(*args: Any, **kwargs: Any) -> Any:
    """The dock widget (npe2 command): a results folder, "Open / refresh", and "follow" (a
    timer that re-reads the layers when the watch has added a step)."""
    return _make_live_widget()(*args, **kwargs)
