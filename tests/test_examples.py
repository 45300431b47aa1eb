"""The gallery examples run, and what they show is right."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_analyse_twin_step_by_step(tmp_path):
    out = tmp_path / "analyse_twin.png"
    got = _load("analyse_twin").main(out, n_steps=4)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    front, truth = got["front_depth_um"], got["true_front_depth_um"]
    assert front.shape == truth.shape == (4,)
    assert front[0] == 0 and np.all(np.diff(front) > 0)  # the cracks grow step after step
    # within one and a half planes of the twin's truth (demo voxels: 4 µm)
    assert np.abs(front - truth).max() <= 6.0, (front, truth)
    assert got["n_tracked"][-1] >= 1
