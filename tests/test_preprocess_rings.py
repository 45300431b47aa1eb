"""Ring removal: a synthetic ring of known radius and amplitude is removed; cracks, pores and
the pellet wall are not."""

import dask.array as da
import numpy as np
import pytest

from dendritect.errors import InputError
from dendritect.preprocess.rings import remove_rings, remove_rings_lazy, ring_profile

N = 128


def _radius(centre=((N - 1) / 2, (N - 1) / 2)):
    yy, xx = np.mgrid[:N, :N]
    return np.hypot(yy - centre[0], xx - centre[1])


def _cell(seed=0):
    """A pellet (radius 50) in a brighter die, a crack sheet, pores, noise."""
    rng = np.random.default_rng(seed)
    r = _radius()
    vol = np.where(r < 50, 1.0, 1.6)[None].repeat(20, axis=0).astype(np.float32)
    vol[:, 60:62, 30:70] = 0.2                     # a transverse crack, 2 voxels thick
    vol[:, 40:44, 80:84] = 0.1                     # a pore
    vol += rng.normal(0, 0.05, vol.shape).astype(np.float32)
    return vol


def _ring(radius=31.3, amp=-0.3, width=0.8):
    r = _radius()
    return (amp * np.exp(-0.5 * ((r - radius) / width) ** 2)).astype(np.float32)


def test_ring_removed_structures_kept():
    clean = _cell()
    ringed = clean + _ring()[None]
    out = remove_rings(ringed)
    r = _radius()
    band = np.abs(r - 31.3) < 1.5
    # the ring was 6 noise deviations deep; what is left is within a noise deviation
    assert np.abs(ringed - clean)[:, band].mean() > 0.15
    resid = (out - clean)[:, band]
    assert abs(resid.mean()) < 0.02 and np.abs(resid).max() < 0.2
    # crack, pore and wall untouched (to well within the noise)
    away = np.abs(r - 31.3) > 3
    assert np.abs(out - clean)[:, away].max() < 0.03
    assert out[:, 60:62, 30:70].mean() == pytest.approx(clean[:, 60:62, 30:70].mean(), abs=0.02)
    wall = (np.abs(r - 50) < 2)
    assert np.abs(out - clean)[:, wall].max() < 0.03
    # the input is not modified
    assert not np.shares_memory(out, ringed)
    np.testing.assert_array_equal(ringed, clean + _ring()[None])


def test_off_centre_axis_and_profile():
    centre = (70.0, 60.0)
    yy, xx = np.mgrid[:N, :N]
    r = np.hypot(yy - centre[0], xx - centre[1])
    ring = (-0.4 * np.exp(-0.5 * ((r - 20.2) / 0.7) ** 2)).astype(np.float32)
    plane = _cell()[0] + ring
    prof = ring_profile(plane, centre_yx=centre)
    assert np.argmin(prof) * 0.5 == pytest.approx(20.0, abs=0.6)
    fixed = remove_rings(plane, centre_yx=centre)
    band = np.abs(r - 20.2) < 1.0
    assert np.abs(fixed - _cell()[0])[band].mean() < 0.25 * np.abs(ring[band]).mean()
    # with the wrong centre nothing changes by more than the noise (0.05) away from the ring
    wrong = remove_rings(plane)
    assert np.abs(wrong - plane)[np.abs(r - 20.2) > 3].max() < 0.05


def test_lazy_equals_eager_and_nan_planes():
    vol = _cell() + _ring()[None]
    vol[3, :10, :10] = np.nan
    lazy = remove_rings_lazy(da.from_array(vol, chunks=(4, 64, 64)))
    assert lazy.dtype == np.float32
    got = lazy.compute()
    want = remove_rings(vol)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(vol))
    np.testing.assert_allclose(got, want, atol=1e-6, equal_nan=True)


def test_bad_input():
    with pytest.raises(InputError):
        remove_rings(np.zeros((2, 2, 2, 2)))
    with pytest.raises(InputError):
        ring_profile(np.zeros((4, 4, 4)))
