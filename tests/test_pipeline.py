"""The analysis pipeline's orchestration: results layout, resume, determinism, overwrite, echem.

These tests run the pipeline with simple stand-in preprocessing and segmentation stages (a flat
cell, no shift, a threshold) on a 4D TIFF with cracks of known growth, so that what is checked
here is the pipeline itself: the stages have their own tests, and tests/test_pipeline_e2e.py
runs the real ones on the synthetic twin.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from dendritect import pipeline
from dendritect.errors import InputError
from tests.test_measure_cracks import FlatCell

SHAPE = (24, 32, 32)
N = 5
Z_ANODE, Z_CATHODE = 3.5, 19.5   # electrolyte slices z=4..19; interfaces between slices
DEPTHS = [0, 4, 8, 12, 16]       # crack front below the anode at each step (16 spans)


def make_series(path: Path) -> Path:
    """Electrolyte (1.0) between z=4 and z=19 over an electrode (0.5); a dark crack grows."""
    vol = np.full((N, *SHAPE), 0.2, np.float32)
    vol[:, :4] = 0.5
    vol[:, 4:20] = 1.0
    for t, d in enumerate(DEPTHS):
        if d:
            vol[t, 4:4 + d, 10, 8:20] = 0.05          # transverse crack from the anode
        if t >= 2:
            vol[t, 6:7, 20:30, 16:30] = 0.05          # a second, spallation-like crack
    tifffile.imwrite(path, vol, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"spacing": 1.0, "unit": "um", "axes": "TZYX"})
    return path


@dataclasses.dataclass(frozen=True)
class ThresholdParams:
    threshold: float = 0.2


@dataclasses.dataclass
class _Seg:
    crack: np.ndarray
    lithium: np.ndarray | None
    pores: np.ndarray


class FakeStages:
    """Stand-ins with the stage interfaces of preprocess/ and segment/."""

    calls: ClassVar[list[int]] = []   # steps segmented, in order
    fail_at: ClassVar[int | None] = None   # raise once when this step is segmented

    def __init__(self, ring_correction: bool = False) -> None:
        from dendritect.io.readers import check_volume

        self.check_volume = check_volume
        self.SegmentParams = ThresholdParams

    @staticmethod
    def find_cell(volume, voxel_size_um, *, anode="auto", where="step 0"):
        if float(volume.max()) < 0.9:
            raise InputError(f"no electrolyte layer found in {where}")
        fp = np.ones(volume.shape[1:], bool)
        side = "top" if anode == "auto" else anode
        za, zc = (Z_ANODE, Z_CATHODE) if side == "top" else (Z_CATHODE, Z_ANODE)
        return FlatCell(side, za, zc, fp, fp.copy())

    @staticmethod
    def anode_evidence(first, later, geometry, **kwargs):
        return {"side": "top", "confident": True, "weak": False}

    @staticmethod
    def anode_from_evidence(evidence):
        return next(iter(evidence))["side"]

    @staticmethod
    def estimate_shift(reference, moving, **kw):
        return np.zeros(3)

    @staticmethod
    def align_step(moving, reference, shift, out, *, mask_fn=None, **kwargs):
        out[...] = np.asarray(moving, np.float32)
        return 1.0, 0.0

    @classmethod
    def segment_step(cls, volume, geometry, *, reference=None, previous=None, params=None,
                     **kwargs):
        t = len(cls.calls)
        if cls.fail_at is not None and t == cls.fail_at:
            cls.fail_at = None
            raise RuntimeError("simulated interruption")
        cls.calls.append(t)
        crack = (np.asarray(volume[...]) < params.threshold).astype(np.uint8)
        crack[: int(Z_ANODE) + 1] = 0
        crack[int(Z_CATHODE) + 1:] = 0
        if previous is not None:
            crack |= np.asarray(previous[...])
        return _Seg(crack, None, np.zeros_like(crack))


@pytest.fixture
def fake_stages(monkeypatch):
    FakeStages.calls = []
    FakeStages.fail_at = None
    monkeypatch.setattr(pipeline, "_Stages", FakeStages)
    return FakeStages


@pytest.fixture
def series_tif(tmp_path):
    return make_series(tmp_path / "series.tif")


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_results_layout(fake_stages, series_tif, tmp_path):
    before = _tree(tmp_path)
    out = tmp_path / "res"
    summary = pipeline.analyze(series_tif, out, progress=False, report=False)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    for key in ("dendritect_version", "input", "voxel_size_um", "anode",
                "electrolyte_interfaces_um", "registration_shifts_vox", "span_index",
                "short_circuit", "parameters"):
        assert key in summary
    assert set(summary["short_circuit"]) >= {"echem_time_s", "forecast_time_s",
                                              "forecast_from_index"}
    assert summary["voxel_size_um"] == [1.0, 0.5, 0.5]
    assert summary["anode"] == "top"
    assert summary["electrolyte_interfaces_um"] == [3.5, 19.5]
    assert summary["span_index"] == 4
    assert summary["registration_shifts_vox"] == [[0.0, 0.0, 0.0]] * N
    assert summary["parameters"]["segment"] == {"threshold": 0.2}
    # Forecast from steps 0..3 (before the span): a front at 4 um/step reaches 16 um at t=4.
    sc = summary["short_circuit"]
    assert sc["forecast_from_index"] == 3
    assert sc["forecast_time_s"] == pytest.approx(4.0, abs=0.01)

    m = pd.read_csv(out / "metrics.csv")
    for col in ("t_index", "time_s", "front_depth_um", "li_front_depth_um", "crack_volume_um3",
                "crack_area_um2", "n_cracks", "spanning"):
        assert col in m.columns
    assert m.front_depth_um.tolist() == [0.0, 4.0, 8.0, 12.0, 16.0]
    assert m.spanning.tolist() == [0, 0, 0, 0, 1]
    assert m.n_cracks.tolist() == [0, 1, 2, 2, 2]
    assert m.li_front_depth_um.isna().all()   # lithium not segmented: left empty

    c = pd.read_csv(out / "cracks.csv")
    assert sorted(c.crack_id.unique()) == [1, 2]
    assert c[c.crack_id == 1].t_index.tolist() == [1, 2, 3, 4]
    assert set(c[c.crack_id == 2].kind) == {"spallation"}
    assert set(c[c.crack_id == 1].kind) == {"transverse"}
    assert c[(c.crack_id == 1) & (c.t_index == 2)].front_speed_um_s.iloc[0] == pytest.approx(4.0)

    g = zarr.open_group(str(out / "cracks.zarr"), mode="r")
    assert g["crack"].shape == (N, *SHAPE) and g["crack"].dtype == np.uint8
    assert g["labels"].dtype == np.int32 and g["time_of_arrival"].dtype == np.int16
    toa = g["time_of_arrival"][...]
    assert toa[4, 10, 8] == 1 and toa[19, 10, 8] == 4 and toa[0, 0, 0] == -1
    assert set(np.unique(g["labels"][4])) == {0, 1, 2}
    p = zarr.open_group(str(out / "previews.zarr"), mode="r")
    assert p["yx"].shape == (N, 32, 32) and p["zx"].shape == (N, 24, 32)
    assert p["zy"].shape == (N, 24, 32) and p["yx"].dtype == np.float32
    assert p["yx"].attrs["z_index"] == 12   # mid-electrolyte (3.5 + 19.5) / 2 = 11.5
    assert not (out / ".partial").exists()
    assert _tree(tmp_path) | before == _tree(tmp_path)  # the input is untouched
    assert {k: v for k, v in _tree(tmp_path).items() if k in before} == before


# Segmentation calls in order: steps 0 and 1, step 0's second look, steps 2, 3, 4.
@pytest.mark.parametrize(("fail_at", "redone"), [(2, 4), (4, 2)])
def test_resume_after_interruption_is_byte_identical(fake_stages, series_tif, tmp_path,
                                                     fail_at, redone):
    whole = tmp_path / "whole"
    pipeline.analyze(series_tif, whole, progress=False, report=False)
    assert len(fake_stages.calls) == N + 1
    fake_stages.calls = []
    fake_stages.fail_at = fail_at
    broken = tmp_path / "broken"
    with pytest.raises(RuntimeError, match="simulated"):
        pipeline.analyze(series_tif, broken, progress=False, report=False)
    assert not (broken / "summary.json").exists()   # nothing half-written looks finished
    assert (broken / ".partial").is_dir()
    fake_stages.calls = []
    pipeline.analyze(series_tif, broken, progress=False, report=False, resume=True)
    # stopped in the second look: it and steps 2-4 again; in step 3: steps 3 and 4 only
    assert len(fake_stages.calls) == redone
    assert _tree(broken) == _tree(whole)


def test_determinism_overwrite_and_finished_runs(fake_stages, series_tif, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    pipeline.analyze(series_tif, a, progress=False, report=False)
    pipeline.analyze(series_tif, b, progress=False, report=False)
    assert _tree(a) == _tree(b)
    with pytest.raises(InputError, match="--overwrite"):
        pipeline.analyze(series_tif, a, progress=False, report=False)
    # --resume on a finished run returns it without redoing anything.
    fake_stages.calls = []
    again = pipeline.analyze(series_tif, a, progress=False, report=False, resume=True)
    assert fake_stages.calls == [] and again["span_index"] == 4
    pipeline.analyze(series_tif, a, progress=False, report=False, overwrite=True,
                     params=ThresholdParams(threshold=0.01))
    assert json.loads((a / "summary.json").read_text())["span_index"] is None


def test_resume_with_other_settings_is_refused(fake_stages, series_tif, tmp_path):
    out = tmp_path / "r"
    fake_stages.fail_at = 2
    with pytest.raises(RuntimeError):
        pipeline.analyze(series_tif, out, progress=False, report=False)
    with pytest.raises(InputError, match="other settings"):
        pipeline.analyze(series_tif, out, progress=False, report=False, resume=True,
                         params=ThresholdParams(threshold=0.1))


def test_bad_inputs(fake_stages, series_tif, tmp_path):
    with pytest.raises(InputError, match="not found"):
        pipeline.analyze(tmp_path / "missing.tif", tmp_path / "o", progress=False, report=False)
    with pytest.raises(InputError, match="anode"):
        pipeline.analyze(series_tif, tmp_path / "o", anode="left", progress=False, report=False)
    folder = tmp_path / "scans"
    folder.mkdir()
    make_series(folder / "s.tif")
    with pytest.raises(InputError, match="inside the input"):
        pipeline.analyze(folder, folder / "out", progress=False, report=False)
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.full((2, 8, 8, 8), 0.3, np.float32))
    with pytest.raises(InputError, match="no electrolyte layer"):
        pipeline.analyze(flat, tmp_path / "o2", progress=False, report=False)
    assert not (tmp_path / "o2").exists()   # no half-made results folder left behind


def test_echem_columns_and_non_overlap_warning(fake_stages, series_tif, tmp_path):
    ok = tmp_path / "echem.csv"
    t = np.linspace(0, 4, 41)
    pd.DataFrame({"time_s": t, "voltage_V": 0.1 - 0.01 * t,
                  "current_mA": np.full_like(t, 3.6)}).to_csv(ok, index=False)
    pipeline.analyze(series_tif, tmp_path / "e", echem=ok, progress=False, report=False)
    m = pd.read_csv(tmp_path / "e" / "metrics.csv")
    assert m.voltage_V.tolist() == pytest.approx([0.1, 0.09, 0.08, 0.07, 0.06])
    assert m.charge_mAh.tolist() == pytest.approx([0.0, 0.001, 0.002, 0.003, 0.004])

    late = tmp_path / "late.csv"
    pd.DataFrame({"time_s": t + 1e5, "voltage_V": 0.1 + 0 * t,
                  "current_mA": 1.0 + 0 * t}).to_csv(late, index=False)
    with pytest.warns(UserWarning, match="does not overlap"):
        s = pipeline.analyze(series_tif, tmp_path / "l", echem=late, progress=False, report=False)
    assert any("does not overlap" in w for w in s["warnings"])
    assert pd.read_csv(tmp_path / "l" / "metrics.csv").voltage_V.isna().all()


def test_merged_ids():
    from dendritect.pipeline import _merged_ids

    flat0, ids0 = np.array([1, 2, 3, 10, 11]), np.array([1, 1, 1, 2, 2])
    flat1, ids1 = np.array([1, 2, 3, 10, 11, 12]), np.array([1, 1, 1, 1, 1, 1])
    assert _merged_ids(flat0, ids0, flat1, ids1) == {2: 1}
    assert _merged_ids(flat0, ids0, flat0, ids0) == {}
