"""The operando twin in memory: scans, truth labels, cycler trace and truth tables.

:func:`generate` builds everything as arrays (for tests, benchmarks and viewer sample data);
:mod:`dendritect.synthetic.writer` writes them in the dataset layout of CONTRACT.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from dendritect.synthetic.cell import LABELS, build_cell, radial_profile
from dendritect.synthetic.cracks import (
    CrackPlan,
    Rasterizer,
    model_growth,
    plan_cracks,
)
from dendritect.synthetic.ct import GREY_PER_MU, make_detector, render_scan
from dendritect.synthetic.presets import resolve_params

__all__ = ["FARADAY_C_MOL", "OMEGA_LI_M3_MOL", "SyntheticCell", "generate",
           "li_volume_budget_um3"]

FARADAY_C_MOL = 96485.33212
OMEGA_LI_M3_MOL = 1.30e-5  # molar volume of lithium metal


def li_volume_budget_um3(charge_mC: float) -> float:
    """Largest lithium volume that ``charge_mC`` of plating can deposit (Q Ω_Li / F), µm³."""
    return max(float(charge_mC), 0.0) * 1e-3 / FARADAY_C_MOL * OMEGA_LI_M3_MOL * 1e18


@dataclass
class SyntheticCell:
    """A generated operando dataset, in memory.

    Attributes
    ----------
    scans : ndarray of uint16, (t, z, y, x)
        Rendered CT scans (each drifted relative to step 0).
    labels : ndarray of uint8, (t, z, y, x)
        Truth labels in the step-0 frame (codes in :data:`dendritect.synthetic.LABELS`).
    times_s : ndarray of float64
        Acquisition time of each scan on the cycler's clock.
    voxel_size_um : tuple of float
        ``(dz, dy, dx)``.
    echem : dict of ndarray
        ``time_s``, ``voltage_V``, ``current_mA`` (positive while plating the anode).
    truth : dict
        Content of ``truth/truth.json``.
    meta : dict
        Content of ``dataset.json``.
    params : dict
        Every parameter used.
    crack_ids : ndarray of uint8, (t, z, y, x), optional
        Truth crack id (1..n, as in ``truth["cracks"]``) of each crack voxel (labels 3 and 4),
        0 elsewhere; step-0 frame.
    """

    scans: np.ndarray
    labels: np.ndarray
    times_s: np.ndarray
    voxel_size_um: tuple[float, float, float]
    echem: dict[str, np.ndarray]
    truth: dict[str, Any]
    meta: dict[str, Any]
    params: dict[str, Any] = field(repr=False, default_factory=dict)
    crack_ids: np.ndarray | None = field(repr=False, default=None)


class _Protocol:
    """Galvanostatic plating with optional stripping half-cycles, on the wall clock.

    Maps wall time ``t`` to plating time ``tau`` (stalls while stripping), the closure of cracks
    while stripping, and the net charge passed.
    """

    def __init__(self, tau_end: float, strip_at_tau: list[float], strip_s: float,
                 closure: float):
        self.segments: list[tuple[float, float, str, float]] = []  # (t0, t1, kind, tau0)
        t = 0.0
        tau = 0.0
        for ts in sorted(strip_at_tau):
            self.segments.append((t, t + ts - tau, "plate", tau))
            t += ts - tau
            tau = ts
            self.segments.append((t, t + strip_s, "strip", tau))
            t += strip_s
        self.segments.append((t, t + tau_end - tau, "plate", tau))
        self.t_end = t + tau_end - tau
        self.closure_max = closure

    def _seg(self, t: float) -> tuple[float, float, str, float]:
        for seg in self.segments:
            if t < seg[1]:
                return seg
        return self.segments[-1]

    def tau(self, t: float) -> float:
        t0, _, kind, tau0 = self._seg(t)
        return tau0 + (max(t - t0, 0.0) if kind == "plate" else 0.0)

    def closure(self, t: float) -> float:
        t0, t1, kind, _ = self._seg(t)
        if kind != "strip":
            return 0.0
        return self.closure_max * (t - t0) / max(t1 - t0, 1e-9)

    def sign(self, t: float) -> float:
        return -1.0 if self._seg(t)[2] == "strip" else 1.0

    def net_plating_s(self, t: float) -> float:
        """Plating time minus stripping time up to ``t`` (charge / current)."""
        out = 0.0
        for t0, t1, kind, _ in self.segments:
            if t <= t0:
                break
            dur = min(t, t1) - t0
            out += dur if kind == "plate" else -dur
        return out

    def t_of_tau(self, tau: float) -> float:
        for t0, t1, kind, tau0 in self.segments:
            if kind == "plate" and tau <= tau0 + (t1 - t0):
                return t0 + max(tau - tau0, 0.0)
        return self.t_end


def generate(preset: str = "demo", *, seed: int = 0, ct: str | None = None,
             **overrides: Any) -> SyntheticCell:
    """Generate a synthetic operando dataset in memory.

    Parameters
    ----------
    preset : str
        ``"demo"``, ``"paper"``, ``"hard"`` or ``"random"`` (see
        :data:`dendritect.synthetic.PRESETS`; ``"random"`` draws imaging and cell per seed).
    seed : int
        Random seed; the same seed gives identical arrays.
    ct : {"fbp", "fast"}, optional
        Rendering mode; default the preset's.
    **overrides
        Any preset parameter, e.g. ``shape_zyx=(48, 96, 96)``, ``n_steps=4``,
        ``current_density_mA_cm2=2.0``.

    Returns
    -------
    SyntheticCell
    """
    seed = int(seed)
    p = resolve_params(preset, seed=seed, ct=ct, **overrides)
    ss = np.random.SeedSequence(seed)
    # The first six streams are those of the older presets (spawn(8) keeps them identical);
    # the last two draw only what the newer knobs need.
    r_cell, r_crack, r_det, r_scan, r_drift, r_echem, r_cell_x, r_crack_x = (
        np.random.default_rng(s) for s in ss.spawn(8))

    cell = build_cell(p, r_cell, r_cell_x)
    t_um = cell.thickness_um
    plans = plan_cracks(p, cell, r_crack, r_crack_x)
    for c in plans:
        c.curve = model_growth(p, thickness_um=t_um, flaw_um=c.flaw_um,
                               current_density_mA_cm2=c.current_density_mA_cm2)

    # The crack that spans first leads; arrested cracks cannot span.
    lead = _first_span(plans)
    timing = lead  # sets the series' duration (and the cycler's voltage)
    if lead is not None and p["no_span"]:
        # Every crack is arrested short of the counter electrode: no span, no short.
        for c in plans:
            if c.arrest_um is None:
                c.arrest_um = float(r_crack_x.uniform(0.3, 0.8) * t_um)
        lead = None
    if lead is not None:
        lead.arrest_um = None
    tau_span = timing.curve.t_span_s if timing else None
    tau_short = timing.curve.t_short_s if timing else None
    if tau_short is not None and tau_span is not None and tau_short < tau_span:
        tau_short = tau_span
    key = tau_short if tau_short is not None else tau_span
    tau_end = key / p["span_fraction"] if key else float(p["duration_s"])
    if lead is None:  # the series covers the time the lead would have needed, nothing spans
        tau_span = tau_short = None
    n_strip = int(p["strip_half_cycles"])
    before = 0.9 * (tau_span if tau_span else tau_end)
    strip_at = [before * (i + 1) / (n_strip + 1) for i in range(n_strip)]
    proto = _Protocol(tau_end, strip_at, p["strip_duration_frac"] * tau_end, p["strip_closure"])
    t_first = proto.t_of_tau(p["first_scan_fraction"] * (tau_span or (
        timing.curve.t_span_s if timing is not None and timing.curve.t_span_s else tau_end)))
    times = np.linspace(t_first, proto.t_end, p["n_steps"]) if p["n_steps"] > 1 \
        else np.array([proto.t_end])
    t_short = proto.t_of_tau(tau_short) if tau_short is not None else None
    t_span = proto.t_of_tau(tau_span) if tau_span is not None else None

    current_mA = float(p["current_density_mA_cm2"]) * cell.electrode_area_cm2
    dz, dy, dx = p["voxel_size_um"]
    vox_um3 = dz * dy * dx
    dry_tip = float(p["dry_tip_vox"]) * min(dy, dx)
    fill = p["li_fill_frac"]

    def depths(t: float, li_scale: float = 1.0) -> tuple[dict, dict, dict]:
        tau = proto.tau(t)
        shorted = t_short is not None and t >= t_short
        if tau_short is not None:
            tau = min(tau, tau_short)  # after the short the current bypasses the cracks
        clos = proto.closure(t)
        d_of, li_of, state = {}, {}, {}
        for c in plans:
            d, li = c.curve.at(tau)
            if d <= c.flaw_um * 1.01:  # a flaw that has not grown is below resolution
                d, li = 0.0, 0.0
            arrested = c.arrest_um is not None and d >= c.arrest_um
            if c.arrest_um is not None:
                d = min(d, c.arrest_um)
            # At CT resolution the dry tip is drawn at least dry_tip long (the model's dry
            # zone, r = 2π(δE'/8K)², is below a micrometre).
            if fill is not None:  # lithium fills a set fraction of the depth
                li = float(fill) * d
            li = min(li, d - dry_tip) if d > 0 else 0.0
            if shorted and c is lead:
                d = li = t_um  # lithium bridges the electrodes
            else:
                li = max(min(li * (1.0 - clos), d) * li_scale, 0.0)
            d_of[c.id], li_of[c.id] = d, li
            state[c.id] = {"arrested": bool(arrested)}
        return d_of, li_of, state

    dmax: dict[int, float] = {}
    for t in times:
        d_of, _, _ = depths(float(t))
        for k, v in d_of.items():
            dmax[k] = max(dmax.get(k, 0.0), v)
    raster = Rasterizer(p, cell, plans, dmax)

    det = make_detector(p, r_det)
    scan_rngs = r_scan.spawn(len(times))
    drift = np.zeros((len(times), 3))
    if len(times) > 1:
        steps = r_drift.normal(0.0, p["drift_step_vox"], (len(times) - 1, 3))
        drift[1:] = np.cumsum(steps, axis=0)
    gains = 1.0 + p["gain_drift"] * r_drift.standard_normal(len(times))
    offsets = 1000.0 + p["offset_drift"] * r_drift.standard_normal(len(times))
    gains[0], offsets[0] = 1.0, 1000.0
    drift = np.round(drift, 4)

    flip = p["anode"] == "bottom"
    nt = len(times)
    nz, ny, nx = p["shape_zyx"]
    scans = np.empty((nt, nz, ny, nx), np.uint16)
    labels = np.empty((nt, nz, ny, nx), np.uint8)
    crack_ids = np.zeros((nt, nz, ny, nx), np.uint8)
    mu_li = cell.mu["Li"]
    tilt = _Tilt(p)
    outside = _outside_profile(p, cell, flip)
    wall_ring = _wall_ring(p, cell)
    vox_lat = min(dy, dx)
    # Grey levels the renderer uses: offset + gain * GREY_PER_MU * mu / mu_electrolyte.
    grey_li_void = GREY_PER_MU * abs(cell.mu["Li"] - cell.mu["air"]) / cell.mu["electrolyte"]
    noise_grey = float(p["noise_frac"]) * GREY_PER_MU
    li_contrast_ok = grey_li_void >= 3.0 * noise_grey
    touched_wall: set[int] = set()
    present: set[int] = set()
    steps_truth = []
    for i, t in enumerate(times):
        t = float(t)
        q_mC = current_mA * proto.net_plating_s(t)
        budget = li_volume_budget_um3(q_mC)
        clos = proto.closure(t)
        scale, ap, band_um = 1.0, 1.0, None
        d_of, li_of, state = depths(t)
        occ = raster.render(d_of, li_of, clos)
        li_vol = float(occ["li"].sum(dtype=np.float64) * vox_um3)
        if li_vol > budget:
            # Mass balance: lithium in cracks cannot exceed what the charge passed plated.
            # First hold back the lithium fronts (the lithium still reaching into the cracks).
            def fits(li_s: float, ap_s: float, band_um: dict | None = None, t: float = t,
                     clos: float = clos, budget: float = budget) -> bool:
                d, li, _ = depths(t, li_s)
                o = raster.render(d, li, clos, ap_s, li_only=True, li_band_um=band_um)
                return o["li"].sum(dtype=np.float64) * vox_um3 <= budget

            if fits(0.0, 1.0):
                scale = _bisect(lambda x: fits(x, 1.0))
            else:
                # A shorted crack is bridged by a lithium filament along its centre line,
                # as wide as the charge allows; the crack stays as open as it was (thinning
                # every crack at the short shrank them between two scans of a charging cell).
                # Only a filament too narrow to draw falls back to thinner cracks.
                w_um = 2.0 * cell.pellet_radius_um
                x = _bisect(lambda x, w_um=w_um: fits(0.0, 1.0, {lead.id: x * w_um}))
                scale = 0.0
                if x * w_um >= 1.5 * vox_lat:
                    band_um = x * w_um
                else:
                    ap = _bisect(lambda x: fits(0.0, x))
            d_of, li_of, state = depths(t, scale)
            occ = raster.render(d_of, li_of, clos, ap,
                                li_band_um=None if band_um is None else {lead.id: band_um})
            li_vol = float(occ["li"].sum(dtype=np.float64) * vox_um3)
        assert li_vol <= budget * (1 + 1e-9) + 1e-6, (li_vol, budget)

        lab = cell.labels.copy()
        lab[occ["crack"]] = LABELS["crack"]
        lab[occ["crack_li"]] = LABELS["crack_li"]
        ids = occ["ids"]
        if wall_ring is not None:
            touched_wall.update(int(v) for v in np.unique(ids[wall_ring]) if v)
        mu = cell.mu_per_cm * (1.0 - occ["void"]) + occ["li"] * np.float32(mu_li)
        if tilt.active:
            mu = tilt.apply(mu, order=1)
            lab = tilt.apply(lab, order=0)
            ids = tilt.apply(ids, order=0)
        if flip:
            lab = lab[::-1]
            mu = mu[::-1]
            ids = ids[::-1]
        labels[i] = lab
        crack_ids[i] = ids
        scans[i] = render_scan(np.ascontiguousarray(mu, np.float32), p, det, scan_rngs[i],
                               drift_vox=tuple(drift[i]), gain=float(gains[i]),
                               offset=float(offsets[i]), mu_ref=cell.mu["electrolyte"],
                               outside=outside)
        front = max(d_of.values(), default=0.0)
        li_front = max(li_of.values(), default=0.0)
        spanning = front >= t_um - 1e-9
        mouth = occ["mouth_um"]
        vol_pv = occ["volume_pv_um3"]
        cracks = [{"id": k, "depth_um": round(d_of[k], 4), "li_depth_um": round(li_of[k], 4),
                   "arrested": state[k]["arrested"], "spanning": d_of[k] >= t_um - 1e-9,
                   "dry_tip_lead_um": round(d_of[k] - li_of[k], 4) if d_of[k] > 0 else None,
                   "volume_pv_um3": round(vol_pv.get(k, 0.0), 3),
                   "aperture_mouth_um": round(mouth.get(k, 0.0), 4) if d_of[k] > 0 else 0.0}
                  for k in d_of]
        present.update(k for k in d_of if d_of[k] > 0)
        resolvable = li_contrast_ok and any(
            d_of[k] > 0 and mouth.get(k, 0.0) >= 3.0 * vox_lat for k in d_of)
        steps_truth.append({
            "t_index": i, "time_s": round(t, 4), "plating_time_s": round(proto.tau(t), 4),
            "front_depth_um": round(front, 4), "li_front_depth_um": round(li_front, 4),
            "spanning": bool(spanning), "shorted": bool(t_short is not None and t >= t_short),
            "n_cracks": int(sum(1 for v in d_of.values() if v > 0)),
            "crack_volume_um3": round(float(np.isin(lab, (3, 4)).sum()) * vox_um3, 3),
            "crack_volume_pv_um3": round(float(occ["void"].sum(dtype=np.float64)) * vox_um3, 3),
            "li_volume_um3": round(li_vol, 3), "charge_mC": round(q_mC, 6),
            "li_volume_budget_um3": round(budget, 3), "li_scale": round(scale, 6),
            "aperture_scale": round(ap, 6),
            "li_band_um": None if band_um is None else round(band_um, 4),
            "closure": round(proto.closure(t), 4), "current_sign": proto.sign(t),
            "drift_shift_vox": [float(v) for v in drift[i]],
            "gain": round(float(gains[i]), 6), "offset": round(float(offsets[i]), 3),
            "lithium_resolvable": bool(resolvable),
            "cracks": cracks,
        })

    span_index = next((s["t_index"] for s in steps_truth if s["spanning"]), None)
    z_last = (nz - 1) * dz
    za, zc = tilt.axis_z(cell.z_anode_um), tilt.axis_z(cell.z_cathode_um)
    if flip:
        za, zc = z_last - za, z_last - zc
    plane = tilt.plane(cell, flip, z_last)
    wall_cracks = sorted(touched_wall)
    imaging = {
        "ct": p["ct"], "phase_contrast": float(p["phase_contrast"]),
        "phase_retrieval": bool(p["phase_retrieval"]), "psf_vox": float(p["psf_vox"]),
        "noise_frac": float(p["noise_frac"]), "tilt_deg": float(p["tilt_deg"]),
        "tilt_azimuth_deg": float(p["tilt_azimuth_deg"]), "interior": bool(p["interior"]),
        "voxel_size_um": [dz, dy, dx], "die_material": p["die_material"],
        "counter_electrode": p["counter_electrode"], "energy_keV": float(p["energy_keV"]),
    }
    mouths_vox = [p["aperture_mouth_vox"] * c.aperture_factor for c in plans if c.id in present]
    conditions = _conditions(p, steps_truth, wall_cracks, mouths_vox)

    echem = _cycler(proto, lead, p, current_mA, t_short, r_echem)

    truth = {
        "voxel_size_um": [dz, dy, dx],
        "anode": p["anode"],
        "interfaces_um": [round(za, 4), round(zc, 4)],
        "interfaces": {"z_anode_side_um": round(za, 4), "z_cathode_side_um": round(zc, 4)},
        "electrolyte_slices": ([cell.anode_index, cell.cathode_index - 1] if not flip
                               else [nz - cell.cathode_index, nz - 1 - cell.anode_index]),
        "thickness_um": round(t_um, 4),
        "span_index": span_index,
        "span_time_s": None if t_span is None else round(t_span, 4),
        "short_time_s": None if t_short is None else round(t_short, 4),
        "lead_crack": lead.id if lead else None,
        "electrode_radius_um": round(cell.electrode_radius_um, 4),
        "pellet_radius_um": round(cell.pellet_radius_um, 4),
        "cell_axis_yx_um": [round(v, 4) for v in cell.centre_yx_um],
        "electrode_area_cm2": cell.electrode_area_cm2,
        "current_mA": current_mA,
        "omega_li_m3_mol": OMEGA_LI_M3_MOL,
        "labels": {str(v): k for k, v in LABELS.items()},
        "drift_convention": ("drift_shift_vox is the displacement of a scan's content relative "
                             "to step 0 (scipy.ndimage.shift convention); shifting the scan by "
                             "its negative registers it onto step 0"),
        "cracks": [c.to_dict() for c in plans],
        "steps": steps_truth,
        "imaging": imaging,
        "conditions": conditions,
        "interface_plane": plane,
        "wall_cracks": wall_cracks,
        "lithium_grey_contrast": round(float(grey_li_void), 3),
        "noise_grey_sd": round(noise_grey, 3),
        "crack_ids": "truth/crack_ids.zarr",
    }
    meta = {
        "format": "dendritect-simulate",
        "voxel_size_um": [dz, dy, dx],
        "times_s": [round(float(t), 4) for t in times],
        "anode": p["anode"],
        "electrolyte": p["electrolyte"],
        "current_density_mA_cm2": float(p["current_density_mA_cm2"]),
        "seed": seed,
        "preset": p["preset"],
        "stack_pressure_MPa": float(p["stack_pressure_MPa"]),
        "ct": p["ct"],
        "shape_zyx": list(p["shape_zyx"]),
        "n_steps": nt,
        "energy_keV": float(p["energy_keV"]),
        "drift_shift_vox": [[float(v) for v in d] for d in drift],
        "scans": [f"scans/t{i:03d}.tif" for i in range(nt)],
        "echem": "echem.csv",
        "truth": "truth/truth.json",
        "labels": "truth/labels.zarr",
        "crack_ids": "truth/crack_ids.zarr",
        "parameters": _jsonable(p),
    }
    return SyntheticCell(scans=scans, labels=labels, times_s=np.asarray(times, float),
                         voxel_size_um=(dz, dy, dx), echem=echem, truth=truth, meta=meta,
                         params=p, crack_ids=crack_ids)


class _Tilt:
    """Rotation of the whole cell about an axis in the (y, x) plane through the volume centre.

    The cell axis (+z, anode toward cathode) becomes ``normal = (cos t, sin t sin a,
    sin t cos a)`` (z, y, x) for tilt ``t`` and azimuth ``a``; rotated in micrometres, so
    anisotropic voxels are handled.
    """

    def __init__(self, p: dict):
        self.vox = np.asarray(p["voxel_size_um"], float)
        self.shape = np.asarray(p["shape_zyx"], int)
        self.centre_um = (self.shape - 1) / 2 * self.vox
        t = math.radians(float(p["tilt_deg"]))
        a = math.radians(float(p["tilt_azimuth_deg"]))
        self.t = t
        self.active = t > 0
        e = np.array([1.0, 0.0, 0.0])
        n = np.array([math.cos(t), math.sin(t) * math.sin(a), math.sin(t) * math.cos(a)])
        self.normal = n
        if self.active:
            k = np.cross(e, n)
            k /= np.linalg.norm(k)
            kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
            self.R = np.eye(3) + math.sin(t) * kx + (1 - math.cos(t)) * kx @ kx
        else:
            self.R = np.eye(3)
        # Output voxel o samples the input at M o + off (content rotated by R).
        s = np.diag(1.0 / self.vox) @ self.R.T @ np.diag(self.vox)
        c = (self.shape - 1) / 2
        self.matrix, self.offset = s, c - s @ c

    def apply(self, vol: np.ndarray, order: int) -> np.ndarray:
        return ndimage.affine_transform(vol, self.matrix, offset=self.offset, order=order,
                                        mode="nearest", prefilter=False)

    def to_output(self, x_um: np.ndarray) -> np.ndarray:
        return self.centre_um + self.R @ (np.asarray(x_um, float) - self.centre_um)

    def axis_z(self, z_um: float) -> float:
        """z where the (rotated) plane z = ``z_um`` of the cell crosses the volume's axis."""
        if not self.active:
            return z_um
        cz = self.centre_um[0]
        return cz + (z_um - cz) / math.cos(self.t)

    def plane(self, cell, flip: bool, z_last: float) -> dict:
        cy, cx = cell.centre_yx_um
        pa = self.to_output([cell.z_anode_um, cy, cx])
        pc = self.to_output([cell.z_cathode_um, cy, cx])
        n = self.normal.copy()
        if flip:
            pa[0], pc[0], n[0] = z_last - pa[0], z_last - pc[0], -n[0]
        return {"normal_zyx": [round(float(v), 8) for v in n],
                "anode_point_um": [round(float(v), 4) for v in pa],
                "cathode_point_um": [round(float(v), 4) for v in pc]}


def _outside_profile(p: dict, cell, flip: bool):
    """Interior FBP: the static cell beyond the field of view, as radial profiles per slice."""
    if not (p["interior"] and p["ct"] == "fbp"):
        return None
    step = min(p["voxel_size_um"][1:]) / 2
    r_out = max(cell.pellet_radius_um, cell.electrode_radius_um,
                cell.die_radius_um if p["die_material"] != "air" else 0.0)
    r = np.arange(0.0, r_out + step, step)
    prof = radial_profile(p, cell, r)
    if flip:
        prof = prof[::-1]
    return r, np.ascontiguousarray(prof)


def _wall_ring(p: dict, cell) -> np.ndarray | None:
    """Pellet voxels (electrolyte slices) beside the pellet's outer surface, cell frame."""
    if p["interior"]:
        return None
    nz, ny, nx = p["shape_zyx"]
    dy, dx = p["voxel_size_um"][1:]
    yy = (np.arange(ny) - (ny - 1) / 2) * dy
    xx = (np.arange(nx) - (nx - 1) / 2) * dx
    r = np.hypot(yy[:, None], xx[None, :])
    bore = r <= cell.pellet_radius_um
    ring2d = bore & ~ndimage.binary_erosion(bore, border_value=1)
    out = np.zeros((nz, ny, nx), bool)
    out[cell.anode_index:cell.cathode_index] = ring2d
    return out


def _conditions(p: dict, steps: list[dict], wall_cracks: list[int],
                mouths_vox: list[float]) -> list[str]:
    """Short tags of what makes this cell hard (vocabulary in docs/simulate.md)."""
    dz, _, dx = p["voxel_size_um"]
    tags = {p["ct"]}
    if p["phase_contrast"] > 0:
        tags.add("phase")
        if p["phase_retrieval"]:
            tags.add("phase-retrieved")
    if p["tilt_deg"] >= 1:
        tags.add("tilt")
    if dz / dx >= 1.25:
        tags.add("aniso")
    if p["interior"]:
        tags.add("interior")
    if p["die_material"] == "steel":
        tags.add("steel-die")
    if p["die_material"] == "air":
        tags.add("air-die")
    if p["counter_electrode"] == "collector":
        tags.add("anode-free")
    if wall_cracks:
        tags.add("wall-crack")
    if mouths_vox and min(mouths_vox) < 1.5:
        tags.add("thin")
    if mouths_vox and max(mouths_vox) >= 3:
        tags.add("wide")
    if steps and steps[0]["n_cracks"] > 0:
        tags.add("precracked")
    if int(p["strip_half_cycles"]) > 0:
        tags.add("strip")
    if not any(s["spanning"] for s in steps):
        tags.add("no-span")
    if p["psf_vox"] >= 1:
        tags.add("blur")
    if p["noise_frac"] >= 0.04:
        tags.add("noisy")
    return sorted(tags)


def _bisect(ok, n: int = 18) -> float:
    """Largest x in [0, 1] with ``ok(x)`` (``ok`` monotone, ``ok(0)`` true)."""
    lo, hi = 0.0, 1.0
    for _ in range(n):
        mid = (lo + hi) / 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _first_span(plans: list[CrackPlan]) -> CrackPlan | None:
    spanning = [c for c in plans if c.curve is not None and c.curve.t_span_s is not None]
    return min(spanning, key=lambda c: (c.curve.t_span_s, c.id)) if spanning else None


def _cycler(proto: _Protocol, lead: CrackPlan | None, p: dict, current_mA: float,
            t_short: float | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Cycler trace: the model's plating overpotential, a collapse once lithium bridges."""
    dt = float(p["echem_interval_s"])
    t = np.arange(0.0, proto.t_end + dt / 2, dt)
    tau = np.array([proto.tau(x) for x in t])
    sign = np.array([proto.sign(x) for x in t])
    if lead is not None:
        curve = lead.curve
        # The model's voltage is for the lead crack's local current density; the cycler sees
        # the cell's mean current density (the overpotential is ohmic, so it scales with it).
        j_ratio = float(p["current_density_mA_cm2"]) / lead.current_density_mA_cm2
        v_model = np.interp(tau, curve.tau_s, curve.voltage_V) * j_ratio
        pre = curve.voltage_V[curve.tau_s < (curve.t_short_s or np.inf)] * j_ratio
        v_plate = float(np.median(np.abs(pre))) if pre.size else 0.05
    else:
        v_model = np.full_like(t, 0.05)
        v_plate = 0.05
    v = sign * np.abs(v_model)
    if t_short is not None:
        # A lithium filament shorts the cell: the voltage collapses to its ohmic drop.
        after = t >= t_short
        v[after] = np.minimum(np.abs(v_model[after]), 0.02 * v_plate)
    v = v + rng.normal(0.0, p["echem_noise_V"], t.shape)
    i_mA = sign * current_mA
    return {"time_s": t, "voltage_V": v, "current_mA": i_mA}


def _jsonable(p: dict) -> dict:
    out = {}
    for k, v in p.items():
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out

