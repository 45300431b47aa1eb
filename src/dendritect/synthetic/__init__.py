"""The synthetic operando cell: CT scans of a cracking solid-state battery, with ground truth.

No lab can share its operando CT freely, and no segmentation can be scored without truth: this
twin is the demo data, the test data and the benchmark of every analysis method.

>>> from dendritect.synthetic import generate, simulate
>>> cell = generate("demo", seed=0, n_steps=3)          # arrays in memory   # doctest: +SKIP
>>> simulate("out/demo", "demo", seed=0)                 # dataset folder     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dendritect.synthetic.cell import LABELS
from dendritect.synthetic.presets import PRESETS, resolve_params
from dendritect.synthetic.twin import (
    FARADAY_C_MOL,
    OMEGA_LI_M3_MOL,
    SyntheticCell,
    generate,
    li_volume_budget_um3,
)
from dendritect.synthetic.writer import check_out_dir, write_dataset

__all__ = [
    "FARADAY_C_MOL",
    "LABELS",
    "OMEGA_LI_M3_MOL",
    "PRESETS",
    "SyntheticCell",
    "generate",
    "li_volume_budget_um3",
    "resolve_params",
    "simulate",
    "write_dataset",
]


def simulate(out_dir: str | Path, preset: str = "demo", *, seed: int = 0, ct: str | None = None,
             overwrite: bool = False, **overrides: Any) -> Path:
    """Generate a synthetic operando dataset and write it to ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Dataset folder to create (CONTRACT.md layout). An existing non-empty folder is refused
        unless ``overwrite``.
    preset : str
        ``"demo"`` (small, quick), ``"paper"`` or ``"hard"``.
    seed : int
        Random seed: the same seed writes the same bytes.
    ct : {"fbp", "fast"}, optional
        Rendering mode; default the preset's.
    overwrite : bool
        Replace an existing non-empty ``out_dir``.
    **overrides
        Preset parameters, e.g. ``shape_zyx=(48, 96, 96)``, ``n_steps=5``.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    check_out_dir(out_dir, overwrite)  # fail before the work, not after
    cell = generate(preset, seed=seed, ct=ct, **overrides)
    return write_dataset(cell, out_dir, overwrite=overwrite)
