"""The HTML report: renders from a results folder, self-contained, escapes input strings."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dendritect.errors import InputError
from dendritect.report import load_results, write_report
from tests.conftest import assert_input_error
from tests.test_report_fixture import NASTY, make_results_dir


class _Links(HTMLParser):
    """Every src/href value and every tag name of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.scripts_with_src = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "srcset", "data", "action", "poster") and v is not None:
                self.urls.append((tag, k, v))
            if tag == "script" and k == "src":
                self.scripts_with_src += 1


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_results_dir(tmp_path_factory.mktemp("rep") / "results")
    return write_report(root)


def test_report_renders_every_section(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    for sec in ("arrival", "fronts", "slices", "movie", "view3d", "cracks", "parameters"):
        assert f'<section id="{sec}">' in html
    # plotly.js is inlined and the mesh trace is there
    assert "Plotly.newPlot" in html and '"type":"mesh3d"' in html
    # the figures went in as PNG data URIs, and to figures/ as PNG and SVG
    parser = _Links()
    parser.feed(html)
    imgs = [u for tag, attr, u in parser.urls if tag == "img"]
    assert sum(u.startswith("data:image/png;base64,") for u in imgs) == 4
    assert sum(u.startswith("data:image/gif;base64,") for u in imgs) == 1
    for name in ("arrival", "front", "growth", "slices"):
        for ext in ("png", "svg"):
            assert (report.parent / "figures" / f"report_{name}.{ext}").stat().st_size > 1000
    # the numbers of the summary made it to the page
    assert "step 4 (40 min)" in html and "20 µm" in html


def test_report_has_no_external_url(report: Path) -> None:
    parser = _Links()
    parser.feed(report.read_text(encoding="utf-8"))
    assert parser.urls, "expected some links and images"
    assert parser.scripts_with_src == 0
    for tag, attr, url in parser.urls:
        low = url.strip().lower()
        scheme = re.match(r"^[a-z][a-z0-9+.-]*:", low)
        assert not scheme or low.startswith("data:"), (tag, attr, url)
        assert not low.startswith("//"), (tag, attr, url)
    # relative links only to files written beside the report
    rel = {u for _, _, u in parser.urls if not u.startswith(("data:", "#"))}
    assert rel <= {"movie.mp4", "movie.gif", "cracks.csv", "metrics.csv"}
    for name in rel:
        assert (report.parent / name).is_file()


def test_input_strings_are_escaped(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert NASTY not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parser = _Links()
    parser.feed(html)
    # the only scripts are ours: the table sorter and plotly's two
    assert parser.tags.count("script") <= 4


def test_report_writes_atomically_and_replaces(tmp_path: Path) -> None:
    root = make_results_dir(tmp_path / "r", n_steps=3)
    (root / "report.html").write_text("old", encoding="utf-8")
    path = write_report(root, movie=False)
    assert path == root / "report.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary left
    assert not (root / "movie.gif").exists()


def test_report_without_cycler_data_or_previews(tmp_path: Path) -> None:
    root = make_results_dir(tmp_path / "r", n_steps=4, with_echem=False, with_previews=False)
    html = write_report(root, movie=False).read_text(encoding="utf-8")
    assert "No preview slices" in html
    assert "cell voltage" not in html.split('id="fronts"')[1].split("</section>")[0]
    assert "Movie not written" in html


def test_report_without_any_crack(tmp_path: Path) -> None:
    import zarr

    root = make_results_dir(tmp_path / "r", n_steps=2)
    grp = zarr.open_group(str(root / "cracks.zarr"), mode="r+")
    grp["crack"][...] = 0
    grp["time_of_arrival"][...] = -1
    (root / "cracks.csv").write_text("", encoding="utf-8")
    html = write_report(root, movie=False).read_text(encoding="utf-8")
    assert "No crack to show." in html and "No crack found." in html


def test_load_results_refuses_a_folder_that_is_not_results(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"summary\.json"):
        load_results(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_results(tmp_path / "nope")
    root = make_results_dir(tmp_path / "r", n_steps=2)
    (root / "metrics.csv").write_text("t_index,time_s\n0,0\n", encoding="utf-8")
    with pytest.raises(InputError, match="front_depth_um"):
        load_results(root)


def test_cli_report(cli, tmp_path: Path) -> None:
    root = make_results_dir(tmp_path / "r", n_steps=3)
    before = json.loads((root / "summary.json").read_text())
    r = cli("report", root, "--no-movie")
    assert r.code == 0, r.err
    assert "report.html" in r.out
    assert (root / "report.html").is_file()
    assert json.loads((root / "summary.json").read_text()) == before  # inputs untouched


def test_cli_report_bad_folder(cli, tmp_path: Path) -> None:
    assert_input_error(cli("report", tmp_path / "missing"), "not found")
    assert_input_error(cli("report", tmp_path), "summary.json")


def test_report_without_anything_to_animate(tmp_path: Path) -> None:
    import shutil

    root = make_results_dir(tmp_path / "r", n_steps=2, with_previews=False)
    shutil.rmtree(root / "cracks.zarr")
    html = write_report(root).read_text(encoding="utf-8")
    assert "No movie:" in html and "No crack volume" in html
