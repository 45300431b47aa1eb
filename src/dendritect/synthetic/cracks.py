"""Dendrite cracks: where they start, how deep they are at each scan, and their voxels.

Each crack is one spallation ("pothole") lens near the plated electrode's edge, plus a
transverse sheet that grows from the lens toward the counter electrode, as imaged by
Ning et al. (Nat. Mater. 20, 1121, 2021; Nature 618, 287, 2023). Its depth and the length of its
lithium-filled part follow :func:`dendritect.physics.growth.grow`; the geometry (roughness,
deflection, branching, a wedge-shaped aperture widest at the mouth) is drawn here.

Coordinates are micrometres, anode on top, voxel centres at ``index * voxel size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dendritect.synthetic.cell import CellGeometry

__all__ = ["CrackPlan", "GrowthCurve", "Rasterizer", "model_growth", "plan_cracks",
           "sheet_root"]


@dataclass
class GrowthCurve:
    """Crack and lithium depth against plating time, from the growth model."""

    tau_s: np.ndarray
    depth_um: np.ndarray
    li_um: np.ndarray
    voltage_V: np.ndarray
    t_span_s: float | None
    t_short_s: float | None
    t_initiation_s: float | None

    def at(self, tau_s: float) -> tuple[float, float]:
        """Crack depth and lithium depth (µm) at plating time ``tau_s``."""
        d = float(np.interp(tau_s, self.tau_s, self.depth_um))
        li = float(np.interp(tau_s, self.tau_s, self.li_um))
        return d, min(li, d)


def model_growth(p: dict, *, thickness_um: float, flaw_um: float,
                 current_density_mA_cm2: float) -> GrowthCurve:
    """Ask the growth model for one crack's depth and lithium length against plating time.

    Parameters
    ----------
    p : dict
        Resolved simulation parameters (electrolyte, stack pressure, duration).
    thickness_um, flaw_um, current_density_mA_cm2 : float
        Electrolyte thickness, interface flaw size and local current density of this crack.
    """
    from dendritect.physics.growth import grow

    duration = float(p["duration_s"])
    t_eval = np.linspace(0.0, duration, 801)
    res = grow(p["electrolyte"], current_density_mA_cm2=float(current_density_mA_cm2),
               stack_pressure_MPa=float(p["stack_pressure_MPa"]),
               thickness_um=float(thickness_um), flaw_um=float(flaw_um),
               duration_s=duration, t_eval_s=t_eval)
    tau = np.asarray(res.time_s, dtype=float)
    depth = np.clip(np.nan_to_num(np.asarray(res.crack_length_um, dtype=float)), 0.0,
                    thickness_um)
    # Depth never recedes during plating; lithium never leads the tip.
    depth = np.maximum.accumulate(depth)
    li = np.minimum(np.clip(np.nan_to_num(np.asarray(res.li_length_um, dtype=float)), 0.0, None),
                    depth)
    volt = np.nan_to_num(np.asarray(res.voltage_V, dtype=float))
    t_span = _finite(getattr(res, "t_span_s", None))
    if t_span is None and depth[-1] >= thickness_um:
        t_span = float(tau[np.argmax(depth >= thickness_um)])
    t_short = _finite(getattr(res, "t_short_s", None))
    if t_short is None and li[-1] >= thickness_um:
        t_short = float(tau[np.argmax(li >= thickness_um)])
    return GrowthCurve(tau, depth, li, volt, t_span, t_short,
                       _finite(getattr(res, "t_initiation_s", None)))


def _finite(x: object) -> float | None:
    if x is None:
        return None
    x = float(x)  # type: ignore[arg-type]
    return x if math.isfinite(x) else None


@dataclass
class CrackPlan:
    """One crack's drawn parameters (anode-top frame, micrometres)."""

    id: int
    origin_um: tuple[float, float, float]  # spallation mouth on the anode interface (z, y, x)
    radius_frac: float  # distance from the cell axis / electrode radius
    flaw_um: float
    current_density_mA_cm2: float  # local, with edge focusing
    spall_depth_um: float
    spall_dip_rad: float
    dip_dir_yx: tuple[float, float]
    spall_halfwidth_ratio: float
    azimuth_rad: float  # of the transverse sheet's plane
    width_ratio: float  # lateral half-width growth per unit depth
    arrest_um: float | None
    deflect: tuple[float, float] | None  # (depth_um, tan of tilt)
    branch: dict | None
    waves: np.ndarray  # roughness: rows of (amplitude_um, k_s, k_h, phase)
    curve: GrowthCurve | None = field(default=None, repr=False)
    aperture_factor: float = 1.0  # this crack's mouth aperture / aperture_mouth_vox
    wall: bool = False  # seeded at the pellet wall, its sheet runs out to the wall
    #: where the transverse sheet leaves the lens: its lower end, or, for a lens that runs out
    #: of the pellet first, its last point inside (depth below the anode, y, x); set by
    #: :func:`plan_cracks`
    root_um: tuple[float, float, float] | None = None

    def to_dict(self) -> dict:
        return {
            "id": self.id, "origin_um": [round(v, 3) for v in self.origin_um],
            "radius_frac": round(self.radius_frac, 4), "flaw_um": round(self.flaw_um, 4),
            "current_density_mA_cm2": round(self.current_density_mA_cm2, 5),
            "spall_depth_um": round(self.spall_depth_um, 3),
            "spall_dip_deg": round(math.degrees(self.spall_dip_rad), 2),
            "azimuth_deg": round(math.degrees(self.azimuth_rad), 2),
            "arrest_depth_um": None if self.arrest_um is None else round(self.arrest_um, 3),
            "deflected": self.deflect is not None, "branched": self.branch is not None,
            "t_initiation_s": _r(self.curve.t_initiation_s) if self.curve else None,
            "t_span_s": _r(self.curve.t_span_s) if self.curve else None,
            "t_short_s": _r(self.curve.t_short_s) if self.curve else None,
            "aperture_factor": round(self.aperture_factor, 4), "wall_seeded": self.wall,
            "sheet_root_um": None if self.root_um is None else [round(v, 3)
                                                                for v in self.root_um],
        }


def sheet_root(plan: CrackPlan, centre_yx_um: tuple[float, float], radius_um: float
               ) -> tuple[float, float, float]:
    """Where the transverse sheet leaves the spallation lens (depth below the anode, y, x).

    The lens descends from its mouth along ``dip_dir_yx`` at the dip angle; the sheet starts at
    its lower end, or, where the lens runs out of the pellet (radius ``radius_um`` about
    ``centre_yx_um``) before that, at its last point inside: a crack is one surface inside
    the electrolyte, never joined through the die.
    """
    _, y0, x0 = plan.origin_um
    vy, vx = plan.dip_dir_yx
    tan = math.tan(plan.spall_dip_rad)
    reach = plan.spall_depth_um / tan
    py, px = y0 - centre_yx_um[0], x0 - centre_yx_um[1]
    b = py * vy + px * vx
    c = py * py + px * px - radius_um * radius_um
    if c > 0:  # the mouth itself at (or past) the wall
        s = 0.0
    else:
        s = min(reach, -b + math.sqrt(max(b * b - c, 0.0)))
    return s * tan, y0 + s * vy, x0 + s * vx


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)


def _waves(rng: np.random.Generator, amp_um: float, vox_um: float) -> np.ndarray:
    n = 4
    lam = rng.uniform(4.0, 16.0, n) * vox_um
    ang = rng.uniform(0, np.pi, n)
    k = 2 * np.pi / lam
    amp = amp_um * rng.uniform(0.5, 1.0, n) / math.sqrt(n / 2)
    return np.stack([amp, k * np.cos(ang), k * np.sin(ang), rng.uniform(0, 2 * np.pi, n)], 1)


def plan_cracks(p: dict, cell: CellGeometry, rng: np.random.Generator,
                rng_extra: np.random.Generator | None = None) -> list[CrackPlan]:
    """Draw the cracks' sites, flaw sizes and shapes (growth curves are attached later).

    ``rng`` draws everything the older presets use, in the same order; ``rng_extra`` (a
    separate stream) draws per-crack aperture factors and pellet-wall cracks.
    """
    vox = min(p["voxel_size_um"][1:])
    r_e = cell.electrode_radius_um
    t_um = cell.thickness_um
    if rng_extra is None:
        rng_extra = np.random.default_rng(0)
    ny, nx = p["shape_zyx"][1:]
    fov_r = min(ny * p["voxel_size_um"][1], nx * p["voxel_size_um"][2]) / 2
    # Interior tomography: sites are kept inside the field of view (scaled radially).
    site_scale = min(1.0, 0.85 * fov_r / r_e) if p.get("interior") else 1.0
    spread = float(p.get("aperture_spread", 0.0))
    wall_p = 0.0 if p.get("interior") else float(p.get("wall_crack_prob", 0.0))
    plans = []
    for k in range(int(p["n_cracks"])):
        ap_f = float(np.clip(np.exp(spread * rng_extra.standard_normal()), 0.3, 3.0)) \
            if spread > 0 else 1.0
        wall = bool(rng_extra.random() < wall_p) if wall_p > 0 else False
        wall_draw = (rng_extra.uniform(0.93, 0.99), rng_extra.normal(0.0, 0.3),
                     rng_extra.uniform(0.9, 1.3)) if wall else None
        if rng.random() < p["central_fraction"]:
            rf = 0.85 * math.sqrt(rng.random())
        else:  # spallations cluster at the electrode edge, where current focuses
            rf = float(np.clip(1.0 - abs(rng.normal(0.0, p["edge_spread"])) - 0.03, 0.35, 0.97))
        th = rng.uniform(0, 2 * np.pi)
        if wall_draw is not None:
            rf = float(wall_draw[0])  # at the electrode edge nearest the pellet wall
        y0 = cell.centre_yx_um[0] + rf * site_scale * r_e * math.sin(th)
        x0 = cell.centre_yx_um[1] + rf * site_scale * r_e * math.cos(th)
        # Weibull-distributed interface flaws.
        flaw = float(p["flaw_scale_um"] * rng.weibull(p["flaw_weibull_m"]))
        gain = p["edge_current_gain"] * math.exp(-(1.0 - rf) / 0.08)
        j_loc = float(p["current_density_mA_cm2"]) * (1.0 + gain)
        h_sp = float(rng.uniform(*p["spall_depth_frac"]) * t_um)
        dip = math.radians(rng.uniform(*p["spall_dip_deg"]))
        # Dip mostly under the electrode (inward), with scatter.
        inward = th + np.pi + rng.normal(0, 0.6)
        dip_dir = (math.sin(inward), math.cos(inward))
        deflect = None
        if rng.random() < p["deflect_prob"]:
            deflect = (float(rng.uniform(0.3, 0.7) * t_um),
                       math.tan(math.radians(rng.uniform(10, 25))) * rng.choice([-1, 1]))
        branch = None
        if rng.random() < p["branch_prob"]:
            hb = float(rng.uniform(0.3, 0.6) * t_um)
            branch = {"depth_um": hb,
                      "azimuth_rad": float(rng.uniform(np.radians(25), np.radians(50))
                                           * rng.choice([-1, 1])),
                      "arrest_um": float(hb + rng.uniform(0.15, 0.6) * (t_um - hb)),
                      "waves": _waves(rng, p["roughness_vox"] * vox, vox)}
        arrest = None
        if rng.random() < p["arrest_prob"]:
            arrest = float(rng.uniform(0.25, 0.7) * t_um)
        plan = CrackPlan(
            id=k + 1, origin_um=(cell.z_anode_um, y0, x0), radius_frac=rf, flaw_um=flaw,
            current_density_mA_cm2=j_loc, spall_depth_um=h_sp, spall_dip_rad=dip,
            dip_dir_yx=dip_dir, spall_halfwidth_ratio=float(rng.uniform(0.5, 0.9)),
            azimuth_rad=float(rng.uniform(0, np.pi)), width_ratio=float(rng.uniform(0.45, 0.8)),
            arrest_um=arrest, deflect=deflect, branch=branch,
            waves=_waves(rng, p["roughness_vox"] * vox, vox), aperture_factor=ap_f, wall=wall)
        if wall_draw is not None:
            # The lens dips outward and the sheet's plane is radial and wide, so the sheet
            # runs out to the pellet wall (the rasteriser clips it there).
            out = th + float(wall_draw[1])
            plan.dip_dir_yx = (math.sin(out), math.cos(out))
            plan.azimuth_rad = float(th % np.pi)
            plan.width_ratio = float(wall_draw[2])
            plan.deflect = None
        # two voxels inside the wall: the rasteriser's pellet ends within a voxel of it
        plan.root_um = sheet_root(plan, cell.centre_yx_um,
                                  cell.pellet_radius_um - 2.0 * max(p["voxel_size_um"][1:]))
        plans.append(plan)
    return plans


def _rough(waves: np.ndarray, s: np.ndarray, h: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast_shapes(s.shape, h.shape), np.float32)
    for amp, ks, kh, ph in waves:
        out += np.float32(amp) * np.sin(ks * s + kh * h + ph).astype(np.float32)
    return out


def _overlap(dn: np.ndarray, a: np.ndarray, v: float) -> np.ndarray:
    """Fraction of a voxel of width ``v`` (centred at ``dn``) inside a slab ``|x| <= a/2``."""
    lo = np.maximum(dn - v / 2, -a / 2)
    hi = np.minimum(dn + v / 2, a / 2)
    return np.clip((hi - lo) / v, 0.0, 1.0)


@dataclass
class _Component:
    kind: str  # "spall", "sheet", "branch"
    crack: int
    box: tuple[slice, slice, slice]
    h: np.ndarray  # depth of each voxel centre below the anode interface
    a1: np.ndarray  # in-plane coordinate 1 (sheet: depth; lens: along dip)
    a2: np.ndarray  # in-plane coordinate 2 (lateral)
    dn: np.ndarray  # signed distance to the (rough) mid-surface
    v_n: float  # voxel size along the surface normal
    h0: float  # depth where it starts
    width_ratio: float
    arrest_um: float | None


class Rasterizer:
    """Turns crack depths into voxel occupancy, reusing per-crack coordinate boxes."""

    def __init__(self, p: dict, cell: CellGeometry, plans: list[CrackPlan],
                 max_depth_um: dict[int, float]):
        self.p = p
        self.cell = cell
        self.shape = p["shape_zyx"]
        self.vox = np.asarray(p["voxel_size_um"], float)
        self.comps: list[_Component] = []
        self._plans = {c.id: c for c in plans}
        for plan in plans:
            dmax = max_depth_um.get(plan.id, 0.0)
            if dmax <= 0:
                continue
            self.comps.append(self._lens(plan))
            # the sheet grows from the lens's root: past it, the crack's depth is the sheet's
            if dmax > self._root(plan)[0]:
                self.comps.append(self._sheet(plan, dmax))
                if plan.branch is not None and dmax > plan.branch["depth_um"]:
                    self.comps.append(self._branch(plan, dmax))
        el = np.isin(cell.labels, (0, 2))
        self._electrolyte = el
        self._cache: dict[int, tuple] = {}  # component index -> (key, occupancy, label)

    # --- geometry boxes -------------------------------------------------------------------
    def _grid(self, lo_um: np.ndarray, hi_um: np.ndarray):
        lo = np.maximum(np.floor(lo_um / self.vox).astype(int), 0)
        hi = np.minimum(np.ceil(hi_um / self.vox).astype(int) + 1, self.shape)
        hi = np.maximum(hi, lo)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        z = (np.arange(box[0].start, box[0].stop, dtype=np.float32) * self.vox[0])[:, None, None]
        y = (np.arange(box[1].start, box[1].stop, dtype=np.float32) * self.vox[1])[None, :, None]
        x = (np.arange(box[2].start, box[2].stop, dtype=np.float32) * self.vox[2])[None, None, :]
        return box, z, y, x

    def _v_normal(self, n_zyx: np.ndarray) -> float:
        return float(np.sqrt(np.sum((n_zyx * self.vox) ** 2)))

    def _lens(self, c: CrackPlan) -> _Component:
        z0, y0, x0 = c.origin_um
        vy, vx = c.dip_dir_yx
        sb, cb = math.sin(c.spall_dip_rad), math.cos(c.spall_dip_rad)
        length = c.spall_depth_um / sb
        e1 = np.array([sb, cb * vy, cb * vx])
        e2 = np.array([0.0, -vx, vy])
        m = np.array([cb, -sb * vy, -sb * vx])
        half_w = c.spall_halfwidth_ratio * length / 2 + 2 * self.vox.max()
        pad = 3 * self.vox.max() + 2 * float(np.abs(c.waves[:, 0]).sum())
        ends = np.array([[z0, y0, x0], [z0 + c.spall_depth_um, y0 + length * cb * vy,
                                        x0 + length * cb * vx]])
        lo = ends.min(0) - half_w - pad
        hi = ends.max(0) + half_w + pad
        lo[0] = z0 - pad
        hi[0] = z0 + c.spall_depth_um + pad
        box, z, y, x = self._grid(lo, hi)
        qz, qy, qx = z - z0, y - y0, x - x0
        u1 = (qz * e1[0] + qy * e1[1] + qx * e1[2]).astype(np.float32)
        u2 = (qy * e2[1] + qx * e2[2] + 0 * qz).astype(np.float32)
        dn = (qz * m[0] + qy * m[1] + qx * m[2]).astype(np.float32)
        dn = dn - _rough(c.waves * np.array([0.4, 1, 1, 1]), u1, u2)
        h = np.broadcast_to(z - z0, u1.shape).astype(np.float32)
        return _Component("spall", c.id, box, h, u1, u2, dn, self._v_normal(m), 0.0,
                          c.spall_halfwidth_ratio, None)

    def _sheet_like(self, c: CrackPlan, kind: str, origin: tuple[float, float, float],
                    azimuth: float, width_ratio: float, dmax: float, waves: np.ndarray,
                    arrest: float | None) -> _Component:
        z_a = self.cell.z_anode_um
        oz, oy, ox = origin
        uy, ux = math.sin(azimuth), math.cos(azimuth)
        ny_, nx_ = ux, -uy
        h0 = oz - z_a
        wmax = 2 * self.vox.max() + width_ratio * (dmax - h0)
        defl = 0.0
        if kind == "sheet" and c.deflect is not None:
            defl = abs(c.deflect[1]) * max(0.0, dmax - c.deflect[0])
        pad = wmax + defl + 3 * self.vox.max() + 2 * float(np.abs(waves[:, 0]).sum())
        lo = np.array([oz - 2 * self.vox[0], oy - pad, ox - pad])
        hi = np.array([z_a + min(dmax, self.cell.thickness_um) + 3 * self.vox[0],
                       oy + pad, ox + pad])
        box, z, y, x = self._grid(lo, hi)
        qy, qx = y - oy, x - ox
        h = np.broadcast_to(z - z_a, (z.shape[0], y.shape[1], x.shape[2])).astype(np.float32)
        s = np.broadcast_to(qy * uy + qx * ux, h.shape).astype(np.float32)
        dn = np.broadcast_to(qy * ny_ + qx * nx_, h.shape).astype(np.float32)
        dn = dn - _rough(waves, s, h)
        if kind == "sheet" and c.deflect is not None:
            dn = dn - np.float32(c.deflect[1]) * np.maximum(h - np.float32(c.deflect[0]), 0)
        return _Component(kind, c.id, box, h, h, s, dn.astype(np.float32),
                          self._v_normal(np.array([0.0, ny_, nx_])), h0, width_ratio, arrest)

    def _root(self, c: CrackPlan) -> tuple[float, float, float]:
        # a plan made without one: the lens's lower end
        return c.root_um if c.root_um is not None else sheet_root(c, (0.0, 0.0), math.inf)

    def _sheet(self, c: CrackPlan, dmax: float) -> _Component:
        z0 = c.origin_um[0]
        h_r, oy, ox = self._root(c)
        origin = (z0 + h_r - self.vox[0], oy, ox)
        return self._sheet_like(c, "sheet", origin, c.azimuth_rad, c.width_ratio, dmax,
                                c.waves, None)

    def _branch(self, c: CrackPlan, dmax: float) -> _Component:
        _, oy, ox = self._root(c)
        hb = c.branch["depth_um"]
        # Branch point: on the main sheet's centre line at depth hb (with its deflection).
        if c.deflect is not None and hb > c.deflect[0]:
            off = c.deflect[1] * (hb - c.deflect[0])
            oy += off * math.cos(c.azimuth_rad)
            ox -= off * math.sin(c.azimuth_rad)
        origin = (self.cell.z_anode_um + hb, oy, ox)
        return self._sheet_like(c, "branch", origin, c.azimuth_rad + c.branch["azimuth_rad"],
                                c.width_ratio * 0.5, min(dmax, c.branch["arrest_um"]),
                                c.branch["waves"], c.branch["arrest_um"])

    # --- per step -------------------------------------------------------------------------
    def render(self, depth_um: dict[int, float], li_um: dict[int, float],
               closure: float = 0.0, aperture_scale: float = 1.0,
               li_only: bool = False,
               li_band_um: dict[int, float] | None = None) -> dict[str, np.ndarray]:
        """Voxel occupancy of all cracks at one step.

        Parameters
        ----------
        depth_um, li_um : dict
            Crack id -> tip depth and lithium-filled depth (µm below the anode interface).
        closure : float
            Fraction by which apertures are reduced (stripping).
        aperture_scale : float
            Factor on all apertures (mass balance in cells too small for the drawn openings).
        li_only : bool
            Only ``li`` is wanted (mass-balance search): the rest is not computed.
        li_band_um : dict, optional
            Crack id -> half-width (µm) of the band about the crack's centre line that its
            lithium fills: a shorted crack is bridged by a lithium filament, not flooded.

        Returns
        -------
        dict
            ``void`` (float32 fraction of each voxel that is crack), ``li`` (float32 fraction
            filled with lithium), ``crack`` and ``crack_li`` (bool truth labels).
        """
        shape = tuple(self.shape)
        void = np.zeros(shape, np.float32)
        li = np.zeros(shape, np.float32)
        lab = np.zeros(shape, bool)
        lab_li = np.zeros(shape, bool)
        ids = np.zeros(shape, np.uint8)
        t_um = self.cell.thickness_um
        p = self.p
        vox = float(min(self.vox[1:]))
        a_tip = p["aperture_tip_vox"] * vox
        open_f = (1.0 - closure) * aperture_scale
        el = self._electrolyte
        vox_um3 = float(np.prod(self.vox))
        volume_pv: dict[int, float] = {}
        mouth: dict[int, float] = {}
        # Components grouped by crack (the order of the components is kept): each crack's
        # occupancy is the maximum over its components, so its own opening volume is known.
        by_crack: dict[int, list[tuple[int, _Component]]] = {}
        for ic, comp in enumerate(self.comps):
            by_crack.setdefault(comp.crack, []).append((ic, comp))
        for cid, comps in by_crack.items():
            ubox = tuple(slice(min(c.box[ax].start for _, c in comps),
                               max(c.box[ax].stop for _, c in comps)) for ax in range(3))
            if not li_only:
                own = np.zeros(tuple(b.stop - b.start for b in ubox), np.float32)
            ap_f = self._plans[cid].aperture_factor
            for ic, comp in comps:
                # The geometry depends on the depth and the opening only, not on the lithium
                # depth: the mass-balance search reuses it.
                key = (depth_um.get(comp.crack, 0.0), open_f)
                hit = self._cache.get(ic)
                if hit is not None and hit[0] == key:
                    got = hit[1]
                else:
                    got = self._component(comp, depth_um, a_tip, open_f, vox, t_um, ap_f)
                    self._cache[ic] = (key, got)
                if got is None:
                    continue
                occ, lab_c, m = got
                if comp.kind == "spall":
                    mouth.setdefault(cid, m)
                elif comp.kind == "sheet":
                    mouth[cid] = m
                wet = comp.h <= li_um.get(comp.crack, 0.0)
                band = (li_band_um or {}).get(comp.crack)
                if band is not None:
                    wet = wet & (np.abs(comp.a2) < band)
                b = comp.box
                if li_only:
                    np.maximum(li[b], np.where(wet, occ, 0).astype(np.float32), out=li[b])
                    continue
                ob = tuple(slice(b[ax].start - ubox[ax].start, b[ax].stop - ubox[ax].start)
                           for ax in range(3))
                np.maximum(void[b], occ, out=void[b])
                np.maximum(li[b], np.where(wet, occ, 0).astype(np.float32), out=li[b])
                np.maximum(own[ob], occ, out=own[ob])
                lab[b] |= lab_c
                lab_li[b] |= lab_c & wet
                ids[b][lab_c & el[b]] = cid
            if not li_only:
                volume_pv[cid] = float((own * el[ubox]).sum(dtype=np.float64) * vox_um3)
        if li_only:
            li *= el
            return {"li": li}
        void *= el
        li *= el
        lab &= el
        lab_li &= el
        return {"void": void, "li": li, "crack": lab, "crack_li": lab_li, "ids": ids,
                "volume_pv_um3": volume_pv, "mouth_um": mouth}

    def _component(self, comp: _Component, depth_um: dict[int, float], a_tip: float,
                   open_f: float, vox: float, t_um: float, ap_f: float):
        p = self.p
        d = depth_um.get(comp.crack, 0.0)
        if comp.kind == "spall":
            ell = min(d, self.p_spall_depth(comp)) / max(
                math.sin(self._dip(comp)), 1e-6)
            if ell < 0.5 * vox:
                return None
            half = ell / 2
            w = max(comp.width_ratio * half, vox)
            rho2 = ((comp.a1 - half) / half) ** 2 + (comp.a2 / w) ** 2
            inside = rho2 <= 1.0
            a_sp = p["aperture_spall_vox"] * vox
            a = np.maximum(a_sp * np.sqrt(np.clip(1 - rho2, 0, 1)), a_tip) * open_f
            m = max(a_sp, a_tip) * open_f
        else:
            if comp.arrest_um is not None:
                d = min(d, comp.arrest_um)
            if d <= comp.h0:
                return None
            d_geo = d + 2 * self.vox[0] if d >= t_um else d  # a spanning sheet meets the
            span = d_geo - comp.h0  # cathode along a line, not at a point
            w = 2 * vox + comp.width_ratio * (d - comp.h0)
            rho2 = ((comp.h - comp.h0) / span) ** 2 + (comp.a2 / w) ** 2
            inside = (rho2 <= 1.0) & (comp.h >= comp.h0)
            grow_f = min(1.0, (d - comp.h0) / (0.5 * t_um))
            a_mouth = p["aperture_mouth_vox"] * ap_f * vox * (
                0.5 if comp.kind == "branch" else 1.0)
            a_mouth = a_tip + (max(a_mouth, a_tip) - a_tip) * grow_f
            a = (a_tip + (a_mouth - a_tip) * np.sqrt(np.clip(1 - rho2, 0, 1))) * open_f
            m = a_mouth * open_f
        occ = np.where(inside, _overlap(comp.dn, a, comp.v_n), 0.0).astype(np.float32)
        lab_c = inside & (np.abs(comp.dn) <= np.maximum(a, comp.v_n) / 2)
        return occ, lab_c, m

    def p_spall_depth(self, comp: _Component) -> float:
        return self._plans[comp.crack].spall_depth_um

    def _dip(self, comp: _Component) -> float:
        return self._plans[comp.crack].spall_dip_rad
