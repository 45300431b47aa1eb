"""The fast sheetness kernel against a plain reference, analytic cases and its own parts.

The reference is the textbook computation: SciPy Gaussian derivatives in float64 (same sampled
kernels, same truncation, nearest edges), ``numpy.linalg.eigvalsh`` and the measure written
out in NumPy. The compiled filter computes the convolutions in float32, so the two agree to
float32 rounding, not bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit
from scipy import ndimage

from dendritect.segment import hessian
from dendritect.segment.hessian import gaussian_kernel1d, sheetness


def _volume(shape, seed):
    """Noise plus dark planes (axis-aligned and oblique): sheets, their crossings and noise."""
    rng = np.random.default_rng(seed)
    v = rng.normal(0.5, 0.05, shape).astype(np.float32)
    nz, ny, nx = shape
    v[nz // 2] -= 0.3
    v[:, ny // 3, :] -= 0.2
    v[:, :, nx // 4] -= 0.25
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    d = np.abs(0.3 * z + 0.5 * y - 0.8 * x + 10) / math.sqrt(0.09 + 0.25 + 0.64)
    v[d < 0.7] -= 0.3
    return v


def _reference(v, sigmas, dark=True, contrast=None, alpha=0.5):
    v64 = v.astype(np.float64)
    if contrast is None:
        contrast = hessian.default_contrast(v)
    inv_ref = 1.0 / (0.4 * contrast)
    out = np.zeros(v.shape)
    for s in sigmas:
        h = np.empty((*v.shape, 3, 3))
        for i in range(3):
            for j in range(i, 3):
                order = [0, 0, 0]
                order[i] += 1
                order[j] += 1
                d = ndimage.gaussian_filter(v64, s, order=order, mode="nearest", truncate=3.0)
                h[..., i, j] = h[..., j, i] = d * s * s * (1.0 if dark else -1.0)
        e = np.linalg.eigvalsh(h)[..., ::-1]
        e1, e2, e3 = e[..., 0], e[..., 1], e[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            ra = np.maximum(np.abs(e2), np.abs(e3)) / e1
            m = np.exp(-ra * ra / (2 * alpha * alpha)) * e1 * inv_ref
        m[(e1 <= 0) | (-e3 > e1)] = 0.0
        m[m < 1e-2] = 0.0
        out = np.maximum(out, np.minimum(m, 1.0))
    return out


@pytest.mark.parametrize(("shape", "sigmas", "dark"), [
    ((40, 57, 63), (1.0, 1.5, 2.0), True),
    ((40, 57, 63), (1.2,), False),
    ((5, 9, 70), (1.0, 1.5, 2.0), True),  # thinner than the kernels: clamped edges everywhere
])
def test_sheetness_equals_float64_reference(shape, sigmas, dark):
    v = _volume(shape, 0)
    got = sheetness(v, sigmas, dark=dark)
    want = _reference(v, sigmas, dark=dark)
    assert got.dtype == np.float32
    assert (got > 0).mean() > 0.05  # the comparison is not vacuous
    # float32 convolutions against float64 ones; values near the 0.01 cut may fall either side
    near_cut = np.abs(want - 1e-2) < 1e-4
    assert np.abs(got - want)[~near_cut].max() <= 1e-5
    for t in (0.1, 0.3):
        differ = (got > t) != (want > t)
        assert not (differ & (np.abs(want - t) > 1e-5)).any()


def test_multiscale_is_the_maximum_of_single_scales():
    # the scales share scratch buffers and prune against the running maximum: neither may
    # change the result
    v = _volume((24, 40, 48), 1)
    sig = (1.0, 1.5, 2.0)
    c = hessian.default_contrast(v)
    single = [sheetness(v, [s], contrast=c) for s in sig]
    np.testing.assert_array_equal(sheetness(v, sig, contrast=c), np.maximum.reduce(single))
    np.testing.assert_array_equal(sheetness(v, sig[::-1], contrast=c), np.maximum.reduce(single))


def _analytic_value(sigma, k, n_curved, alpha=0.5, contrast=1.0):
    """Sheetness at the vertex of v = k * (sum of n_curved squared coordinates), in closed form.

    With the sampled kernels g0, g2 (g1 is odd, so every mixed entry vanishes) the Hessian at
    the vertex is diagonal: σ² k (Σ g2 u² + (n - 1) Σ g2 Σ g0 u²) on each curved axis (its own
    parabola plus the smoothed others, seen through the small Σ g2 of a truncated kernel) and
    σ² k n Σ g2 Σ g0 u² on each flat one.
    """
    r = int(3 * sigma + 0.5)
    g0 = gaussian_kernel1d(sigma, 0, r)
    g2 = gaussian_kernel1d(sigma, 2, r)
    u2 = np.arange(-r, r + 1) ** 2
    cross = g2.sum() * float(np.sum(g0 * u2))
    curved = sigma**2 * k * (float(np.sum(g2 * u2)) + (n_curved - 1) * cross)
    flat = sigma**2 * k * n_curved * cross
    e1, e2, e3 = sorted([curved] * n_curved + [flat] * (3 - n_curved), reverse=True)
    ratio = max(abs(e2), abs(e3)) / e1
    return math.exp(-ratio**2 / (2 * alpha**2)) * e1 / (0.4 * contrast)


@pytest.mark.parametrize("n_curved", [1, 2, 3])
def test_parabolic_sheet_tube_and_bowl_match_closed_form(n_curved):
    # a parabolic trough (sheet: λ1 > 0 = λ2 = λ3), channel (tube: λ1 = λ2, a double root of
    # Smith's cubic, r = -1) and bowl (blob: triple eigenvalue, p = 0)
    shape = (25, 25, 25)
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float64) - 12 for n in shape], indexing="ij")
    k = 0.004
    v = k * (x**2 + (y**2 if n_curved > 1 else 0) + (z**2 if n_curved > 2 else 0))
    for sigma in (1.0, 1.5):
        got = sheetness(v.astype(np.float32), [sigma], contrast=0.05)[12, 12, 12]
        want = _analytic_value(sigma, k, n_curved, contrast=0.05)
        assert 0.05 < want < 1.0
        assert got == pytest.approx(want, abs=2e-5)


@njit
def _roots(r):  # pragma: no cover - compiled
    out = np.empty_like(r)
    for i in range(r.size):
        out[i] = hessian._largest_root(r[i])
    return out


def test_largest_root_equals_trigonometric_form():
    r = np.concatenate([np.linspace(-1, 1, 20001), -1 + np.logspace(-16, -1, 200),
                        1 - np.logspace(-16, -1, 200), [-1.5, 1.5]])
    want = 2 * np.cos(np.arccos(np.clip(r, -1, 1)) / 3)
    got = _roots(r)
    # acos is ill-conditioned at r = -1 (double root): there both forms are good to ~sqrt(eps)
    tol = np.where(r < -1 + 1e-6, 1e-7, 1e-12)
    assert np.all(np.abs(got - want) <= tol)
    # the polynomial guess is an upper bound (Newton from above converges monotonically)
    t = np.sqrt(0.5 * (1 + np.clip(r, -1, 1)))
    guess = np.polynomial.polynomial.polyval(t, hessian._B1_POLY)
    assert np.all(np.minimum(guess, 2.0) >= want - 1e-15)


@njit
def _per_voxel(a, norm, inv_ref, inv_2a2, orow):  # pragma: no cover - compiled
    out = orow.copy()
    for x in range(a.shape[1]):
        e1, e2, e3 = hessian._eig3(norm * np.float64(a[0, x]), norm * np.float64(a[1, x]),
                                   norm * np.float64(a[2, x]), norm * np.float64(a[3, x]),
                                   norm * np.float64(a[4, x]), norm * np.float64(a[5, x]))
        s = hessian._sheet_measure(e1, e2, e3, inv_ref, inv_2a2)
        if s > out[x]:
            out[x] = s
    return out


@pytest.mark.parametrize("start", ["zero", "high", "mixed"])
def test_row_kernel_equals_per_voxel_eigenvalues(start):
    # "zero": most voxels pass the first bound (whole-row path); "high": few do (packed path)
    rng = np.random.default_rng(5)
    nx = 4096
    a = rng.normal(0, 1, (6, nx)).astype(np.float32)
    a[:, :50] = 0.0  # zero Hessian
    a[[1, 2, 4], 50:100] = 0.0  # diagonal, with a triple eigenvalue at 50:75
    a[[0, 3, 5], 50:75] = np.float32(0.7)
    orow = {"zero": np.zeros(nx, np.float32),
            "high": rng.uniform(0.5, 1.0, nx).astype(np.float32),
            "mixed": np.where(rng.random(nx) < 0.5, 0, rng.uniform(0, 1, nx)).astype(np.float32)
            }[start]
    want = _per_voxel(a, 1.0, 0.45, 2.0, orow)
    got = orow.copy()
    w = np.empty((6, nx))
    wf = np.empty((6, nx), np.float32)
    hessian._row_sheet(*a, 1.0, 0.45, 2.0, got, w, wf, np.empty((2, nx), np.int64),
                       np.empty((2, nx), np.uint8))
    assert (got != orow).sum() > 20  # the kernel did raise some voxels
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["normal", "ties", "skewed", "half_constant", "small"])
def test_tail_percentiles_equal_numpy_bit_for_bit(kind):
    # default_contrast partitions only the tails; it must give numpy.percentile's numbers
    rng = np.random.default_rng(6)
    n = 300_001 if kind != "small" else 1000
    a = {"normal": rng.normal(0.5, 0.05, n),
         "ties": rng.integers(0, 40, n),
         "skewed": rng.random(n) ** 8,
         "half_constant": np.where(rng.random(n) < 0.5, 0.0, rng.normal(size=n)),
         "small": rng.normal(size=n)}[kind].astype(np.float32)
    want = np.percentile(a, [0.5, 99.5])
    got = hessian._percentiles(a, (0.5, 99.5))
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    v = a[: (n // 100) * 100].reshape(-1, 10, 10)  # default_contrast takes every voxel here
    assert hessian.default_contrast(v) == float(np.subtract(*np.percentile(v, [99.5, 0.5])))
