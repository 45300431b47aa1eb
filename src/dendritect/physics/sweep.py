"""Parameter sweeps over current density × stack pressure: time to short or CCD."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dendritect.atomic import atomic_write
from dendritect.errors import InputError
from dendritect.physics.closed_form import critical_current_density
from dendritect.physics.ecm import simulate
from dendritect.physics.materials import Material

__all__ = ["QUANTITIES", "plot_sweep", "sweep", "write_sweep"]

QUANTITIES = ("t_short", "t_span", "t_initiation", "ccd")


def sweep(quantity: str = "t_short", *, electrolyte: str | Material = "Li6PS5Cl",
          current_densities_mA_cm2: np.ndarray | list[float] | None = None,
          stack_pressures_MPa: np.ndarray | list[float] | None = None,
          thickness_um: float = 500.0, flaw_um: float = 5.0, applied_stress_MPa: float = 0.0,
          duration_s: float = 36000.0, temperature_C: float = 25.0,
          overrides: dict | None = None) -> pd.DataFrame:
    """Evaluate ``quantity`` on the grid of current densities × stack pressures.

    Returns a long table with columns ``current_density_mA_cm2, stack_pressure_MPa`` and
    the quantity (``t_short_s``, ``t_span_s``, ``t_initiation_s``: NaN when not reached in
    ``duration_s``; for ``ccd``: ``ccd_margin`` = CCD / current density (above 1 the cell
    is safe), ``ccd_mA_cm2`` and ``stripping_limit_mA_cm2``, with ``flaw_um`` as the pore).
    """
    if quantity not in QUANTITIES:
        raise InputError(f"quantity: use one of {', '.join(QUANTITIES)}, got {quantity!r}")
    cds = np.asarray(current_densities_mA_cm2 if current_densities_mA_cm2 is not None
                     else np.geomspace(0.1, 10.0, 20), dtype=float)
    sps = np.asarray(stack_pressures_MPa if stack_pressures_MPa is not None
                     else np.linspace(1.0, 20.0, 20), dtype=float)
    if cds.size == 0 or sps.size == 0:
        raise InputError("sweep: empty grid")
    rows: list[dict[str, Any]] = []
    t_eval = np.array([0.0, duration_s])
    for p in sps:
        for i in cds:
            row: dict[str, Any] = {"current_density_mA_cm2": float(i),
                                   "stack_pressure_MPa": float(p)}
            if quantity == "ccd":
                d = critical_current_density(electrolyte, stack_pressure_MPa=float(p),
                                             pore_um=flaw_um, thickness_um=thickness_um,
                                             temperature_C=temperature_C, overrides=overrides)
                row["ccd_margin"] = d["ccd_mA_cm2"] / float(i)
                row["ccd_mA_cm2"] = d["ccd_mA_cm2"]
                row["stripping_limit_mA_cm2"] = d["stripping_limit_mA_cm2"]
            else:
                r = simulate(electrolyte, current_density_mA_cm2=float(i),
                             stack_pressure_MPa=float(p), thickness_um=thickness_um,
                             flaw_um=flaw_um, applied_stress_MPa=applied_stress_MPa,
                             temperature_C=temperature_C, duration_s=duration_s,
                             t_eval_s=t_eval, overrides=overrides)
                value = getattr(r, f"{quantity}_s")
                row[f"{quantity}_s"] = np.nan if value is None else value
            rows.append(row)
    return pd.DataFrame(rows)


def _value_column(table: pd.DataFrame) -> str:
    return next(c for c in table.columns
                if c not in ("current_density_mA_cm2", "stack_pressure_MPa"))


def plot_sweep(table: pd.DataFrame, path: str | Path) -> None:
    """Write a map of the swept quantity (log colour scale) to a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    col = _value_column(table)
    grid = table.pivot(index="stack_pressure_MPa", columns="current_density_mA_cm2",
                       values=col)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    data = grid.to_numpy(dtype=float)
    finite = data[np.isfinite(data) & (data > 0)]
    norm = LogNorm(finite.min(), finite.max()) if finite.size else None
    mesh = ax.pcolormesh(grid.columns.to_numpy(), grid.index.to_numpy(),
                         np.ma.masked_invalid(data), shading="nearest", norm=norm,
                         cmap="viridis")
    ax.set_xscale("log")
    ax.set_xlabel("current density (mA/cm²)")
    ax.set_ylabel("stack pressure (MPa)")
    label = {"ccd_margin": "CCD / current density (>1 safe)"}.get(
        col, col.removesuffix("_s") + " (s)")
    fig.colorbar(mesh, ax=ax, label=label)
    if col == "ccd_margin":
        if np.nanmin(data) < 1.0 < np.nanmax(data) and min(data.shape) > 1:
            ax.contour(grid.columns.to_numpy(), grid.index.to_numpy(), data, levels=[1.0],
                       colors="white", linewidths=1.5)
        ax.set_title(f"{label}; white line = CCD")
    else:
        ax.set_title(f"{label}; blank = not reached")
    fig.tight_layout()
    try:
        atomic_write(path, lambda p: fig.savefig(p, format="png"))
    finally:
        plt.close(fig)


def write_sweep(table: pd.DataFrame, out_dir: str | Path, stem: str = "sweep") -> dict[str, str]:
    """Write ``stem.csv`` and ``stem.png`` into ``out_dir`` (created), atomically."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{stem}.csv"
    atomic_write(csv_path, lambda p: table.to_csv(p, index=False))
    png_path = out / f"{stem}.png"
    plot_sweep(table, png_path)
    return {"csv": str(csv_path), "png": str(png_path)}
