"""``dendritect demo``: refuses to clobber, and runs end to end (simulate, analyse, report)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from dendritect.cli.demo import _check_out
from tests.conftest import assert_input_error


def test_demo_refuses_a_folder_that_is_not_a_demo(cli, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert_input_error(cli("demo", "--out", out), "not a dendritect demo folder", "--overwrite")
    assert (out / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    _check_out(out, overwrite=True)  # allowed when asked
    _check_out(tmp_path / "new", overwrite=False)  # a new folder is fine


def test_demo_refuses_a_file(cli, tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert_input_error(cli("demo", "--out", f), "is a file")


@pytest.mark.slow
def test_demo_end_to_end(cli, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = cli("demo", "--out", out)
    assert r.code == 0, r.err
    report = out / "results" / "report.html"
    assert f"report: {report}" in r.out
    assert json.loads((out / "demo.json").read_text())["dendritect_demo"] is True
    # the synthetic cell cracks through: the analysis sees the span and the report shows it
    summary = json.loads((out / "results" / "summary.json").read_text())
    truth = json.loads((out / "data" / "truth" / "truth.json").read_text())
    metrics = pd.read_csv(out / "results" / "metrics.csv")
    assert len(metrics) == len(json.loads((out / "data" / "dataset.json").read_text())["times_s"])
    if truth.get("span_index") is not None:
        assert summary["span_index"] is not None
        assert abs(summary["span_index"] - truth["span_index"]) <= 1
    html = report.read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html and "voltage" in html

    class Imgs(HTMLParser):
        n = 0

        def handle_starttag(self, tag, attrs):
            if tag == "img" and dict(attrs).get("src", "").startswith("data:image/"):
                self.n += 1

    p = Imgs()
    p.feed(html)
    assert p.n == 5  # four figures and the movie
    assert (out / "results" / "movie.mp4").stat().st_size > 0
    # a later run may replace this folder without --overwrite: it is a demo folder
    _check_out(out, overwrite=False)
