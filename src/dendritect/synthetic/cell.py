"""The static microstructure of the cell: plungers, electrodes, pellet, pores, grains, die.

Built in the orientation "anode on top" (low z); the twin flips it at the end when the anode
is at the bottom. Positions are in micrometres with voxel centres at ``index * voxel size``,
so the interface between voxel ``b - 1`` and ``b`` lies at ``(b - 0.5) * dz``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from dendritect.synthetic.materials import linear_attenuation_per_cm

__all__ = ["LABELS", "CellGeometry", "build_cell", "radial_profile"]

# Label codes of truth/labels.zarr (CONTRACT.md).
LABELS = {"electrolyte": 0, "electrode": 1, "pore": 2, "crack": 3, "crack_li": 4, "other": 5}


@dataclass
class CellGeometry:
    """Static cell, anode on top.

    Attributes
    ----------
    labels : ndarray of uint8, (z, y, x)
        Codes 0, 1, 2, 5 of :data:`LABELS` (no cracks yet).
    mu_per_cm : ndarray of float32, (z, y, x)
        Linear attenuation without cracks, 1/cm.
    z_anode_um, z_cathode_um : float
        Electrolyte interfaces (anode side, cathode side), z positions in micrometres.
    anode_index, cathode_index : int
        First electrolyte slice and first slice past the electrolyte.
    centre_yx_um : tuple of float
        Cell axis position.
    electrode_radius_um, pellet_radius_um, die_radius_um : float
    electrode_area_cm2 : float
        Footprint of the plated electrode (sets the current from the current density).
    mu : dict
        Phase attenuation, 1/cm.
    """

    labels: np.ndarray
    mu_per_cm: np.ndarray
    z_anode_um: float
    z_cathode_um: float
    anode_index: int
    cathode_index: int
    centre_yx_um: tuple[float, float]
    electrode_radius_um: float
    pellet_radius_um: float
    die_radius_um: float
    electrode_area_cm2: float
    mu: dict[str, float]

    @property
    def thickness_um(self) -> float:
        return self.z_cathode_um - self.z_anode_um


def _radius_map(shape_yx: tuple[int, int], vox_yx: tuple[float, float]
                ) -> tuple[np.ndarray, tuple[float, float]]:
    cy = (shape_yx[0] - 1) / 2 * vox_yx[0]
    cx = (shape_yx[1] - 1) / 2 * vox_yx[1]
    y = np.arange(shape_yx[0], dtype=np.float32)[:, None] * vox_yx[0] - cy
    x = np.arange(shape_yx[1], dtype=np.float32)[None, :] * vox_yx[1] - cx
    return np.hypot(y, x), (cy, cx)


def build_cell(p: dict, rng: np.random.Generator,
               rng_extra: np.random.Generator | None = None) -> CellGeometry:
    """Build the static cell of parameter set ``p`` (see :mod:`dendritect.synthetic.presets`).

    ``rng`` draws grains and pores as always; ``rng_extra`` draws what only the newer knobs
    need (pore orientations when ``pore_aspect`` > 1), so the older presets are unchanged.
    """
    nz, ny, nx = p["shape_zyx"]
    dz, dy, dx = p["voxel_size_um"]
    fov_um = min(ny * dy, nx * dx)
    r_map, centre = _radius_map((ny, nx), (dy, dx))
    r_pel = p["pellet_radius_frac"] * fov_um
    # An electrode radius above the pellet's means the foil covers the whole pellet face.
    r_el = min(p["electrode_radius_frac"] * fov_um, r_pel)
    r_die = p["die_radius_frac"] * fov_um
    e = p["energy_keV"]
    mu = {ph: linear_attenuation_per_cm(ph, e)
          for ph in ("Li", p["electrolyte"], "steel", "PEEK", "air")}
    mu["electrolyte"] = mu[p["electrolyte"]]

    a = int(p["plunger_vox"]) + int(p["electrode_vox"])  # first electrolyte slice
    c = nz - a  # first slice past the electrolyte
    labels = np.full((nz, ny, nx), LABELS["other"], np.uint8)
    mu_v = np.full((nz, ny, nx), mu["air"], np.float32)

    bore = r_map <= r_pel
    gap_um = float(p.get("die_gap_vox", 0.0)) * min(dy, dx)
    die = (r_map > r_pel + gap_um) & (r_map <= r_die)
    elec = r_map <= r_el
    pl = int(p["plunger_vox"])
    die_mat = p.get("die_material", "PEEK")
    if die_mat != "air":
        mu_v[:, die] = mu[die_mat]
    # Plungers fill the bore; the electrolyte pellet too; Li foils are smaller than the pellet,
    # leaving an air gap beside them between plunger and pellet.
    for zs in (slice(0, pl), slice(nz - pl, nz)):
        mu_v[zs][:, bore] = mu["steel"]
    for zs in (slice(pl, a), slice(c, nz - pl)):
        labels[zs][:, elec] = LABELS["electrode"]
        mu_v[zs][:, elec] = mu["Li"]
    if p["counter_electrode"] == "collector":
        # Anode-free counter side: a steel current collector foil on the plunger.
        zs = slice(c, nz - pl)
        labels[zs][:, elec] = LABELS["other"]
        mu_v[zs][:, elec] = mu["air"]
        foil = slice(nz - pl - 2, nz - pl)
        mu_v[foil][:, bore] = mu["steel"]
    labels[a:c][:, bore] = LABELS["electrolyte"]

    # Grains: a Voronoi tessellation of the pellet with a faint density scatter.
    el = np.zeros((c - a, ny, nx), bool)
    el[:, bore] = True
    n_grains = max(8, int(el.sum() * dz * dy * dx / p["grain_size_um"] ** 3))
    seeds = np.zeros(el.shape, np.int32)
    idx = rng.integers(0, np.array(el.shape), size=(n_grains, 3))
    seeds[idx[:, 0], idx[:, 1], idx[:, 2]] = np.arange(1, n_grains + 1)
    _, nearest = ndimage.distance_transform_edt(seeds == 0, sampling=(dz, dy, dx),
                                                return_indices=True)
    grain_id = seeds[nearest[0], nearest[1], nearest[2]]
    scatter = (1.0 + p["grain_contrast"] * rng.standard_normal(n_grains + 1)).astype(np.float32)
    slab = np.where(el, mu["electrolyte"] * scatter[grain_id], mu_v[a:c])
    mu_v[a:c] = slab

    # Pre-existing pores: log-normal radii until the resolved porosity is reached.
    target = (1.0 - p["relative_density"]) * el.sum() * dz * dy * dx
    vol = 0.0
    pore = np.zeros(el.shape, bool)
    zz = np.arange(c - a) * dz
    yy = np.arange(ny) * dy
    xx = np.arange(nx) * dx
    guard = 0
    aspect = float(p.get("pore_aspect", 1.0))
    if aspect != 1.0 and rng_extra is None:
        rng_extra = np.random.default_rng(0)
    while vol < target and guard < 100000:
        guard += 1
        rad = float(p["pore_radius_um"] * rng.lognormal(0.0, p["pore_sigma"]))
        if aspect != 1.0:  # prolate ellipsoid of the same volume, random orientation
            axis = rng_extra.standard_normal(3)
            axis /= max(float(np.linalg.norm(axis)), 1e-12)
            a_long, b_short = rad * aspect ** (2 / 3), rad * aspect ** (-1 / 3)
        else:
            axis, a_long, b_short = None, rad, rad
        rr = r_pel * np.sqrt(rng.random())
        th = 2 * np.pi * rng.random()
        py, px = centre[0] + rr * np.sin(th), centre[1] + rr * np.cos(th)
        pz = rng.random() * (c - a - 1) * dz
        sl = []
        reach = max(rad, a_long)
        for q, step, n in ((pz, dz, c - a), (py, dy, ny), (px, dx, nx)):
            lo = max(0, int(np.floor((q - reach) / step)))
            hi = min(n, int(np.ceil((q + reach) / step)) + 1)
            sl.append(slice(lo, hi))
        qz = zz[sl[0], None, None] - pz
        qy = yy[None, sl[1], None] - py
        qx = xx[None, None, sl[2]] - px
        if axis is None:
            ball = (qz ** 2 + qy ** 2 + qx ** 2) <= rad ** 2
        else:
            along = qz * axis[0] + qy * axis[1] + qx * axis[2]
            ball = ((qz ** 2 + qy ** 2 + qx ** 2 - along ** 2) / b_short ** 2
                    + along ** 2 / a_long ** 2) <= 1.0
        ball &= el[sl[0], sl[1], sl[2]]
        pore[sl[0], sl[1], sl[2]] |= ball
        vol += ball.sum() * dz * dy * dx
    lab_el = labels[a:c]
    lab_el[pore] = LABELS["pore"]
    mu_v[a:c][pore] = mu["air"]

    return CellGeometry(
        labels=labels, mu_per_cm=mu_v,
        z_anode_um=(a - 0.5) * dz, z_cathode_um=(c - 0.5) * dz,
        anode_index=a, cathode_index=c, centre_yx_um=centre,
        electrode_radius_um=float(r_el), pellet_radius_um=float(r_pel),
        die_radius_um=float(r_die), electrode_area_cm2=float(np.pi * (r_el * 1e-4) ** 2),
        mu=mu,
    )


def radial_profile(p: dict, cell: CellGeometry, r_um: np.ndarray) -> np.ndarray:
    """Attenuation (1/cm) of the static cell layers at radii ``r_um`` from the axis, per slice.

    The cell as :func:`build_cell` lays it out (plungers, electrodes, collector, pellet, die),
    without pores, grains or cracks: what lies outside the field of view in interior
    tomography. Returns an array of shape ``(nz, *r_um.shape)``, anode on top.
    """
    nz = p["shape_zyx"][0]
    dy, dx = p["voxel_size_um"][1:]
    mu = cell.mu
    r = np.asarray(r_um, np.float64)
    r_pel, r_el, r_die = cell.pellet_radius_um, cell.electrode_radius_um, cell.die_radius_um
    gap_um = float(p.get("die_gap_vox", 0.0)) * min(dy, dx)
    out = np.full((nz, *r.shape), mu["air"], np.float32)
    bore = r <= r_pel
    die = (r > r_pel + gap_um) & (r <= r_die)
    elec = r <= r_el
    die_mat = p.get("die_material", "PEEK")
    if die_mat != "air":
        out[:, die] = mu[die_mat]
    pl = int(p["plunger_vox"])
    a, c = cell.anode_index, cell.cathode_index
    for zs in (slice(0, pl), slice(nz - pl, nz)):
        out[zs][:, bore] = mu["steel"]
    for zs in (slice(pl, a), slice(c, nz - pl)):
        out[zs][:, elec] = mu["Li"]
    if p["counter_electrode"] == "collector":
        out[c:nz - pl][:, elec] = mu["air"]
        out[nz - pl - 2:nz - pl][:, bore] = mu["steel"]
    out[a:c][:, bore] = mu["electrolyte"]
    return out
