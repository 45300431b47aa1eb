"""
Analyse a twin series step by step, in Python
=============================================

Simulates a small operando twin (:func:`dendritect.synthetic.simulate`, the ``demo`` preset),
then runs the stages of ``dendritect analyze`` one by one with the library's public
functions, as a notebook would: open the series lazily, find the cell on step 0, register
every step onto step 0 and match its grey levels, segment the cracks, track them across steps
and measure each step. It plots the measured crack front depth against the twin's truth and
writes ``analyse_twin.png`` (or the path given).

``dendritect analyze`` does the same with bounded memory, resumable, and adds the rules that
only a whole series allows (the anode side judged on later steps, cracks rooted in any step,
the forecast); see :func:`dendritect.pipeline.analyze`. Its own stages are public functions
too, to call one by one on the same results: :func:`~dendritect.pipeline.prepare_cell`,
:func:`~dendritect.pipeline.segment_steps`, :func:`~dendritect.pipeline.track_and_measure`,
:func:`~dendritect.pipeline.predict_short` and :func:`~dendritect.pipeline.build_summary`.

Run from the repository root: ``python examples/analyse_twin.py [OUT.png]``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from dendritect.io import open_series
from dendritect.measure import measure_step
from dendritect.preprocess import apply_shift, estimate_shift, find_cell, match_intensity
from dendritect.segment import segment_step
from dendritect.synthetic import simulate
from dendritect.track import track_cracks


def analyse(dataset: Path) -> dict[str, np.ndarray]:
    """Front depth (µm) and crack voxels of every step of a series, stage by stage."""
    series = open_series(dataset)  # lazy (t, z, y, x), voxel size and times from dataset.json
    voxel_size_um = series.voxel_size_um
    reference = series.step(0).astype(np.float32)
    anode = json.loads((dataset / "dataset.json").read_text())["anode"]
    geometry = find_cell(reference, voxel_size_um, anode=anode)
    # grey levels are matched on the electrolyte and a few planes of electrode beside it
    match_on = geometry.inside(0, reference.shape[0], margin_vox=4.0)

    masks = []
    for t in range(series.n_steps):
        moving = series.step(t)
        shift_vox = estimate_shift(reference, moving)  # reference first, as in skimage
        registered = match_intensity(apply_shift(moving, shift_vox), reference, mask=match_on)
        seg = segment_step(registered, geometry, reference=None if t == 0 else reference,
                           previous=masks[-1] if masks else None)
        masks.append(seg.crack)

    front_um, n_cracks = [], []
    for crack, labels in zip(masks, track_cracks(masks), strict=True):
        row = measure_step(crack, geometry, voxel_size_um)
        front_um.append(row["front_depth_um"])
        n_cracks.append(int(np.unique(labels[labels > 0]).size))
    return {"time_s": np.asarray(series.times_s, float), "front_depth_um": np.asarray(front_um),
            "n_tracked": np.asarray(n_cracks)}


def main(out: Path, n_steps: int | None = None) -> dict[str, np.ndarray]:
    """Simulate, analyse, plot into ``out``; ``n_steps`` shortens the preset's series."""
    extra = {} if n_steps is None else {"n_steps": int(n_steps)}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = simulate(Path(tmp) / "twin", "demo", seed=0, **extra)
        result = analyse(dataset)
        truth = json.loads((dataset / "truth" / "truth.json").read_text())
    true_um = np.asarray([s["front_depth_um"] for s in truth["steps"]], float)

    fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
    hours = result["time_s"] / 3600
    ax.plot(hours, true_um, "k--", label="twin truth")
    ax.plot(hours, result["front_depth_um"], "o-", label="measured")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("crack front depth (µm)")
    ax.legend()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    result["true_front_depth_um"] = true_um
    return result


if __name__ == "__main__":
    got = main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("analyse_twin.png"))
    for t, (m, tr) in enumerate(zip(got["front_depth_um"], got["true_front_depth_um"],
                                    strict=True)):
        print(f"step {t}: front {m:6.1f} µm (truth {tr:6.1f} µm)")
