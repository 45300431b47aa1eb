"""A small results folder (CONTRACT "Results layout") with known content, for the report tests.

A planar crack grows from the anode interface (top, z = 6 µm) down through a 20 µm electrolyte by
5 µm per step and spans it at step 4; a second, shallow crack appears at step 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

NASTY = "<script>alert(1)</script>"
SHAPE = (32, 40, 40)
VOXEL_UM = (1.0, 0.8, 0.8)
Z_ANODE, Z_CATHODE = 6, 26


def crack_masks(n_steps: int = 5) -> np.ndarray:
    """(t,z,y,x) uint8: crack 1 (plane x = 20) grows 5 voxels per step; crack 2 from step 2."""
    m = np.zeros((n_steps, *SHAPE), np.uint8)
    for t in range(1, n_steps):
        m[t, Z_ANODE:min(Z_ANODE + 5 * t, Z_CATHODE), 10:30, 20] = 1
        if t >= 2:
            m[t, Z_ANODE:Z_ANODE + 3, 12, 4:12] = 1
    return m


def make_results_dir(root: Path, *, n_steps: int = 5, input_name: str = f"scan_{NASTY}.h5",
                     with_echem: bool = True, with_previews: bool = True) -> Path:
    """Write a results folder into ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    crack = crack_masks(n_steps)
    times = np.arange(n_steps) * 600.0
    labels = np.zeros(crack.shape, np.int32)
    labels[:, :, 10:30, 20] = crack[:, :, 10:30, 20]
    labels[:, :, 12, 4:12] = 2 * crack[:, :, 12, 4:12]
    toa = np.full(SHAPE, -1, np.int16)
    for t in range(n_steps):
        toa[(crack[t] > 0) & (toa < 0)] = t

    grp = zarr.open_group(str(root / "cracks.zarr"), mode="w")
    grp.create_array("crack", data=crack, chunks=(1, *SHAPE))
    grp.create_array("time_of_arrival", data=toa, chunks=SHAPE)
    grp.create_array("labels", data=labels, chunks=(1, *SHAPE))

    if with_previews:
        img = np.full((n_steps, *SHAPE), 0.3, np.float32)
        img[:, :Z_ANODE] = 0.15
        img[:, Z_ANODE:Z_CATHODE] = 0.6
        img += rng.normal(0, 0.03, img.shape).astype(np.float32)
        img[crack > 0] = 0.1
        zc, yc, xc = (Z_ANODE + Z_CATHODE) // 2, 20, 20
        pg = zarr.open_group(str(root / "previews.zarr"), mode="w")
        pg.create_array("yx", data=img[:, zc], attributes={"z_index": zc})
        pg.create_array("zx", data=img[:, :, yc], attributes={"y_index": yc})
        pg.create_array("zy", data=img[:, :, :, xc], attributes={"x_index": xc})

    dz, dy, dx = VOXEL_UM
    rows, crows = [], []
    for t in range(n_steps):
        depth = 0.0
        if crack[t].any():
            zs = np.nonzero(crack[t].any(axis=(1, 2)))[0]
            depth = float((zs.max() + 1 - Z_ANODE) * dz)
        row = {"t_index": t, "time_s": times[t], "front_depth_um": depth,
               "li_front_depth_um": 0.5 * depth if t >= 2 else np.nan,
               "crack_volume_um3": float(crack[t].sum() * dz * dy * dx),
               "crack_area_um2": float(crack[t].sum() * dz * dy),
               "n_cracks": int(len(np.unique(labels[t])) - 1),
               "spanning": int(depth >= Z_CATHODE - Z_ANODE)}
        if with_echem:
            row["voltage_V"] = 0.05 + 0.01 * t if t < n_steps - 1 else 0.001
            row["charge_mAh"] = 0.1 * t
        rows.append(row)
        for cid in np.unique(labels[t])[1:]:
            sel = labels[t] == cid
            zs = np.nonzero(sel.any(axis=(1, 2)))[0]
            crows.append({"t_index": t, "time_s": times[t], "crack_id": int(cid),
                          "front_depth_um": float((zs.max() + 1 - Z_ANODE) * dz),
                          "projected_area_um2": float(sel.sum() * dz * dy),
                          "surface_area_um2": float(2 * sel.sum() * dz * dy),
                          "volume_um3": float(sel.sum() * dz * dy * dx),
                          "aperture_mean_um": dx, "aperture_max_um": dx,
                          "normal_angle_deg": 90.0, "kind": "transgranular" if cid == 1 else NASTY,
                          "origin_edge_distance_um": 8.0, "front_speed_um_s": 5.0 / 600.0,
                          "li_front_depth_um": np.nan})
    pd.DataFrame(rows).to_csv(root / "metrics.csv", index=False)
    pd.DataFrame(crows).to_csv(root / "cracks.csv", index=False)
    span = next((r["t_index"] for r in rows if r["spanning"]), None)
    summary = {
        "dendritect_version": "0.1.0", "input": f"/data/{input_name}",
        "voxel_size_um": list(VOXEL_UM), "anode": "top",
        "electrolyte_interfaces_um": [Z_ANODE * dz, Z_CATHODE * dz],
        "registration_shifts_vox": [[0.0, 0.0, 0.0]] * n_steps, "span_index": span,
        "short_circuit": {"echem_time_s": float(times[-1]) + 60 if with_echem else None,
                          "forecast_time_s": 2350.0, "forecast_from_index": 3,
                          "forecast_sigma_s": 180.0},
        "parameters": {"segment": {"sigmas_vox": [1.0, 2.0], "note": NASTY},
                       "anode": "auto", "echem": f"/data/{NASTY}.csv" if with_echem else None},
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return root


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return make_results_dir(tmp_path / "results")


def test_fixture_follows_the_results_layout(results_dir: Path) -> None:
    from dendritect.report import load_results

    res = load_results(results_dir)
    assert res.n_steps == 5
    assert res.summary["span_index"] == 4
    toa = np.asarray(res.time_of_arrival[...])
    assert toa.dtype == np.int16
    assert toa.max() == 4 and toa.min() == -1
    assert res.preview_index == {"yx": 16, "zx": 20, "zy": 20}
    assert res.thickness_um == pytest.approx(20.0)
