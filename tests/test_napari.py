"""napari plugin: reader (no Qt needed), npe2 manifest, widget and viewer (when napari starts)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

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
    assert [w.display_name for w in pm.contributions.widgets] == ["Dendrite crack analysis"]
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
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return pytest.importorskip(
        "napari", reason="napari not installed (optional extra: pip install 'dendritect[napari]')")


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
    except Exception as exc:  # no display or no OpenGL (Qt offscreen has none): skip
        if viewer is not None:
            with contextlib.suppress(Exception):
                viewer.close()
        pytest.skip(f"napari viewer cannot start headless here ({type(exc).__name__}: {exc}); "
                    "try QT_QPA_PLATFORM=xcb under xvfb-run")
    try:
        from dendritect.napari._widget import analysis_widget

        root = make_results_dir(tmp_path / "results", n_steps=3)
        for data, kw, kind in read_results(root):
            viewer._add_layer_from_data(data, kw, kind)
        widget = analysis_widget()
        viewer.window.add_dock_widget(widget, name="Dendrite crack analysis")
        assert widget.anode.choices == ("auto", "top", "bottom")
        assert len(viewer.layers) == 2
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


def test_widget_analysis_runs_on_the_layer_source(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The widget analyses the file the layer came from, with the options it was opened with.

    ``pipeline.analyze`` is replaced by a stand-in that writes a known results folder: the
    analysis itself is tested end to end elsewhere (test_cli_demo, test_pipeline_e2e).
    """
    from types import SimpleNamespace

    import dendritect.pipeline
    from dendritect.napari._widget import analyze_layer

    path, _ = _dataset_folder(tmp_path / "cell")
    [(_, kw, _)] = read_series(path, voxel_size="2,1,1um")
    calls = []

    def fake_analyze(input, out_dir, **options):
        calls.append((input, options))
        make_results_dir(Path(out_dir), n_steps=3)
        return {}

    monkeypatch.setattr(dendritect.pipeline, "analyze", fake_analyze)
    layer = SimpleNamespace(name=kw["name"], metadata=kw["metadata"], source=None)
    layers = analyze_layer(layer, tmp_path / "results", anode="top", echem="cycler.csv")
    [(src, options)] = calls
    assert Path(src) == path
    assert options["voxel_size"] == "2,1,1um" and options["anode"] == "top"
    assert options["echem"] == Path("cycler.csv") and options["progress"] is False
    names = [k["name"] for _, k, _ in layers]
    assert names == ["cracks (tracked)", "time of arrival (step)"]
    assert layers[0][0].shape == (3, 32, 40, 40)


def test_widget_refuses_a_layer_without_a_file() -> None:
    from types import SimpleNamespace

    from dendritect.errors import InputError
    from dendritect.napari._widget import analyze_layer

    layer = SimpleNamespace(name="drawn", metadata={}, source=SimpleNamespace(path=None))
    with pytest.raises(InputError, match="not read from a file"):
        analyze_layer(layer, "unused")
