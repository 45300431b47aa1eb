"""Physical constants and unit conversions used by the model.

Inside :mod:`dendritect.physics` lengths are micrometres, times seconds, stresses MPa,
current densities mA/cm², toughness MPa·√m. The conversions below are the only place
where SI factors appear.
"""

from __future__ import annotations

import math

#: Faraday constant, C/mol (CODATA 2018, exact).
FARADAY_C_MOL = 96485.33212

#: Partial molar volume of lithium metal, m³/mol (1.30e-5 m³/mol; Porz et al. 2017,
#: Adv. Energy Mater. 7, 1701003, use Ω_Li = 13.0 cm³/mol for the plating stress).
LI_MOLAR_VOLUME_M3_MOL = 1.30e-5

#: 1 mA/cm² in A/m².
MA_CM2_TO_A_M2 = 10.0

#: Geometry factors Y in K_I = Y·σ·√(πa) (Tada, Paris & Irwin, The Stress Analysis of
#: Cracks Handbook): edge crack 1.12; semicircular surface flaw 2/π·1.12 ≈ 0.713 (deepest
#: point); embedded penny-shaped crack 2/π.
GEOMETRY_FACTORS = {
    "edge": 1.12,
    "semicircle": 2.0 / math.pi * 1.12,
    "penny": 2.0 / math.pi,
}

#: Crack-mouth-opening factor V for an edge crack in a half-space, CMOD = 4·V·σ·a/E'
#: (Tada et al., V₂(0) = 1.454).
EDGE_CMOD_FACTOR = 1.454

#: Ratio of the mode-I stress intensity at the tip of a 90° kink to that of the parent crack,
#: cos³(θ/2) at θ = 90° (Cotterell & Rice 1980, Int. J. Fract. 16, 155).
KINK_90_FACTOR = math.cos(math.pi / 4.0) ** 3


def lithium_velocity_um_s(current_density_mA_cm2: float,
                          molar_volume_m3_mol: float = LI_MOLAR_VOLUME_M3_MOL) -> float:
    """Rate at which a current density plates lithium, as a thickness per second (µm/s).

    Faraday's law: v = i·Ω/F.
    """
    return current_density_mA_cm2 * MA_CM2_TO_A_M2 * molar_volume_m3_mol / FARADAY_C_MOL * 1e6


def geometry_factor(geometry: str) -> float:
    """Return Y for ``geometry`` (``edge``, ``semicircle`` or ``penny``)."""
    from dendritect.errors import InputError

    try:
        return GEOMETRY_FACTORS[geometry]
    except KeyError:
        raise InputError(
            f"geometry: unknown flaw geometry {geometry!r}; use one of "
            f"{', '.join(GEOMETRY_FACTORS)}"
        ) from None
