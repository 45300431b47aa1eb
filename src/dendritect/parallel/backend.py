"""Choose where the heavy kernels run: CPU (numba, SciPy) or a CUDA GPU (CuPy).

Both backends take and return NumPy arrays, so a caller changes nothing but ``device``:

>>> be = get_backend("auto")          # GPU when CuPy and a CUDA device are there, else CPU
>>> s = be.sheetness(volume, (1.0, 1.5, 2.0))
>>> labels, n = be.label(s > 0.3)

CuPy is optional (``pip install "dendritect[gpu]"``) and imported only when a GPU is asked for.
The environment variable ``DENDRITECT_DEVICE`` (``cpu``/``gpu``/``auto``) sets the default.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from dendritect.errors import InputError

__all__ = ["DEVICES", "Backend", "CPUBackend", "GPUBackend", "get_backend", "gpu_available"]

DEVICES = ("auto", "cpu", "gpu")


class Backend:
    """Common interface of the compute backends (NumPy in, NumPy out)."""

    name = "base"

    def sheetness(self, volume: np.ndarray, sigmas_vox: float | Sequence[float], *,
                  dark: bool = True, contrast: float | None = None,
                  alpha: float = 0.5) -> np.ndarray:
        """Multiscale sheetness, as :func:`dendritect.segment.hessian.sheetness`."""
        raise NotImplementedError

    def label(self, mask: np.ndarray, *, connectivity: int = 1) -> tuple[np.ndarray, int]:
        """Connected components (int32 labels, count), as :func:`scipy.ndimage.label`."""
        raise NotImplementedError

    def distance_transform_edt(self, mask: np.ndarray, *, sampling=None) -> np.ndarray:
        """Euclidean distance of each foreground voxel to the background (float32)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<dendritect backend {self.name}>"


class CPUBackend(Backend):
    """numba kernels and SciPy on the host."""

    name = "cpu"

    def sheetness(self, volume, sigmas_vox, *, dark=True, contrast=None, alpha=0.5):
        from dendritect.segment.hessian import sheetness

        return sheetness(volume, sigmas_vox, dark=dark, contrast=contrast, alpha=alpha)

    def label(self, mask, *, connectivity=1):
        from scipy import ndimage

        m = np.asarray(mask).astype(bool)
        st = ndimage.generate_binary_structure(m.ndim, int(connectivity))
        lab, n = ndimage.label(m, structure=st, output=np.int32)
        return lab, int(n)

    def distance_transform_edt(self, mask, *, sampling=None):
        from scipy import ndimage

        m = np.asarray(mask).astype(bool)
        return ndimage.distance_transform_edt(m, sampling=sampling).astype(np.float32)


@dataclass(frozen=True)
class GPUBackend(Backend):
    """CuPy kernels on a CUDA device (:mod:`dendritect.segment.gpu`)."""

    device_id: int = 0
    name = "gpu"

    def _run(self, fn, *args, **kwargs):
        import cupy

        from dendritect.segment import gpu

        with cupy.cuda.Device(self.device_id):
            out = getattr(gpu, fn)(*args, **kwargs)
            if isinstance(out, tuple):
                return tuple(gpu.to_host(o) if hasattr(o, "get") else o for o in out)
            return gpu.to_host(out)

    def sheetness(self, volume, sigmas_vox, *, dark=True, contrast=None, alpha=0.5):
        return self._run("sheetness_gpu", volume, sigmas_vox, dark=dark, contrast=contrast,
                         alpha=alpha)

    def label(self, mask, *, connectivity=1):
        lab, n = self._run("label_gpu", mask, connectivity=connectivity)
        return lab, int(n)

    def distance_transform_edt(self, mask, *, sampling=None):
        return self._run("distance_transform_edt_gpu", mask, sampling=sampling)


def _import_cupy() -> Any:
    """CuPy, or an InputError (:func:`dendritect.segment.gpu.import_cupy`)."""
    from dendritect.segment.gpu import import_cupy

    return import_cupy()


def _device_count(cupy: Any) -> int:
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # CUDA driver missing or broken: CuPy raises its own runtime errors
        return 0


@lru_cache(maxsize=1)
def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cupy = _import_cupy()
    except InputError:
        return False
    return _device_count(cupy) > 0


def get_backend(device: str | None = None) -> Backend:
    """The compute backend for ``device``.

    Parameters
    ----------
    device : {"auto", "cpu", "gpu"} or None
        ``cpu``: numba and SciPy. ``gpu``: CuPy on CUDA device 0 (``gpu:N`` for device N).
        ``auto``: the GPU when CuPy and a device are present, else the CPU. None: the
        ``DENDRITECT_DEVICE`` environment variable, else ``auto``.

    Returns
    -------
    Backend

    Raises
    ------
    InputError
        On an unknown device, or ``gpu`` without CuPy or without a CUDA device.
    """
    if device is None:
        device = os.environ.get("DENDRITECT_DEVICE", "auto")
    text = str(device).strip().lower()
    kind, _, index = text.partition(":")
    if kind not in DEVICES or (index and (kind != "gpu" or not index.isdigit())):
        raise InputError(f"--device must be auto, cpu or gpu (gpu:N for device N), got {device!r}")
    if kind == "cpu":
        return CPUBackend()
    if kind == "auto":
        return GPUBackend() if gpu_available() else CPUBackend()
    cupy = _import_cupy()
    n = _device_count(cupy)
    if n == 0:
        raise InputError("no CUDA device: CuPy is installed but sees no GPU; use --device cpu")
    dev = int(index or 0)
    if dev >= n:
        raise InputError(f"--device {device}: only {n} CUDA device(s) (0..{n - 1})")
    return GPUBackend(device_id=dev)
