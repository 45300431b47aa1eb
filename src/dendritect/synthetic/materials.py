"""X-ray linear attenuation of the phases in an operando solid-state cell.

Values are total mass attenuation coefficients (with coherent scattering) from the XCOM photon
cross-section database (Berger et al., NIST Standard Reference Database 8), evaluated with
xraylib 4.3 (Schoonjans et al., Spectrochim. Acta B 66, 776, 2011), times the phase density.
They are tabulated here so that the twin needs no extra dependency; between the tabulated
energies they are interpolated log-log.

Densities (g/cm3): Li metal 0.534; Li6PS5Cl 1.64 (argyrodite, crystallographic); Li7La3Zr2O12
(cubic LLZO) 5.11; 316-type stainless steel (Fe0.70 Cr0.18 Ni0.10 Mo0.02 by mass) 7.95; PEEK
(C19H12O3) 1.32; air 0.0012.
"""

from __future__ import annotations

import numpy as np

from dendritect.errors import InputError

__all__ = ["ELECTROLYTES", "MU_PER_CM", "ENERGIES_keV", "linear_attenuation_per_cm"]

ENERGIES_keV = np.array([30.0, 40.0, 50.0, 60.0, 80.0])

# Linear attenuation coefficient, 1/cm, at ENERGIES_keV.
MU_PER_CM: dict[str, np.ndarray] = {
    "Li": np.array([0.0878, 0.0828, 0.0795, 0.0768, 0.0724]),
    "Li6PS5Cl": np.array([2.9597, 1.4018, 0.8445, 0.5950, 0.3902]),
    "LLZO": np.array([54.7757, 78.3719, 43.8508, 27.1457, 12.7395]),  # La K edge at 38.9 keV
    "steel": np.array([69.9075, 31.1566, 16.8315, 10.3468, 5.0766]),
    "PEEK": np.array([0.3705, 0.2929, 0.2609, 0.2432, 0.2222]),
    "air": np.array([0.0005, 0.0003, 0.0003, 0.0002, 0.0002]),
}

# Electrolyte names the twin knows, mapped to the table above (case-insensitive look-up).
ELECTROLYTES = {"li6ps5cl": "Li6PS5Cl", "lpscl": "Li6PS5Cl", "llzo": "LLZO",
                "li7la3zr2o12": "LLZO"}


def canonical_electrolyte(name: str) -> str:
    """Return the canonical electrolyte name (``"Li6PS5Cl"`` or ``"LLZO"``).

    Raises
    ------
    InputError
        For an electrolyte the twin has no attenuation data for.
    """
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key not in ELECTROLYTES:
        known = ", ".join(sorted(set(ELECTROLYTES.values())))
        raise InputError(f"--electrolyte: unknown electrolyte {name!r} (known: {known})")
    return ELECTROLYTES[key]


def linear_attenuation_per_cm(phase: str, energy_keV: float) -> float:
    """Linear attenuation coefficient of ``phase`` at ``energy_keV``, in 1/cm.

    Parameters
    ----------
    phase : str
        One of ``"Li"``, ``"Li6PS5Cl"``, ``"LLZO"``, ``"steel"``, ``"PEEK"``, ``"air"``.
    energy_keV : float
        Photon energy, 30-80 keV (the tabulated range).

    Returns
    -------
    float
        mu in 1/cm, interpolated log-log between tabulated energies.
    """
    if phase not in MU_PER_CM:
        raise InputError(f"unknown phase {phase!r}")
    e = float(energy_keV)
    if not ENERGIES_keV[0] <= e <= ENERGIES_keV[-1]:
        raise InputError(
            f"energy_keV: {e} is outside the tabulated range "
            f"{ENERGIES_keV[0]:g}-{ENERGIES_keV[-1]:g} keV"
        )
    return float(np.exp(np.interp(np.log(e), np.log(ENERGIES_keV), np.log(MU_PER_CM[phase]))))
