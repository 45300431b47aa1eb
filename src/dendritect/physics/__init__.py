"""The electro-chemo-mechanical model of lithium-dendrite cracking in solid electrolytes.

Three levels, from fast to detailed:

1. closed forms (:mod:`.closed_form`): plating stress, lithium thickness, critical flaw size,
   pressure and overpotential, stripping and plating current limits;
2. crack growth in time (:func:`.growth.grow`): lithium balance, creep, LEFM, events for
   initiation, span and short;
3. Monte-Carlo over Weibull flaw populations (:mod:`.montecarlo`).

See ``docs/model.md`` for the equations and sources.
"""

from dendritect.physics.closed_form import (
    critical_current_density,
    critical_flaw_um,
    critical_overpotential_mV,
    critical_pressure_MPa,
    lithium_thickness_um,
    plating_pressure_MPa,
    pressure_overpotential_mV,
    stripping_limit_mA_cm2,
)
from dendritect.physics.growth import GrowthResult, grow
from dendritect.physics.materials import Material, get_lithium, get_material, list_materials
from dendritect.physics.montecarlo import MonteCarloResult, ccd_monte_carlo

__all__ = [
    "GrowthResult",
    "Material",
    "MonteCarloResult",
    "ccd_monte_carlo",
    "critical_current_density",
    "critical_flaw_um",
    "critical_overpotential_mV",
    "critical_pressure_MPa",
    "get_lithium",
    "get_material",
    "grow",
    "list_materials",
    "lithium_thickness_um",
    "plating_pressure_MPa",
    "pressure_overpotential_mV",
    "stripping_limit_mA_cm2",
]
