"""Closed-form Hessian eigenvalues and the sheetness filter against analytic answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.segment.hessian import eigvalsh3, gaussian_kernel1d, hessian_eigvals, sheetness


def _sym(m6: np.ndarray) -> np.ndarray:
    a = np.zeros((m6.shape[0], 3, 3))
    for k, (i, j) in enumerate([(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]):
        a[:, i, j] = m6[:, k]
        a[:, j, i] = m6[:, k]
    return a


def test_eigenvalues_match_numpy_on_random_symmetric_matrices():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(20000, 6)).astype(np.float32)
    # include degenerate cases: diagonal, repeated eigenvalues, zero matrix
    m[:100, [1, 2, 4]] = 0
    m[100:200] = np.array([1, 0, 0, 1, 0, 1], np.float32) * rng.normal(size=(100, 1))
    m[200] = 0
    got = eigvalsh3(*m.T).T
    want = np.linalg.eigvalsh(_sym(m.astype(np.float64)))[:, ::-1]
    scale = np.abs(want).max(axis=1, keepdims=True) + 1e-30
    assert got.dtype == np.float32
    assert np.all(np.abs(got - want) <= 2e-5 * scale + 1e-7)


def test_kernels_match_scipy_gaussian_filter():
    rng = np.random.default_rng(1)
    sig = rng.normal(size=64)
    for order in (0, 1, 2):
        k = gaussian_kernel1d(1.5, order, 5)
        ours = ndimage.convolve1d(sig, k, mode="nearest")
        ref = ndimage.gaussian_filter1d(sig, 1.5, order=order, mode="nearest", truncate=5 / 1.5)
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_hessian_matches_scipy_derivatives():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(20, 24, 28)).astype(np.float32)
    sigma = 1.5
    got = hessian_eigvals(v, sigma)
    h = np.zeros((*v.shape, 3, 3))
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    for i, j in pairs:
        order = [0, 0, 0]
        order[i] += 1
        order[j] += 1
        d = ndimage.gaussian_filter(v.astype(np.float64), sigma, order=order, mode="nearest",
                                    truncate=3.0) * sigma**2
        h[..., i, j] = d
        h[..., j, i] = d
    want = np.linalg.eigvalsh(h)[..., ::-1]
    np.testing.assert_allclose(np.moveaxis(got, 0, -1), want, atol=1e-5)


def test_dark_sheet_is_found_bright_sheet_and_sphere_are_not():
    rng = np.random.default_rng(3)
    shape = (32, 40, 40)
    base = np.ones(shape, np.float32) + rng.normal(0, 0.02, shape).astype(np.float32)
    sheet = base.copy()
    sheet[:, :, 20] = 0.0  # one-voxel dark sheet (plane x = 20), full contrast 1
    s = sheetness(sheet, [1.0, 1.5, 2.0], contrast=1.0)
    assert s.dtype == np.float32 and s.min() >= 0 and s.max() <= 1
    assert np.median(s[4:-4, 4:-4, 20]) > 0.8  # ≈ 1 for a full-contrast one-voxel sheet
    assert np.percentile(s[:, :, :15], 99) < 0.05
    # the same sheet bright: no dark-sheet response, but found with dark=False
    bright = 2 * base - sheet
    assert sheetness(bright, [1.0], contrast=1.0)[4:-4, 4:-4, 20].max() < 0.05
    assert np.median(sheetness(bright, [1.0], dark=False, contrast=1.0)[4:-4, 4:-4, 20]) > 0.8
    # a dark ball (pore) of radius 3: blob-like, far weaker than the sheet
    z, y, x = np.ogrid[:32, :40, :40]
    ball = base.copy()
    ball[(z - 16) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 9] = 0.0
    sb = sheetness(ball, [1.0, 1.5, 2.0], contrast=1.0)
    assert sb[16, 20, 20] < 0.2


def test_sheet_response_scales_with_contrast():
    shape = (24, 32, 32)
    v = np.ones(shape, np.float32)
    v[:, 16, :] = 0.7  # a lithium-filled-like crack: 30 % of the full contrast
    s = sheetness(v, [1.0], contrast=1.0)
    assert s[12, 16, 16] == pytest.approx(0.3, abs=0.05)


def test_input_is_not_modified_and_bad_input_raises():
    v = np.random.default_rng(4).normal(size=(10, 12, 14))
    before = v.copy()
    sheetness(v, 1.0)
    np.testing.assert_array_equal(v, before)
    with pytest.raises(InputError):
        sheetness(v[0], 1.0)
    with pytest.raises(InputError):
        sheetness(v, [0.0])
    assert not sheetness(np.zeros((8, 8, 8)), 1.0).any()
