"""The pipeline's public stage functions, called one by one, give what ``analyze`` gives.

``analyze`` is a script of :func:`~dendritect.pipeline.prepare_cell`,
:func:`~dendritect.pipeline.segment_steps`, :func:`~dendritect.pipeline.track_and_measure`,
:func:`~dendritect.pipeline.predict_short` and :func:`~dendritect.pipeline.build_summary`; a
notebook calling them in turn on the same input must get the same results, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

from dendritect import pipeline
from dendritect import results as R
from dendritect.io import open_series
from dendritect.pipeline import (
    analyze,
    build_summary,
    predict_short,
    prepare_cell,
    segment_steps,
    track_and_measure,
)


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _differ(a: Path, b: Path) -> list[str]:
    """Names of the results that differ between two results folders (none: identical)."""
    out = [name for name in ("metrics.csv", "cracks.csv", "summary.json")
           if (a / name).read_text() != (b / name).read_text()]
    for group in ("cracks.zarr", "previews.zarr"):
        ga = zarr.open_group(str(a / group), mode="r")
        gb = zarr.open_group(str(b / group), mode="r")
        for name in sorted(set(ga.array_keys()) | set(gb.array_keys())):
            if (name not in ga or name not in gb
                    or not np.array_equal(ga[name][...], gb[name][...])):
                out.append(f"{group}/{name}")
    return out


def _by_stages(series, out: Path, *, parameters: dict, notes: list[str]) -> dict:
    """The stages one by one into ``out/.partial``, then moved into ``out`` as analyze does."""
    partial = out / ".partial"
    run = prepare_cell(series, partial)
    assert run.n_steps == series.n_steps and run.state["done"] == []
    assert segment_steps(run) == list(range(series.n_steps))
    metrics, cracks = track_and_measure(run)
    assert list(metrics.columns) == pipeline.METRIC_COLUMNS and len(metrics) == run.n_steps
    R.write_csv(partial / "metrics.csv", metrics)
    R.write_csv(partial / "cracks.csv", cracks)
    prediction = predict_short(metrics, run.times_s, run.thickness_um)
    summary = build_summary(run, metrics, prediction, input_path=series.source,
                            settings=parameters, notes=notes)
    R.finish(out, partial, summary)
    R.mark_finished(out)
    return summary


@pytest.fixture(scope="module")
def twin_runs(tmp_path_factory):
    from dendritect.synthetic import simulate

    root = tmp_path_factory.mktemp("stages")
    data = simulate(root / "data", "demo", seed=0, shape_zyx=(48, 64, 64), n_steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = analyze(data, root / "analyze", progress=False, report=False)
        staged = _by_stages(open_series(data), root / "stages",
                            parameters=whole["parameters"], notes=whole["warnings"])
    return root / "analyze", root / "stages", whole, staged


def test_stages_one_by_one_equal_analyze(twin_runs):
    a, b, whole, staged = twin_runs
    assert np.asarray(zarr.open_group(str(a / "cracks.zarr"), mode="r")["crack"]).any()
    assert staged == whole
    assert _differ(a, b) == []
    assert _tree(a) == _tree(b)   # every file, the stores' metadata and the marker too


def test_the_comparison_sees_a_difference(twin_runs, tmp_path):
    a, b, _, _ = twin_runs
    c = tmp_path / "altered"
    shutil.copytree(b, c)
    g = zarr.open_group(str(c / "cracks.zarr"), mode="r+")
    labels = g["labels"][...]
    labels.flat[0] += 1
    g["labels"][...] = labels
    text = (c / "metrics.csv").read_text().splitlines()
    text[1] = text[1].replace("0", "1", 1)
    (c / "metrics.csv").write_text("\n".join(text) + "\n")
    assert _differ(a, c) == ["metrics.csv", "cracks.zarr/labels"]
    assert _tree(a) != _tree(c)


def test_predict_short():
    import pandas as pd

    # a front of 0.1 um/s: 50 um reached at 500 s; forecast from the steps before the span
    metrics = pd.DataFrame({"spanning": [0, 0, 0, 0, 1],
                            "front_depth_um": [0.0, 10.0, 20.0, 30.0, 50.0]})
    times = [0.0, 100.0, 200.0, 300.0, 400.0]
    got = predict_short(metrics, times, 50.0, echem_short_s=450.0)
    assert got["span_index"] == 4 and got["span_time_s"] == 400.0
    sc = got["short_circuit"]
    assert sc["forecast_from_index"] == 3 and sc["forecast_method"] == "linear"
    assert sc["forecast_time_s"] == pytest.approx(500.0)
    assert sc["echem_time_s"] == 450.0 and sc["span_to_short_lag_s"] == 50.0
    # no span, no cycler short: the forecast uses every step
    got = predict_short(metrics.iloc[:4].assign(spanning=0), times[:4], 50.0)
    assert got["span_index"] is None and got["span_time_s"] is None
    sc = got["short_circuit"]
    assert sc["forecast_from_index"] == 3 and sc["echem_time_s"] is None
    assert sc["span_to_short_lag_s"] is None


# the resume semantics, with the stand-in stages of tests/test_pipeline.py (fast)

@pytest.fixture
def fake_stages(monkeypatch):
    from tests.test_pipeline import FakeStages

    FakeStages.calls = []
    FakeStages.fail_at = None
    monkeypatch.setattr(pipeline, "_Stages", FakeStages)
    return FakeStages


def test_segment_steps_resume_after_interruption(fake_stages, tmp_path):
    from tests.test_pipeline import N, make_series

    data = make_series(tmp_path / "series.tif")
    whole = analyze(data, tmp_path / "analyze", progress=False, report=False)
    series = open_series(data)
    out = tmp_path / "stages"
    partial = out / ".partial"
    fake_stages.calls = []
    fake_stages.fail_at = 4   # step 3: calls are steps 0, 1, step 0's second look, 2, 3
    run = prepare_cell(series, partial)
    with pytest.raises(RuntimeError, match="simulated"):
        segment_steps(run)
    state = R.read_state(partial)
    assert state["done"] == [0, 1, 2] and sorted(state["shifts"]) == ["0", "1", "2"]
    # continued from the record: the anode side and the stores are kept, steps 3 and 4 done
    again = prepare_cell(series, partial, state=state)
    fake_stages.calls = []
    tracker = pipeline.CrackTracker(again)
    assert segment_steps(again, tracker=tracker) == [3, 4] and len(fake_stages.calls) == 2
    assert tracker.n_steps == N  # the steps recorded before the interruption, then 3 and 4
    assert R.read_state(partial)["done"] == list(range(N))
    assert segment_steps(again) == []   # nothing left
    metrics, cracks = track_and_measure(again)
    # tracked while segmenting: the same tables as tracking afterwards
    fed = track_and_measure(again, tracker=tracker)
    assert fed[0].equals(metrics) and fed[1].equals(cracks)
    R.write_csv(partial / "metrics.csv", metrics)
    R.write_csv(partial / "cracks.csv", cracks)
    prediction = predict_short(metrics, again.times_s, again.thickness_um)
    assert prediction["span_index"] == whole["span_index"] == 4
    summary = build_summary(again, metrics, prediction, input_path=data,
                            settings=whole["parameters"], notes=whole["warnings"])
    assert summary == whole
    R.finish(out, partial, summary)
    R.mark_finished(out)
    assert _differ(tmp_path / "analyze", out) == []
    assert _tree(tmp_path / "analyze") == _tree(out)
    assert json.loads((out / "summary.json").read_text()) == whole
