"""Crack segmentation on synthetic cells with ground truth."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.preprocess.cell import find_cell
from dendritect.segment.cracks import (
    SegmentParams,
    axial_lines,
    component_shapes,
    segment_step,
)
from tests.test_preprocess_cell import LEVELS, make_cell

PORES = [(25, 40, 22, 3.0), (28, 28, 56, 2.5), (20, 55, 45, 2.0)]


def f1_tolerant(pred: np.ndarray, truth: np.ndarray) -> float:
    """F1 of voxels with a one-voxel tolerance (26-neighbourhood)."""
    p, t = pred > 0, truth > 0
    near_t = ndimage.binary_dilation(t, np.ones((3, 3, 3), bool))
    near_p = ndimage.binary_dilation(p, np.ones((3, 3, 3), bool))
    prec = (p & near_t).sum() / max(p.sum(), 1)
    rec = (t & near_p).sum() / max(t.sum(), 1)
    return float(2 * prec * rec / max(prec + rec, 1e-12))


def front_depth_vox(mask: np.ndarray, geo) -> float:
    z = np.nonzero(mask.any(axis=(1, 2)))[0]
    return float(geo.depth_vox(z).max() + 0.5) if z.size else 0.0


def test_planar_crack_found_and_pore_not():
    vol, truth = make_cell(pores=PORES, cracks=[(40, 12, 1.0)], noise=0.04)
    geo = find_cell(vol, 1.0, anode="top")
    seg = segment_step(vol, geo)
    crack_truth = truth["labels"] == 3
    pore_truth = truth["labels"] == 2
    assert seg.crack.dtype == np.uint8 and seg.crack.shape == vol.shape
    assert f1_tolerant(seg.crack, crack_truth) > 0.9
    assert (seg.crack[pore_truth] > 0).mean() < 0.02
    assert (seg.pores[pore_truth] > 0).mean() > 0.5
    assert abs(front_depth_vox(seg.crack, geo) - 12) <= 2



def _cell_with_pore_and_crack(depth_vox: int, seed: int):
    """Cell whose crack root (x 43-44, y 33-46, from the anode interface at z 14.5 down to
    ``depth_vox``) runs alongside a pore of radius 3 (the two touch after the blur)."""
    mu, _ = make_cell(noise=0.0, psf=0.0)
    z, y, x = np.ogrid[:mu.shape[0], :mu.shape[1], :mu.shape[2]]
    ball = (z - 19) ** 2 + (y - 40) ** 2 + (x - 40) ** 2 <= 9
    sheet = (z >= 15) & (z < 15 + depth_vox) & (y >= 33) & (y < 47) & (x >= 43) & (x < 45)
    mu[ball | sheet] = LEVELS["void"]
    labels = np.zeros(mu.shape, np.uint8)
    labels[ball], labels[sheet] = 2, 3
    noise = np.random.default_rng(seed).normal(0, 0.04, mu.shape)
    return (ndimage.gaussian_filter(mu, 0.6) + noise).astype(np.float32), labels


def test_crack_root_beside_a_pore_stays_crack():
    # in the first scan the short crack root and the pore make one compact dark blob; the
    # pore is its part that survives the opening, so the grown crack keeps its root and
    # stays attached to the anode interface (its front is not cut off from the anode)
    ref, _ = _cell_with_pore_and_crack(6, seed=1)
    vol, labels = _cell_with_pore_and_crack(16, seed=2)
    geo = find_cell(ref, 1.0, anode="top")
    first = segment_step(ref, geo)
    seg = segment_step(vol, geo, reference=ref, previous=first.crack)
    lab, _ = ndimage.label(seg.crack, np.ones((3, 3, 3), bool))
    deepest = lab[np.nonzero(seg.crack.any(axis=(1, 2)))[0].max()].max()
    zs = np.nonzero((lab == deepest).any(axis=(1, 2)))[0]
    assert zs.min() - geo.z_anode_vox <= 2.0  # anchored: starts at the interface
    assert abs(front_depth_vox(seg.crack, geo) - 16) <= 2
    assert f1_tolerant(seg.crack, labels == 3) > 0.8
    assert (seg.pores[labels == 2] > 0).mean() > 0.5
    assert (seg.crack[labels == 2] > 0).mean() < 0.02

def test_empty_cell_has_no_cracks():
    vol, _ = make_cell(pores=PORES, noise=0.05, seed=4)
    geo = find_cell(vol, 1.0)
    seg = segment_step(vol, geo)
    assert seg.crack.sum() == 0


def test_thin_lithium_filled_crack_with_time_evidence():
    # one-voxel lithium-filled crack in strong noise: found with the first step as reference
    ref, _ = make_cell(pores=PORES, noise=0.08, seed=5)
    vol, truth = make_cell(pores=PORES, cracks=[(30, 15, 1.0)], crack_li=True, noise=0.08,
                           seed=6)
    geo = find_cell(ref, 1.0, anode="top")
    seg = segment_step(vol, geo, reference=ref)
    assert f1_tolerant(seg.crack, truth["labels"] == 3) > 0.85
    assert abs(front_depth_vox(seg.crack, geo) - 15) <= 2


def test_crack_persists_through_previous_mask():
    ref, _ = make_cell(noise=0.05, seed=7)
    strong, truth = make_cell(cracks=[(30, 12, 2.0)], noise=0.05, seed=8)
    geo = find_cell(ref, 1.0, anode="top")
    first = segment_step(strong, geo, reference=ref)
    # the crack partly closes: a faint trace, too weak to seed a crack on its own
    faint = ref + 0.25 * (strong - ref)
    alone = segment_step(faint, geo, reference=ref)
    kept = segment_step(faint, geo, reference=ref, previous=first.crack)
    t = truth["labels"] == 3
    assert f1_tolerant(kept.crack, t) > f1_tolerant(alone.crack, t)
    assert f1_tolerant(kept.crack, t) > 0.8


def test_a_faint_crack_of_the_first_step_is_found_with_the_next_steps_crack():
    ref, _ = make_cell(noise=0.05, seed=7)
    strong, truth = make_cell(cracks=[(30, 12, 2.0)], noise=0.05, seed=8)
    # the first scan holds the crack already, faint (thinner, lithium-filled); the next
    # one shows it opened
    faint = ref + 0.25 * (strong - ref)
    geo = find_cell(faint, 1.0, anode="top")
    nxt = segment_step(strong, geo, reference=faint)
    alone = segment_step(faint, geo)
    again = segment_step(faint, geo, following=nxt.crack)
    t = truth["labels"] == 3
    assert f1_tolerant(alone.crack, t) < 0.5
    assert f1_tolerant(again.crack, t) > 0.8
    # where the first scan has no crack, the next step's crack does not make one
    empty = segment_step(ref, find_cell(ref, 1.0, anode="top"), following=nxt.crack)
    assert empty.crack.sum() == 0


def test_lithium_labelled_where_contrast_allows():
    vol, truth = make_cell(cracks=[(30, 12, 3.0)], crack_li=True, noise=0.01, psf=0.3)
    geo = find_cell(vol, 1.0, anode="top")
    seg = segment_step(vol, geo)
    assert seg.lithium is not None
    t = truth["labels"] == 3
    core = ndimage.binary_erosion(t, np.ones((1, 1, 3), bool))
    assert seg.lithium[core].mean() > 0.8
    empty, truth_e = make_cell(cracks=[(30, 12, 3.0)], crack_li=False, noise=0.01, psf=0.3)
    seg_e = segment_step(empty, geo)
    assert seg_e.lithium is not None
    assert seg_e.lithium[ndimage.binary_erosion(truth_e["labels"] == 3,
                                                np.ones((1, 1, 3), bool))].mean() < 0.2


def test_lithium_told_from_enough_resolved_voxels_whatever_their_share():
    """A share of resolved crack voxels too small, but enough of them in number, still tells
    the content: the wide lithium-filled crack is labelled; with neither, lithium is unknown."""
    from dendritect.segment.cracks import SegmentParams

    vol, truth = make_cell(cracks=[(30, 12, 3.0)], crack_li=True, noise=0.01, psf=0.3)
    geo = find_cell(vol, 1.0, anode="top")
    core = ndimage.binary_erosion(truth["labels"] == 3, np.ones((1, 1, 3), bool))
    by_count = segment_step(vol, geo, params=SegmentParams(lithium_min_resolved=0.99,
                                                           lithium_min_resolved_vox=20))
    assert by_count.lithium is not None and by_count.lithium[core].mean() > 0.8
    neither = segment_step(vol, geo, params=SegmentParams(lithium_min_resolved=0.99,
                                                          lithium_min_resolved_vox=10**9))
    assert neither.lithium is None
    assert "fewer than 99% of the crack voxels" in neither.lithium_reason


def test_lithium_none_when_levels_cannot_be_told_apart():
    vol, _ = make_cell(cracks=[(30, 12, 2.0)], noise=0.08)
    geo = find_cell(vol, 1.0)
    seg = segment_step(vol, geo)
    assert seg.lithium is None


def test_params_are_serialisable_and_inputs_untouched():
    vol, _ = make_cell(cracks=[(30, 8, 1.0)])
    before = vol.copy()
    geo = find_cell(vol, 1.0)
    p = SegmentParams(seed_sheetness=0.4)
    d = dataclasses.asdict(p)
    assert d["seed_sheetness"] == 0.4 and isinstance(d["sigmas_vox"], tuple)
    segment_step(vol, geo, params=p)
    np.testing.assert_array_equal(vol, before)
    with pytest.raises(InputError):
        segment_step(vol[:, :-1], geo)
    with pytest.raises(InputError):
        segment_step(vol, geo, reference=vol[:-1])
    with pytest.raises(InputError, match="sigmas_vox"):
        SegmentParams(sigmas_vox=(1.0, -2.0))
    with pytest.raises(InputError, match="seed_sheetness"):
        SegmentParams(seed_sheetness=float("nan"))
    assert SegmentParams(sigmas_vox=[1, 2]).sigmas_vox == (1.0, 2.0)


def _axis_line(shape, y0, x0, depth=0.4):
    """A thin dark line along z, one voxel in y and three in x (the rotation axis of a
    filtered back-projection, where ring artefacts converge), blurred like the cell."""
    line = np.zeros(shape, np.float32)
    line[:, y0, x0 - 1:x0 + 2] = 1.0
    return depth * ndimage.gaussian_filter(line, (0, 0.6, 0.6))


def test_axis_line_touching_a_crack_is_not_crack():
    # A fixed-pattern line along z appears where the first scan was bright once the sample
    # has drifted (so it also reads as new darkening), touches a planar crack of depth 12 and
    # runs through the whole electrolyte: the crack must be found and the line must not be,
    # or the crack would be called through-going.
    shape = (64, 80, 80)
    ref, _ = make_cell(shape, z_top=14.5, z_bot=51.5, noise=0.04, seed=11)
    vol, truth = make_cell(shape, z_top=14.5, z_bot=51.5, cracks=[(40, 12, 1.0)], noise=0.04,
                           seed=12)
    vol = vol - _axis_line(shape, 30, 42)
    geo = find_cell(ref, 1.0, anode="top")
    crack_truth = truth["labels"] == 3
    seg = segment_step(vol, geo, reference=ref)
    assert f1_tolerant(seg.crack, crack_truth) > 0.95
    # beside the crack the line merges with it (a dark curve in each slice, within the
    # one-voxel tolerance); beyond the crack's front it is not crack
    z_last = np.nonzero(crack_truth.any(axis=(1, 2)))[0].max()
    assert seg.crack[z_last + 2:, 29:32, 41:44].sum() == 0
    assert abs(front_depth_vox(seg.crack, geo) - 12) <= 1.5
    # without the axial-line test the line joins the crack and reaches the cathode
    off = segment_step(vol, geo, reference=ref, params=SegmentParams(axial_line_length_vox=0))
    assert front_depth_vox(off.crack, geo) > 30


def test_axial_lines_marks_lines_along_z_only():
    shape = (40, 48, 48)
    rng = np.random.default_rng(3)
    vol = rng.normal(1.0, 0.03, shape).astype(np.float32)
    vol -= _axis_line(shape, 12, 12)
    # a dark sheet (crack) and a dark line lying in a slice (a crack tip's edge) are not marked
    sheet = np.zeros(shape, np.float32)
    sheet[5:35, 20:44, 34] = 1.0
    edge = np.zeros(shape, np.float32)
    edge[20, 36, 5:30] = 1.0
    vol -= 0.9 * ndimage.gaussian_filter(sheet + edge, 0.6)
    m = axial_lines(vol, 0.9)
    assert m.dtype == bool and m.shape == shape
    assert m[5:35, 12, 12].all()
    assert not m[5:35, 22:42, 32:37].any()
    assert not m[:, 33:40, 5:30].any()
    # a short dark dot (a pore seen in a few slices) is not a line along z
    dot = np.ones(shape, np.float32)
    dot[18:22, 30, 10] = 0.5
    assert not axial_lines(dot, 0.9).any()


def test_component_shapes_plane_vs_ball():
    lab = np.zeros((30, 30, 30), np.int32)
    lab[5:25, 5:25, 10] = 1
    z, y, x = np.ogrid[:30, :30, :30]
    lab[(z - 15) ** 2 + (y - 15) ** 2 + (x - 22) ** 2 <= 16] = 2
    shp = component_shapes(lab)
    assert shp["planarity"][0] > 0.9 and shp["planarity"][1] < 0.1
    assert shp["normal_z"][0] < 0.1


def test_synthetic_twin_series():
    synthetic = pytest.importorskip("dendritect.synthetic")
    from dendritect.preprocess import apply_shift, estimate_shift, fit_gain_offset, match_intensity

    try:
        cell = synthetic.generate("demo", seed=1, shape_zyx=(48, 96, 96), n_steps=3,
                                  ct="fast")
    except Exception as exc:  # the twin depends on the model; skip while it is unavailable
        pytest.skip(f"synthetic twin unavailable: {exc}")
    scans, labels = cell.scans, cell.labels
    ref = scans[0].astype(np.float32)
    vox = cell.voxel_size_um
    geo = find_cell(ref, vox, anode=cell.meta.get("anode", "top"))
    z_iface = np.asarray(cell.truth["interfaces_um"]) / vox[0]
    assert abs(geo.z_range_vox[0] - z_iface.min()) < 0.5
    assert abs(geo.z_range_vox[1] - z_iface.max()) < 0.5
    prev = None
    for t in range(scans.shape[0]):
        if t:
            shift = estimate_shift(ref, scans[t])
            drift = np.asarray(cell.truth["steps"][t]["drift_shift_vox"])
            assert np.abs(shift + drift).max() < 0.25
            moved = apply_shift(scans[t], shift)
            gain, _ = fit_gain_offset(moved, ref, mask=geo.electrolyte_mask(ref.shape))
            assert gain == pytest.approx(1.0 / cell.truth["steps"][t]["gain"], rel=0.05)
            vol = match_intensity(moved, ref, mask=geo.electrolyte_mask(ref.shape))
        else:
            vol = ref
        seg = segment_step(vol, geo, reference=ref if t else None, previous=prev)
        prev = seg.crack
        truth = (labels[t] == 3) | (labels[t] == 4)
        if truth.sum() > 50:
            assert f1_tolerant(seg.crack, truth) > 0.85
        assert (seg.crack[labels[t] == 2] > 0).mean() < 0.03


def test_rim_traces_dropped_wall_cracks_kept():
    from dendritect.segment.cracks import WALL_BIN_VOX, _beyond_rim

    n = 64
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - 31.5, xx - 31.5)
    wall = np.clip(30.0 - r, 0, None)                     # pellet of radius 30
    bins = np.minimum(((wall - 0.5) / WALL_BIN_VOX).astype(int), 12).clip(0)[None]
    bins = bins.repeat(3, axis=0)
    arc = (r > 27) & (r < 28.5) & (yy < 20)                # runs along the rim
    crack = np.zeros((3, n, n), bool)
    crack[:, arc] = True
    crack[:, 31, 10:60] = True                             # a crack running out to the wall
    crack[1, 20:23, 30:34] = True                          # a piece well inside
    crack[2, 40:43, 55:59] = True                          # a crack tip at the wall only
    kept = _beyond_rim(crack, bins)
    assert not kept[:, arc].any()
    assert kept[:, 31, 10:60].all()                        # its rim part stays
    assert kept[1, 20:23, 30:34].all()
    assert kept[2, 40:43, 55:59].all()                     # crosses the rim: kept
    crack[0, 5:31, 31] = True                              # joins arc and crack in plane 0
    again = _beyond_rim(crack, bins)
    assert again[0, arc].all() and not again[2, arc].any()


def test_rim_dots_dropped_tips_reaching_in_kept():
    from dendritect.segment.cracks import RIM_DOT_VOX, WALL_BIN_VOX, _beyond_rim

    n = 64
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - 31.5, xx - 31.5)
    bins = np.minimum(((np.clip(30.0 - r, 0, None) - 0.5) / WALL_BIN_VOX).astype(int), 12)
    bins = bins.clip(0)[None].repeat(2, axis=0)
    crack = np.zeros((2, n, n), bool)
    crack[0, 31:33, 3:5] = True                 # a 2 x 2 dot 1-2 voxels in from the wall
    crack[1, 31, 3:3 + RIM_DOT_VOX + 1] = True  # one voxel more: a short trace, not a dot
    crack[1, 20, 31:33] = True                  # a dot far from the wall
    kept = _beyond_rim(crack, bins)
    assert not kept[0].any()
    assert kept[1, 31, 3:3 + RIM_DOT_VOX + 1].all() and kept[1, 20, 31:33].all()


def test_component_shapes_measure_lines_and_use_the_voxel_size():
    lab = np.zeros((40, 20, 20), np.int32)
    lab[5:35, 4:6, 4:6] = 1                     # a 2 x 2 column along z
    lab[10, 10:18, 3:15] = 2                    # a flat sheet one plane thick
    shp = component_shapes(lab)
    assert shp["width"][0] < 1.0 and shp["elongation"][0] > 10 and shp["axis_z"][0] > 0.99
    assert shp["elongation"][1] < 3 and shp["axis_z"][1] < 0.1
    # one plane of 4 x 4 voxels is flat (a crack's shape) in voxels, but in voxels twice as
    # tall as wide it is a squat blob (a pore's), below the crack's minimum planarity
    from dendritect.segment.cracks import SegmentParams

    blob = np.zeros((6, 8, 8), np.int32)
    blob[2, 2:6, 2:6] = 1
    flat = component_shapes(blob)["planarity"][0]
    squat = component_shapes(blob, voxel_size_um=(2.0, 1.0, 1.0))["planarity"][0]
    assert flat > SegmentParams().min_planarity > squat
    assert component_shapes(blob, voxel_size_um=1.0)["planarity"][0] == pytest.approx(flat)


def test_lines_along_z_are_not_cracks():
    """A thin column through the layer (a die or wall feature turned into change by a
    sub-voxel registration) is a line; a crack sheet, or a shallow crack seen as a line in the
    plane, is not."""
    from dendritect.segment.cracks import lines_along_z

    lab = np.zeros((40, 48, 48), np.int32)
    lab[4:30, 20:22, 12:14] = 1                 # a 2 x 2 column, 26 planes
    lab[4:30, 24:38, 32] = 2                    # a transverse crack sheet, as deep
    lab[4, 10, 5:40] = 3                        # a shallow crack: a line in one plane
    lab[10:22, 40, 40] = 4                      # a 1-voxel line 12 planes long
    lab[10:14, 44, 44] = 5                      # too short to be a line
    got = lines_along_z(component_shapes(lab))
    assert got.tolist() == [True, False, False, True, False]
    # in voxels twice as tall as wide, the short one is as long as a line too
    assert lines_along_z(component_shapes(lab, voxel_size_um=(2.0, 1.0, 1.0)))[4]


def test_a_thick_curved_crack_is_not_a_pore():
    """A wide crack bent through half a circle is not flat overall (its inertia is a pore's),
    but it is thin everywhere: no ball as wide as the blob fits inside it, while one fits in
    a pore."""
    from dendritect.segment.cracks import SegmentParams

    mu, truth = make_cell(pores=PORES, noise=0.0, psf=0.0)
    z, y, x = np.ogrid[:mu.shape[0], :mu.shape[1], :mu.shape[2]]
    rr = np.hypot(y - 39.5, x - 39.5)
    bent = (z >= 15) & (z < 27) & (np.abs(rr - 12.0) <= 1.5) & (y <= 39)   # 3 voxels wide
    mu[bent] = LEVELS["void"]
    rng = np.random.default_rng(1)
    vol = (ndimage.gaussian_filter(mu, 0.6)
           + rng.normal(0, 0.03, mu.shape)).astype(np.float32)
    geo = find_cell(vol, 1.0, anode="top")
    pore_truth = truth["labels"] == 2
    seg = segment_step(vol, geo)
    assert (seg.pores[bent] > 0).mean() < 0.1
    assert f1_tolerant(seg.crack, bent) > 0.8
    assert (seg.pores[pore_truth] > 0).mean() > 0.5
    # without the test of roundness, the bent crack is taken for a pore
    old = segment_step(vol, geo, params=SegmentParams(pore_min_roundness=0.0))
    assert (old.pores[bent] > 0).mean() > 0.5


def _segment_blurred(mu: np.ndarray, psf: float, noise: float, *, seed: int):
    """``mu`` blurred by ``psf`` with Gaussian noise, its cell found (anode on top) and
    segmented: ``(geometry, segmentation)``."""
    rng = np.random.default_rng(seed)
    vol = (ndimage.gaussian_filter(mu, psf) + rng.normal(0, noise, mu.shape)).astype(np.float32)
    geo = find_cell(vol, 1.0, anode="top")
    return geo, segment_step(vol, geo)


def test_dry_tip_ahead_of_lithium_stays_dry():
    """A crack filled with lithium from the anode to depth 8, its dry tip (too thin to be
    resolved) running on to depth 14: the tip is not called lithium-filled (taking the class
    of the nearest resolved voxel would fill it), and the lithium front is where the lithium
    ends."""
    mu, _ = make_cell(noise=0.0, psf=0.0)
    nz, ny, nx = mu.shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    yc = np.abs(y - (ny - 1) / 2) < 20
    filled = (z >= 15) & (z < 23) & yc & (np.abs(x - 40) < 2.5)
    tip = (z >= 23) & (z < 29) & yc & (np.abs(x - 40) < 1.0)
    mu[tip] = LEVELS["void"]
    mu[filled] = LEVELS["lithium"]
    geo, seg = _segment_blurred(mu, 0.6, 0.01, seed=3)
    assert seg.lithium is not None
    assert f1_tolerant(seg.crack, filled | tip) > 0.85
    core = ndimage.binary_erosion(filled, np.ones((1, 1, 3), bool))
    assert seg.lithium[core].mean() > 0.8
    li = seg.lithium != 0
    found_tip = (seg.crack != 0) & (z >= 25)
    assert found_tip.sum() > 50  # the dry tip is segmented ...
    assert li[found_tip].mean() < 0.1  # ... and stays dry
    assert abs(front_depth_vox(li, geo) - 8) <= 1.5
    assert abs(front_depth_vox(seg.crack, geo) - 14) <= 2


def test_lithium_front_of_a_tapering_crack_under_blur():
    """A crack tapering from 7 to 3 voxels, lithium-filled from the anode to depth 8 and empty
    on to depth 17, under a blur that lifts the empty part's cores past half the lithium-void
    gap (partial volume with the ceramic): a threshold on the grey level calls the whole crack
    lithium; the step down of the cores along the normal puts the front within 2 voxels."""
    mu, _ = make_cell(noise=0.0, psf=0.0)
    nz, ny, nx = mu.shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    depth = z - 15 + 0.5  # the anode interface at z = 14.5
    half = 3.5 - 2.0 * np.clip(depth / 17.0, 0, 1)
    crack = (z >= 15) & (depth < 17) & (np.abs(y - (ny - 1) / 2) < 20) & (np.abs(x - 40) < half)
    filled = crack & (depth < 8)
    mu[crack] = LEVELS["void"]
    mu[filled] = LEVELS["lithium"]
    geo, seg = _segment_blurred(mu, 1.2, 0.005, seed=5)
    assert seg.lithium is not None
    assert f1_tolerant(seg.crack, crack) > 0.85
    li = seg.lithium != 0
    assert abs(front_depth_vox(li, geo) - 8) <= 2
    assert f1_tolerant(li, filled) > 0.85


def test_lithium_front_split_finds_the_step_down_only():
    from dendritect.segment.cracks import lithium_front_split

    rng = np.random.default_rng(0)
    d = np.repeat(np.arange(20.0), 6)
    # lithium (brighter, with partial volume) to depth 7, empty beyond, narrowing throughout
    u = np.where(d <= 7, 1.6, 1.0) + 0.03 * d + rng.normal(0, 0.05, d.size)
    assert abs(lithium_front_split(d, u, 0.3) - 7.5) < 0.25
    # all lithium (or all empty) and narrowing: the profile rises, there is no front
    assert lithium_front_split(d, 1.0 + 0.03 * d + rng.normal(0, 0.05, d.size), 0.3) is None
    # a step smaller than the least drop, or one lost in the scatter, is no front either
    assert lithium_front_split(d, np.where(d <= 7, 1.2, 1.0), 0.3) is None
    assert lithium_front_split(d, np.where(d <= 7, 1.6, 1.0) + rng.normal(0, 1.0, d.size),
                               0.3) is None
    assert lithium_front_split(d[:6], u[:6], 0.3) is None


def test_joined_cracks_keep_their_own_lithium_fronts():
    """Two tapering cracks joined at the anode by a shallow sheet (one connected piece),
    filled to depths 6 and 12 under blur: each crack's lithium front is its own (the tiles of
    the plane), within 2 voxels."""
    mu, _ = make_cell(noise=0.0, psf=0.0)
    nz, ny, nx = mu.shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    depth = z - 15 + 0.5
    half = 3.5 - 2.0 * np.clip(depth / 17.0, 0, 1)
    rows = np.abs(y - (ny - 1) / 2) < 20
    cracks, filled = np.zeros(mu.shape, bool), np.zeros(mu.shape, bool)
    for x0, fill in ((26, 6), (54, 12)):
        c = (z >= 15) & (depth < 17) & rows & (np.abs(x - x0) < half)
        cracks |= c
        filled |= c & (depth < fill)
    joint = (z >= 15) & (depth < 2) & rows & (x >= 26) & (x <= 54)
    cracks |= joint
    filled |= joint
    mu[cracks] = LEVELS["void"]
    mu[filled] = LEVELS["lithium"]
    rng = np.random.default_rng(7)
    vol = (ndimage.gaussian_filter(mu, 1.2)
           + rng.normal(0, 0.005, mu.shape)).astype(np.float32)
    geo = find_cell(vol, 1.0, anode="top")
    seg = segment_step(vol, geo)
    assert seg.lithium is not None
    _, n = ndimage.label(seg.crack != 0, np.ones((3, 3, 3), bool))
    assert n == 1  # one piece
    li = seg.lithium != 0
    for side, fill in ((x < 40, 6), (x >= 40, 12)):
        assert abs(front_depth_vox(li & side, geo) - fill) <= 2



def _with_band(vol, geo, z: int, depth: float = 0.8):
    """``vol`` with a dark band one voxel thick at plane ``z``, over a disc inside the
    footprint (the undershoot that filtered back-projection leaves beside a bright collector)."""
    ny, nx = vol.shape[1:]
    y, x = np.ogrid[:ny, :nx]
    disc = np.hypot(y - (ny - 1) / 2, x - (nx - 1) / 2) < 0.2 * nx
    band = np.zeros(vol.shape, np.float32)
    band[z][disc & geo.footprint] = 1.0
    contrast = geo.levels["electrolyte"] - geo.levels["void"]
    return vol - np.float32(depth * contrast) * ndimage.gaussian_filter(band, 0.6)


def test_a_dark_band_along_the_cathode_is_not_a_crack(monkeypatch):
    import dendritect.segment.cracks as sc

    vol, _ = make_cell(noise=0.04, seed=3)
    geo = find_cell(vol, 1.0, anode="top")
    z_cathode = geo.z_range_vox[1]
    near = _with_band(vol, geo, int(z_cathode - 6.5))   # 6.5 voxels inside the cathode
    assert segment_step(near, geo).crack.sum() == 0
    # guard: without the rule the band is a crack of about a thousand voxels
    monkeypatch.setattr(sc, "CATHODE_SHEET_VOX", 0.0)
    assert segment_step(near, geo).crack.sum() > 500
    monkeypatch.undo()
    # the same band 9.5 voxels from the cathode is a crack (a spall-like sheet deeper in)
    assert segment_step(_with_band(vol, geo, int(z_cathode - 9.5)), geo).crack.sum() > 500
    # a crack that spans to the cathode is kept whole
    cracked, truth = make_cell(noise=0.04, seed=3, cracks=[(40, 21, 1.5)])
    seg = segment_step(cracked, geo)
    assert f1_tolerant(seg.crack, truth["labels"] == 3) > 0.9


def test_a_dark_band_in_the_anode_interfaces_skin_is_not_a_crack(monkeypatch):
    import dendritect.segment.cracks as sc

    vol, _ = make_cell(noise=0.04, seed=3)
    geo = find_cell(vol, 1.0, anode="top")   # anode interface at z 14.5
    ny, nx = vol.shape[1:]
    y, x = np.ogrid[:ny, :nx]
    disc = (np.hypot(y - (ny - 1) / 2, x - (nx - 1) / 2) < 0.2 * nx) & geo.footprint
    contrast = geo.levels["electrolyte"] - geo.levels["void"]

    def band(z: int) -> tuple[np.ndarray, np.ndarray]:
        # one plane darker (a fringe beside the interface), called crack the step before
        v = vol.copy()
        v[z][disc] -= np.float32(0.5 * contrast)
        prev = np.zeros(vol.shape, np.uint8)
        prev[z][disc] = 1
        return v, prev

    skin, prev = band(15)   # half a voxel from the interface
    assert segment_step(skin, geo, reference=vol, previous=prev).crack.sum() == 0
    # guard: without the rule the band persists as a crack
    monkeypatch.setattr(sc, "ANODE_SKIN_SHARE", 2.0)
    assert segment_step(skin, geo, reference=vol, previous=prev).crack.sum() == disc.sum()
    monkeypatch.undo()
    # two planes deeper it is a crack (a spallation crack under the anode), even alone
    deeper, prev = band(17)
    assert segment_step(deeper, geo, reference=vol, previous=prev).crack.sum() == disc.sum()
    assert segment_step(deeper, geo).crack.sum() > 0.95 * disc.sum()
    # a crack from the anode is kept whole
    cracked, truth = make_cell(noise=0.04, seed=3, cracks=[(40, 12, 1.5)])
    assert f1_tolerant(segment_step(cracked, geo).crack, truth["labels"] == 3) > 0.9


def test_a_small_piece_that_never_leaves_the_rim_is_not_a_crack(monkeypatch):
    import dendritect.segment.cracks as sc

    vol, _ = make_cell(noise=0.03, seed=2)
    geo = find_cell(vol, 1.0, anode="top")
    x_wall = int(np.nonzero(geo.footprint[40])[0][-1])
    contrast = geo.levels["electrolyte"] - geo.levels["void"]

    def sheet(reach: int) -> np.ndarray:
        # a radial sheet one voxel thick over ten planes, from the wall ``reach`` voxels in
        v = vol.copy()
        v[18:28, 40, x_wall - reach + 1:x_wall + 1] -= np.float32(0.8 * contrast)
        return v

    rim = sheet(5)   # its inner edge 5 voxels from the wall: all of it in the rim
    assert segment_step(rim, geo).crack.sum() == 0
    # guard: without the rule the piece is a crack
    class Everywhere:
        def __init__(self, box, rim_vox):
            self.shape = box.shape

        def __getitem__(self, key):
            return np.ones((key.stop - key.start, *self.shape[1:]), bool)

    monkeypatch.setattr(sc, "_BeyondRim", Everywhere)
    assert segment_step(rim, geo).crack.sum() > 40
    monkeypatch.undo()
    # running nine voxels in from the wall, it is a crack that reached the wall
    assert segment_step(sheet(9), geo).crack.sum() >= 80
