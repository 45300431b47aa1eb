"""napari plugin: reader (no Qt needed), npe2 manifest, widget and viewer (when napari starts)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from dendritect.napari import get_reader, read_results, read_series
from tests.test_report_fixture import make_results_dir

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "dendritect" / "napari" / "napari.yaml"


def _dataset_folder(root: Path) -> tuple[Path, np.ndarray]:
    """A CONTRACT dataset folder: 3 steps of (6, 8, 10) uint16, voxel (2, 0.5, 0.5) µm."""
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 4000, (3, 6, 8, 10), dtype=np.uint16)
    (root / "scans").mkdir(parents=True)
    for t in range(3):
        tifffile.imwrite(root / "scans" / f"t{t:03d}.tif", vol[t])
    (root / "dataset.json").write_text(json.dumps(
        {"voxel_size_um": [2.0, 0.5, 0.5], "times_s": [0.0, 600.0, 1200.0], "anode": "top"}))
    return root, vol


def test_reader_returns_a_lazy_layer_at_the_voxel_size(tmp_path: Path) -> None:
    path, vol = _dataset_folder(tmp_path / "cell")
    reader = get_reader(str(path))
    assert reader is read_series
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "image"
    assert hasattr(data, "dask") and data.shape == (3, 6, 8, 10)   # lazy: a dask array
    np.testing.assert_array_equal(np.asarray(data[1]), vol[1])
    assert kwargs["scale"] == (1.0, 2.0, 0.5, 0.5)
    assert kwargs["units"] == (None, "um", "um", "um")
    assert kwargs["axis_labels"] == ("t", "z", "y", "x")
    assert kwargs["metadata"]["times_s"] == [0.0, 600.0, 1200.0]
    assert Path(kwargs["metadata"]["dendritect_source"]).name == "cell"


def test_reader_single_step_tiff_is_3d(tmp_path: Path) -> None:
    vol = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, vol, photometric="minisblack")
    assert get_reader(path) is read_series
    [(data, kwargs, _)] = read_series(path, voxel_size="1,0.65,0.65um")
    assert data.shape == (4, 5, 6)
    assert kwargs["scale"] == (1.0, 0.65, 0.65)
    assert kwargs["units"] == ("um", "um", "um")
    np.testing.assert_array_equal(np.asarray(data), vol)


def test_reader_declines_what_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(tmp_path / "notes.txt") is None
    assert get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]) is None


def test_reader_opens_a_results_folder(tmp_path: Path) -> None:
    root = make_results_dir(tmp_path / "results", n_steps=4)
    assert get_reader(root) is read_results
    layers = {kw["name"]: (data, kw, kind) for data, kw, kind in read_results(str(root))}
    labels, kw, kind = layers["cracks (tracked)"]
    assert kind == "labels" and labels.shape == (4, 32, 40, 40)
    assert kw["scale"] == (1.0, 1.0, 0.8, 0.8)
    assert int(np.asarray(labels[3]).max()) == 2
    toa, kw, kind = layers["time of arrival (step)"]
    assert kind == "image" and toa.shape == (32, 40, 40) and kw["scale"] == (1.0, 0.8, 0.8)
    assert kw["contrast_limits"] == (0, 3)


def test_manifest_is_valid_npe2() -> None:
    npe2 = pytest.importorskip("npe2", reason="npe2 not installed (pip install npe2)")
    pm = npe2.PluginManifest.from_file(MANIFEST)
    assert pm.name == "dendritect"
    pm.validate_imports()   # every python_name resolves to a callable
    [reader] = pm.contributions.readers
    assert reader.accepts_directories
    from dendritect.napari._reader import SUFFIXES

    for suffix in SUFFIXES:
        assert f"*{suffix}" in reader.filename_patterns
    assert [w.display_name for w in pm.contributions.widgets] == [
        "Dendrite crack analysis", "Live results (dendritect watch)"]
    assert pm.contributions.sample_data[0].key == "demo_cell"


def test_manifest_entry_point_resolves() -> None:
    """The pyproject line ``dendritect = "dendritect.napari:napari.yaml"`` finds the manifest."""
    npe2 = pytest.importorskip("npe2", reason="npe2 not installed (pip install npe2)")
    from importlib.metadata import EntryPoint, PackageNotFoundError, distribution

    try:
        dist = distribution("dendritect")
    except PackageNotFoundError:
        pytest.skip("dendritect is not installed (pip install -e .)")
    ep = EntryPoint(name="dendritect", value="dendritect.napari:napari.yaml",
                    group="napari.manifest")
    pm = npe2.PluginManifest._from_entrypoint(ep, dist)
    assert pm.name == "dendritect"  # npe2 also checks it equals the distribution's name
    assert pm.contributions.commands[0].python_name == "dendritect.napari._reader:get_reader"


def _napari():
    if not os.environ.get("DISPLAY"):   # pytest-xvfb gives one; without it, Qt offscreen
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return pytest.importorskip(
        "napari", reason="napari not installed (the test extra: pip install -e '.[test]')")


def test_widget_adds_result_layers(tmp_path: Path) -> None:
    napari = _napari()
    from dendritect.napari._widget import add_layers

    viewer = napari.components.ViewerModel()
    path, _ = _dataset_folder(tmp_path / "cell")
    for data, kw, kind in read_series(path):
        add_layers(viewer, [(data, kw, kind)])
    assert viewer.layers["cell"].scale.tolist() == [1.0, 2.0, 0.5, 0.5]
    assert str(viewer.layers["cell"].units[1]) == "micrometer"
    root = make_results_dir(tmp_path / "results", n_steps=3)
    add_layers(viewer, read_results(root))
    add_layers(viewer, read_results(root))  # replacing, not duplicating
    assert [layer.name for layer in viewer.layers] == ["cell", "cracks (tracked)",
                                                      "time of arrival (step)"]


def test_viewer_opens_with_the_plugin(tmp_path: Path) -> None:
    napari = _napari()
    viewer = None
    try:
        viewer = napari.Viewer(show=False)
        viewer.add_image(np.zeros((2, 2, 2), np.float32), name="probe")  # needs OpenGL
        viewer.layers.clear()
    except Exception as exc:
        if viewer is not None:
            with contextlib.suppress(Exception):
                viewer.close()
        if os.environ.get("DISPLAY"):   # a display is there (pytest-xvfb): a real failure
            raise
        pytest.skip(f"napari viewer cannot start without a display ({type(exc).__name__}: "
                    f"{exc}); `make install` installs Xvfb for pytest-xvfb")
    try:
        from dendritect.napari._widget import analysis_widget

        root = make_results_dir(tmp_path / "results", n_steps=3)
        for data, kw, kind in read_results(root):
            viewer._add_layer_from_data(data, kw, kind)
        widget = analysis_widget()
        viewer.window.add_dock_widget(widget, name="Dendrite crack analysis")
        assert widget.anode.choices == ("auto", "top", "bottom")
        assert len(viewer.layers) == 2
        from dendritect.napari._live import live_widget

        viewer.layers.clear()
        live = live_widget()
        viewer.window.add_dock_widget(live, name="Live results (dendritect watch)")
        live.results_dir.value = root
        live()  # "Open / refresh"
        assert [layer.name for layer in viewer.layers] == ["cracks (tracked)",
                                                           "time of arrival (step)"]
        assert live.follow.value and live.dendritect_timer.isActive()
    finally:
        viewer.close()


def test_sample_data_is_the_simulated_cell_with_truth(tmp_path: Path) -> None:
    from dendritect.napari._sample_data import demo_cell

    layers = demo_cell(tmp_path / "demo", shape_zyx=(48, 64, 64), n_steps=2)
    (img, ikw, ikind), (truth, tkw, tkind) = layers
    assert (ikind, tkind) == ("image", "labels")
    assert img.shape == truth.shape == (2, 48, 64, 64)
    info = json.loads((tmp_path / "demo" / "dataset.json").read_text())
    assert ikw["scale"] == tkw["scale"] == (1.0, *map(float, info["voxel_size_um"]))
    codes = np.unique(np.asarray(truth[-1]))
    assert set(codes.tolist()) <= set(range(6)) and 0 in codes


def test_widget_analyses_the_layer_data_not_the_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The widget analyses the data the layer holds (here changed after reading, so the file
    on disk differs), at the layer's voxel size and step times.

    ``pipeline.analyze`` is replaced by a stand-in that reads what it was given and writes a
    known results folder: the analysis itself is tested end to end elsewhere.
    """
    from types import SimpleNamespace

    import dendritect.pipeline
    from dendritect.io import open_series
    from dendritect.napari._widget import analyze_layer

    path, vol = _dataset_folder(tmp_path / "cell")
    [(data, kw, _)] = read_series(path, voxel_size="2,1,1um")
    edited = data * 2 + 1                      # what the user sees now, not what is on disk
    seen = {}

    def fake_analyze(input, out_dir, **options):
        series = open_series(input, voxel_size=options.get("voxel_size"),
                             times_s=options.get("times_s"))
        seen.update(input=Path(input), options=options, data=np.asarray(series.data),
                    voxel=series.voxel_size_um, times=list(series.times_s))
        make_results_dir(Path(out_dir), n_steps=3)
        return {}

    monkeypatch.setattr(dendritect.pipeline, "analyze", fake_analyze)
    layer = SimpleNamespace(name=kw["name"], data=edited, scale=kw["scale"],
                            metadata=kw["metadata"], multiscale=False)
    layers = analyze_layer(layer, tmp_path / "results", anode="top", echem="cycler.csv")
    np.testing.assert_array_equal(seen["data"], vol * 2 + 1)
    assert not seen["input"].is_relative_to(path) and not seen["input"].exists()  # removed
    assert seen["voxel"] == (2.0, 1.0, 1.0) and seen["times"] == [0.0, 600.0, 1200.0]
    assert seen["options"]["anode"] == "top" and seen["options"]["progress"] is False
    assert seen["options"]["echem"] == Path("cycler.csv")
    names = [k["name"] for _, k, _ in layers]
    assert names == ["cell (registered)", "cracks (tracked)", "time of arrival (step)"]
    registered = layers[0][0]
    assert hasattr(registered, "dask") and registered.shape == (3, 6, 8, 10)
    # the stand-in results have zero shifts: the registered layer is the edited data
    np.testing.assert_array_equal(np.asarray(registered[2]), (vol[2] * 2 + 1).astype(np.float32))
    assert layers[0][1]["scale"] == (1.0, 2.0, 1.0, 1.0)
    assert layers[1][0].shape == (3, 32, 40, 40)


def test_widget_analyses_a_3d_layer_as_one_step(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    import dendritect.pipeline
    from dendritect.io import open_series
    from dendritect.napari._widget import analyze_layer

    seen = {}

    def fake_analyze(input, out_dir, **options):
        seen["shape"] = open_series(input).data.shape
        make_results_dir(Path(out_dir), n_steps=1)
        return {}

    monkeypatch.setattr(dendritect.pipeline, "analyze", fake_analyze)
    vol = np.ones((4, 5, 6), np.float32)
    layer = SimpleNamespace(name="drawn", data=vol, scale=np.array([1.0, 0.5, 0.5]),
                            metadata={})
    analyze_layer(layer, tmp_path / "results")
    assert seen["shape"] == (1, 4, 5, 6)


def test_results_folder_shows_the_registered_scans(tmp_path: Path) -> None:
    """A results folder of the real pipeline opens with its input, shifted onto step 0."""
    from dendritect.io import open_series
    from dendritect.pipeline import analyze
    from dendritect.preprocess.register import apply_shift
    from dendritect.synthetic import simulate

    data = simulate(tmp_path / "cell", "demo", seed=0, shape_zyx=(48, 64, 64), n_steps=2)
    res = tmp_path / "res"
    analyze(data, res, report=False, progress=False)
    shifts = json.loads((res / "summary.json").read_text())["registration_shifts_vox"]
    layers = {kw["name"]: (d, kw, kind) for d, kw, kind in read_results(res)}
    assert list(layers) == ["scans (registered)", "cracks (tracked)", "pores (first step)",
                            "time of arrival (step)"]
    pores, kw_p, kind_p = layers["pores (first step)"]
    assert kind_p == "labels" and kw_p["visible"] is False and pores.shape == (48, 64, 64)
    np.testing.assert_array_equal(np.asarray(pores),
                                  zarr.open_group(str(res / "cracks.zarr"), mode="r")["pores"][...])
    scans, kw, kind = layers["scans (registered)"]
    assert kind == "image" and hasattr(scans, "dask") and scans.shape == (2, 48, 64, 64)
    # computed in blocks of planes that follow the input's chunks
    assert scans.chunks[1] == open_series(data).data.chunks[1]
    assert kw["scale"] == layers["cracks (tracked)"][1]["scale"]
    raw = np.asarray(open_series(data).data[1])
    np.testing.assert_allclose(np.asarray(scans[1, 10]), apply_shift(raw, shifts[1])[10],
                               rtol=1e-5, atol=1e-3)
    # contrast from a sample (the middle plane of the first and last step), not the series
    sample = np.concatenate([np.asarray(scans[t, 24]).ravel() for t in (0, 1)])
    assert kw["contrast_limits"] == pytest.approx(tuple(np.percentile(sample, [0.5, 99.5])))
    assert kw["contrast_limits"][0] < kw["contrast_limits"][1]
    napari = _napari()
    from dendritect.napari._widget import add_layers

    viewer = napari.components.ViewerModel()
    add_layers(viewer, read_results(res))
    assert [layer.name for layer in viewer.layers] == list(layers)
    assert viewer.layers["scans (registered)"].contrast_limits == pytest.approx(
        kw["contrast_limits"])


def test_widget_refuses_a_layer_without_data() -> None:
    from types import SimpleNamespace

    from dendritect.errors import InputError
    from dendritect.napari._widget import analyze_layer

    layer = SimpleNamespace(name="drawn", metadata={}, data=None)
    with pytest.raises(InputError, match="'drawn' holds no data"):
        analyze_layer(layer, "unused")
    flat = SimpleNamespace(name="flat", metadata={}, data=np.zeros((4, 4)), scale=(1, 1))
    with pytest.raises(InputError, match="not a"):
        analyze_layer(flat, "unused")


def _live_folder(root: Path, n_steps: int) -> Path:
    """A results folder as ``dendritect watch`` leaves it after ``n_steps`` steps."""
    make_results_dir(root, n_steps=n_steps)
    (root / "status.json").write_text(json.dumps({"steps_done": n_steps, "alarm": None,
                                                  "state": "watching"}))
    return root


def test_live_results_refresh_when_the_watch_adds_a_step(tmp_path: Path) -> None:
    """A live folder opened in a viewer is re-read when status.json says a step was added: the
    layers keep their identity (and what the user set), their data grow."""
    napari = _napari()
    from dendritect.napari._live import LiveResults, follow_results

    root = _live_folder(tmp_path / "live", 3)
    viewer = napari.components.ViewerModel()
    live = LiveResults(viewer, root)
    assert live.changed() and live.refresh()
    labels = viewer.layers["cracks (tracked)"]
    toa = viewer.layers["time of arrival (step)"]
    assert labels.data.shape[0] == 3 and toa.contrast_limits == [0, 2]
    labels.opacity = 0.3  # the user's choice
    assert not live.changed() and not live.refresh()  # nothing new: nothing read
    # the watch publishes step 3 (the stores, summary.json last), then status.json
    _live_folder(root, 4)
    assert live.changed() and live.refresh()
    assert viewer.layers["cracks (tracked)"] is labels and labels.data.shape[0] == 4
    assert labels.opacity == 0.3
    assert int(np.asarray(labels.data[3]).max()) == 2
    assert toa.contrast_limits == [0, 3]
    assert viewer.dims.range[0].stop == 3  # the time slider reaches the new step
    assert live.describe() == "live: 4 steps, watching"
    assert [layer.name for layer in viewer.layers] == ["cracks (tracked)",
                                                      "time of arrival (step)"]
    # a folder with no results yet (the watch waits for its first scans) is looked at later
    empty = tmp_path / "waiting"
    empty.mkdir()
    (empty / "status.json").write_text(json.dumps({"steps_done": 0, "alarm": None}))
    other = napari.components.ViewerModel()
    waiting = follow_results(other, empty)
    assert len(other.layers) == 0 and waiting.key is None
    _live_folder(empty, 2)
    assert follow_results(other, empty) is waiting and len(other.layers) == 2
