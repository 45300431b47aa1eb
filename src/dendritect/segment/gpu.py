"""The crack filter, connected components and distance transform on a CUDA GPU (CuPy).

Same measure as :func:`dendritect.segment.hessian.sheetness`: the σ²-normalised Hessian from
Gaussian derivative filters (:func:`cupyx.scipy.ndimage.gaussian_filter` with ``order=``, the
same sampled kernels, truncated at 3σ, edges extended with the nearest value), its eigenvalues
by Smith's trigonometric closed form (Smith, "Eigenvalues of a symmetric 3×3 matrix",
Commun. ACM 4, 168, 1961) and the Descoteaux-style dark-sheet measure, fused in one float32
:class:`cupy.ElementwiseKernel` that keeps the running maximum over scales.

CuPy is optional and imported only when these functions run; use
:func:`dendritect.parallel.backend.get_backend` to pick the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dendritect.errors import InputError
from dendritect.segment.hessian import default_contrast

__all__ = [
    "SHEET_KERNEL_BODY",
    "distance_transform_edt_gpu",
    "import_cupy",
    "label_gpu",
    "sheetness_gpu",
    "to_host",
]

_TRUNCATE = 3.0  # as dendritect.segment.hessian: kernel half-width int(3σ + 0.5)

# CUDA C body of the fused eigenvalue + sheet-measure kernel, float32 throughout. Kept as plain
# C (no CUDA built-ins) so that it can be compiled and checked on a host without a GPU.
SHEET_KERNEL_BODY = r"""
const float PI_F = 3.14159265358979f;
float q = (hxx + hyy + hzz) / 3.0f;
float aq = hxx - q, dq = hyy - q, fq = hzz - q;
float p1 = hxy * hxy + hxz * hxz + hyz * hyz;
float p2 = aq * aq + dq * dq + fq * fq + 2.0f * p1;
float e1 = q, e2 = q, e3 = q;
if (p2 > 0.0f) {
    float p = sqrtf(p2 / 6.0f);
    float inv = 1.0f / p;
    float b11 = aq * inv, b22 = dq * inv, b33 = fq * inv;
    float b12 = hxy * inv, b13 = hxz * inv, b23 = hyz * inv;
    float det = b11 * (b22 * b33 - b23 * b23) - b12 * (b12 * b33 - b23 * b13)
                + b13 * (b12 * b23 - b22 * b13);
    float r = 0.5f * det;
    float phi = (r <= -1.0f) ? PI_F / 3.0f : ((r >= 1.0f) ? 0.0f : acosf(r) / 3.0f);
    e1 = q + 2.0f * p * cosf(phi);
    e3 = q + 2.0f * p * cosf(phi + 2.0f * PI_F / 3.0f);
    e2 = 3.0f * q - e1 - e3;
    if (e2 > e1) e2 = e1;
    if (e2 < e3) e2 = e3;
}
float s = 0.0f;
if (e1 > 0.0f && -e3 <= e1) {
    float mid = fmaxf(fabsf(e2), fabsf(e3));
    float ra = mid / e1;
    s = expf(-ra * ra * inv_2a2) * e1 * inv_ref;
    if (s < 1e-2f) s = 0.0f;
    if (s > 1.0f) s = 1.0f;
}
if (s > out) out = s;
"""

# (z, y, x) derivative orders of the six Hessian terms
_ORDERS = ((0, 0, 2), (0, 1, 1), (1, 0, 1), (0, 2, 0), (1, 1, 0), (2, 0, 0))

_KERNEL: Any = None


def import_cupy() -> Any:
    """CuPy, or an InputError that says how to get it (CuPy is optional)."""
    try:
        import cupy
    except ImportError:
        raise InputError("no GPU backend: install cupy (pip install 'dendritect[gpu]', which "
                         "brings cupy-cuda12x) or use the CPU") from None
    return cupy



def _sheet_kernel():
    global _KERNEL
    if _KERNEL is None:
        cupy = import_cupy()
        _KERNEL = cupy.ElementwiseKernel(
            "float32 hxx, float32 hxy, float32 hxz, float32 hyy, float32 hyz, float32 hzz, "
            "float32 inv_ref, float32 inv_2a2",
            "float32 out",
            SHEET_KERNEL_BODY,
            "dendritect_sheet_measure",
        )
    return _KERNEL


def to_host(array: Any) -> np.ndarray:
    """A NumPy copy of a CuPy (or NumPy) array."""
    return array.get() if hasattr(array, "get") else np.asarray(array)


def _to_device(array: Any, dtype=None):
    cupy = import_cupy()
    return cupy.asarray(array, dtype=dtype)


def sheetness_gpu(volume: Any, sigmas_vox: float | Sequence[float], *, dark: bool = True,
                  contrast: float | None = None, alpha: float = 0.5):
    """Multiscale sheetness of dark (or bright) thin sheets on the GPU, in [0, 1].

    Parameters
    ----------
    volume : numpy.ndarray or cupy.ndarray
        3D (z, y, x) volume, any real dtype (computed in float32).
    sigmas_vox : float or sequence of float
        Gaussian scales in voxels.
    dark : bool
        Look for dark sheets (cracks) rather than bright ones.
    contrast : float, optional
        Intensity drop of an empty crack; default the 0.5–99.5 percentile range, on the same
        sub-sample as the CPU filter.
    alpha : float
        Tolerance on the plate ratio (Frangi's α).

    Returns
    -------
    cupy.ndarray
        float32, the volume's shape (on the device; see :func:`to_host`).
    """
    cupy = import_cupy()
    from cupyx.scipy import ndimage as cndi

    vol = _to_device(volume, np.float32)
    if vol.ndim != 3 or vol.size == 0:
        raise InputError(f"sheetness: expected a non-empty 3D (z, y, x) volume, got {vol.shape}")
    sig = [float(s) for s in np.atleast_1d(np.asarray(sigmas_vox, dtype=np.float64))]
    if not sig or any(not np.isfinite(s) or s <= 0 for s in sig):
        raise InputError(f"sheetness: sigmas must be positive numbers, got {sigmas_vox!r}")
    if alpha <= 0:
        raise InputError(f"sheetness: alpha must be positive, got {alpha}")
    if not bool(cupy.isfinite(vol).all()):
        raise InputError("sheetness: the volume holds NaN or infinite values")
    if contrast is None:
        contrast = default_contrast(vol)
    out = cupy.zeros(vol.shape, dtype=cupy.float32)
    if not np.isfinite(contrast) or contrast <= 0:
        return out
    kernel = _sheet_kernel()
    inv_ref = np.float32(1.0 / (0.4 * contrast))
    inv_2a2 = np.float32(1.0 / (2.0 * alpha * alpha))
    for s in sig:
        norm = (1.0 if dark else -1.0) * s * s
        terms = []
        for order in _ORDERS:
            h = cndi.gaussian_filter(vol, s, order=order, mode="nearest", truncate=_TRUNCATE)
            h *= np.float32(norm)
            terms.append(h)
        kernel(*terms, inv_ref, inv_2a2, out)
        del terms
    return out


def label_gpu(mask: Any, *, connectivity: int = 1):
    """Connected components on the GPU (:func:`cupyx.scipy.ndimage.label`).

    Returns
    -------
    labels : cupy.ndarray
        int32 labels, 0 = background.
    n : int
        Number of components.
    """
    from cupyx.scipy import ndimage as cndi
    from scipy import ndimage

    m = _to_device(mask).astype(bool)
    if not 1 <= int(connectivity) <= m.ndim:
        raise InputError(f"label: connectivity must be 1..{m.ndim}, got {connectivity}")
    st = ndimage.generate_binary_structure(m.ndim, int(connectivity))
    lab, n = cndi.label(m, structure=_to_device(st))
    return lab.astype(np.int32, copy=False), int(n)


def distance_transform_edt_gpu(mask: Any, *, sampling=None):
    """Euclidean distance to the background on the GPU, float32 (on the device)."""
    from cupyx.scipy import ndimage as cndi

    m = _to_device(mask).astype(bool)
    return cndi.distance_transform_edt(m, sampling=sampling).astype(np.float32, copy=False)
