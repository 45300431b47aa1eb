"""The chunked filter and labelling on threads, local worker processes and a running cluster."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from dendritect.errors import InputError
from dendritect.parallel.chunked import label_chunked, sheetness_chunked
from dendritect.parallel.cluster import WORKER_OVERHEAD_BYTES, compute_context
from dendritect.segment.hessian import sheetness

distributed = pytest.importorskip("distributed")

SIGMAS = (1.0, 2.0)


def _volume(shape=(32, 36, 30), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(0.6, 0.03, shape).astype(np.float32)
    z, y, _ = np.indices(shape)
    v[np.abs(z - 0.5 * y - 4) < 0.7] -= 0.3
    v[:, 20, :] -= 0.25
    return v


@pytest.fixture(scope="module")
def reference():
    vol = _volume()
    sheet = sheetness(vol, SIGMAS)
    noise = ndimage.gaussian_filter(np.random.default_rng(1).normal(size=vol.shape), 1.5)
    mask = (noise > 0.05) | (sheet > 0.2)  # blobs and the crack sheets, across chunk faces
    labels, n = ndimage.label(mask)
    assert n >= 5
    return vol, sheet, mask, labels, n


def _check(vol, sheet, mask, labels, n) -> None:
    got = sheetness_chunked(da.from_array(vol, chunks=(11, 12, 10)), SIGMAS).compute()
    np.testing.assert_allclose(got, sheet, rtol=0, atol=1e-6)
    lab, m = label_chunked(da.from_array(mask, chunks=(11, 12, 10)))
    lab = lab.compute()
    assert m == n
    pairs = np.unique(np.stack([lab[mask], labels[mask]]), axis=1)
    assert pairs.shape[1] == n and not lab[~mask].any()


def test_threads_by_default(reference):
    with compute_context(memory_limit="2GB") as ctx:
        assert ctx.kind == "threads" and ctx.client is None
        assert dask.config.get("scheduler") == "threads"
        assert ctx.memory_limit_bytes == 2 * 10**9
        assert ctx.memory_per_task_bytes == 2 * 10**9 // ctx.n_parallel
        _check(*reference)


def test_local_cluster_of_two_processes(reference):
    with compute_context(workers=2, memory_limit="1GB", threads_per_worker=1) as ctx:
        assert ctx.kind == "local"
        workers = ctx.client.scheduler_info()["workers"]
        assert len(workers) == 2
        # each worker: its share of the budget plus room for the process itself
        assert all(w["memory_limit"] == 500_000_000 + WORKER_OVERHEAD_BYTES
                   for w in workers.values())
        assert ctx.client.scheduler.address.startswith("tcp://127.0.0.1")
        assert ctx.memory_per_task_bytes == 500_000_000
        _check(*reference)
        # the work really ran in both worker processes
        done = ctx.client.run(lambda dask_worker: dask_worker.state.executed_count)
        assert len(done) == 2 and all(v > 0 for v in done.values())
    assert ctx.client.status == "closed"


def test_connect_to_running_scheduler(reference):
    with distributed.LocalCluster(n_workers=2, processes=True, host="127.0.0.1",
                                  threads_per_worker=1, dashboard_address=None,
                                  memory_limit="400MB") as cluster:
        with compute_context(scheduler=cluster.scheduler_address, workers=2) as ctx:
            assert ctx.kind == "remote"
            assert ctx.n_workers == 2 and ctx.threads_per_worker == 1
            # 400 MB workers: half is left to tasks (the process itself needs the rest)
            assert ctx.memory_per_task_bytes == 200_000_000
            _check(*reference)
            done = ctx.client.run(lambda dask_worker: dask_worker.state.executed_count)
            assert sum(done.values()) > 0  # the tasks executed on the two workers
        assert not cluster.scheduler_info["workers"] == {}  # the cluster outlives the context


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"scheduler": "localhost:8786"}, "tcp://"),
    ({"scheduler": "  "}, "empty"),
    ({"scheduler": "/nonexistent/scheduler.json"}, "not found"),
    ({"workers": 0}, "--workers"),
    ({"workers": 1.5}, "--workers"),
    ({"memory_limit": "lots"}, "--memory-limit"),
    ({"workers": 4, "memory_limit": "100MB"}, "MiB each"),
])
def test_bad_options(kwargs, needle):
    with pytest.raises(InputError, match=needle), compute_context(**kwargs):
        pass


def test_unreachable_scheduler():
    with pytest.raises(InputError, match="cannot connect"), \
            compute_context(scheduler="tcp://127.0.0.1:9", timeout_s=2):
        pass
