"""The randomised-cell benchmark (benchmarks/robust.py): its scorer, and a small CI subset.

The scorer is checked on constructed truth and result folders (fast); the subset runs a few
small twin cells through the analysis and asserts every threshold of the full benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from benchmarks import robust as rb

VOX = (2.0, 2.0, 2.0)
SHAPE = (4, 24, 32, 32)  # t, z, y, x


# ----------------------------------------------------------------------------------------------
# Constructed folders
# ----------------------------------------------------------------------------------------------

def _truth_labels() -> tuple[np.ndarray, np.ndarray]:
    """Labels and crack ids of a crack-free first scan, then one growing lithium-filled sheet.

    The sheet is a plane of constant x (x = 10), three voxels thick (so resolved), growing in z
    from the anode side (z = 4); lithium fills it up to 3 voxels behind its tip. A lone pore
    blob sits far from it.
    """
    lab = np.zeros(SHAPE, np.uint8)
    ids = np.zeros(SHAPE, np.uint8)
    lab[:, :4] = 1
    lab[:, 20:] = 1
    lab[:, 10:12, 20:23, 24:27] = 2  # lone pore
    for t, depth in enumerate((0, 4, 10, 14)):
        if depth == 0:
            continue
        z0, z1 = 4, 4 + depth
        lab[t, z0:z1, 6:20, 10:13] = 3
        lab[t, z0:z1 - 3, 6:20, 10:13] = 4
        ids[t, z0:z1, 6:20, 10:13] = 1
    return lab, ids


def _truth_json(lab: np.ndarray, *, span_index: int | None = None,
                full: bool = True) -> dict:
    steps = []
    for t in range(lab.shape[0]):
        crack = np.isin(lab[t], (3, 4))
        zs = np.flatnonzero(crack.any(axis=(1, 2)))
        depth = float((zs.max() + 1 - 4) * VOX[0]) if zs.size else 0.0
        li = lab[t] == 4
        zl = np.flatnonzero(li.any(axis=(1, 2)))
        li_depth = float((zl.max() + 1 - 4) * VOX[0]) if zl.size else 0.0
        s = {"t_index": t, "front_depth_um": depth, "li_front_depth_um": li_depth,
             "spanning": False,
             "cracks": ([{"id": 1, "depth_um": depth, "li_depth_um": li_depth,
                          "dry_tip_lead_um": depth - li_depth}] if depth else [])}
        if full:
            s["crack_volume_pv_um3"] = float(crack.sum()) * np.prod(VOX)
            s["lithium_resolvable"] = bool(depth)
        steps.append(s)
    out = {"voxel_size_um": list(VOX), "span_index": span_index, "steps": steps}
    if full:
        out["conditions"] = ["fast", "wide"]
        out["interface_plane"] = {"normal_zyx": [1.0, 0.0, 0.0],
                                  "anode_point_um": [8.0, 0.0, 0.0],
                                  "cathode_point_um": [40.0, 0.0, 0.0]}
    return out


def _array(path: Path, data: np.ndarray) -> None:
    arr = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype,
                            chunks=(1, *data.shape[1:]), fill_value=0)
    arr[...] = data


def _folders(tmp: Path, *, pred: np.ndarray | None = None, li: np.ndarray | bool = True,
             span_index: int | None = None, true_span: int | None = None,
             volume_scale: float = 1.0, full: bool = True,
             front_shift_um: float = 0.0) -> tuple[Path, Path]:
    """A dataset folder and a result folder; the result is perfect unless told otherwise."""
    lab, ids = _truth_labels()
    truth = _truth_json(lab, span_index=true_span, full=full)
    data, res = tmp / "data", tmp / "res"
    (data / "truth").mkdir(parents=True)
    (data / "truth" / "truth.json").write_text(json.dumps(truth))
    (data / "dataset.json").write_text(json.dumps({"preset": "constructed", "seed": 0,
                                                   "ct": "fast", "parameters": {}}))
    _array(data / "truth" / "labels.zarr", lab)
    if full:
        _array(data / "truth" / "crack_ids.zarr", ids)

    res.mkdir()
    crack = np.isin(lab, (3, 4)).astype(np.uint8) if pred is None else pred.astype(np.uint8)
    g = zarr.open_group(str(res / "cracks.zarr"), mode="w")
    for name, arr in (("crack", crack), ("labels", (crack > 0).astype(np.int32) * 7)):
        a = g.create_array(name, shape=arr.shape, dtype=arr.dtype,
                           chunks=(1, *arr.shape[1:]), fill_value=0)
        a[...] = arr
    if li is not False:
        li_arr = (lab == 4).astype(np.uint8) if li is True else li.astype(np.uint8)
        a = g.create_array("lithium", shape=li_arr.shape, dtype="uint8",
                           chunks=(1, *li_arr.shape[1:]), fill_value=0)
        a[...] = li_arr
    rows, crows = [], []
    for s in truth["steps"]:
        t = s["t_index"]
        rows.append({"t_index": t, "front_depth_um": s["front_depth_um"] + front_shift_um,
                     "li_front_depth_um": s["li_front_depth_um"] if li is not False else np.nan,
                     "crack_volume_um3": float(np.isin(lab[t], (3, 4)).sum()) * np.prod(VOX)
                     * volume_scale})
        for c in s["cracks"]:
            crows.append({"t_index": t, "crack_id": 7, "dry_tip_lead_um": c["dry_tip_lead_um"]})
    pd.DataFrame(rows).to_csv(res / "metrics.csv", index=False)
    pd.DataFrame(crows, columns=["t_index", "crack_id", "dry_tip_lead_um"]).to_csv(
        res / "cracks.csv", index=False)
    (res / "summary.json").write_text(json.dumps(
        {"span_index": span_index, "voxel_size_um": list(VOX),
         "lithium_segmented": li is not False}))
    return res, data


# ----------------------------------------------------------------------------------------------
# The scorer
# ----------------------------------------------------------------------------------------------

def test_perfect_prediction_passes_everything(tmp_path):
    s = rb.score_cell(*_folders(tmp_path))
    assert s["f1"] == 1.0
    c = s["criteria"]
    assert c["cell_f1"]["value"] == 1.0 and c["step_f1"]["value"] == 1.0
    assert c["li_f1"]["value"] == 1.0
    assert c["front"]["value"] == 0.0 and c["li_front"]["value"] == 0.0
    assert c["dry_tip"]["value"] == 0.0 and c["dry_tip"]["n_compared"] == 3
    assert c["volume"]["value"] == 0.0
    assert c["step0_false"]["value"] == 0
    assert c["lone_pores"]["value"] == 0.0 and c["lone_pores"]["lone_pore_voxels"] > 0
    assert s["pass"] and s["failing"] == []
    assert s["conditions"] == ["fast", "wide"] and s["conditions_source"] == "truth"


def test_tolerance_is_one_voxel():
    truth = np.zeros((12, 12, 12), bool)
    truth[3:9, 3:9, 5] = True  # a one-voxel sheet
    for shift, f1 in ((0, 1.0), (1, 1.0), (2, 0.0)):
        assert rb.tolerant_f1(np.roll(truth, shift, axis=2), truth) == f1
    assert rb.tolerant_f1(np.zeros_like(truth), np.zeros_like(truth)) == 1.0
    assert rb.tolerant_f1(truth, np.zeros_like(truth)) == 0.0


def test_resolved_crack_is_three_voxels_thick():
    sheet = np.zeros((12, 12, 12), bool)
    for width, resolved in ((1, False), (2, False), (3, True), (5, True)):
        sheet[:] = False
        sheet[2:10, 2:10, 4:4 + width] = True
        got = rb.resolved_crack(sheet)
        assert not (got & ~sheet).any()
        # the whole thickness of a resolved sheet, away from its rim
        assert got[3:9, 3:9, 4:4 + width].all() == resolved
        assert got.any() == resolved


def test_lithium_scored_where_resolved_only(tmp_path):
    lab, _ = _truth_labels()
    # a sub-voxel lithium-filled branch (one voxel thick) off the sheet: no scan tells its
    # content, so calling it empty costs nothing where resolved, but does over every voxel
    li = (lab == 4).astype(np.uint8)
    res, data = _folders(tmp_path, li=li.astype(bool))
    thin = np.zeros_like(lab, bool)
    thin[1:, 4:12, 6:20, 20] = True
    lab2 = lab.copy()
    lab2[thin] = 4
    rb_arr = zarr.open_array(str(data / "truth" / "labels.zarr"), mode="r+")
    rb_arr[...] = lab2
    s = rb.score_cell(res, data)
    c = s["criteria"]["li_f1"]
    assert c["value"] == 1.0 and c["pass"]
    assert c["li_f1_all"] < 0.9
    # lithium called in the resolved dry tip is scored
    li_wrong = li.copy()
    li_wrong[np.isin(lab, (3,))] = 1
    li_wrong[:, 4:5] = 0
    s = rb.score_cell(*_folders(tmp_path / "b", li=li_wrong.astype(bool)))
    assert s["criteria"]["li_f1"]["value"] < 1.0


def test_lithium_na_where_no_crack_is_resolved(tmp_path):
    # the same cell with a two-voxel sheet: a step is "resolvable" by the truth's flag, but no
    # crack is three voxels thick anywhere, so the lithium F1 is not scored (n/a, not 1.0)
    res, data = _folders(tmp_path)
    arr = zarr.open_array(str(data / "truth" / "labels.zarr"), mode="r+")
    lab = np.asarray(arr[...])
    lab[:, :, 6:20, 12][np.isin(lab[:, :, 6:20, 12], (3, 4))] = 0
    arr[...] = lab
    c = rb.score_cell(res, data)["criteria"]["li_f1"]
    assert c["pass"] is None and "resolved" in c["reason"]


def test_prediction_shifted_by_two_fails(tmp_path):
    lab, _ = _truth_labels()
    pred = np.roll(np.isin(lab, (3, 4)), 4, axis=3)  # the 3-voxel sheet moved by 4: 2 apart
    s = rb.score_cell(*_folders(tmp_path, pred=pred))
    assert s["criteria"]["cell_f1"]["value"] == 0.0
    assert s["criteria"]["cell_f1"]["pass"] is False
    assert s["criteria"]["step_f1"]["pass"] is False
    assert "cell_f1" in s["failing"] and not s["pass"]


def test_false_span_is_flagged(tmp_path):
    assert rb.span_verdict(None, None) == {"exact": True, "false_span": False}
    assert rb.span_verdict(2, None) == {"exact": False, "false_span": True}
    assert rb.span_verdict(1, 2) == {"exact": False, "false_span": True}
    assert rb.span_verdict(3, 2) == {"exact": False, "false_span": False}
    assert rb.span_verdict(None, 2) == {"exact": False, "false_span": False}
    s = rb.score_cell(*_folders(tmp_path, span_index=2, true_span=3))
    assert s["false_span"] and s["criteria"]["span"]["pass"] is False
    assert s["criteria"]["span"]["reason"] == "false span"
    assert s["failing"] == ["span"]
    # with the thickness known, the electrolyte left at the step called spanned is reported
    folders = _folders(tmp_path / "lig", span_index=2, true_span=3)
    tj = tmp_path / "lig" / "data" / "truth" / "truth.json"
    truth = json.loads(tj.read_text())
    truth["thickness_um"] = truth["steps"][2]["front_depth_um"] + 1.5 * VOX[0]
    tj.write_text(json.dumps(truth))
    s = rb.score_cell(*folders)
    assert s["criteria"]["span"]["ligament_vox"] == pytest.approx(1.5)
    assert "true ligament 1.5 voxels there" in rb._fmt_fail(s)


def test_volume_error(tmp_path):
    assert rb.volume_error(125.0, 100.0) == pytest.approx(0.25)
    assert rb.volume_error(80.0, 100.0) == pytest.approx(0.2)
    assert np.isnan(rb.volume_error(float("nan"), 100.0))
    s = rb.score_cell(*_folders(tmp_path, volume_scale=1.3))
    assert s["criteria"]["volume"]["value"] == pytest.approx(0.3)
    assert s["criteria"]["volume"]["pass"] is False
    # 4 x 14 x 3 = 168 true voxels at step 1 (< 200): only steps 2 and 3 are scored.
    assert s["criteria"]["volume"]["n_steps_scored"] == 2


def test_front_error_in_voxels_along_normal(tmp_path):
    s = rb.score_cell(*_folders(tmp_path, front_shift_um=5.0))
    assert s["criteria"]["front"]["value"] == pytest.approx(2.5)
    assert s["criteria"]["front"]["pass"] is False
    assert rb.normal_voxel_um((3.0, 2.0, 2.0), None) == 3.0
    assert rb.normal_voxel_um((3.0, 2.0, 2.0), (1.0, 0.0, 0.0)) == pytest.approx(3.0)
    tilt = (np.cos(0.08), np.sin(0.08), 0.0)
    assert rb.normal_voxel_um((2.0, 2.0, 2.0), tilt) == pytest.approx(2.0)
    assert 2.0 < rb.normal_voxel_um((3.0, 2.0, 2.0), tilt) < 3.0


def test_lithium_not_reported_where_resolvable_fails(tmp_path):
    s = rb.score_cell(*_folders(tmp_path, li=False))
    for k in ("li_f1", "li_front", "dry_tip"):
        assert s["criteria"][k]["pass"] is False
        assert "lithium not reported where resolvable" in s["criteria"][k]["reason"]


def test_missing_truth_degrades_to_na(tmp_path):
    s = rb.score_cell(*_folders(tmp_path, full=False))
    for k in ("volume", "li_f1", "li_front", "dry_tip"):
        assert s["criteria"][k]["pass"] is None and s["criteria"][k]["reason"]
    assert s["criteria"]["cell_f1"]["value"] == 1.0 and s["pass"]
    assert s["conditions_source"] == "derived" and "fast" in s["conditions"]


def test_lone_pores_called_crack(tmp_path):
    lab, _ = _truth_labels()
    pred = np.isin(lab, (3, 4)) | (lab == 2)
    s = rb.score_cell(*_folders(tmp_path, pred=pred))
    assert s["criteria"]["lone_pores"]["value"] == 1.0
    assert "lone_pores" in s["failing"]


def test_step0_false_voxels(tmp_path):
    lab, _ = _truth_labels()
    pred = np.isin(lab, (3, 4))
    pred[0, 8:12, 8:12, 20:24] = True  # 64 voxels in a crack-free first scan
    s = rb.score_cell(*_folders(tmp_path, pred=pred))
    assert s["criteria"]["step0_false"]["value"] == 64
    assert s["criteria"]["step0_false"]["pass"] is False


def test_seeds_tables_and_docs_block(tmp_path):
    assert rb.parse_seeds("0-3,100,2") == [0, 1, 2, 3, 100]
    good = rb.score_cell(*_folders(tmp_path))
    good.update(seed=100, set="held-out", total_s=1.0)
    crashed = {"seed": 101, "set": "held-out", "error": "InputError: no electrolyte layer",
               "stage": "analyze", "failing": ["ran"], "pass": False, "conditions": ["tilt"]}
    md = rb.report_md([good, crashed], {"preset": "random", "seeds": "100-101"})
    assert "| wide | 1 | 1.000 |" in md
    assert "| tilt | 1 (1 crashed ✗) |" in md
    assert "seed 101 (held-out; tilt): crashed in analyze" in md
    doc = tmp_path / "accuracy.md"
    doc.write_text(f"intro\n{rb.DOCS_BEGIN}\nold\n{rb.DOCS_END}\ntail\n")
    assert rb.write_docs(rb.held_out_section([good, crashed]), doc)
    text = doc.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("tail\n")
    assert "Worst case per condition, held-out seeds" in text


# ----------------------------------------------------------------------------------------------
# CI subset: a few randomised cells, outside the tuning (0-39) and held-out (100-139) seeds
# ----------------------------------------------------------------------------------------------

#: Seed -> why it fails today (criterion and numbers), or None when it meets every threshold.
#: A listed seed is a strict xfail: fixing the analysis turns it into a failure, so the entry
#: is then removed. Cells are shrunk to 96x96 laterally and 4 steps (about 10 s of CPU each).
SUBSET: dict[int, str | None] = {
    900: None,
    901: "lithium not reported where resolvable: the lithium level is read in the clipped "
         "void gap behind the foil (lithium and void levels both 0)",
    902: "span: found 2 vs true 3 (a false span: a true ligament of 2.5 voxels, the found "
         "crack within the cathode's 1.5-voxel reach one scan early); front: 2.5 voxels at "
         "step 2 (need <= 2)",
    903: "steel die, phase retrieved, tilted: 82 crack voxels in the crack-free first scan "
         "(need <= 50); its front and span pass since change_grow 0.10",
}
SUBSET_LATERAL = 96
SUBSET_STEPS = 4


def _subset_cell(seed: int, work: Path) -> dict:
    from dendritect.synthetic.presets import draw_random

    nz = int(draw_random(seed)["shape_zyx"][0])
    return rb.run_cell(seed, work, shape_zyx=(nz, SUBSET_LATERAL, SUBSET_LATERAL),
                       n_steps=SUBSET_STEPS, seed_set="ci")


def _has_random_preset() -> bool:
    from dendritect.synthetic import PRESETS

    return "random" in PRESETS


@pytest.mark.slow
@pytest.mark.skipif(not _has_random_preset(), reason="the twin has no 'random' preset")
@pytest.mark.parametrize("seed", [
    pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=why)) if why else s
    for s, why in SUBSET.items()])
def test_subset_cell_meets_every_threshold(seed, tmp_path):
    c = _subset_cell(seed, tmp_path)
    assert "error" not in c, f"seed {seed} did not run: {c.get('error')}"
    assert c["pass"], f"seed {seed} ({', '.join(c['conditions'])}): {rb._fmt_fail(c)}"
