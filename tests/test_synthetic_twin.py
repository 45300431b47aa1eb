"""Science checks of the synthetic operando twin against its own physics and ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.synthetic import (
    FARADAY_C_MOL,
    LABELS,
    OMEGA_LI_M3_MOL,
    PRESETS,
    generate,
    li_volume_budget_um3,
    resolve_params,
)
from dendritect.synthetic.cell import build_cell
from dendritect.synthetic.cracks import plan_cracks
from dendritect.synthetic.materials import linear_attenuation_per_cm
from dendritect.synthetic.twin import _Protocol

SMALL = {"shape_zyx": (48, 96, 96), "n_steps": 6, "n_cracks": 5}
CRACK = (LABELS["crack"], LABELS["crack_li"])


@pytest.fixture(scope="module")
def cell():
    return generate("demo", seed=3, **SMALL)


def _depth_um(cell, z_index):
    """Depth below the anode interface of slice centres (anode on top)."""
    za = cell.truth["interfaces_um"][0]
    return z_index * cell.voxel_size_um[0] - za


def test_shapes_and_dtypes(cell):
    assert cell.scans.shape == (6, 48, 96, 96) and cell.scans.dtype == np.uint16
    assert cell.labels.shape == cell.scans.shape and cell.labels.dtype == np.uint8
    assert set(np.unique(cell.labels)) <= set(range(6))
    assert np.all(np.diff(cell.times_s) > 0)
    assert len(cell.truth["steps"]) == 6


def test_crack_tip_at_or_ahead_of_lithium(cell):
    seen_dry = False
    for st, lab in zip(cell.truth["steps"], cell.labels, strict=True):
        assert st["li_front_depth_um"] <= st["front_depth_um"] + 1e-9
        for c in st["cracks"]:
            assert c["li_depth_um"] <= c["depth_um"] + 1e-9
        # The same in the voxels: no lithium-filled crack voxel lies deeper than the deepest
        # crack voxel, and before the span the deepest voxels are dry.
        z_crack = np.nonzero(np.isin(lab, CRACK).any(axis=(1, 2)))[0]
        z_li = np.nonzero((lab == LABELS["crack_li"]).any(axis=(1, 2)))[0]
        if z_li.size:
            assert z_li.max() <= z_crack.max()
        if z_crack.size and not st["spanning"] and st["front_depth_um"] > 40:
            assert z_li.size == 0 or z_li.max() < z_crack.max()
            seen_dry = True
    assert seen_dry, "no step shows a dry tip ahead of the lithium"


def test_front_depth_matches_labels(cell):
    dz = cell.voxel_size_um[0]
    for st, lab in zip(cell.truth["steps"], cell.labels, strict=True):
        z = np.nonzero(np.isin(lab, CRACK).any(axis=(1, 2)))[0]
        if st["front_depth_um"] < 3 * dz:
            continue
        deepest = _depth_um(cell, z.max()) + dz / 2
        assert abs(deepest - st["front_depth_um"]) <= 2 * dz


def test_span_before_voltage_collapse(cell):
    tr = cell.truth
    assert tr["span_index"] is not None and tr["short_time_s"] is not None
    t, v, i = (cell.echem[k] for k in ("time_s", "voltage_V", "current_mA"))
    plating = np.median(v[(t < tr["span_time_s"]) & (i > 0)])
    collapsed = t[v < 0.2 * plating]
    assert collapsed.size
    t_collapse = collapsed[0]
    assert tr["span_time_s"] <= tr["short_time_s"] <= t_collapse
    for st in tr["steps"]:
        if st["time_s"] >= t_collapse:
            assert st["spanning"]
        if st["time_s"] < tr["span_time_s"]:
            assert not st["spanning"]
    assert tr["steps"][tr["span_index"]]["spanning"]


def test_span_step_connects_the_interfaces(cell):
    tr = cell.truth
    k = tr["span_index"]
    first, last = tr["electrolyte_slices"]
    crack = np.isin(cell.labels[k], CRACK)
    lab, _ = ndimage.label(crack, structure=np.ones((3, 3, 3)))
    top = set(np.unique(lab[first])) - {0}
    bottom = set(np.unique(lab[last])) - {0}
    assert top & bottom, "no crack component touches both electrolyte interfaces"
    if k > 0:  # the step before does not connect them
        crack = np.isin(cell.labels[k - 1], CRACK)
        lab, _ = ndimage.label(crack, structure=np.ones((3, 3, 3)))
        assert not (set(np.unique(lab[first])) - {0}) & (set(np.unique(lab[last])) - {0})


def test_lithium_volume_within_charge_passed(cell):
    t, i = cell.echem["time_s"], cell.echem["current_mA"]
    dvox = float(np.prod(cell.voxel_size_um))
    for st in cell.truth["steps"]:
        m = t <= st["time_s"]
        # charge from the cycler trace itself (mA s = mC)
        q_mC = float(np.sum(i[m][:-1] * np.diff(t[m]))) if m.sum() > 1 else 0.0
        q_mC += float(i[m][-1] * (st["time_s"] - t[m][-1])) if m.any() else 0.0
        budget = q_mC * 1e-3 / FARADAY_C_MOL * OMEGA_LI_M3_MOL * 1e18
        assert st["li_volume_um3"] <= budget * 1.002 + 1e-6
        assert st["li_volume_um3"] <= st["li_volume_budget_um3"] + 1e-6
        # the physical volume never exceeds the lithium-labelled voxels' volume
        n_li = st["li_volume_um3"] / dvox
        assert n_li <= np.count_nonzero(cell.labels[st["t_index"]] == LABELS["crack_li"]) + 1e-6
    assert cell.truth["steps"][-1]["li_volume_um3"] > 0


def test_budget_formula():
    # 1 C plates 1/F mol of lithium, 1.30e-5 m3/mol (molar volume of Li metal).
    assert li_volume_budget_um3(1000.0) == pytest.approx(1.30e-5 / 96485.33212 * 1e18)
    assert li_volume_budget_um3(-5.0) == 0.0


def test_spallations_start_near_the_electrode_edge():
    p = resolve_params("demo", n_cracks=400)
    rng = np.random.default_rng(7)
    geo = build_cell(resolve_params("demo", shape_zyx=(48, 64, 64)), rng)
    plans = plan_cracks(p, geo, rng)
    rf = np.array([c.radius_frac for c in plans])
    # Sites drawn uniformly over the electrode would have median r/R = 1/sqrt(2) = 0.71.
    assert np.median(rf) > 0.8
    assert np.mean(rf > 0.5) > 0.85  # nearer the edge than the centre
    # Edge focusing: local current density is higher at the edge.
    j = np.array([c.current_density_mA_cm2 for c in plans])
    assert np.corrcoef(rf, j)[0, 1] > 0.5


def test_rendered_spallations_sit_near_the_edge(cell):
    tr = cell.truth
    first = tr["electrolyte_slices"][0]
    cy, cx = tr["cell_axis_yx_um"]
    dy, dx = cell.voxel_size_um[1:]
    step = next(s["t_index"] for s in tr["steps"] if s["n_cracks"] > 0)
    near = np.isin(cell.labels[step, first:first + 3], CRACK)
    _, yy, xx = np.nonzero(near)
    r = np.hypot(yy * dy - cy, xx * dx - cx) / tr["electrode_radius_um"]
    assert r.size and np.median(r) > 0.5


def test_truth_is_in_the_frame_of_step_zero(cell):
    tr = cell.truth
    k = int(np.argmax([np.abs(s["drift_shift_vox"]).sum() for s in tr["steps"]]))
    shift = np.asarray(tr["steps"][k]["drift_shift_vox"])
    assert np.abs(shift).max() > 0.3
    scan = cell.scans[k].astype(np.float32)
    lab = cell.labels[k]

    def contrast(vol):  # electrolyte minus pores and cracks: sharpest when aligned
        holes = np.isin(lab, (LABELS["pore"], *CRACK))
        return vol[lab == LABELS["electrolyte"]].mean() - vol[holes].mean()

    back = ndimage.shift(scan, -shift, order=1, mode="nearest")
    assert contrast(back) > contrast(scan)
    assert tr["steps"][0]["drift_shift_vox"] == [0.0, 0.0, 0.0]


def test_interfaces_and_layers(cell):
    tr = cell.truth
    dz = cell.voxel_size_um[0]
    first, last = tr["electrolyte_slices"]
    assert tr["interfaces_um"] == pytest.approx([(first - 0.5) * dz, (last + 0.5) * dz])
    assert tr["thickness_um"] == pytest.approx((last - first + 1) * dz)
    lab0 = cell.labels[0]
    mid = lab0.shape[1] // 2
    assert lab0[first - 1, mid, mid] == LABELS["electrode"]
    assert lab0[first, mid, mid] in (LABELS["electrolyte"], LABELS["pore"])
    assert lab0[last + 1, mid, mid] == LABELS["electrode"]
    assert lab0[0, mid, mid] == LABELS["other"]  # steel plunger
    # Li is dark, the electrolyte bright, the plunger brighter still.
    s0 = cell.scans[0].astype(float)
    assert np.median(s0[lab0 == 1]) < 0.3 * np.median(s0[lab0 == 0])
    assert s0[0, mid, mid] > s0[lab0 == 0].mean()


def test_porosity_follows_relative_density(cell):
    lab0 = cell.labels[0]
    el = np.isin(lab0, (0, 2))
    porosity = np.count_nonzero(lab0 == 2) / np.count_nonzero(el)
    assert porosity == pytest.approx(1 - PRESETS["demo"]["relative_density"], abs=0.012)


def test_anode_bottom_flips_the_cell():
    c = generate("demo", seed=3, anode="bottom", shape_zyx=(48, 80, 80), n_steps=3)
    tr = c.truth
    assert c.meta["anode"] == "bottom" and tr["anode"] == "bottom"
    assert tr["interfaces_um"][0] > tr["interfaces_um"][1]
    first, last = tr["electrolyte_slices"]
    crack_z = np.nonzero(np.isin(c.labels[1], CRACK).any(axis=(1, 2)))[0]
    assert crack_z.size and crack_z.max() == last  # cracks start at the bottom (anode) side
    assert crack_z.min() > first


def test_stripping_half_cycles():
    proto = _Protocol(1000.0, [400.0], 100.0, 0.3)
    assert proto.t_end == pytest.approx(1100.0)
    assert proto.tau(450.0) == pytest.approx(400.0)  # stalls while stripping
    assert proto.tau(600.0) == pytest.approx(500.0)
    assert proto.sign(450.0) == -1.0 and proto.sign(300.0) == 1.0
    assert proto.closure(450.0) == pytest.approx(0.15)
    assert proto.net_plating_s(600.0) == pytest.approx(400.0 - 100.0 + 100.0)
    c = generate("demo", seed=1, shape_zyx=(48, 80, 80), n_steps=12, strip_half_cycles=2)
    i, v = c.echem["current_mA"], c.echem["voltage_V"]
    assert (i < 0).any() and np.median(v[i < 0]) < 0 < np.median(v[i > 0])
    fronts = [s["front_depth_um"] for s in c.truth["steps"]]
    assert np.all(np.diff(fronts) >= -1e-9)  # cracks stall, they never shorten


def test_attenuation_table():
    # NIST XCOM total mu/rho of Li at 30 keV is 0.164 cm2/g; rho = 0.534 g/cm3.
    assert linear_attenuation_per_cm("Li", 30) / 0.534 == pytest.approx(0.1644, rel=0.01)
    mu_li = linear_attenuation_per_cm("Li", 50)
    mu_el = linear_attenuation_per_cm("Li6PS5Cl", 50)
    mu_st = linear_attenuation_per_cm("steel", 50)
    assert 0.05 < mu_li / mu_el < 0.15 < 1 < mu_st / mu_el  # Li low-contrast, steel bright
    assert linear_attenuation_per_cm("LLZO", 50) > 20 * mu_el
    with pytest.raises(InputError):
        linear_attenuation_per_cm("Li", 10)


@pytest.mark.parametrize(
    ("preset", "kw", "needle"),
    [("nope", {}, "preset"), ("demo", {"shape_zyx": (30, 96, 96)}, "too small"),
     ("demo", {"shape_zyx": (64, 32, 32)}, "too small"),
     ("demo", {"current_density_mA_cm2": -1.0}, "current"),
     ("demo", {"stack_pressure_MPa": -2.0}, "pressure"), ("demo", {"ct": "xyz"}, "ct"),
     ("demo", {"electrolyte": "unobtainium"}, "electrolyte"), ("demo", {"bogus": 1}, "bogus")],
)
def test_bad_parameters(preset, kw, needle):
    with pytest.raises(InputError, match=needle):
        generate(preset, **kw)


def test_fbp_rendering_noise_and_contrast():
    c = generate("demo", seed=2, ct="fbp", shape_zyx=(44, 64, 64), n_steps=2, n_angles=60)
    lab = c.labels[0]
    s = c.scans[0].astype(float)
    el = s[lab == 0]
    assert el.mean() > s[lab == 1].mean() + 5 * el.std() / np.sqrt(50)
    # reconstruction noise near the requested 2% of the electrolyte (plus grains, cupping)
    rel = ndimage.median_filter(s, 3)
    resid = (s - rel)[lab == 0]
    assert 0.005 < resid.std() / (el.mean() - 1000) < 0.08


def test_same_seed_same_arrays_and_seeds_differ():
    a = generate("demo", seed=5, shape_zyx=(44, 64, 64), n_steps=2)
    b = generate("demo", seed=5, shape_zyx=(44, 64, 64), n_steps=2)
    c = generate("demo", seed=6, shape_zyx=(44, 64, 64), n_steps=2)
    assert np.array_equal(a.scans, b.scans) and np.array_equal(a.labels, b.labels)
    assert a.truth == b.truth
    assert not np.array_equal(a.scans, c.scans)


def test_cell_without_cracks_when_the_model_predicts_none():
    # The growth model does not crack LLZO at 1 mA/cm2 (its toughness is far higher).
    c = generate("demo", seed=0, electrolyte="LLZO", shape_zyx=(44, 64, 64), n_steps=2)
    assert c.truth["span_index"] is None and c.truth["short_time_s"] is None
    assert not np.isin(c.labels, CRACK).any()
    assert np.all(c.echem["voltage_V"] > 0.01)  # no collapse
    # LLZO is far more attenuating than Li6PS5Cl: lithium is nearly invisible in it.
    lab = c.labels[0]
    s = c.scans[0].astype(float)
    assert np.median(s[lab == 1]) - 1000 < 0.03 * (np.median(s[lab == 0]) - 1000)


def test_anode_free_counter_electrode():
    c = generate("demo", seed=0, counter_electrode="collector", shape_zyx=(48, 80, 80),
                 n_steps=3)
    last = c.truth["electrolyte_slices"][1]
    mid = 40
    assert c.labels[0, last + 1, mid, mid] == LABELS["other"]
    assert c.labels[0, c.truth["electrolyte_slices"][0] - 1, mid, mid] == LABELS["electrode"]
