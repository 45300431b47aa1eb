"""The results layout has one owner, :mod:`dendritect.results`: what the writer puts into a
folder is what its names say, the reader reads it back, and the modules that write or read a
results folder name its files through those constants, not by literal strings."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from dendritect import pipeline
from dendritect import results as R
from tests.test_pipeline import FakeStages, make_series

SRC = Path(__file__).resolve().parents[1] / "src" / "dendritect"

#: Every file name of the layout, by its constant.
FILE_NAMES = {name: getattr(R, name) for name in R.__all__
              if name.endswith(("_JSON", "_CSV", "_ZARR", "_HTML", "_GIF", "_MP4"))}

#: The modules that write or read a results folder; none spells a layout file name itself.
USERS = ("export.py", "pipeline.py", "watch.py", "physics/fit.py", "report/html.py",
         "report/movie.py", "report/results.py", "napari/_reader.py", "napari/_widget.py",
         "napari/_live.py", "napari/_sample_data.py", "reading.py", "report/fit_panel.py",
         "report/figures.py", "cli/report.py", "cli/demo.py")

#: Every array name of the stores, by its constant.
ARRAY_NAMES = {*R.CRACK_ARRAYS, *R.PREVIEW_ARRAYS}

#: Modules that name the stores' arrays too, and only by the constants (elsewhere the same
#: words are also keys of the summary or of a layer, so they are not checked there).
ARRAY_USERS = ("reading.py", "report/figures.py")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder written by the pipeline on stand-in stages, with its report (no
    movie)."""
    from dendritect.report import write_report

    tmp = tmp_path_factory.mktemp("layout")
    mp = pytest.MonkeyPatch()
    mp.setattr(pipeline, "_Stages", FakeStages)
    FakeStages.calls = []
    FakeStages.fail_at = None
    try:
        out = tmp / "res"
        pipeline.analyze(make_series(tmp / "s.tif"), out, progress=False, report=False)
        write_report(out, movie=False)
    finally:
        mp.undo()
    return out


def test_file_names_are_the_constants() -> None:
    assert FILE_NAMES["SUMMARY_JSON"] == "summary.json"
    assert set(FILE_NAMES.values()) >= {"summary.json", "metrics.csv", "cracks.csv",
                                         "echem.csv", "cracks.zarr", "previews.zarr",
                                         "status.json", "fit.json", "report.html"}
    assert len(set(FILE_NAMES.values())) == len(FILE_NAMES)  # no two constants alike
    # everything the marker may list is a name of the layout
    names = {*FILE_NAMES.values(), R.PARTIAL, *R.REPORT_FIGURES}
    assert set(R.OWN_NAMES) <= names
    assert R.RESULT_NAMES[-1] == R.SUMMARY_JSON  # moved last: its presence means done
    assert all(f.startswith(f"{R.FIGURES_DIR}/{R.REPORT_FIGURE_PREFIX}")
               for f in R.REPORT_FIGURES)


def test_array_names_and_their_axes() -> None:
    assert set(R.DIMENSIONS) == {*R.CRACK_ARRAYS, *R.PREVIEW_ARRAYS}
    assert R.DIMENSIONS[R.TIME_OF_ARRIVAL] == ("z", "y", "x")
    from dendritect.reading import VOLUMES

    # the xarray reader names the same arrays with the same axes
    assert VOLUMES == {k: R.DIMENSIONS[k] for k in R.CRACK_ARRAYS}


def test_the_tables_written_hold_the_columns_readers_rely_on(analysed: Path) -> None:
    assert pipeline.METRIC_COLUMNS is R.METRIC_COLUMNS   # the pipeline writes the layout's
    assert set(R.METRICS_REQUIRED) <= set(R.METRIC_COLUMNS)
    columns = list(pd.read_csv(analysed / R.METRICS_CSV).columns)
    assert columns[:len(R.METRIC_COLUMNS)] == R.METRIC_COLUMNS
    assert set(R.ECHEM_REQUIRED) <= set(R.ECHEM_COLUMNS)
    df = pd.DataFrame({"time_s": [0.0, 1.0], "voltage_V": [3.0, 2.9], "other": [1, 2]})
    assert list(R.decimate_echem(df).columns) == ["time_s", "voltage_V"]


def test_the_marker_lists_what_was_written_by_its_names(analysed: Path) -> None:
    from dendritect import __version__

    marker = R.read_marker(analysed)
    assert marker is not None and marker["state"] == "finished"
    assert marker["dendritect_version"] == __version__
    listed = set(marker["files"])
    assert listed <= set(R.OWN_NAMES)
    written = {p.relative_to(analysed).as_posix() for p in analysed.iterdir()
               if p.name != R.MARKER and p.name != R.FIGURES_DIR}
    written |= {f"{R.FIGURES_DIR}/{p.name}" for p in (analysed / R.FIGURES_DIR).iterdir()}
    assert written == listed
    assert {R.SUMMARY_JSON, R.METRICS_CSV, R.CRACKS_CSV, R.CRACKS_ZARR, R.PREVIEWS_ZARR,
            R.REPORT_HTML} <= listed
    assert R.is_finished(analysed)


def test_the_reader_reads_what_the_writer_wrote(analysed: Path) -> None:
    res = R.load_results(analysed)
    metrics = pd.read_csv(analysed / R.METRICS_CSV)
    pd.testing.assert_frame_equal(res.metrics, metrics.sort_values("t_index")
                                  .reset_index(drop=True))
    assert res.summary == R.read_summary(analysed, analysed / R.PARTIAL)
    store = zarr.open_group(str(analysed / R.CRACKS_ZARR), mode="r")
    assert set(store.array_keys()) <= set(R.CRACK_ARRAYS)
    np.testing.assert_array_equal(res.crack[...], store[R.CRACK][...])
    np.testing.assert_array_equal(res.time_of_arrival[...], store[R.TIME_OF_ARRIVAL][...])
    assert set(res.previews) == set(R.PREVIEW_ARRAYS)
    for view in R.PREVIEW_ARRAYS:
        assert res.previews[view].shape[0] == res.n_steps
    # the report's reader is this one
    from dendritect.report import results as report_results

    assert report_results.load_results is R.load_results
    assert report_results.Results is R.Results


def test_the_reader_refuses_a_folder_without_the_layout(analysed: Path, tmp_path: Path) -> None:
    from dendritect.errors import InputError

    (tmp_path / R.METRICS_CSV).write_text((analysed / R.METRICS_CSV).read_text())
    with pytest.raises(InputError, match=f"{R.SUMMARY_JSON} is missing"):
        R.load_results(tmp_path)


def _literals(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module's code, its docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docs.add(id(body[0].value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docs]


def test_the_literal_check_sees_a_file_name(tmp_path: Path) -> None:
    mod = tmp_path / "m.py"
    mod.write_text('"""About summary.json."""\n\nPATH = "summary.json"\n', encoding="utf-8")
    assert _literals(mod) == [(3, "summary.json")]


@pytest.mark.parametrize("module", USERS)
def test_users_name_the_files_by_the_constants(module: str) -> None:
    names = set(FILE_NAMES.values())
    found = [(line, text) for line, text in _literals(SRC / module) if text in names]
    assert found == []


@pytest.mark.parametrize("module", ARRAY_USERS)
def test_users_name_the_arrays_by_the_constants(module: str) -> None:
    found = [(line, text) for line, text in _literals(SRC / module) if text in ARRAY_NAMES]
    assert found == []


def test_the_fit_figure_is_a_report_figure() -> None:
    # The report draws it when fit.json is there: the marker lists it so --overwrite removes it.
    fit = {f"{R.FIGURES_DIR}/{R.REPORT_FIGURE_PREFIX}fit.{ext}" for ext in ("png", "svg")}
    assert "fit" in R.REPORT_FIGURE_NAMES
    assert fit <= set(R.REPORT_FIGURES) <= set(R.REPORT_NAMES) <= set(R.OWN_NAMES)
