"""Crack measurements on synthetic cracks with known depth, area, aperture and orientation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from dendritect.errors import InputError
from dendritect.measure import CRACK_COLUMNS, CrackHistory, measure_cracks, measure_step

SHAPE = (40, 64, 64)
SPACING = (1.0, 0.5, 0.5)


@dataclass(frozen=True)
class FlatCell:
    """The attributes of preprocess.cell.CellGeometry that measuring uses, with a flat cell."""

    anode: str
    z_anode_vox: float
    z_cathode_vox: float
    footprint: np.ndarray
    electrode_footprint: np.ndarray
    levels: dict = field(default_factory=dict)

    def z_mask(self, nz):
        lo, hi = sorted((self.z_anode_vox, self.z_cathode_vox))
        z = np.arange(nz)
        return (z >= lo) & (z <= hi)

    def electrolyte_mask(self, shape_zyx):
        return self.z_mask(shape_zyx[0])[:, None, None] & self.footprint[None]

    def depth_vox(self, z):
        z = np.asarray(z, dtype=np.float64)
        return z - self.z_anode_vox if self.anode == "top" else self.z_anode_vox - z

    # an untilted cell: the interfaces are planes across z
    tilted = False

    @property
    def thickness_vox(self):
        return abs(self.z_cathode_vox - self.z_anode_vox)

    def tilt_deg(self):
        return 0.0

    def inside(self, z0, z1, yx=None, *, margin_vox=0.0):
        yx = yx or (slice(None), slice(None))
        lo, hi = sorted((self.z_anode_vox, self.z_cathode_vox))
        z = np.arange(z0, z1)
        zin = (z >= lo - margin_vox) & (z <= hi + margin_vox)
        return zin[:, None, None] & self.footprint[yx][None]


def flat_cell(shape=SHAPE, z_anode=2.0, z_cathode=38.0, anode="top", radius=20.0):
    ny, nx = shape[1:]
    yy, xx = np.mgrid[:ny, :nx]
    elec = (yy - 32) ** 2 + (xx - 32) ** 2 <= radius**2
    return FlatCell(anode, z_anode, z_cathode, np.ones((ny, nx), bool), elec)


def _labels(*boxes):
    lab = np.zeros(SHAPE, np.int32)
    for i, (z, y, x) in enumerate(boxes, start=1):
        lab[z, y, x] = i
    return lab


def test_planar_spallation_crack():
    lab = _labels((slice(10, 13), slice(20, 40), slice(16, 46)))
    df = measure_cracks(lab, flat_cell(), SPACING, time_s=5.0, t_index=3)
    assert list(df.columns) == CRACK_COLUMNS
    r = df.iloc[0]
    assert r.t_index == 3 and r.time_s == 5.0 and r.crack_id == 1
    # Deepest voxel z=12 (interface at z=2, dz=1): its far face is 10.5 um deep.
    assert r.front_depth_um == pytest.approx(10.5)
    assert r.min_depth_um == pytest.approx(7.5)
    assert r.projected_area_um2 == pytest.approx(20 * 30 * 0.25)
    assert r.volume_um3 == pytest.approx(3 * 20 * 30 * 0.25)
    assert r.aperture_mean_um == pytest.approx(3.0, abs=1.0)  # within one voxel (dz)
    assert r.aperture_max_um == pytest.approx(3.0, abs=1.0)
    assert r.face_area_um2 == pytest.approx(150.0, rel=0.1)
    assert r.kind == "spallation" and r.normal_angle_deg < 5
    # Marching-cubes boundary: two faces plus the rim, a little less at the bevelled edges.
    box = 2 * (10 * 15) + 2 * (3 * 10) + 2 * (3 * 15)
    assert 0.8 * box < r.surface_area_um2 < 1.05 * box
    assert r.spanning == 0
    assert np.isnan(r.li_front_depth_um)


@pytest.mark.parametrize("thick", [1, 2, 3, 4])
def test_aperture_of_transverse_crack(thick):
    lab = _labels((slice(2, 20), slice(10, 50), slice(30, 30 + thick)))
    r = measure_cracks(lab, flat_cell(), SPACING).iloc[0]
    assert r.kind == "transverse" and r.normal_angle_deg > 85
    assert r.aperture_mean_um == pytest.approx(thick * 0.5, abs=0.5)   # within a voxel (dx)
    assert r.face_area_um2 == pytest.approx(18 * 1.0 * 40 * 0.5, rel=0.1)
    assert r.front_depth_um == pytest.approx(17.5)


def test_bottom_anode_and_lithium_front():
    lab = _labels((slice(25, 36), slice(30, 34), slice(30, 34)))
    li = np.zeros(SHAPE, np.uint8)
    li[30:36, 30:34, 30:34] = 1
    cell = flat_cell(z_anode=37.0, z_cathode=3.0, anode="bottom")
    r = measure_cracks(lab, cell, SPACING, lithium=li).iloc[0]
    assert r.front_depth_um == pytest.approx(12.5)   # z=25 from the interface at 37
    assert r.li_front_depth_um == pytest.approx(7.5)  # z=30
    m = measure_step(lab > 0, cell, SPACING, lithium=li)
    assert m["li_front_depth_um"] == pytest.approx(7.5)
    assert np.isnan(measure_step(lab > 0, cell, SPACING)["li_front_depth_um"])


def test_spanning_and_step_metrics():
    cell = flat_cell()
    through = np.zeros(SHAPE, np.uint8)
    through[2:39, 30, 30:40] = 1                   # anode interface to cathode interface
    part = np.zeros(SHAPE, np.uint8)
    part[2:30, 10, 10:20] = 1
    m = measure_step(through | part, cell, SPACING)
    assert m["spanning"] == 1 and m["n_cracks"] == 2
    assert m["front_depth_um"] == pytest.approx(36.0)      # the whole thickness, no more
    assert m["crack_volume_um3"] == pytest.approx((37 * 10 + 28 * 10) * 0.25)
    assert m["projected_area_um2"] == pytest.approx(20 * 0.25)
    # Two disconnected pieces that together reach both interfaces do not span.
    gap = through.copy()
    gap[20] = 0
    assert measure_step(gap, cell, SPACING)["spanning"] == 0
    # A crack whose face is 1.5 voxels from the cathode still spans (the cathode's reach,
    # CATHODE_TOLERANCE_SHARE of the 2.5-voxel span tolerance: the interface's partial
    # volume); a ligament of 2.5 voxels is left standing, though the anode would reach it.
    short2 = np.zeros(SHAPE, np.uint8)
    short2[2:37, 30, 30:40] = 1
    assert measure_step(short2, cell, SPACING)["spanning"] == 1
    short3 = np.zeros(SHAPE, np.uint8)
    short3[2:36, 30, 30:40] = 1
    assert measure_step(short3, cell, SPACING)["spanning"] == 0
    assert measure_step(short3, cell, SPACING, span_tolerance_vox=2.5 / 0.6)["spanning"] == 1
    short4 = np.zeros(SHAPE, np.uint8)
    short4[2:35, 30, 30:40] = 1
    m4 = measure_step(short4, cell, SPACING)
    assert m4["spanning"] == 0 and m4["front_depth_um"] == pytest.approx(32.5)
    # An isolated crack deep in the pellet is not part of the front grown from the anode.
    deep = np.zeros(SHAPE, np.uint8)
    deep[30:33, 40:50, 40:50] = 1
    md = measure_step(part | deep, cell, SPACING)
    assert md["front_depth_um"] == pytest.approx(27.5)      # the anchored crack: z=29
    assert md["front_depth_any_um"] == pytest.approx(30.5)  # the deep one: z=32
    rows = measure_cracks(ndi.label(part | deep)[0], cell, SPACING)
    assert rows.anchored.tolist() == [1, 0]
    empty = measure_step(np.zeros(SHAPE, np.uint8), cell, SPACING)
    assert empty["n_cracks"] == 0 and empty["front_depth_um"] == 0.0


def test_sphere_surface_area_marching_cubes():
    zz, yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    ball = ((zz - 20) ** 2 + (yy - 32) ** 2 + (xx - 32) ** 2 <= 12**2).astype(np.int32)
    r = measure_cracks(ball, flat_cell(), 1.0).iloc[0]
    # Marching cubes on a binary digital sphere overestimates the area by several per cent
    # (Lindblad, "Surface area estimation of digitized 3D objects using weighted local
    # configurations", Image Vis. Comput. 23, 111 (2005)); it must not be wildly off.
    assert 1.0 < r.surface_area_um2 / (4 * np.pi * 12**2) < 1.1
    assert r.volume_um3 == pytest.approx(4 / 3 * np.pi * 12**3, rel=0.03)


def test_edge_distance_and_history():
    cell = flat_cell(radius=20.0)
    centre = _labels((slice(3, 5), slice(31, 34), slice(31, 34)))   # centroid (32, 32)
    edge = _labels((slice(3, 5), slice(31, 34), slice(51, 54)))     # centroid x=52: 20 from centre
    rc = measure_cracks(centre, cell, SPACING).iloc[0]
    re = measure_cracks(edge, cell, SPACING).iloc[0]
    assert rc.edge_distance_um == pytest.approx(20 * 0.5, abs=0.5)
    assert re.edge_distance_um == pytest.approx(0.0, abs=0.5)

    hist = CrackHistory()
    first = hist.update(measure_cracks(centre, cell, SPACING, time_s=0.0))
    grown = centre.copy()
    grown[5:9, 31:34, 31:34] = 1
    grown[5:9, 31:34, 34:60] = 1      # grows toward the edge: centroid moves, origin does not
    second = hist.update(measure_cracks(grown, cell, SPACING, time_s=10.0, t_index=1))
    assert np.isnan(first.front_speed_um_s.iloc[0])
    assert second.front_speed_um_s.iloc[0] == pytest.approx((8 - 4) * 1.0 / 10.0)
    assert second.origin_edge_distance_um.iloc[0] == pytest.approx(rc.edge_distance_um)
    assert second.edge_distance_um.iloc[0] < rc.edge_distance_um


def test_empty_and_bad_input():
    df = measure_cracks(np.zeros(SHAPE, np.int32), flat_cell(), SPACING)
    assert isinstance(df, pd.DataFrame) and len(df) == 0 and list(df.columns) == CRACK_COLUMNS
    with pytest.raises(InputError):
        measure_cracks(np.zeros((4, 4), np.int32), flat_cell(), SPACING)
    with pytest.raises(InputError):
        measure_cracks(np.zeros(SHAPE, np.int32), flat_cell(), (1.0, -1.0, 1.0))


def test_history_keeps_a_crack_rooted_at_the_anode():
    # A crack touches the anode at step 0; at step 1 its root is missed (a lithium-filled
    # mouth reads like the electrode), farther than ROOT_REACH_VOX, and its tip reaches the
    # cathode side.
    cell = flat_cell()
    thick = cell.thickness_vox
    rooted = _labels((slice(3, 8), slice(30, 34), slice(30, 34)))      # anode interface at z=2
    detached = _labels((slice(10, 38), slice(30, 34), slice(30, 34)))  # cathode at z=38
    first, second = (measure_cracks(lab, cell, SPACING, t_index=t)
                     for t, lab in enumerate((rooted, detached)))
    assert first.anchored.iloc[0] == 1 and second.anchored.iloc[0] == 0
    assert second.spanning.iloc[0] == 0

    plain = CrackHistory()
    plain.update(first)
    assert plain.update(second).anchored.iloc[0] == 0   # without thresholds: as measured

    span_from = (thick - 2.5) * SPACING[0]
    hist = CrackHistory(span_from_um=span_from, thickness_um=thick * SPACING[0])
    hist.update(first)
    kept = hist.update(second)
    assert kept.anchored.iloc[0] == 1 and kept.spanning.iloc[0] == 1
    assert kept.front_depth_um.iloc[0] == pytest.approx(thick * SPACING[0])
    # never anchored: a crack seen first detached stays detached
    fresh = CrackHistory(span_from_um=span_from, thickness_um=thick * SPACING[0])
    assert fresh.update(second).anchored.iloc[0] == 0


def test_root_tracks_anchors_earlier_steps_of_a_rooted_track():
    from dendritect.measure import root_tracks

    cell = flat_cell()
    thick = cell.thickness_vox
    early = _labels((slice(6, 12), slice(30, 34), slice(30, 34)))   # root not seen yet
    later = _labels((slice(3, 20), slice(30, 34), slice(30, 34)))   # touches the anode (z=2)
    other = np.zeros(SHAPE, np.int32)
    other[20:24, 10:12, 10:14] = 2                                   # a second, detached id
    tables = [measure_cracks(early + other, cell, SPACING, t_index=0),
              measure_cracks(later, cell, SPACING, t_index=1)]
    assert tables[0].set_index("crack_id").anchored.to_dict() == {1: 0, 2: 0}
    out = root_tracks(tables, span_from_um=(thick - 2.5) * SPACING[0],
                      thickness_um=thick * SPACING[0])
    assert out[0].set_index("crack_id").anchored.to_dict() == {1: 1, 2: 0}
    assert out[0].set_index("crack_id").front_depth_um[1] == tables[0].front_depth_um.iloc[0]
    assert tables[0].anchored.iloc[0] == 0          # inputs not modified
    # a piece whose nearest face lies deeper than max_gap_um is not rooted from later steps
    gap = tables[0].set_index("crack_id").min_depth_um[1]
    far = root_tracks(tables, span_from_um=(thick - 2.5) * SPACING[0], max_gap_um=gap - 0.1)
    near = root_tracks(tables, span_from_um=(thick - 2.5) * SPACING[0], max_gap_um=gap + 0.1)
    assert far[0].set_index("crack_id").anchored[1] == 0
    assert near[0].set_index("crack_id").anchored[1] == 1


def test_a_large_crack_is_rooted_across_a_lost_mouth():
    """A crack large enough to be one on its own whose nearest face lies within
    ROOT_REACH_VOX of the anode is rooted (its lithium-filled mouth lost in the electrode's
    partial volume); a small piece there, or a large one farther, is not."""
    from dendritect.measure.cracks import ROOT_REACH_MIN_VOXELS, ROOT_REACH_VOX

    cell = flat_cell()   # anode interface at z = 2, voxel depth = z - 2
    big = np.zeros(SHAPE, np.uint8)
    big[7:30, 30, 20:40] = 1                   # nearest face 4.5 voxels deep, 460 voxels
    assert big.sum() >= ROOT_REACH_MIN_VOXELS and 4.5 <= ROOT_REACH_VOX
    r = measure_cracks(big.astype(np.int32), cell, SPACING).iloc[0]
    assert r.anchored == 1
    assert measure_step(big, cell, SPACING)["front_depth_um"] == pytest.approx(27.5)
    small = np.zeros(SHAPE, np.uint8)
    small[7:12, 30, 20:30] = 1                 # 50 voxels at the same depth
    assert measure_cracks(small.astype(np.int32), cell, SPACING).iloc[0].anchored == 0
    far = np.zeros(SHAPE, np.uint8)
    far[10:33, 30, 20:40] = 1                  # nearest face 7.5 voxels deep
    assert measure_cracks(far.astype(np.int32), cell, SPACING).iloc[0].anchored == 0
    assert measure_step(far, cell, SPACING)["front_depth_um"] == 0.0


def test_a_crack_split_by_a_faint_stretch_extends_the_front_but_never_spans():
    """A deep piece within ROOT_CHAIN_VOX of an anchored crack (a faint stretch of one crack),
    directly or through a chain of such gaps, is ``linked``: the step's front is its front, but
    it does not span even where it reaches the cathode. A piece one voxel farther is not
    linked. The sparse measurement agrees."""
    from dendritect.measure.cracks import ROOT_CHAIN_VOX
    from dendritect.measure.sparse import measure_cracks_voxels

    cell = flat_cell()   # anode interface at z = 2, cathode at z = 38
    assert ROOT_CHAIN_VOX == 3.0

    def pieces(gap_a, gap_b, deep_to):
        lab = np.zeros(SHAPE, np.int32)
        lab[2:10, 30, 20:30] = 1                        # anchored at the anode
        a0 = 10 + gap_a - 1                             # gap_a - 1 empty planes
        lab[a0:a0 + 8, 30, 20:30] = 2
        b0 = a0 + 8 + gap_b - 1
        lab[b0:deep_to, 30, 20:30] = 3
        return lab

    near = measure_cracks(pieces(3, 3, 30), cell, SPACING).set_index("crack_id")
    assert near.anchored.tolist() == [1, 0, 0] and near.linked.tolist() == [0, 1, 1]
    m = measure_step(pieces(3, 3, 30) > 0, cell, SPACING)
    assert m["front_depth_um"] == pytest.approx(near.front_depth_um[3])
    assert m["front_depth_um"] > near.front_depth_um[1]
    # reaching the cathode through the chain: the front goes there, the span does not
    through = measure_cracks(pieces(3, 3, 39), cell, SPACING).set_index("crack_id")
    assert through.spanning.tolist() == [0, 0, 0]
    assert measure_step(pieces(3, 3, 39) > 0, cell, SPACING)["spanning"] == 0
    far = measure_cracks(pieces(4, 3, 30), cell, SPACING).set_index("crack_id")
    assert far.linked.tolist() == [0, 0, 0]          # 3 hangs on 2, which is not linked
    assert measure_step(pieces(4, 3, 30) > 0, cell, SPACING)["front_depth_um"] == \
        pytest.approx(far.front_depth_um[1])
    lab = pieces(3, 3, 30)
    flat = np.flatnonzero(lab)
    sparse = measure_cracks_voxels(flat, lab.ravel()[flat], SHAPE, cell, SPACING)
    pd.testing.assert_frame_equal(sparse.set_index("crack_id"), near)
