"""Backend selection, the CPU fallback, and the CuPy kernels (compared on a GPU when present)."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.parallel import backend as B
from dendritect.segment import hessian
from dendritect.segment.gpu import SHEET_KERNEL_BODY
from dendritect.segment.hessian import sheetness


@pytest.fixture
def no_cupy(monkeypatch):
    """Pretend CuPy is not installed."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    B.gpu_available.cache_clear()
    yield
    B.gpu_available.cache_clear()


@pytest.fixture
def cupy_without_device(monkeypatch):
    """A CuPy that imports but sees no CUDA device (driver missing)."""
    def count():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    B.gpu_available.cache_clear()
    yield
    B.gpu_available.cache_clear()


def _volume(shape=(30, 32, 34), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(0.6, 0.03, shape).astype(np.float32)
    v[15] -= 0.3
    v[:, :, 10] -= 0.2
    return v


def test_gpu_without_cupy_says_how_to_install(no_cupy):
    with pytest.raises(InputError, match="no GPU backend: install cupy"):
        B.get_backend("gpu")
    assert B.get_backend("auto").name == "cpu"
    assert not B.gpu_available()


def test_gpu_without_device(cupy_without_device):
    with pytest.raises(InputError, match="no CUDA device"):
        B.get_backend("gpu")
    assert B.get_backend("auto").name == "cpu"


def test_device_names_and_environment(monkeypatch, no_cupy):
    assert B.get_backend("cpu").name == "cpu"
    assert B.get_backend(" CPU ").name == "cpu"
    for bad in ("tpu", "gpu:x", "cpu:1", ""):
        with pytest.raises(InputError, match="--device"):
            B.get_backend(bad)
    monkeypatch.setenv("DENDRITECT_DEVICE", "gpu")
    with pytest.raises(InputError, match="install cupy"):
        B.get_backend(None)
    monkeypatch.setenv("DENDRITECT_DEVICE", "cpu")
    assert B.get_backend(None).name == "cpu"


def test_chunked_filter_fails_early_without_gpu(no_cupy):
    from dendritect.parallel.chunked import sheetness_chunked

    with pytest.raises(InputError, match="no GPU backend"):
        sheetness_chunked(_volume(), (1.0,), device="gpu")


def test_cpu_backend_matches_reference_implementations():
    be = B.get_backend("cpu")
    vol = _volume()
    np.testing.assert_array_equal(be.sheetness(vol, (1.0, 2.0)), sheetness(vol, (1.0, 2.0)))
    mask = vol < 0.5
    lab, n = be.label(mask, connectivity=3)
    ref, n_ref = ndimage.label(mask, ndimage.generate_binary_structure(3, 3))
    assert n == n_ref and lab.dtype == np.int32
    np.testing.assert_array_equal(lab, ref)
    edt = be.distance_transform_edt(mask, sampling=(2.0, 1.0, 1.0))
    assert edt.dtype == np.float32
    np.testing.assert_allclose(edt, ndimage.distance_transform_edt(mask, sampling=(2, 1, 1)),
                               rtol=1e-6)


# --- the CUDA kernel's body is plain C: compile it on the host and check it against numba ---

_C_WRAPPER = """
#include <math.h>
void sheet(const float *h, long n, float inv_ref, float inv_2a2, float *o) {
    for (long i = 0; i < n; ++i) {
        float hxx = h[6*i], hxy = h[6*i+1], hxz = h[6*i+2];
        float hyy = h[6*i+3], hyz = h[6*i+4], hzz = h[6*i+5];
        float out = o[i];
        { %s }
        o[i] = out;
    }
}
"""


@pytest.fixture(scope="module")
def host_kernel(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to check the CUDA kernel body on the host")
    d = tmp_path_factory.mktemp("kernel")
    src = d / "sheet.c"
    lib = d / "sheet.so"
    src.write_text(_C_WRAPPER % SHEET_KERNEL_BODY)
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"], check=True)
    dll = ctypes.CDLL(str(lib))
    dll.sheet.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_float, ctypes.c_float,
                          ctypes.c_void_p]

    def run(h: np.ndarray, inv_ref: float, inv_2a2: float, out: np.ndarray) -> np.ndarray:
        h = np.ascontiguousarray(h, np.float32)
        o = np.ascontiguousarray(out, np.float32).copy()
        dll.sheet(h.ctypes.data, len(o), inv_ref, inv_2a2, o.ctypes.data)
        return o

    return run


def _numba_measure(h: np.ndarray, inv_ref: float, inv_2a2: float) -> np.ndarray:
    out = np.empty(len(h), np.float64)
    for i, (a, b, c, d, e, f) in enumerate(h.astype(np.float64)):
        e1, e2, e3 = hessian._eig3(a, b, c, d, e, f)
        out[i] = hessian._sheet_measure(e1, e2, e3, inv_ref, inv_2a2)
    return out


def test_kernel_body_eigenvalues_match_numpy(host_kernel):
    """With the measure reduced to λ1 (α huge, reference 1), the kernel gives eigvalsh's λ1."""
    rng = np.random.default_rng(0)
    m = rng.normal(size=(2000, 3, 3))
    m = m + m.transpose(0, 2, 1)
    m[:, 0, 0] += 6.0  # a dominant positive direction, as across a dark sheet
    h = np.stack([m[:, 0, 0], m[:, 0, 1], m[:, 0, 2], m[:, 1, 1], m[:, 1, 2], m[:, 2, 2]], 1)
    lam = np.linalg.eigvalsh(m)  # ascending
    got = host_kernel(h, 0.01, 1e-12, np.zeros(len(h)))
    expect = np.where((lam[:, 2] > 0) & (-lam[:, 0] <= lam[:, 2]), lam[:, 2] * 0.01, 0.0)
    expect = np.where(expect < 1e-2, 0.0, np.minimum(expect, 1.0))
    near = np.abs(lam[:, 2] * 0.01 - 1e-2) < 1e-4  # rounding may flip the 0.01 cut-off
    np.testing.assert_allclose(got[~near], expect[~near], rtol=2e-5, atol=1e-6)


def test_kernel_body_matches_cpu_sheet_measure(host_kernel):
    rng = np.random.default_rng(1)
    n = 5000
    h = rng.normal(scale=0.3, size=(n, 6))
    h[:, 0] += rng.uniform(0, 1.0, n)  # from nothing to a strong sheet
    inv_ref, inv_2a2 = 1.0 / (0.4 * 0.5), 2.0
    ref = _numba_measure(h.astype(np.float32), inv_ref, inv_2a2)
    got = host_kernel(h, inv_ref, inv_2a2, np.zeros(n))
    assert (ref > 0.3).sum() > 200 and (ref == 0).sum() > 200  # both regimes are exercised
    ok = np.abs(got - ref) <= 1e-4
    # float32 versus float64 arithmetic may only differ at the 0.01 reporting cut-off
    assert np.all(ok | (np.abs(ref - 0.01) < 1e-3) | (np.abs(got - 0.01) < 1e-3))
    # the running maximum is kept
    prev = np.full(n, 0.5, np.float32)
    np.testing.assert_allclose(host_kernel(h, inv_ref, inv_2a2, prev), np.maximum(got, 0.5))


# --- on a CUDA device ---

gpu = pytest.mark.skipif(not B.gpu_available(), reason="no CUDA device")


@gpu
def test_gpu_sheetness_matches_cpu():
    vol = _volume((48, 52, 56))
    be = B.get_backend("gpu")
    for dark in (True, False):
        cpu = sheetness(vol, (1.0, 1.5, 2.0), dark=dark)
        got = be.sheetness(vol, (1.0, 1.5, 2.0), dark=dark)
        assert got.dtype == np.float32 and got.shape == vol.shape
        diff = np.abs(got - cpu)
        # float32 everywhere; values may differ only by rounding or at the 0.01 cut-off
        assert np.all((diff <= 2e-4) | (np.minimum(got, cpu) <= 0.011))
        assert (cpu > 0.3).sum() > 100


@gpu
def test_gpu_label_and_distance_match_scipy():
    be = B.get_backend("gpu")
    mask = ndimage.gaussian_filter(np.random.default_rng(2).normal(size=(40, 40, 40)), 1.5) > 0
    lab, n = be.label(mask)
    ref, n_ref = ndimage.label(mask)
    assert n == n_ref
    pairs = np.unique(np.stack([lab[mask], ref[mask]]), axis=1)
    assert pairs.shape[1] == n
    np.testing.assert_allclose(be.distance_transform_edt(mask),
                               ndimage.distance_transform_edt(mask), rtol=1e-5, atol=1e-5)


@gpu
def test_chunked_filter_on_gpu_matches_cpu():
    from dendritect.parallel.chunked import sheetness_chunked

    vol = _volume((40, 40, 40))
    cpu = sheetness_chunked(vol, (1.0, 2.0), chunks=16).compute()
    got = sheetness_chunked(vol, (1.0, 2.0), chunks=16, device="gpu").compute(
        scheduler="synchronous")
    diff = np.abs(got - cpu)
    assert np.all((diff <= 2e-4) | (np.minimum(got, cpu) <= 0.011))


def test_compute_context_checks_the_device_first(no_cupy):
    from dendritect.parallel import compute_context, current_context

    with pytest.raises(InputError, match="no GPU backend"), compute_context(device="gpu"):
        pass
    assert current_context() is None
    with compute_context(device="auto") as ctx:
        assert ctx.device == "cpu" and current_context() is ctx
    assert current_context() is None
