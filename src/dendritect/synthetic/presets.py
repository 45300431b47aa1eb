"""Named parameter sets of the operando twin, and their validation.

Every number a run uses lives in one flat dict, so a dataset can be remade from its
``dataset.json`` and tests can shrink a cell with keyword overrides
(``shape_zyx=(48, 96, 96), n_steps=4``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from dendritect.errors import InputError
from dendritect.synthetic.materials import canonical_electrolyte

__all__ = ["PRESETS", "draw_random", "resolve_params"]

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
    "pore_aspect": 1.0,  # pore shape: 1 spheres, > 1 prolate ellipsoids of random orientation
    "die_material": "PEEK",  # "PEEK", "steel" or "air" (no die: the pellet stands in air)
    "die_gap_vox": 0.0,  # air gap between the pellet and the die wall, voxels
    "interior": False,  # interior tomography: the pellet is larger than the field of view
    "tilt_deg": 0.0,  # cell axis tilted from z by this angle (whole cell rotated)
    "tilt_azimuth_deg": 0.0,  # direction in the (y, x) plane toward which the axis tips
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
    "aperture_spread": 0.0,  # log-normal sigma of a per-crack factor on the mouth aperture
    "wall_crack_prob": 0.0,  # probability a crack starts at the pellet wall and runs out to it
    "li_fill_frac": None,  # when set: lithium fills this fraction of each crack's depth
    "no_span": False,  # every crack is arrested before it spans (no span, no short)
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
    "phase_contrast": 0.0,  # propagation phase-contrast edge fringes (1: clearly visible)
    "phase_retrieval": False,  # Paganin-type low-pass filter that undoes the fringes
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
    # Each seed draws its imaging and its cell from wide ranges (see draw_random).
    "random": _preset(),
}

_MIN_ELECTROLYTE_VOX = 16
_MIN_LATERAL_VOX = 48
_RANDOM_STREAM = 0x5EED_CE11  # mixes into the seed: the draw is independent of the cell's RNG


def draw_random(seed: int) -> dict[str, Any]:
    """Draw the parameters of the ``random`` preset for ``seed`` (deterministic per seed).

    Imaging (CT mode, phase contrast and retrieval, blur, noise, artifacts, anisotropic
    voxels, interior tomography, tilt) and the cell (die, counter electrode, electrode and
    pellet sizes, porosity, cracks, apertures, lithium filling, first-scan cracks, stripping)
    are drawn from wide ranges, in small shapes so a cell simulates in seconds.
    """
    g = np.random.default_rng(np.random.SeedSequence([int(seed), _RANDOM_STREAM]))
    u = g.uniform
    q: dict[str, Any] = {}
    fbp = bool(g.random() < 1 / 3)
    q["ct"] = "fbp" if fbp else "fast"
    if fbp:  # FBP costs ~0.1 s per 128^2 slice and scan: keep it small
        nz, n = int(g.integers(64, 73)), int(g.integers(112, 121))
        q["n_steps"] = 5
        q["n_angles"] = int(g.integers(80, 121))
    else:
        nz, n = int(g.integers(64, 97)), int(g.integers(112, 145))
        q["n_steps"] = int(g.integers(5, 9))
    q["shape_zyx"] = (nz, n, n)
    dx = round(float(u(2.5, 5.0)), 3)
    ratio = 1.0 if g.random() < 0.4 else float(u(1.1, 2.0))
    q["voxel_size_um"] = (round(dx * ratio, 3), dx, dx)
    q["energy_keV"] = round(float(u(35.0, 70.0)), 2)
    # Li6PS5Cl only: LLZO's toughness keeps the growth model's cracks from initiating at
    # these current densities, which would make empty series.
    q["phase_contrast"] = 0.0 if g.random() < 0.4 else round(float(u(0.3, 1.5)), 3)
    q["phase_retrieval"] = bool(q["phase_contrast"] > 0 and g.random() < 0.4)
    q["psf_vox"] = round(float(u(0.4, 1.5)), 3)
    q["noise_frac"] = round(float(u(0.01, 0.06)), 4)
    q["ring_strength"] = round(float(u(0.0, 0.015)), 4)
    q["cupping"] = round(float(u(0.0, 0.1)), 4)
    q["gain_drift"] = round(float(u(0.0, 0.05)), 4)
    q["offset_drift"] = round(float(u(0.0, 120.0)), 2)
    q["drift_step_vox"] = round(float(u(0.0, 1.5)), 3)
    q["tilt_deg"] = 0.0 if g.random() < 0.35 else round(float(u(0.3, 5.0)), 3)
    q["tilt_azimuth_deg"] = round(float(u(0.0, 360.0)), 2)
    # --- cell
    interior = bool(g.random() < 0.25)
    q["interior"] = interior
    q["die_material"] = str(g.choice(["PEEK", "PEEK", "steel", "air"]))
    q["die_gap_vox"] = 0.0 if g.random() < 0.5 else round(float(u(0.5, 3.0)), 2)
    if interior:  # the pellet fills and exceeds the field of view; no die in sight
        pel = float(u(0.55, 0.72))
        die = pel + 0.04
        if q["die_material"] == "steel":
            q["die_material"] = "PEEK"
    else:
        pel = float(u(0.32, 0.44))
        die = float(u(pel + 0.03, 0.49))
    q["pellet_radius_frac"] = round(pel, 4)
    q["die_radius_frac"] = round(die, 4)
    covers = bool(g.random() < 0.3)
    q["electrode_radius_frac"] = round(pel + 0.02 if covers else pel * float(u(0.6, 0.95)), 4)
    q["counter_electrode"] = "collector" if g.random() < 0.4 else "li"
    q["anode"] = "bottom" if g.random() < 0.3 else "top"
    q["plunger_vox"] = int(g.integers(4, 9))
    q["electrode_vox"] = int(g.integers(4, 10))
    q["relative_density"] = round(float(u(0.93, 0.995)), 4)
    q["pore_radius_um"] = round(float(u(2.0, 8.0)), 3)
    q["pore_sigma"] = round(float(u(0.3, 0.6)), 3)
    q["pore_aspect"] = 1.0 if g.random() < 0.4 else round(float(u(1.0, 2.5)), 3)
    q["grain_size_um"] = round(float(u(8.0, 25.0)), 2)
    q["grain_contrast"] = round(float(u(0.0, 0.03)), 4)
    q["current_density_mA_cm2"] = round(float(u(0.5, 2.0)), 3)
    q["flaw_scale_um"] = round(float(u(5.0, 9.0)), 3)
    q["stack_pressure_MPa"] = round(float(u(2.0, 10.0)), 2)
    # --- cracks
    q["n_cracks"] = int(g.integers(1, 7))
    q["branch_prob"] = round(float(u(0.1, 0.6)), 3)
    q["deflect_prob"] = round(float(u(0.2, 0.7)), 3)
    q["arrest_prob"] = round(float(u(0.1, 0.6)), 3)
    q["wall_crack_prob"] = 0.0 if interior or g.random() < 0.4 else round(float(u(0.2, 0.6)), 3)
    q["aperture_mouth_vox"] = round(float(np.exp(u(np.log(0.7), np.log(8.0)))), 3)
    q["aperture_tip_vox"] = round(min(float(u(0.4, 1.0)), q["aperture_mouth_vox"]), 3)
    q["aperture_spall_vox"] = round(float(np.exp(u(np.log(0.7), np.log(5.0)))), 3)
    q["aperture_spread"] = round(float(u(0.0, 0.5)), 3)
    q["li_fill_frac"] = None if g.random() < 0.4 else round(float(u(0.2, 0.9)), 3)
    q["dry_tip_vox"] = round(float(u(1.5, 4.0)), 3)
    q["first_scan_fraction"] = 0.0 if g.random() < 0.5 else round(float(u(0.05, 0.5)), 3)
    q["strip_half_cycles"] = 0 if g.random() < 0.5 else int(g.integers(1, 3))
    q["span_fraction"] = round(float(u(0.55, 0.9)), 3)
    q["no_span"] = bool(g.random() < 0.12)
    return q


def resolve_params(preset: str = "demo", *, seed: int = 0, **overrides: Any) -> dict[str, Any]:
    """Return a validated copy of a preset with ``overrides`` applied.

    Parameters
    ----------
    preset : str
        A key of :data:`PRESETS`.
    seed : int
        Only for ``"random"``: the seed of the parameter draw (:func:`draw_random`).
    **overrides
        Any key of the preset, e.g. ``shape_zyx=(48, 96, 96)``, ``n_steps=4``. ``None`` values
        are ignored (so command-line options left out keep the preset's value). Overrides win
        over the values ``"random"`` draws.

    Raises
    ------
    InputError
        Unknown preset or key, or a value that cannot make a cell.
    """
    if preset not in PRESETS:
        raise InputError(f"--preset: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    p = copy.deepcopy(PRESETS[preset])
    if preset == "random":
        p.update(draw_random(seed))
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
    if p["die_material"] not in ("PEEK", "steel", "air"):
        raise InputError(f"die_material: must be 'PEEK', 'steel' or 'air', got "
                         f"{p['die_material']!r}")
    p["interior"] = bool(p["interior"])
    p["phase_retrieval"] = bool(p["phase_retrieval"])
    p["no_span"] = bool(p["no_span"])
    el, pel, die = (float(p[k]) for k in ("electrode_radius_frac", "pellet_radius_frac",
                                          "die_radius_frac"))
    gap = float(p["die_gap_vox"]) * min(vox[1:]) / (min(shape[1] * vox[1], shape[2] * vox[2]))
    if not 0 <= float(p["die_gap_vox"]) <= 10:
        raise InputError("die_gap_vox must be in [0, 10]")
    if el <= 0:
        raise InputError("electrode_radius_frac must be positive")
    if p["interior"]:
        # Interior tomography: the pellet is larger than the reconstruction circle.
        if not 0.5 < pel < die - gap and die <= 1.5:
            raise InputError("interior: need 0.5 < pellet_radius_frac < die_radius_frac <= 1.5")
    elif not (pel < die - gap and die <= 0.5):
        raise InputError("need pellet_radius_frac (+ die gap) < die_radius_frac <= 0.5 "
                         "(or interior=True for a pellet larger than the field of view)")
    # The electrode may be smaller than the pellet, or cover all of it (larger radius).
    if float(p["phase_contrast"]) < 0 or not math.isfinite(float(p["phase_contrast"])):
        raise InputError("phase_contrast must not be negative")
    if not 0 <= float(p["tilt_deg"]) <= 30:
        raise InputError("tilt_deg must be in [0, 30]")
    if float(p["pore_aspect"]) < 1:
        raise InputError("pore_aspect must be at least 1")
    if not 0 <= float(p["wall_crack_prob"]) <= 1:
        raise InputError("wall_crack_prob must be in [0, 1]")
    if float(p["aperture_spread"]) < 0:
        raise InputError("aperture_spread must not be negative")
    if p["li_fill_frac"] is not None and not 0 <= float(p["li_fill_frac"]) <= 1:
        raise InputError("li_fill_frac must be in [0, 1] (or None: the growth model's)")
