"""Cell finding on synthetic layered cells with known interfaces, and on a real Li-ion scan."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.preprocess.cell import anode_evidence, decide_anode, find_cell

LEVELS = {"steel": 3.0, "electrolyte": 1.0, "lithium": 0.12, "void": 0.02, "die": 0.2}


def make_cell(shape=(48, 80, 80), *, z_top=14.5, z_bot=35.5, noise=0.03, seed=0,
              pores=(), cracks=(), crack_li=False, anode="top", psf=0.6):
    """A Li | electrolyte | Li cell in a die, with pores and planar cracks of known geometry.

    Interfaces lie at ``z_top``/``z_bot`` (half-integers: between voxel centres). ``pores`` are
    ``(z, y, x, r)`` spheres; ``cracks`` are ``(x0, depth_vox, aperture_vox)``: a plane
    ``x = x0`` from the anode interface down to ``depth_vox`` inside the electrode footprint.
    Returns ``(volume float32, truth dict)``.
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    r = np.hypot(y - (ny - 1) / 2, x - (nx - 1) / 2)[0]
    r_pel, r_el, r_die = 0.42 * nx, 0.31 * nx, 0.49 * nx
    mu = np.full(shape, LEVELS["void"], np.float32)
    mu[:, (r > r_pel) & (r <= r_die)] = LEVELS["die"]
    pl = 5
    bore = r <= r_pel
    mu[:pl][:, bore] = LEVELS["steel"]
    mu[nz - pl:][:, bore] = LEVELS["steel"]
    a, c = int(z_top + 0.5), int(z_bot + 0.5)
    mu[pl:a][:, r <= r_el] = LEVELS["lithium"]
    mu[c:nz - pl][:, r <= r_el] = LEVELS["lithium"]
    mu[a:c][:, bore] = LEVELS["electrolyte"]
    labels = np.zeros(shape, np.uint8)
    for pz, py, px, pr in pores:
        ball = (z - pz) ** 2 + (y - py) ** 2 + (x - px) ** 2 <= pr**2
        mu[ball] = LEVELS["void"]
        labels[ball] = 2
    for x0, depth, ap in cracks:
        zc = (z >= a) & (z < a + depth) if anode == "top" else (z < c) & (z >= c - depth)
        yc = np.abs(y - (ny - 1) / 2) < r_el * 0.8
        xc = np.abs(x - x0) < ap / 2
        sheet = zc & yc & xc
        mu[sheet] = LEVELS["lithium"] if crack_li else LEVELS["void"]
        labels[sheet] = 3
    vol = ndimage.gaussian_filter(mu, psf) + rng.normal(0, noise, shape).astype(np.float32)
    return vol.astype(np.float32), {"z_top": z_top, "z_bot": z_bot, "labels": labels,
                                    "r_pel": r_pel, "r_el": r_el}


def test_interfaces_within_half_voxel():
    vol, truth = make_cell(z_top=14.5, z_bot=35.5)
    geo = find_cell(vol, (1.0, 1.0, 1.0))
    assert abs(geo.z_anode_vox - truth["z_top"]) < 0.5
    assert abs(geo.z_cathode_vox - truth["z_bot"]) < 0.5
    assert geo.anode == "top" and "anode-undecided" in geo.flags


def test_footprints_and_levels():
    vol, truth = make_cell()
    geo = find_cell(vol, 1.0, anode="top")
    ny, nx = vol.shape[1:]
    pellet_area = np.pi * truth["r_pel"] ** 2
    elec_area = np.pi * truth["r_el"] ** 2
    assert abs(geo.footprint.sum() - pellet_area) < 0.06 * pellet_area
    assert abs(geo.electrode_footprint.sum() - elec_area) < 0.1 * elec_area
    assert geo.electrode_footprint.sum() < geo.footprint.sum()
    assert abs(geo.levels["electrolyte"] - 1.0) < 0.05
    assert abs(geo.levels["lithium"] - 0.12) < 0.05
    assert geo.levels["void"] < geo.levels["lithium"]
    assert 0.02 < geo.noise < 0.04
    mask = geo.electrolyte_mask(vol.shape)
    assert mask[25, ny // 2, nx // 2] and not mask[10, ny // 2, nx // 2]
    assert not mask[25, 0, 0]
    assert geo.depth_vox(24.5) == pytest.approx(24.5 - geo.z_anode_vox)


def test_anode_bottom_swaps_interfaces():
    vol, _ = make_cell(z_top=12.5, z_bot=33.5)
    geo = find_cell(vol, 1.0, anode="bottom")
    assert geo.anode == "bottom"
    assert abs(geo.z_anode_vox - 33.5) < 0.5
    assert geo.depth_vox(30.0) == pytest.approx(geo.z_anode_vox - 30.0)


def test_replace_anode_keeps_interfaces_consistent():
    vol, _ = make_cell(z_top=12.5, z_bot=33.5)
    top = find_cell(vol, 1.0, anode="top")
    bottom = dataclasses.replace(top, anode="bottom")
    assert bottom.z_anode_vox == top.z_cathode_vox and bottom.z_cathode_vox == top.z_anode_vox
    assert bottom.depth_vox(top.z_cathode_vox) == 0.0
    np.testing.assert_array_equal(bottom.electrode_footprint, top.counter_electrode_footprint)
    assert top.with_anode("bottom").z_anode_vox == bottom.z_anode_vox


def test_uniform_volume_has_no_layer():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="no electrolyte layer"):
        find_cell(rng.normal(0, 1, (40, 40, 40)).astype(np.float32), 1.0)


def test_bad_anode_option():
    vol, _ = make_cell()
    with pytest.raises(InputError, match="anode"):
        find_cell(vol, 1.0, anode="left")


@pytest.mark.parametrize("side", ["top", "bottom"])
def test_decide_anode_picks_growing_side(side):
    first, _ = make_cell(seed=1, anode=side, cracks=[(30, 3, 1.5)])
    last, _ = make_cell(seed=2, anode=side, cracks=[(30, 12, 1.5), (50, 8, 1.5)])
    geo = find_cell(first, 1.0)
    assert decide_anode(first, last, geo) == side
    assert anode_evidence(first, last, geo)["confident"]


def test_decide_anode_falls_back_to_top_when_nothing_changes():
    first, _ = make_cell(seed=1)
    last, _ = make_cell(seed=2)
    geo = find_cell(first, 1.0)
    with pytest.warns(UserWarning, match="could not be decided"):
        assert decide_anode(first, last, geo) == "top"
    assert not anode_evidence(first, last, geo)["confident"]


def test_real_liion_scan_has_no_electrolyte_layer(shared_data):
    tifffile = pytest.importorskip("tifffile")
    path = shared_data / "real-lab-ct-liion-cell" / "cell_vol_stack_zlib.tif"
    if not path.exists():
        pytest.skip(f"{path} not found")
    vol = tifffile.imread(path)
    with pytest.raises(InputError, match="no electrolyte layer"):
        find_cell(vol, (68.0, 34.0, 34.0), where=str(path))


def _ev(c_top, c_bot, s_top=0, s_bot=0, min_count=20):
    return {"change_top": c_top, "change_bottom": c_bot, "sheet_top": s_top,
            "sheet_bottom": s_bot, "min_count": min_count}


def test_anode_from_evidence_sums_the_steps_change():
    from dendritect.preprocess.cell import ANODE_SURE_MARGIN, anode_from_evidence

    spanned = _ev(2507, 2508)
    growing = _ev(81, 7134)
    # the sum (2588 vs 9642) is past the sure margin, so the third step is never registered
    assert (2507 + 7134 + 81) / (2507 + 81) > ANODE_SURE_MARGIN

    def steps():
        yield spanned
        yield growing
        raise AssertionError("a step after a sure sum was registered")

    # the last step is spanned (both sides darkened alike); an earlier one settles it
    assert anode_from_evidence(steps()) == "bottom"
    # one step at 2.7x is not sure alone: the next step's change, the other way, is added
    assert anode_from_evidence([_ev(1020, 2796), _ev(3790, 0)]) == "top"
    with pytest.warns(UserWarning, match="weak evidence"):
        assert anode_from_evidence([_ev(100, 125), _ev(20, 25)]) == "bottom"
    # no step's change decides: the latest step's thin dark sheets break the tie
    with pytest.warns(UserWarning, match="thin dark sheets"):
        assert anode_from_evidence([_ev(10, 10, 0, 300), _ev(5, 5, 400, 0)]) == "bottom"
    with pytest.warns(UserWarning, match="could not be decided"):
        assert anode_from_evidence([_ev(2507, 2508)]) == "top"
    with pytest.warns(UserWarning, match="could not be decided"):
        assert anode_from_evidence([]) == "top"


def test_anode_from_the_change_not_a_static_dark_rim():
    """A dark band two voxels inside the cathode interface in every scan (the undershoot of
    filtered back-projection beside a bright collector) is more thin dark sheet than the
    cracks growing at the anode; the change since the first step names the anode."""
    first, _ = make_cell(seed=1, cracks=[(30, 3, 1.5)])
    last, _ = make_cell(seed=2, cracks=[(30, 12, 1.5), (50, 8, 1.5)])
    geo = find_cell(first, 1.0)
    c = int(geo.z_range_vox[1])
    contrast = geo.levels["electrolyte"] - geo.levels["void"]
    for v in (first, last):
        v[c - 3:c - 1][:, geo.footprint] -= np.float32(0.6 * contrast)
    ev = anode_evidence(first, last, geo)
    assert ev["change_top"] > 3 * ev["change_bottom"]
    # sure from the change alone: the sheets are not computed
    assert ev["sheet_top"] == ev["sheet_bottom"] == 0
    # guard: counted together, as before, the rim's sheets would outweigh the anode's evidence
    from dendritect.preprocess.cell import _sheet_counts

    lo, hi = geo.z_range_vox
    z = np.arange(first.shape[0])
    q = 0.25 * (hi - lo)
    s_top, s_bot = _sheet_counts(last, geo, z < lo + q, z > hi - q, contrast)
    assert s_bot + ev["change_bottom"] > s_top + ev["change_top"]
    assert ev["side"] == "top" and ev["confident"]
    assert decide_anode(first, last, geo) == "top"


def test_anode_steps_latest_first_then_halving():
    from dendritect.pipeline import _anode_steps

    assert _anode_steps(7) == [6, 3, 1]
    assert _anode_steps(2) == [1]
    assert _anode_steps(1) == []


@pytest.mark.parametrize("die_level", [0.2, 0.55, 0.7])
def test_pellet_footprint_leaves_out_a_die_half_as_dense(die_level):
    """A die attenuating over half as much as the pellet (PEEK at a high energy) passes the
    pellet threshold half way from the darkest level; it is a ring at its own level, not
    pellet."""
    from dendritect.preprocess.cell import pellet_footprint

    n = 96
    r = np.hypot(*np.mgrid[:n, :n] - (n - 1) / 2)
    mid = np.full((n, n), 0.01, np.float32)                # air
    mid[r <= 44] = die_level                               # die
    mid[r <= 33] = 1.0                                     # pellet
    mid = ndimage.gaussian_filter(mid, 1.0)
    fp = pellet_footprint(mid, 1.0)
    pellet = r <= 33
    assert (fp & pellet).sum() / pellet.sum() > 0.97
    assert not fp[r > 35].any()


def test_anode_free_cell_on_a_bright_collector():
    """An anode-free cell: the electrolyte lies on a bare steel collector (far brighter than
    the ceramic, nothing darker between them) and under a lithium foil. The layer is found,
    the collector side flagged, the interfaces within half a voxel, and the lithium level is
    the foil's, not the collector's."""
    mu, _ = make_cell(noise=0.0, psf=0.0)
    _, ny, nx = mu.shape
    y, x = np.ogrid[:ny, :nx]
    bore = np.hypot(y - (ny - 1) / 2, x - (nx - 1) / 2) <= 0.42 * nx
    mu[36:][:, bore] = LEVELS["steel"]
    rng = np.random.default_rng(5)
    vol = (ndimage.gaussian_filter(mu, 0.6) + rng.normal(0, 0.03, mu.shape)).astype(np.float32)
    geo = find_cell(vol, (1.0, 1.0, 1.0))
    assert "collector-bottom" in geo.flags
    z_top, z_bot = sorted((geo.z_anode_vox, geo.z_cathode_vox))
    assert abs(z_top - 14.5) < 0.5 and abs(z_bot - 35.5) < 0.5
    assert abs(geo.levels["lithium"] - LEVELS["lithium"]) < 0.05
    assert abs(geo.levels["electrolyte"] - 1.0) < 0.05


def test_an_electrode_too_bright_for_lithium_gives_no_lithium_level(monkeypatch):
    # Electrodes at 0.6 of the electrolyte's level (a composite cathode, a bare collector, a
    # thin foil read together with its plunger) are not lithium: lithium reads at most ~0.37
    # of the lightest solid electrolyte. The level must not be taken as lithium's.
    monkeypatch.setitem(LEVELS, "lithium", 0.6)
    vol, _ = make_cell()
    geo = find_cell(vol, 1.0, anode="top")
    assert np.isnan(geo.levels["lithium"])
    assert geo.levels["void"] < 0.1
    from dendritect.segment.cracks import SegmentParams, lithium_contrast_reason

    reason = lithium_contrast_reason(geo.levels, geo.noise, SegmentParams())
    assert reason is not None and "not known" in reason


def test_cell_levels_keeps_the_side_that_can_be_lithium():
    from dendritect.preprocess.cell import LITHIUM_MAX_SHARE, cell_levels

    called = []
    lv = cell_levels(1.0, (0.15, 0.8), (0.02, np.nan), lambda: called.append(1) or 0.0)
    assert lv["lithium"] == pytest.approx(0.15) and lv["void"] == pytest.approx(0.02)
    assert not called  # a gap was read: no fallback
    lv = cell_levels(1.0, (np.nan, np.nan), (np.nan,), lambda: 0.0, lithium_fallback=0.3)
    assert lv["lithium"] == pytest.approx(0.3) and lv["void"] == 0.0
    top = LITHIUM_MAX_SHARE * 1.0
    lv = cell_levels(1.0, (top + 0.01,), (), lambda: 0.0, lithium_fallback=top + 0.2)
    assert np.isnan(lv["lithium"]) and lv["void"] == 0.0


def test_cell_levels_a_foil_and_an_empty_gap_is_not_averaged():
    """An anode-free side reads the empty gap before its collector: averaged with the foil's
    level, it would halve the lithium-void contrast (tuning cells 9 and 16)."""
    from dendritect.preprocess.cell import GAP_SIDE_SHARE, cell_levels

    void, li = 0.05, 0.15
    gap = void + 0.2 * (li - void)          # the gap, lifted by the blur of its collector
    lv = cell_levels(1.0, (li, gap), (void, np.nan), lambda: 0.0)
    assert lv["lithium"] == pytest.approx(li) and lv["void"] == pytest.approx(void)
    lv = cell_levels(1.0, (gap, li), (void, np.nan), lambda: 0.0)   # either side
    assert lv["lithium"] == pytest.approx(li)
    # where the anode is known, its side: lithium is plated from the anode's foil (a tilted
    # or fringed counter side can read brighter than lithium)
    lv = cell_levels(1.0, (li, 0.3), (void, np.nan), lambda: 0.0, anode=0)
    assert lv["lithium"] == pytest.approx(li)
    lv = cell_levels(1.0, (0.3, li), (void, np.nan), lambda: 0.0, anode=1)
    assert lv["lithium"] == pytest.approx(li)
    # two foils that read alike (blur, noise) are averaged
    close = li - 0.5 * GAP_SIDE_SHARE * (li - void)
    lv = cell_levels(1.0, (li, close), (void, np.nan), lambda: 0.0)
    assert lv["lithium"] == pytest.approx(0.5 * (li + close))


def test_cell_levels_takes_the_pores_void_where_darker():
    from dendritect.preprocess.cell import cell_levels

    # what was read beside a thin foil (0.3) is the foil: the pores' cores (0.02) are void
    lv = cell_levels(1.0, (0.32,), (0.3,), lambda: 0.5, pore_void=0.02)
    assert lv["void"] == pytest.approx(0.02) and lv["lithium"] == pytest.approx(0.32)
    # a real gap darker than the pores (their cores mix in the ceramic) stays
    lv = cell_levels(1.0, (0.12,), (0.02,), lambda: 0.5, pore_void=0.1)
    assert lv["void"] == pytest.approx(0.02)
    # no gap read: the darker of the fallback and the pores
    assert cell_levels(1.0, (), (), lambda: 0.25, pore_void=0.05)["void"] == pytest.approx(0.05)
    assert cell_levels(1.0, (), (), lambda: 0.25)["void"] == pytest.approx(0.25)


def _pellet_with_pores(radius: float, n: int, *, fringe: float = 0.0, seed: int = 0):
    """Electrolyte (1.0) z 4-36 of a 40x64x64 step, void (0.02) pores of ``radius`` with an
    optional dark phase-contrast fringe ring (``fringe`` below the void) at their rim."""
    rng = np.random.default_rng(seed)
    v = np.full((40, 64, 64), 0.3, np.float32)
    v[4:36] = 1.0
    z, y, x = np.ogrid[:40, :64, :64]
    for _ in range(n):
        c = rng.uniform((12, 16, 16), (28, 48, 48))
        d = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        v[d <= radius] = 0.02
        if fringe:
            v[(d > radius - 1) & (d <= radius)] = 0.02 - fringe
    v = ndimage.gaussian_filter(v, 0.8) + rng.normal(0, 0.02, v.shape)
    return v.astype(np.float32), np.ones((64, 64), bool)


@pytest.mark.parametrize("fringe", [0.0, 0.3])
def test_pore_void_level_reads_the_cores_of_large_pores(fringe):
    from dendritect.preprocess.cell import pore_void_level

    v, fp = _pellet_with_pores(4.5, 6, fringe=fringe)
    level = pore_void_level(v, fp, 3.5, 36.5, 1.0, 0.02)
    # the cores, not the blurred rims (0.1-0.5) nor the fringe below the void
    assert level == pytest.approx(0.02, abs=0.04)


def test_pore_void_level_none_without_void_cores():
    from dendritect.preprocess.cell import pore_void_level

    dense, fp = _pellet_with_pores(4.5, 0)
    assert pore_void_level(dense, fp, 3.5, 36.5, 1.0, 0.02) == np.inf
    tiny, fp = _pellet_with_pores(1.0, 6)
    assert pore_void_level(tiny, fp, 3.5, 36.5, 1.0, 0.02) == np.inf


def test_anode_evidence_counts_sheets_only_when_asked():
    # a crack open at both steps: no change, so only its thin dark sheets can tell the side
    first, _ = make_cell(seed=1, cracks=[(30, 8, 1.5)])
    last, _ = make_cell(seed=2, cracks=[(30, 8, 1.5)])
    geo = find_cell(first, 1.0)
    counted = anode_evidence(first, last, geo)
    assert counted["sheet_top"] > counted["sheet_bottom"] and counted["sheet_top"] > 0
    skipped = anode_evidence(first, last, geo, sheets=False)
    assert skipped["sheet_top"] == skipped["sheet_bottom"] == 0
    assert skipped["change_top"] == counted["change_top"]


def test_a_clipped_electrode_is_said_to_be_clipped():
    """Strong phase-contrast fringes push a thin foil below the scan's floor: lithium and void
    both read 0. The reason must say the levels are clipped, not that the contrast is low."""
    from dendritect.segment.cracks import SegmentParams, lithium_contrast_reason

    p = SegmentParams()
    reason = lithium_contrast_reason({"electrolyte": 2e4, "lithium": 0.0, "void": 0.0}, 500.0, p)
    assert reason is not None and "clipped" in reason and "too low" not in reason
    # a real low contrast above the floor is still called that
    reason = lithium_contrast_reason({"electrolyte": 2e4, "lithium": 1500.0, "void": 1000.0},
                                     500.0, p)
    assert reason is not None and "too low" in reason


def test_the_lithium_level_follows_the_anode_side():
    """find_cell reads both sides; the geometry's lithium level is the anode side's where the
    two disagree, also once the anode is decided later (with_anode)."""
    from dendritect.preprocess.cell import GAP_SIDE_SHARE, cell_levels

    vol, _ = make_cell()
    geo = find_cell(vol, 1.0, anode="auto")
    assert geo.levels_by_anode is not None
    top, bottom = geo.levels_by_anode
    assert geo.with_anode("bottom").levels == bottom
    assert geo.with_anode("bottom").with_anode("top").levels == top
    # the twin cell's two foils read alike: both choices give the same level
    assert top["lithium"] == pytest.approx(bottom["lithium"], rel=GAP_SIDE_SHARE)
    assert cell_levels(1.0, (0.2, 0.05), (0.01,), lambda: 0.0, anode=1)["lithium"] == 0.05
