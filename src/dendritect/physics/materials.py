"""The materials database (``physics/data/materials.toml``): every value with its source."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from importlib import resources
from typing import Any

from dendritect.errors import InputError

__all__ = ["ELECTROLYTE_KEYS", "LITHIUM_KEYS", "Lithium", "Material", "get_lithium",
           "get_material", "list_materials", "materials_table"]

#: The properties of an electrolyte and of lithium in the database (and as overrides).
ELECTROLYTE_KEYS = ("k_ic_MPa_sqrt_m", "youngs_modulus_GPa", "poisson_ratio",
                    "ionic_conductivity_S_cm", "interfacial_resistance_ohm_cm2", "density_g_cm3",
                    "ionic_activation_energy_eV", "charge_transfer_asr_ohm_cm2",
                    "asr_activation_energy_eV")
LITHIUM_KEYS = ("youngs_modulus_GPa", "poisson_ratio", "yield_strength_MPa",
                "molar_volume_cm3_mol", "density_g_cm3", "creep_stress_MPa",
                "creep_rate_per_s", "creep_exponent", "creep_activation_energy_kJ_mol",
                "self_diffusion_cm2_s", "diffusion_activation_energy_kJ_mol",
                "size_yield_1um_MPa", "size_yield_exponent")


class _Record:
    """What the database records share: overrides that name their source, and export."""

    def _with(self, updates: dict[str, float]):
        if not updates:
            return self
        sources = dict(self.sources)  # type: ignore[attr-defined]
        sources.update({k: "override" for k in updates})
        return replace(self, sources=sources, **updates)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Material(_Record):
    """A solid electrolyte: fracture, elastic and transport properties.

    Attributes
    ----------
    name : str
        Canonical name (a key of the database, e.g. ``"LLZO"``).
    k_ic_MPa_sqrt_m, youngs_modulus_GPa, poisson_ratio, ionic_conductivity_S_cm,
    interfacial_resistance_ohm_cm2, density_g_cm3 : float
        Properties at room temperature; units in the names.
    ionic_activation_energy_eV, charge_transfer_asr_ohm_cm2, asr_activation_energy_eV : float
        Arrhenius activation energies of the conductivity and the interfacial ASR, and the
        ASR of a fully contacting interface (the measured ASR over it is the contact loss).
    sources : dict
        Where each value comes from (``"override"`` for user-set values).
    """

    name: str
    k_ic_MPa_sqrt_m: float
    youngs_modulus_GPa: float
    poisson_ratio: float
    ionic_conductivity_S_cm: float
    interfacial_resistance_ohm_cm2: float
    density_g_cm3: float
    ionic_activation_energy_eV: float = 0.35
    charge_transfer_asr_ohm_cm2: float = 1.0
    asr_activation_energy_eV: float = 0.35
    description: str = ""
    sources: dict = field(default_factory=dict, compare=False)

    @property
    def plane_strain_modulus_MPa(self) -> float:
        """E' = E/(1-ν²) in MPa."""
        return self.youngs_modulus_GPa * 1e3 / (1.0 - self.poisson_ratio**2)

    def with_overrides(self, overrides: dict[str, Any] | None) -> Material:
        """Return a copy with the material keys of ``overrides`` applied (others ignored)."""
        if not overrides:
            return self
        return self._with({k: _positive(k, v) for k, v in overrides.items()
                           if k in ELECTROLYTE_KEYS})


@dataclass(frozen=True)
class Lithium(_Record):
    """Lithium metal: elastic and power-law creep properties (ε̇ = ε̇0 (σ/σ0)^m), the
    Arrhenius energies of creep and self-diffusion, and the size effect on its strength."""

    youngs_modulus_GPa: float
    poisson_ratio: float
    yield_strength_MPa: float
    molar_volume_cm3_mol: float
    density_g_cm3: float
    creep_stress_MPa: float
    creep_rate_per_s: float
    creep_exponent: float
    creep_activation_energy_kJ_mol: float = 37.0
    self_diffusion_cm2_s: float = 5.0e-11
    diffusion_activation_energy_kJ_mol: float = 53.0
    size_yield_1um_MPa: float = 105.0
    size_yield_exponent: float = 0.68
    sources: dict = field(default_factory=dict, compare=False)

    @property
    def molar_volume_m3_mol(self) -> float:
        return self.molar_volume_cm3_mol * 1e-6

    def with_overrides(self, overrides: dict[str, Any] | None) -> Lithium:
        if not overrides:
            return self
        return self._with({k[3:]: _positive(k, v) for k, v in overrides.items()
                           if k.startswith("li_") and k[3:] in LITHIUM_KEYS})


def _positive(key: str, value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{key}: expected a number, got {value!r}") from None
    if not out > 0 or out != out or out == float("inf"):
        raise InputError(f"{key}: must be a positive finite number, got {value!r}")
    return out


@lru_cache(maxsize=1)
def _database() -> dict[str, Any]:
    text = resources.files("dendritect.physics").joinpath("data/materials.toml").read_text(
        encoding="utf-8")
    return tomllib.loads(text)


def _entry(raw: dict[str, Any], keys: tuple[str, ...]) -> tuple[dict[str, float], dict[str, str]]:
    values = {k: float(raw[k]["value"]) for k in keys}
    sources = {k: str(raw[k]["source"]) for k in keys}
    return values, sources


def list_materials() -> list[str]:
    """Names of the electrolytes in the database."""
    return list(_database()["electrolytes"])


def _canonical(name: str) -> str:
    db = _database()["electrolytes"]
    low = name.strip().lower()
    for key, raw in db.items():
        if low == key.lower() or low in (a.lower() for a in raw.get("aliases", [])):
            return key
    raise InputError(
        f"electrolyte: unknown electrolyte {name!r}; known: {', '.join(db)}"
    )


def get_material(name: str | Material, overrides: dict[str, Any] | None = None) -> Material:
    """Look up an electrolyte by name or alias (case-insensitive) and apply overrides.

    Parameters
    ----------
    name : str or Material
        ``"Li6PS5Cl"``, ``"LLZO"``, ``"Li3PS4"``, ``"LiPON"`` or an alias (``"LLZTO"``,
        ``"LPS"``...), or a :class:`Material` (returned with overrides applied).
    overrides : dict, optional
        Property values to replace, e.g. ``{"k_ic_MPa_sqrt_m": 0.4}``.

    Raises
    ------
    InputError
        For an unknown name.
    """
    if isinstance(name, Material):
        return name.with_overrides(overrides)
    if not isinstance(name, str):
        raise InputError(f"electrolyte: expected a name, got {name!r}")
    key = _canonical(name)
    raw = _database()["electrolytes"][key]
    values, sources = _entry(raw, ELECTROLYTE_KEYS)
    mat = Material(name=key, description=raw.get("description", ""), sources=sources, **values)
    return mat.with_overrides(overrides)


def get_lithium(overrides: dict[str, Any] | None = None) -> Lithium:
    """Lithium metal properties; override with ``li_``-prefixed keys (``li_creep_exponent``)."""
    values, sources = _entry(_database()["lithium"], LITHIUM_KEYS)
    return Lithium(sources=sources, **values).with_overrides(overrides)


def materials_table() -> dict[str, Any]:
    """The whole database as plain data: ``{"electrolytes": {...}, "lithium": {...}}``.

    Each property is ``{"value": float, "source": str}``.
    """
    db = _database()
    out: dict[str, Any] = {"electrolytes": {}, "lithium": {}}
    for key, raw in db["electrolytes"].items():
        out["electrolytes"][key] = {
            "description": raw.get("description", ""),
            "aliases": list(raw.get("aliases", [])),
            **{k: dict(raw[k]) for k in ELECTROLYTE_KEYS},
        }
    out["lithium"] = {"description": db["lithium"].get("description", ""),
                      **{k: dict(db["lithium"][k]) for k in LITHIUM_KEYS}}
    return out
