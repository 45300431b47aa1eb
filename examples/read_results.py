"""
A results folder in a notebook: xarray, pandas and the registered scans
=======================================================================

Analyses a small twin cell (or takes the results folder given), then reads it back with
:func:`dendritect.read_results`: the crack volumes as a lazy xarray Dataset on coordinates in
seconds and micrometres, the tables as pandas DataFrames. Prints the crack front and volume per
step, the crack fraction of every 20 µm of depth below the anode in the last step, and the
grey level of the registered scans inside and outside the cracks.

Run from the repository root: ``python examples/read_results.py [RESULTS_DIR]`` (a few seconds
without an argument).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import dendritect
from dendritect.errors import InputError
from dendritect.reading import registered_scans


def demo_results(root: Path) -> Path:
    """Simulate a tiny twin cell and analyse it (about 5 s)."""
    from dendritect.pipeline import analyze
    from dendritect.synthetic import simulate

    cell = simulate(root / "cell", "demo", seed=0, shape_zyx=(48, 96, 96), n_steps=3)
    analyze(cell, root / "results", report=False, progress=False)
    return root / "results"


def main(results: Path) -> None:
    ds = dendritect.read_results(results)
    print(ds)

    # The tables: one row per step, one row per crack per step.
    metrics = ds.attrs["metrics"]
    print(metrics[["t_index", "time_s", "front_depth_um", "crack_volume_um3", "n_cracks"]])
    print(ds.attrs["cracks"].groupby("crack_id")["volume_um3"].max().rename("max volume_um3"))

    # The volumes are read lazily: this reads one step of the crack mask.
    last = ds.crack.isel(t=-1)
    summary = ds.attrs["summary"]
    z_anode, _ = summary["electrolyte_interfaces_um"]
    sign = 1.0 if summary["anode"] == "top" else -1.0    # the anode at low z, or at high z
    depth = (sign * (ds.z - z_anode)).rename("depth_um")
    inside = last.where(depth >= 0, drop=True)
    band = (depth.where(depth >= 0, drop=True) // 20 * 20).rename("depth_band_um")
    fraction = inside.mean(("y", "x")).groupby(band).mean().compute()
    print("crack fraction of the last step per 20 µm of depth below the anode:")
    print(fraction.to_series().round(4))

    # The input scans, shifted onto step 0, next to the crack mask (one step read).
    try:
        scans = registered_scans(results)
    except InputError as exc:   # the input has moved: skip this part
        print(f"registered scans not available: {exc}")
        return
    step = np.asarray(scans[-1])
    mask = np.asarray(last) > 0
    if mask.any():
        print(f"grey level in cracks {step[mask].mean():.1f}, "
              f"elsewhere {step[~mask].mean():.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(demo_results(Path(tmp)))
