"""Registration and grey-level matching recover known shifts, gains and offsets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.preprocess.normalise import fit_gain_offset, match_intensity
from dendritect.preprocess.register import apply_shift, estimate_shift
from tests.test_preprocess_cell import make_cell


def _texture(shape=(40, 56, 56), seed=0):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), 2.0).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_subvoxel_shift_recovered(seed):
    rng = np.random.default_rng(seed + 10)
    ref = _texture(seed=seed)
    true = rng.uniform(-3, 3, 3)
    # the scan's content moved by -true; applying +true registers it
    moving = ndimage.shift(ref, -true, order=3, mode="nearest")
    moving += rng.normal(0, 0.005, ref.shape).astype(np.float32)
    got = estimate_shift(ref, moving)
    assert np.abs(got - true).max() < 0.1
    back = apply_shift(moving, got)
    assert back.dtype == np.float32
    inner = (slice(5, -5),) * 3
    assert np.abs(back - ref)[inner].mean() < 0.25 * np.abs(moving - ref)[inner].mean()


def test_shift_of_a_cell_with_masked_region():
    ref, _ = make_cell(seed=3)
    true = np.array([0.6, -1.3, 0.8])
    moving = ndimage.shift(ref, -true, order=1, mode="nearest")
    mask = np.zeros(ref.shape, bool)
    mask[5:43, 10:70, 10:70] = True
    assert np.abs(estimate_shift(ref, moving, mask=mask) - true).max() < 0.15


def test_apply_shift_whole_voxels_is_exact_and_input_untouched():
    v = _texture(shape=(16, 20, 24))
    before = v.copy()
    out = apply_shift(v, (1, -2, 0))
    np.testing.assert_array_equal(out[1:, :-2], v[:-1, 2:])
    np.testing.assert_array_equal(v, before)
    np.testing.assert_array_equal(apply_shift(v, (0, 0, 0)), v)


def test_registration_bad_input():
    v = _texture(shape=(16, 20, 24))
    with pytest.raises(InputError, match="shapes differ"):
        estimate_shift(v, v[:-1])
    with pytest.raises(InputError):
        apply_shift(v, (1.0, 2.0))
    with pytest.raises(InputError):
        estimate_shift(v, v, mask=np.zeros(v.shape, bool))


def test_gain_offset_recovered_despite_changes():
    ref = _texture(seed=5) * 100 + 1000
    truth_gain, truth_offset = 1.07, -35.0
    drifted = (ref - truth_offset) / truth_gain  # so that gain * drifted + offset = ref
    drifted = drifted.copy()
    # 2 % of voxels change (a dark crack appears): the fit must ignore them
    changed = np.zeros(ref.shape, bool)
    changed[8:38, 20:22, 6:50] = True
    drifted[changed] = drifted.min() - 50
    gain, offset = fit_gain_offset(drifted, ref)
    assert gain == pytest.approx(truth_gain, rel=0.01)
    assert offset == pytest.approx(truth_offset, abs=0.02 * 1000)
    out = match_intensity(drifted, ref)
    keep = ~ndimage.binary_dilation(changed, iterations=4)
    assert out.dtype == np.float32
    assert np.abs(out[keep] - ref[keep]).max() < 5.0


def test_gain_offset_with_mask_and_equal_noise():
    ref, _ = make_cell(seed=6, noise=0.03)
    later, _ = make_cell(seed=7, noise=0.03)
    later = 0.9 * later + 0.2
    mask = np.zeros(ref.shape, bool)
    mask[6:42] = True
    gain, offset = fit_gain_offset(later, ref, mask=mask)
    assert gain == pytest.approx(1 / 0.9, rel=0.02)
    assert offset == pytest.approx(-0.2 / 0.9, abs=0.02)
