"""Named parameter sets of the operando twin, and their validation.

Every number a run uses lives in one flat dict, so a dataset can be remade from its
``dataset.json`` and tests can shrink a cell with keyword overrides
(``shape_zyx=(48, 96, 96), n_steps=4``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from dendritect.errors import InputError
from dendritect.synthetic.materials import canonical_electrolyte

__all__ = ["PRESETS", "resolve_params"]

_BASE: dict[str, Any] = {
    # --- cell and operation -------------------------------------------------------------
    "shape_zyx": (80, 128, 128),
    "voxel_size_um": (4.0, 4.0, 4.0),
    "n_steps": 10,
    "ct": "fast",  # "fbp": projections + filtered back-projection; "fast": image-space artifacts
    "electrolyte": "Li6PS5Cl",
    "current_density_mA_cm2": 1.0,
    "stack_pressure_MPa": 5.0,
    "anode": "top",  # the plated electrode sits at low z
    "counter_electrode": "li",  # "li" (symmetric cell) or "collector" (steel foil)
    "plunger_vox": 6,  # steel plunger / current collector thickness (each side)
    "electrode_vox": 7,  # Li foil thickness (each side)
    "pellet_radius_frac": 0.42,  # of the field of view's width
    "electrode_radius_frac": 0.35,  # electrode smaller than the pellet: edges matter
    "die_radius_frac": 0.49,  # PEEK die wall outer radius
    "relative_density": 0.98,  # resolved porosity = 1 - relative density
    "pore_radius_um": 5.0,  # median of a log-normal pore radius distribution
    "pore_sigma": 0.45,
    "grain_size_um": 14.0,
    "grain_contrast": 0.012,  # relative density scatter between grains (faint texture)
    # --- cracks -------------------------------------------------------------------------
    "n_cracks": 4,
    "flaw_scale_um": 5.0,  # Weibull scale of interface flaw sizes
    "flaw_weibull_m": 3.0,  # Weibull modulus of flaw sizes
    "edge_spread": 0.12,  # spread of spallation sites inward from the electrode edge (of radius)
    "central_fraction": 0.2,  # share of cracks seeded anywhere under the electrode
    "edge_current_gain": 1.0,  # extra local current density at the electrode edge (focusing)
    "spall_depth_frac": (0.08, 0.18),
    "spall_dip_deg": (15.0, 35.0),
    "aperture_mouth_vox": 2.2,  # transverse crack opening at its mouth, when long
    "aperture_tip_vox": 0.8,
    "aperture_spall_vox": 2.2,
    "roughness_vox": 0.9,
    "branch_prob": 0.4,
    "deflect_prob": 0.5,
    "arrest_prob": 0.35,
    "dry_tip_vox": 3.0,  # least dry tip rendered ahead of the lithium (the model's is sub-µm)
    "span_fraction": 0.72,  # the first span (or short) falls at this fraction of the series
    "first_scan_fraction": 0.0,  # plating time before the first scan, as a fraction of span time
    "duration_s": 36000.0,  # longest plating time the model is asked about
    # --- stripping half-cycles (cracks stall, lithium partly withdraws, cracks partly close)
    "strip_half_cycles": 0,
    "strip_duration_frac": 0.08,  # of the series duration, each
    "strip_closure": 0.35,
    # --- X-ray CT -------------------------------------------------------------------------
    "energy_keV": 50.0,
    "n_angles": 180,
    "noise_frac": 0.02,  # reconstruction noise sigma as a fraction of the electrolyte's mu
    "psf_vox": 0.6,
    "ring_strength": 0.006,  # detector gain error, relative
    "cupping": 0.04,  # beam hardening
    "drift_step_vox": 0.6,  # rigid sample drift between scans, per axis (random walk)
    "gain_drift": 0.02,
    "offset_drift": 60.0,
    # --- cycler ---------------------------------------------------------------------------
    "echem_interval_s": 5.0,
    "echem_noise_V": 0.0005,
}


def _preset(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(_BASE)
    out.update(changes)
    return out


PRESETS: dict[str, dict[str, Any]] = {
    # Small and quick: the default of `dendritect simulate` and of `dendritect demo`.
    "demo": _preset(),
    # A Li | Li6PS5Cl | Li cell like those imaged by Ning et al. (Nat. Mater. 2021; Nature 2023):
    # edge spallations, transverse cracks with a dry tip ahead of lithium, tens of scans, FBP.
    "paper": _preset(
        shape_zyx=(96, 160, 160), voxel_size_um=(3.0, 3.0, 3.0), n_steps=20, ct="fbp",
        n_cracks=6, plunger_vox=8, electrode_vox=9, strip_half_cycles=0,
    ),
    # Thin lithium-filled cracks already present at the first scan, low energy (lithium nearly
    # as dark as an empty crack), strong noise, rings and drift, stripping half-cycles.
    "hard": _preset(
        ct="fbp", n_angles=120, noise_frac=0.06, energy_keV=40.0,
        aperture_mouth_vox=1.5, aperture_tip_vox=0.5, aperture_spall_vox=1.4, dry_tip_vox=2.0,
        first_scan_fraction=0.4, strip_half_cycles=2, ring_strength=0.012, cupping=0.08,
        drift_step_vox=1.2, gain_drift=0.05, n_cracks=6, relative_density=0.95,
    ),
}

_MIN_ELECTROLYTE_VOX = 16
_MIN_LATERAL_VOX = 48


def resolve_params(preset: str = "demo", **overrides: Any) -> dict[str, Any]:
    """Return a validated copy of a preset with ``overrides`` applied.

    Parameters
    ----------
    preset : str
        A key of :data:`PRESETS`.
    **overrides
        Any key of the preset, e.g. ``shape_zyx=(48, 96, 96)``, ``n_steps=4``. ``None`` values
        are ignored (so command-line options left out keep the preset's value).

    Raises
    ------
    InputError
        Unknown preset or key, or a value that cannot make a cell.
    """
    if preset not in PRESETS:
        raise InputError(f"--preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    p = copy.deepcopy(PRESETS[preset])
    for key, value in overrides.items():
        if key not in p:
            raise InputError(f"unknown simulation parameter {key!r}")
        if value is not None:
            p[key] = value
    p["preset"] = preset
    _validate(p)
    return p


def _validate(p: dict[str, Any]) -> None:
    try:
        shape = tuple(int(s) for s in p["shape_zyx"])
        vox = tuple(float(v) for v in p["voxel_size_um"])
    except (TypeError, ValueError):
        raise InputError("shape_zyx and voxel_size_um must be three numbers (z, y, x)") from None
    if len(shape) != 3 or len(vox) != 3:
        raise InputError("shape_zyx and voxel_size_um must be three numbers (z, y, x)")
    p["shape_zyx"], p["voxel_size_um"] = shape, vox
    if any(v <= 0 or not math.isfinite(v) for v in vox):
        raise InputError(f"voxel_size_um must be positive, got {vox}")
    n_el = shape[0] - 2 * (int(p["plunger_vox"]) + int(p["electrode_vox"]))
    if n_el < _MIN_ELECTROLYTE_VOX:
        raise InputError(
            f"shape_zyx {shape} is too small to hold a cell: {shape[0]} slices leave {n_el} for "
            f"the electrolyte (need at least {_MIN_ELECTROLYTE_VOX} beside plungers and electrodes)"
        )
    if min(shape[1:]) < _MIN_LATERAL_VOX:
        raise InputError(
            f"shape_zyx {shape} is too small to hold a cell: y and x need at least "
            f"{_MIN_LATERAL_VOX} voxels"
        )
    p["n_steps"] = int(p["n_steps"])
    if p["n_steps"] < 1:
        raise InputError(f"--steps: need at least one step, got {p['n_steps']}")
    if p["ct"] not in ("fbp", "fast"):
        raise InputError(f"--ct: must be 'fbp' or 'fast', got {p['ct']!r}")
    if p["anode"] not in ("top", "bottom"):
        raise InputError(f"anode: must be 'top' or 'bottom', got {p['anode']!r}")
    if p["counter_electrode"] not in ("li", "collector"):
        raise InputError(f"counter_electrode: must be 'li' or 'collector', got "
                         f"{p['counter_electrode']!r}")
    p["electrolyte"] = canonical_electrolyte(p["electrolyte"])
    j = float(p["current_density_mA_cm2"])
    if not math.isfinite(j) or j <= 0:
        raise InputError(f"--current-density: must be a positive plating current, got {j:g} "
                         "mA/cm2")
    pr = float(p["stack_pressure_MPa"])
    if not math.isfinite(pr) or pr < 0:
        raise InputError(f"--stack-pressure: must not be negative, got {pr:g} MPa")
    if not 0.5 <= float(p["relative_density"]) <= 1.0:
        raise InputError(f"relative_density must be in [0.5, 1], got {p['relative_density']}")
    if int(p["n_cracks"]) < 0:
        raise InputError("n_cracks must not be negative")
    if not 0 < float(p["span_fraction"]) <= 1:
        raise InputError("span_fraction must be in (0, 1]")
    if not (float(p["electrode_radius_frac"]) < float(p["pellet_radius_frac"])
            < float(p["die_radius_frac"]) <= 0.5):
        raise InputError("need electrode_radius_frac < pellet_radius_frac < die_radius_frac <= 0.5")
