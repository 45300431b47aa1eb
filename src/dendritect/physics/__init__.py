"""The electro-chemo-mechanical model of lithium-dendrite cracking in solid electrolytes.

Levels, from fast to detailed:

1. closed forms (:mod:`.closed_form`): plating stress, lithium thickness, critical flaw size,
   pressure and overpotential, and the cell's plating and stripping limits;
2. the cell model in time (:func:`.ecm.simulate`): one creep law for lithium in and out of
   the crack, interface kinetics and current focusing, temperature, galvanostatic and cycling
   protocols, initiation, span and short; :func:`.growth.grow` is the first closure, kept for
   the synthetic twin;
3. Monte-Carlo over Weibull flaw populations (:mod:`.montecarlo`);
4. calibration to a CT measurement (:mod:`.fit`, ``dendritect fit``).

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
from dendritect.physics.ecm import SimulationResult, cell_properties, ramp_ccd, simulate
from dendritect.physics.growth import GrowthResult, grow
from dendritect.physics.materials import Material, get_lithium, get_material, list_materials
from dendritect.physics.montecarlo import MonteCarloResult, ccd_monte_carlo

__all__ = [
    "GrowthResult",
    "Material",
    "MonteCarloResult",
    "SimulationResult",
    "ccd_monte_carlo",
    "cell_properties",
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
    "ramp_ccd",
    "simulate",
    "stripping_limit_mA_cm2",
]
