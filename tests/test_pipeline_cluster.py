"""Later steps registered and aligned on a real LocalCluster while earlier ones are segmented:
the same results as the run in one process."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pandas as pd
import pytest
import zarr


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    from dendritect.synthetic import simulate

    d = tmp_path_factory.mktemp("twin")
    simulate(d / "data", "demo", seed=3, shape_zyx=(48, 80, 80), n_steps=5, overwrite=True)
    return d


def test_steps_aligned_on_a_cluster_give_the_same_results(twin, monkeypatch):
    from distributed import get_task_stream

    import dendritect.parallel.cluster as cluster
    from dendritect.pipeline import analyze

    analyze(twin / "data", twin / "plain", overwrite=True, progress=False, report=False)

    seen: dict = {}
    real = cluster.compute_context

    @contextlib.contextmanager
    def recorded(*args, **kwargs):
        with real(*args, **kwargs) as ctx, get_task_stream(ctx.client) as ts:
            seen["kind"] = ctx.kind
            yield ctx
        seen["keys"] = [str(t["key"]) for t in ts.data]

    monkeypatch.setattr(cluster, "compute_context", recorded)
    analyze(twin / "data", twin / "cluster", overwrite=True, progress=False, report=False,
            workers=2, memory_limit="3GB")
    # the four later steps were aligned by the workers (one task each)
    assert seen["kind"] == "local"
    assert sum("dendritect-align-step" in k for k in seen["keys"]) == 4
    a = zarr.open(str(twin / "plain" / "cracks.zarr"), mode="r")
    b = zarr.open(str(twin / "cluster" / "cracks.zarr"), mode="r")
    assert np.asarray(a["crack"]).any()
    for name in ("crack", "labels", "time_of_arrival"):
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))
    pd.testing.assert_frame_equal(pd.read_csv(twin / "plain" / "metrics.csv"),
                                  pd.read_csv(twin / "cluster" / "metrics.csv"))
    pd.testing.assert_frame_equal(pd.read_csv(twin / "plain" / "cracks.csv"),
                                  pd.read_csv(twin / "cluster" / "cracks.csv"))
    sa, sb = (json.loads((twin / k / "summary.json").read_text()) for k in ("plain", "cluster"))
    assert sa["registration_shifts_vox"] == sb["registration_shifts_vox"]
    assert sa["span_index"] == sb["span_index"]
