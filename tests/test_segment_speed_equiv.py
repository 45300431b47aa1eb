"""The segmentation's faster steps give the same output as the plain computation.

Each optimised helper of :mod:`dendritect.segment.cracks` is compared with the straightforward
computation written out here (exactly, not to a tolerance), on data that exercise what the
optimisation relies on; each comparison has a guard showing that the data would tell a wrong
shortcut apart.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dendritect.segment import cracks
from dendritect.segment.cracks import _INSCRIBED_HALO, _inscribed_radius
from dendritect.segment.slabs import Slabs

CROSS = ndimage.generate_binary_structure(3, 1)


def _blobs(shape, n_blobs, seed):
    """6-connected labels of random ellipsoids and slabs (pores and sheets), many cut by the
    array's faces; blobs touching each other by an edge or a corner are different components
    (two cubes touching by an edge are added) and a pancake lies across a slab cut."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    mask = np.zeros(shape, bool)
    for _ in range(n_blobs):
        c = rng.uniform(-2, np.array(shape) + 2)
        r = rng.uniform(0.6, 5.0, 3) * (rng.random(3) < 0.8) + 0.6
        mask |= ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + (
            (x - c[2]) / r[2]) ** 2 <= 1.0
    mask[5:9, 5:9, 5:9] = True
    mask[9:13, 9:13, 5:9] = True
    if shape[0] >= 30:
        # a pancake across the cut at plane 13, thicker on the far side of it than the
        # halo: seen from the slab below, cut at its halo's end, its distances are too large
        mask[14:24, 10:22, 10:24] = True
    lab, n = ndimage.label(mask, structure=CROSS)
    return lab.astype(np.int32), int(n)


def _reference_radius(lab, n, aspect, slabs, need):
    """The largest inscribed ball, plainly: per slab (halo included) the distance transform
    of the whole slab's foreground, maximum over each label's voxels of the slab's planes."""
    sampling = None if aspect is None else tuple(float(a) for a in aspect)
    nz = lab.shape[0]
    best = np.zeros(n + 1)
    for z0, z1 in slabs:
        lo, hi = max(0, z0 - _INSCRIBED_HALO), min(nz, z1 + _INSCRIBED_HALO)
        block = lab[lo:hi]
        d = ndimage.distance_transform_edt(block > 0, sampling=sampling)
        for i in range(1, n + 1):
            sel = block[z0 - lo:z1 - lo] == i
            if sel.any():
                best[i] = max(best[i], d[z0 - lo:z1 - lo][sel].max())
    out = best[1:]
    return np.where(need, out, 0.0) if need is not None else out


ASPECTS = [None, (1.0, 1.0, 1.0), (1.9676, 1.0, 1.0), (1.3741, 1.0, 1.0)]
SLABS = {"one": [(0, 40)], "three": [(0, 13), (13, 27), (27, 40)]}


def _spy_edt(monkeypatch):
    """The shapes of the distance transforms :func:`_inscribed_radius` takes."""
    shapes = []
    edt = ndimage.distance_transform_edt

    def spy(mask, *args, **kwargs):
        shapes.append(mask.shape)
        return edt(mask, *args, **kwargs)

    monkeypatch.setattr(cracks.ndimage, "distance_transform_edt", spy)
    return shapes


@pytest.mark.parametrize("aspect", ASPECTS)
@pytest.mark.parametrize("slabs", sorted(SLABS))
@pytest.mark.parametrize("subset", [False, True])
def test_inscribed_radius_equals_whole_slab_transform(aspect, slabs, subset, monkeypatch):
    lab, n = _blobs((40, 36, 44), 120, seed=7)
    assert n > 40
    need = np.random.default_rng(1).random(n) < 0.5 if subset else None
    ref = _reference_radius(lab, n, aspect, SLABS[slabs], need)
    shapes = _spy_edt(monkeypatch)
    with Slabs(lab.shape, SLABS[slabs]) as s:
        fast = _inscribed_radius(s, lab, n, None if aspect is None else np.asarray(aspect),
                                 need=need)
    np.testing.assert_array_equal(fast, ref)
    # the transforms were taken on the components' boxes, each smaller than a slab
    assert len(shapes) > 10
    assert max(np.prod(sh) for sh in shapes) < 13 * lab.shape[1] * lab.shape[2]


def test_inscribed_radius_without_background_and_dense(monkeypatch):
    """A component that fills its slab (no background in its box) and labels so dense that
    the boxes overlap more than the slab holds: the whole slab's transform decides."""
    full = np.ones((12, 10, 9), np.int32)
    lab, n = _blobs((24, 20, 22), 400, seed=3)
    refs = (_reference_radius(full, 1, (1.0, 1.0, 1.0), [(0, 12)], None),
            _reference_radius(lab, n, (1.5, 1.0, 1.0), [(0, 24)], None))
    shapes = _spy_edt(monkeypatch)
    with Slabs(full.shape, [(0, 12)]) as s:
        np.testing.assert_array_equal(_inscribed_radius(s, full, 1, np.ones(3)), refs[0])
    with Slabs(lab.shape, [(0, 24)]) as s:
        np.testing.assert_array_equal(_inscribed_radius(s, lab, n, np.array([1.5, 1, 1])),
                                      refs[1])
    assert shapes == [full.shape, lab.shape]


def test_inscribed_radius_guard_box_without_margin_differs():
    """Guard: on the same labels, transforms on the components' bare bounding boxes (no
    one-voxel margin) give other radii, so the comparison above can fail."""
    lab, n = _blobs((40, 36, 44), 120, seed=7)
    ref = _reference_radius(lab, n, None, SLABS["one"], None)
    bare = np.zeros(n)
    for i, sl in enumerate(ndimage.find_objects(lab)):
        crop = lab[sl]
        bare[i] = ndimage.distance_transform_edt(crop > 0)[crop == i + 1].max()
    assert not np.array_equal(bare, ref)
    assert (bare >= ref).all()  # a box without its rim misses background: never nearer


def _masks(seed):
    """Random masks of several densities and shapes, flat and one plane thick included."""
    rng = np.random.default_rng(seed)
    for shape in [(1, 6, 5), (2, 1, 3), (9, 4, 4), (10, 9, 11), (31, 17, 23)]:
        for density in (0.05, 0.5, 0.8, 0.97, 1.0):
            yield rng.random(shape) < density


@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_cross_morphology_equals_scipy(iterations):
    for m in _masks(iterations):
        np.testing.assert_array_equal(cracks._erode6(m, iterations),
                                      ndimage.binary_erosion(m, CROSS, iterations=iterations))
        np.testing.assert_array_equal(cracks._dilate6(m, iterations),
                                      ndimage.binary_dilation(m, CROSS, iterations=iterations))
        np.testing.assert_array_equal(cracks._open6(m, iterations),
                                      ndimage.binary_opening(m, CROSS, iterations=iterations))


@pytest.mark.parametrize("n", [3, 5, 9, 11])
def test_axial_morphology_equals_scipy(n):
    for m in _masks(n):
        np.testing.assert_array_equal(cracks._open_z(m, n),
                                      ndimage.binary_opening(m, np.ones((n, 1, 1), bool)))
        np.testing.assert_array_equal(cracks._dilate_yx(m),
                                      ndimage.binary_dilation(m, np.ones((1, 3, 3), bool)))


def test_morphology_guard_border_matters():
    """Guard: an erosion that forgets the array's border (the shifted ANDs alone) or a line
    opening one plane off differ from SciPy's on these masks, so the tests above can fail."""
    m = np.ones((9, 4, 4), bool)
    no_border = m.copy()
    no_border[1:] &= m[:-1]
    assert not np.array_equal(no_border, ndimage.binary_erosion(m, CROSS))
    rng = np.random.default_rng(0)
    m = rng.random((31, 17, 23)) < 0.9
    ref = ndimage.binary_opening(m, np.ones((5, 1, 1), bool))
    assert not np.array_equal(np.roll(cracks._open_z(m, 5), 1, axis=0), ref)
    assert ref.any() and not ref.all()


@pytest.mark.parametrize("maximum", [False, True])
def test_extremum3_equals_scipy(maximum):
    f = ndimage.maximum_filter if maximum else ndimage.minimum_filter
    rng = np.random.default_rng(4)
    for shape in [(1, 6, 5), (2, 1, 3), (9, 4, 4), (31, 17, 23)]:
        v = rng.normal(size=shape).astype(np.float32)
        v[rng.random(shape) < 0.1] = 0.25  # ties
        np.testing.assert_array_equal(cracks._extremum3(v, maximum), f(v, size=3))
        m = rng.random(shape) < 0.8
        np.testing.assert_array_equal(cracks._extremum3(m, maximum), f(m, size=3))
        np.testing.assert_array_equal(cracks._extremum3(m.view(np.uint8), maximum),
                                      f(m.view(np.uint8), size=3))
    v[3, 2, 1] = np.nan  # NaN: SciPy's own filter
    np.testing.assert_array_equal(cracks._extremum3(v, maximum), f(v, size=3))
    # guard: along one axis only, or with the face's neighbour taken from across the array
    # (a wrap), the result is another one
    assert not np.array_equal(f(v, size=(3, 1, 1)), f(v, size=3))
    assert not np.array_equal(f(v, size=3, mode="wrap"), f(v, size=3))


def _axial_reference(v, contrast, sigma, min_curvature, min_ratio, n):
    """:func:`~dendritect.segment.cracks.axial_lines` written plainly (SciPy's morphology)."""
    v = np.asarray(v, dtype=np.float32)
    k = np.float32(sigma * sigma / (0.4 * contrast))
    sig = (0.0, sigma, sigma)
    hyy = ndimage.gaussian_filter(v, sig, order=(0, 2, 0)) * k
    hxx = ndimage.gaussian_filter(v, sig, order=(0, 0, 2)) * k
    hxy = ndimage.gaussian_filter(v, sig, order=(0, 1, 1)) * k
    half = np.float32(0.5) * (hxx + hyy)
    dev = np.sqrt(np.float32(0.25) * (hxx - hyy) ** 2 + hxy * hxy)
    mu1, mu2 = half + dev, half - dev
    dot = (mu2 >= np.float32(min_curvature)) & (mu2 >= np.float32(min_ratio) * mu1)
    if n > 1:
        dot = ndimage.binary_opening(dot, structure=np.ones((n, 1, 1), bool))
    if dot.any():
        dot = ndimage.binary_dilation(dot, structure=np.ones((1, 3, 3), bool))
    return dot


@pytest.mark.parametrize("n", [1, 8, 9])
def test_axial_lines_equal_plain_computation(n):
    rng = np.random.default_rng(n)
    v = rng.normal(1.0, 0.02, (30, 40, 44)).astype(np.float32)
    v[:, 20, 21] -= 0.6  # an axial line, and a dark dot of n planes
    v[10:10 + n, 8, 30] -= 0.6
    v[:, 26:40, 10] -= 0.4  # a crack's trace: a line in each plane
    got = cracks.axial_lines(v, 1.0, sigma_vox=1.5, min_curvature=0.04, min_ratio=0.5,
                             min_length_vox=n)
    ref = _axial_reference(v, 1.0, 1.5, 0.04, 0.5, n)
    np.testing.assert_array_equal(got, ref)
    assert ref[:, 20, 21].all() and not ref[:, 33, 10].any()
    # guard: the data tell the line opening's length apart (one plane longer drops the dot)
    assert ref[10:10 + n, 8, 30].all()
    assert not np.array_equal(ref, _axial_reference(v, 1.0, 1.5, 0.04, 0.5, n + 1))


@pytest.mark.parametrize("with_reference", [False, True])
def test_first_pass_background_from_its_own_smoothing_equals_separate_pass(with_reference):
    """In one slab the first pass finds the background from the step it smooths anyway:
    every flag bit equals the pass given :func:`_background_profile`'s separate result."""
    from dendritect.preprocess.cell import find_cell
    from tests.test_preprocess_cell import make_cell
    from tests.test_segment_cracks import PORES

    ref, _ = make_cell(pores=PORES, noise=0.04, seed=3)
    vol, _ = make_cell(pores=PORES, cracks=[(40, 12, 1.0), (22, 20, 1.5)], noise=0.04, seed=4)
    geo = find_cell(ref, 1.0, anode="top")
    p = cracks.SegmentParams()
    lv = geo.levels
    contrast = float(lv["electrolyte"] - lv["void"])
    box = cracks._Box(geo, vol.shape, int(np.ceil(3 * max(p.sigmas_vox))) + 2)
    li = cracks._lithium_levels(lv, geo.noise, p)
    reference = ref if with_reference else None
    out = []
    with Slabs(box.shape, [(0, box.shape[0])]) as s:
        separate = cracks._background_profile(box, s, vol, float(lv["electrolyte"]), contrast,
                                              p)
        for background in (separate, float(lv["electrolyte"])):
            flags = s.new("flags", np.uint16)
            cracks._flags_pass(box, s, flags, vol, reference, None, background, geo, contrast,
                               li, p, "cpu")
            out.append(flags)
    np.testing.assert_array_equal(out[1], out[0])
    # guard: the flags follow the background (a wall term one hundredth of the contrast off
    # flips some)
    prof, lat, wall = separate
    with Slabs(box.shape, [(0, box.shape[0])]) as s:
        flags = s.new("flags", np.uint16)
        cracks._flags_pass(box, s, flags, vol, reference, None,
                           (prof, lat, wall + np.float32(0.01 * contrast)), geo, contrast, li,
                           p, "cpu")
    assert not np.array_equal(flags, out[0])
