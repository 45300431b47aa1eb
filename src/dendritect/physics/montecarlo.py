"""Monte-Carlo over Weibull-distributed flaw sizes: scatter of the critical current density
and the probability that a cell fails at a given current.

Each cell has ``n_flaws`` interfacial flaws whose sizes follow a Weibull distribution
(scale λ, shape k), the usual description of flaw populations in brittle ceramics
(Weibull 1951, J. Appl. Mech. 18, 293). The plating limit falls with flaw size, so a cell
fails at the limit of its largest flaw; the stripping limit does not depend on the flaws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dendritect.errors import InputError
from dendritect.physics.closed_form import critical_current_density
from dendritect.physics.materials import Material

__all__ = ["MonteCarloResult", "ccd_monte_carlo", "failure_probability"]


@dataclass(frozen=True)
class MonteCarloResult:
    """CCD samples (mA/cm², one per simulated cell) and the largest flaw of each cell (µm)."""

    ccd_mA_cm2: np.ndarray
    largest_flaw_um: np.ndarray
    stripping_limit_mA_cm2: float
    params: dict = field(default_factory=dict)

    def quantiles(self, q: tuple[float, ...] = (0.05, 0.5, 0.95)) -> dict[str, float]:
        return {f"q{round(100 * x):02d}": float(np.quantile(self.ccd_mA_cm2, x)) for x in q}

    def failure_probability(self, current_density_mA_cm2: float) -> float:
        """Fraction of cells whose CCD is below ``current_density_mA_cm2``."""
        return float(np.mean(self.ccd_mA_cm2 < current_density_mA_cm2))

    def to_dict(self) -> dict[str, Any]:
        return {
            "ccd_mA_cm2": [float(x) for x in self.ccd_mA_cm2],
            "largest_flaw_um": [float(x) for x in self.largest_flaw_um],
            "stripping_limit_mA_cm2": self.stripping_limit_mA_cm2,
            "quantiles_mA_cm2": self.quantiles(),
            "params": self.params,
        }


def ccd_monte_carlo(electrolyte: str | Material = "Li6PS5Cl", *, stack_pressure_MPa: float = 5.0,
                    flaw_scale_um: float = 2.0, flaw_shape: float = 2.0, n_flaws: int = 100,
                    n_cells: int = 1000, relative_density: float = 1.0,
                    thickness_um: float = 500.0, seed: int | None = 0,
                    overrides: dict | None = None) -> MonteCarloResult:
    """Sample the CCD of ``n_cells`` cells, each with ``n_flaws`` Weibull-sized flaws.

    Parameters
    ----------
    flaw_scale_um, flaw_shape : float
        Weibull scale λ (µm) and shape k of the flaw-size distribution.
    n_flaws : int
        Flaws per cell (interfacial flaw density × electrode area).
    seed : int, optional
        Random seed (NumPy ``default_rng``); the same seed gives the same samples.
    """
    if not flaw_scale_um > 0 or not flaw_shape > 0:
        raise InputError("Weibull flaw_scale_um and flaw_shape must be positive")
    if int(n_flaws) < 1 or int(n_cells) < 1:
        raise InputError("n_flaws and n_cells must be at least 1")
    rng = np.random.default_rng(seed)
    sizes = flaw_scale_um * rng.weibull(flaw_shape, size=(int(n_cells), int(n_flaws)))
    largest = sizes.max(axis=1)
    ccd = np.empty(largest.size)
    strip = None
    for j, a in enumerate(largest):
        d = critical_current_density(electrolyte, stack_pressure_MPa=stack_pressure_MPa,
                                     pore_um=float(a), relative_density=relative_density,
                                     thickness_um=thickness_um, overrides=overrides)
        ccd[j] = d["ccd_mA_cm2"]
        strip = d["stripping_limit_mA_cm2"]
    params = {"electrolyte": str(getattr(electrolyte, "name", electrolyte)),
              "stack_pressure_MPa": stack_pressure_MPa, "flaw_scale_um": flaw_scale_um,
              "flaw_shape": flaw_shape, "n_flaws": int(n_flaws), "n_cells": int(n_cells),
              "relative_density": relative_density, "thickness_um": thickness_um,
              "seed": seed, "overrides": dict(overrides or {})}
    return MonteCarloResult(ccd_mA_cm2=ccd, largest_flaw_um=largest,
                            stripping_limit_mA_cm2=float(strip), params=params)


def failure_probability(current_density_mA_cm2: float, **kwargs: Any) -> float:
    """Probability that a cell's CCD is below the current (keywords of ccd_monte_carlo)."""
    return ccd_monte_carlo(**kwargs).failure_probability(current_density_mA_cm2)
