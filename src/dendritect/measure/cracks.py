"""Crack measurements: depth, areas, volume, aperture, orientation, origin.

Every length is in micrometres and uses the (possibly anisotropic) voxel size ``(dz, dy, dx)``.
Depths are measured from the anode|electrolyte interface toward the cathode along z, with the
cell geometry's ``depth_vox`` of voxel centres. A crack's front is the far face of its deepest
voxel (centre + half a voxel, at most the electrolyte thickness): a crack whose voxels fill the
electrolyte from one interface to the other has a front depth equal to the thickness.

Two kinds of dendrite crack are told apart by orientation, after the operando CT studies of
Li6PS5Cl by Ning et al., "Visualizing plating-induced cracking in lithium-anode solid-electrolyte
cells", Nature Materials 20, 1121 (2021): *spallation* cracks lie roughly parallel to the
electrode (normal along z) and *transverse* cracks run through the electrolyte (normal in plane).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.measure import marching_cubes, mesh_surface_area

from dendritect.errors import InputError

__all__ = [
    "CRACK_COLUMNS",
    "STEP_COLUMNS",
    "CrackHistory",
    "StepFrame",
    "crack_row",
    "front_cracks",
    "link_chains",
    "measure_cracks",
    "measure_step",
    "root_tracks",
    "spacing_um",
    "step_metrics",
]

CRACK_COLUMNS = [
    "t_index", "time_s", "crack_id", "n_voxels", "front_depth_um", "li_front_depth_um",
    "dry_tip_lead_um", "min_depth_um", "projected_area_um2", "surface_area_um2",
    "face_area_um2", "volume_um3", "aperture_mean_um", "aperture_max_um", "normal_angle_deg",
    "kind", "centroid_z_um", "centroid_y_um", "centroid_x_um", "edge_distance_um",
    "origin_edge_distance_um", "front_speed_um_s", "anchored", "spanning", "volume_vox_um3",
    "linked",
]
STEP_COLUMNS = [
    "front_depth_um", "front_depth_any_um", "li_front_depth_um", "crack_volume_um3",
    "crack_area_um2", "projected_area_um2", "n_cracks", "spanning",
]

_STRUCTURE = np.ones((3, 3, 3), dtype=bool)
#: How close (voxels) a crack's faces must come to an interface to touch it. Cracks cannot be
#: told apart from the dark electrode in the slice or two next to an interface (partial volume,
#: and segmentation seeds kept a voxel away from it), so "touching" allows two and a half.
SPAN_TOLERANCE_VOX = 2.5
#: The cathode's reach is this share of the span tolerance (1.5 voxels at the default 2.5).
#: The anode needs the whole tolerance: a crack's mouth there is lithium-filled and in the
#: lithium electrode's partial volume. A crack reaches the cathode with its dry tip (empty
#: against the electrode), read up to the interface's own partial volume; an electrolyte
#: ligament of about two voxels left there is no span (tuning cells 20 and 28: 2.2 voxels).
CATHODE_TOLERANCE_SHARE = 0.6
#: A crack of at least ROOT_REACH_MIN_VOXELS voxels whose nearest face lies within
#: ROOT_REACH_VOX (voxels along the normal) of the anode is rooted there; a piece that is
#: that close at one step is rooted from a later step that shows its root (root_tracks).
ROOT_REACH_VOX = 6.0
ROOT_REACH_MIN_VOXELS = 100
#: A crack not anchored itself whose nearest voxel lies within ROOT_CHAIN_VOX (voxel centres,
#: index units) of an anchored crack's voxel, directly or through a chain of such gaps, is
#: ``linked``: a faint stretch a voxel or two long (the minimum of a thin aperture, a
#: lithium-filled stretch read as ceramic) splits one crack into pieces, and the deep piece is
#: the crack's front. A linked piece extends the front but never makes a span: two pieces that
#: only come near each other may be two cracks, and a false span is a false short.
ROOT_CHAIN_VOX = 3.0
#: Normal angle (degrees from z) below which a crack counts as spallation (lying in plane).
SPALLATION_MAX_ANGLE_DEG = 45.0


def spacing_um(voxel_size_um: Any) -> np.ndarray:
    s = np.broadcast_to(np.asarray(voxel_size_um, dtype=np.float64), (3,)).copy()
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise InputError(f"voxel size must be three positive lengths, got {voxel_size_um!r}")
    return s


def _check(labels: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InputError(f"{name} must be a 3D (z, y, x) array, got shape {labels.shape}")
    return labels


def _depth_lut(geometry: Any, nz: int) -> np.ndarray:
    """Depth (voxels) of every z index, clipped at 0 on the anode side."""
    return np.clip(np.asarray(geometry.depth_vox(np.arange(nz)), dtype=np.float64), 0.0, None)


def cathode_tolerance_vox(span_tolerance_vox: float) -> float:
    """How close (voxels) a crack's far face must come to the cathode to span, given the span
    tolerance at the anode (:data:`CATHODE_TOLERANCE_SHARE` of it)."""
    return CATHODE_TOLERANCE_SHARE * float(span_tolerance_vox)


def _front_um(depth_centre_vox: float, thickness_vox: float, dz_um: float) -> float:
    """Depth of the far face of the deepest voxel (its centre + half a voxel), within the cell."""
    return float(np.clip(depth_centre_vox + 0.5, 0.0, thickness_vox) * dz_um)


def _thickness_vox(geometry: Any) -> float:
    return float(geometry.thickness_vox)


def _edge_distance_map_um(geometry: Any, spacing: np.ndarray) -> np.ndarray | None:
    """In-plane distance (µm) of every (y, x) from the anode electrode's edge."""
    fp = getattr(geometry, "electrode_footprint", None)
    if fp is None:
        return None
    fp = np.asarray(fp, dtype=bool)
    if not fp.any() or fp.all():
        return None
    inside = ndi.distance_transform_edt(fp, sampling=spacing[1:])
    outside = ndi.distance_transform_edt(~fp, sampling=spacing[1:])
    # Both transforms measure to the nearest voxel centre across the edge; the edge lies half way.
    half = 0.5 * float(np.min(spacing[1:]))
    return np.where(fp, inside - half, outside - half).clip(0.0)


def _surface_area_um2(mask: np.ndarray, spacing: np.ndarray) -> float:
    """Area of the boundary of a binary object by marching cubes (level 0.5), µm²."""
    if not mask.any():
        return 0.0
    padded = np.pad(mask.astype(np.float32), 1)
    verts, faces, _, _ = marching_cubes(padded, level=0.5, spacing=tuple(spacing))
    return float(mesh_surface_area(verts, faces))


def _aperture_um(mask: np.ndarray, spacing: np.ndarray,
                 normal: np.ndarray) -> tuple[float, float]:
    """Mean and largest crack opening, measured across the crack on its mid-surface.

    The mid-surface is the ridge of the Euclidean distance transform (voxels whose distance to
    the background is the largest of their 3x3x3 neighbourhood). From each ridge voxel the run
    of crack voxels is counted both ways along the crack's normal; the opening is that chord,
    in micrometres. For a flat crack this is exact for any thickness (odd or even), which
    twice the distance value alone is not.
    """
    padded = np.pad(mask, 1)
    dt = ndi.distance_transform_edt(padded, sampling=spacing)
    ridge = padded & (dt >= ndi.maximum_filter(dt, size=3) - 1e-9)
    pts = np.argwhere(ridge).astype(np.float64)
    # Direction of the normal in voxel-index space, one voxel per step along its main axis.
    u = np.asarray(normal, dtype=np.float64) / spacing
    if not np.any(u):
        u = np.array([1.0, 0.0, 0.0])
    u = u / np.max(np.abs(u))
    step_um = float(np.linalg.norm(u * spacing))
    hi = np.array(padded.shape) - 1
    runs = np.ones(len(pts))
    for sign in (1.0, -1.0):
        alive = np.ones(len(pts), dtype=bool)
        k = 1
        while alive.any():
            q = np.rint(pts[alive] + sign * k * u).astype(np.int64)
            q = np.clip(q, 0, hi)
            inside = padded[q[:, 0], q[:, 1], q[:, 2]]
            idx = np.flatnonzero(alive)
            runs[idx[inside]] += 1
            alive[idx[~inside]] = False
            k += 1
    ap = runs * step_um
    return float(ap.mean()), float(ap.max())


def _face_area_um2(zz: np.ndarray, yy: np.ndarray, xx: np.ndarray, normal: np.ndarray,
                   spacing: np.ndarray) -> float:
    """Area of a crack's mid-surface (one face), µm², independent of its thickness.

    The crack's voxels are projected along the voxel axis closest to its plane normal (PCA):
    the distinct columns along that axis, times their cross-section, are the area of the
    crack's shadow on the plane across that axis, which is the face area times the normal's
    component along the axis. Dividing by that component gives the face area. For a flat crack
    this is exact whatever its thickness and tilt (up to 54.7 degrees from the axis, the
    most a nearest axis can be away): a thicker crack has longer columns, not more of them.
    A curved crack is measured as its projection on its mean plane.
    """
    n = np.abs(np.asarray(normal, dtype=np.float64))
    k = int(np.argmax(n))
    idx = (zz, yy, xx)
    a, b = (i for i in range(3) if i != k)
    ia = np.asarray(idx[a], dtype=np.int64)
    ib = np.asarray(idx[b], dtype=np.int64)
    width = int(ib.max()) + 1 if ib.size else 1
    cols = np.unique(ia * width + ib).size
    return float(cols * spacing[a] * spacing[b] / max(n[k], 1.0 / np.sqrt(3.0)))


def _normal(coords_um: np.ndarray) -> np.ndarray:
    """Unit normal of the best-fit plane (PCA: direction of least spread)."""
    if coords_um.shape[0] < 3:
        return np.array([1.0, 0.0, 0.0])
    centred = coords_um - coords_um.mean(axis=0)
    cov = centred.T @ centred / coords_um.shape[0]
    _, v = np.linalg.eigh(cov)
    n = v[:, 0]
    # A fixed sign so outputs are reproducible.
    return n if n[np.argmax(np.abs(n))] > 0 else -n


@dataclass(frozen=True)
class StepFrame:
    """What every crack of a step is measured against (built once per step)."""

    shape: tuple[int, int, int]
    spacing: np.ndarray
    depth: np.ndarray
    thick: float
    edge: np.ndarray | None
    time_s: float
    t_index: int
    span_tolerance_vox: float
    geometry: Any = None  # set for a tilted cell: depths from its interface planes

    def depth_at(self, zz: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        """Depth (voxels, clipped at 0) of voxels ``(zz, yy, xx)`` along the cell's normal."""
        if self.geometry is None:
            return self.depth[zz]
        return np.clip(np.asarray(self.geometry.depth_vox(zz, yy, xx), dtype=np.float64),
                       0.0, None)

    @classmethod
    def of(cls, shape: tuple[int, ...], geometry: Any, spacing: np.ndarray, *, time_s: float,
           t_index: int, span_tolerance_vox: float) -> StepFrame:
        shape3 = (int(shape[0]), int(shape[1]), int(shape[2]))
        return cls(shape3, spacing, _depth_lut(geometry, shape3[0]), _thickness_vox(geometry),
                   _edge_distance_map_um(geometry, spacing), float(time_s), int(t_index),
                   float(span_tolerance_vox),
                   geometry if geometry.tilted else None)


def crack_row(cid: int, sub: np.ndarray, origin: tuple[int, int, int],
              lithium: np.ndarray | None, frame: StepFrame,
              fraction: np.ndarray | None = None) -> dict[str, Any]:
    """One row of :func:`measure_cracks`: the measurements of one crack.

    Parameters
    ----------
    cid : int
        The crack's id.
    sub : ndarray of bool, (z, y, x)
        The crack's voxels in its bounding box (as :func:`scipy.ndimage.find_objects` gives).
    origin : (int, int, int)
        Index of the box's first corner in the step.
    lithium : ndarray of bool or None
        Whether each crack voxel holds lithium, in the order of ``np.nonzero(sub)`` (raster
        order), or None when not known.
    frame : StepFrame
        Geometry, voxel size and step of the crack.
    fraction : ndarray of float or None
        Crack fraction (deficit volume, voxels) of each crack voxel in the same order, from
        :func:`dendritect.measure.deficit.crack_fraction`; gives ``volume_um3`` and
        ``aperture_mean_um`` from the grey-level deficit. Without it both come from the mask.
    """
    spacing, thick, edge = frame.spacing, frame.thick, frame.edge
    tol = frame.span_tolerance_vox
    zz, yy, xx = np.nonzero(sub)
    zz = zz + origin[0]
    yy = yy + origin[1]
    xx = xx + origin[2]
    d = frame.depth_at(zz, yy, xx)
    # Faces of the crack's extent along z: nearest and farthest voxel, half a voxel out. A
    # piece large enough to be a crack on its own is rooted from farther: its mouth at the
    # anode, lithium-filled and in the partial volume of a lithium electrode, is the part of
    # a crack read worst
    reach = max(tol, ROOT_REACH_VOX) if d.size >= ROOT_REACH_MIN_VOXELS else tol
    anchored = d.min() - 0.5 <= reach
    spanning = anchored and d.max() + 0.5 >= thick - cathode_tolerance_vox(tol)
    coords = np.stack([zz, yy, xx], axis=1) * spacing
    normal = _normal(coords)
    angle = float(np.degrees(np.arccos(np.clip(abs(normal[0]), 0.0, 1.0))))
    ap_mean, ap_max = _aperture_um(sub, spacing, normal)
    surf = _surface_area_um2(sub, spacing)
    cz, cy, cx = coords.mean(axis=0)
    if edge is not None:
        iy = int(np.clip(round(cy / spacing[1]), 0, edge.shape[0] - 1))
        ix = int(np.clip(round(cx / spacing[2]), 0, edge.shape[1] - 1))
        edge_d = float(edge[iy, ix])
    else:
        edge_d = float("nan")
    li_front = float("nan")
    if lithium is not None:
        li = np.asarray(lithium, dtype=bool)
        li_front = _front_um(d[li].max(), thick, spacing[0]) if li.any() else 0.0
    proj = np.unique(yy.astype(np.int64) * frame.shape[2] + xx).size
    front = thick * spacing[0] if spanning else _front_um(d.max(), thick, spacing[0])
    vol_vox = float(zz.size * np.prod(spacing))
    if fraction is None:
        volume, ap_used = vol_vox, ap_mean
        face = vol_vox / ap_mean
    else:
        frac = np.asarray(fraction, dtype=np.float64)
        volume = float(max(frac.sum(), 0.0) * np.prod(spacing))
        face = _face_area_um2(zz, yy, xx, normal, spacing)
        ap_used = volume / face if face > 0 else float("nan")
    return {
        "t_index": frame.t_index,
        "time_s": frame.time_s,
        "crack_id": int(cid),
        "n_voxels": int(zz.size),
        "front_depth_um": front,
        "li_front_depth_um": li_front,
        "dry_tip_lead_um": front - li_front,
        "min_depth_um": float(max(d.min() - 0.5, 0.0) * spacing[0]),
        "projected_area_um2": float(proj * spacing[1] * spacing[2]),
        "surface_area_um2": surf,
        "face_area_um2": face,
        "volume_um3": volume,
        "aperture_mean_um": ap_used,
        "aperture_max_um": ap_max,
        "normal_angle_deg": angle,
        "kind": "spallation" if angle < SPALLATION_MAX_ANGLE_DEG else "transverse",
        "centroid_z_um": float(cz),
        "centroid_y_um": float(cy),
        "centroid_x_um": float(cx),
        "edge_distance_um": edge_d,
        "origin_edge_distance_um": edge_d,
        "front_speed_um_s": float("nan"),
        "anchored": int(anchored),
        "spanning": int(spanning),
        "volume_vox_um3": vol_vox,
        "linked": 0,
    }


def front_cracks(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of a crack table that make the step's front: the anchored cracks and those
    :func:`link_chains` links to them (only anchored ones span)."""
    return table[(table["anchored"] > 0) | (table["linked"] > 0)]


def link_chains(table: pd.DataFrame, voxels: dict[int, np.ndarray], *,
                gap_vox: float = ROOT_CHAIN_VOX) -> None:
    """Mark, in place, the cracks of a step's ``table`` that a chain of gaps of at most
    ``gap_vox`` links to an anchored crack (``linked`` = 1; see :data:`ROOT_CHAIN_VOX`).

    Parameters
    ----------
    table : pandas.DataFrame
        The step's crack rows (:func:`crack_row`).
    voxels : dict
        Crack id -> (n, 3) voxel indices (z, y, x) of its voxels.
    gap_vox : float
        Largest distance between voxel centres (voxels) across which cracks link.
    """
    if not len(table) or gap_vox <= 0:
        return
    from scipy.spatial import cKDTree

    ids = table["crack_id"].to_numpy(np.int64)
    anchored = table["anchored"].to_numpy() > 0
    if anchored.all() or not anchored.any():
        return
    free = [int(c) for c in ids[~anchored]]
    front = [int(c) for c in ids[anchored]]
    new: set[int] = set()
    while front and free:
        tree = cKDTree(np.concatenate([voxels[c] for c in front]))
        front = [c for c in free
                 if np.isfinite(tree.query(voxels[c], distance_upper_bound=gap_vox + 1e-9)[0]
                                ).any()]
        new.update(front)
        free = [c for c in free if c not in new]
    if new:
        table.loc[np.isin(ids, np.fromiter(new, np.int64, len(new))), "linked"] = 1


def measure_cracks(labels: np.ndarray, geometry: Any, voxel_size_um: Any, *,
                   lithium: np.ndarray | None = None, fraction: np.ndarray | None = None,
                   time_s: float = 0.0, t_index: int = 0,
                   span_tolerance_vox: float = SPAN_TOLERANCE_VOX) -> pd.DataFrame:
    """Measure every labelled crack of one step.

    Parameters
    ----------
    labels : ndarray of int, shape (z, y, x)
        Tracked crack ids (0 = none), e.g. from :func:`dendritect.track.track_cracks`.
    geometry : CellGeometry
        Cell geometry of step 0 (interfaces, electrode footprint, ``depth_vox``).
    voxel_size_um : float or (dz, dy, dx)
        Voxel size in micrometres.
    lithium : ndarray, optional
        1 where a crack voxel holds lithium; gives ``li_front_depth_um`` and
        ``dry_tip_lead_um`` (NaN without it).
    fraction : ndarray of float, optional
        Crack fraction of every voxel (:func:`dendritect.measure.deficit.crack_fraction`):
        ``volume_um3`` and ``aperture_mean_um`` then come from the grey-level deficit.
    time_s, t_index : float, int
        Written into every row.
    span_tolerance_vox : float
        How close (voxels) a crack's faces must come to an interface to touch it: ``anchored``
        when it touches the anode interface, ``spanning`` when it touches both.

    Returns
    -------
    pandas.DataFrame
        One row per crack id, columns :data:`CRACK_COLUMNS`, sorted by ``crack_id``:
        ``front_depth_um`` far face of the deepest voxel below the anode interface (the
        thickness for a spanning crack); ``dry_tip_lead_um`` how far the front runs ahead
        of the lithium in the crack (``front_depth_um - li_front_depth_um``);
        ``projected_area_um2`` area of the crack's shadow on the interface plane;
        ``surface_area_um2`` area of the crack's whole boundary by marching cubes (both faces
        and the rim); ``face_area_um2`` area of its mid-surface (one face);
        ``volume_um3`` voxel count times voxel volume, or with ``fraction`` the sum of the
        crack fraction over its voxels times the voxel volume (at least 0); ``volume_vox_um3``
        always the voxel count times voxel volume; ``aperture_mean_um`` volume divided by
        face area (with ``fraction``; the face area is the distinct columns along the voxel
        axis nearest the crack normal over that axis' normal component) or, without it, the
        opening on the mid-surface, with ``face_area_um2`` the volume divided by it;
        ``aperture_max_um`` largest opening of the mask on the mid-surface; ``normal_angle_deg``
        angle between the crack's plane normal (PCA) and z, and ``kind`` "spallation" below 45°
        else "transverse"; ``edge_distance_um`` in-plane distance of the centroid from the
        electrode edge. ``origin_edge_distance_um`` (the value where the crack was first seen)
        and ``front_speed_um_s`` need earlier steps: :class:`CrackHistory` fills them; here they
        are this step's edge distance and NaN.
    """
    labels = _check(labels, "labels")
    spacing = spacing_um(voxel_size_um)
    if lithium is not None:
        lithium = _check(lithium, "lithium")
        if lithium.shape != labels.shape:
            raise InputError(f"lithium shape {lithium.shape} differs from labels {labels.shape}")
    if fraction is not None:
        fraction = _check(fraction, "fraction")
        if fraction.shape != labels.shape:
            raise InputError(f"fraction shape {fraction.shape} differs from labels "
                             f"{labels.shape}")
    frame = StepFrame.of(labels.shape, geometry, spacing, time_s=time_s, t_index=t_index,
                          span_tolerance_vox=span_tolerance_vox)
    rows, voxels = [], {}
    objects = ndi.find_objects(labels.astype(np.int64, copy=False))
    for i, sl in enumerate(objects):
        if sl is None:
            continue
        cid = i + 1
        sub = labels[sl] == cid
        li = None if lithium is None else lithium[sl][sub] != 0
        fr = None if fraction is None else fraction[sl][sub]
        origin = tuple(s.start for s in sl)
        rows.append(crack_row(cid, sub, origin, li, frame, fr))
        voxels[cid] = np.argwhere(sub) + np.asarray(origin)
    table = pd.DataFrame(rows, columns=CRACK_COLUMNS)
    link_chains(table, voxels)
    return table


class CrackHistory:
    """Fills the columns of :func:`measure_cracks` that need earlier steps.

    Feed the steps' tables in time order to :meth:`update`. ``origin_edge_distance_um`` becomes
    the edge distance of the crack's centroid at the step it was first seen, and
    ``front_speed_um_s`` the change of its front depth since the previous step it was seen,
    divided by the time between them (NaN at first sight or when times do not increase).
    Only one small record per crack id is kept.

    Parameters
    ----------
    span_from_um : float, optional
        Front depth from which an anchored crack spans (the thickness less the span
        tolerance). Given, a crack that touched the anode at an earlier step stays
        ``anchored``: lithium fills it from there, and a root voxel missed in a later scan
        (a lithium-filled mouth, a faint one) does not detach it; it spans where its front
        reaches ``span_from_um``.
    thickness_um : float, optional
        The front depth of a spanning crack (with ``span_from_um``).
    """

    def __init__(self, span_from_um: float | None = None,
                 thickness_um: float | None = None) -> None:
        self._seen: dict[int, tuple[float, float, float]] = {}
        self._anchored: set[int] = set()
        self.span_from_um = span_from_um
        self.thickness_um = thickness_um

    def update(self, table: pd.DataFrame) -> pd.DataFrame:
        """Return a copy of ``table`` with the history columns filled."""
        out = table.copy()
        if self.span_from_um is not None and len(out):
            _root(out, self._anchored, self.span_from_um, self.thickness_um)
            ids = out["crack_id"].to_numpy(np.int64)
            self._anchored.update(int(c) for c in ids[out["anchored"].to_numpy() > 0])
        origins, speeds = [], []
        for cid, t, depth, edge in zip(out["crack_id"], out["time_s"], out["front_depth_um"],
                                       out["edge_distance_um"], strict=True):
            rec = self._seen.get(int(cid))
            if rec is None:
                origins.append(float(edge))
                speeds.append(float("nan"))
                self._seen[int(cid)] = (float(edge), float(t), float(depth))
                continue
            origin, t0, d0 = rec
            dt = float(t) - t0
            origins.append(origin)
            speeds.append((float(depth) - d0) / dt if dt > 0 else float("nan"))
            self._seen[int(cid)] = (origin, float(t), float(depth))
        out["origin_edge_distance_um"] = np.asarray(origins, dtype=np.float64)
        out["front_speed_um_s"] = np.asarray(speeds, dtype=np.float64)
        return out


def _root(table: pd.DataFrame, rooted: set[int], span_from_um: float,
          thickness_um: float | None, where: np.ndarray | None = None) -> None:
    """Rows of ``table`` whose crack id is in ``rooted`` (and ``where`` holds) become anchored,
    in place; those whose front reaches ``span_from_um`` span (front: ``thickness_um``)."""
    ids = table["crack_id"].to_numpy(np.int64)
    kept = np.isin(ids, np.fromiter(rooted, np.int64, len(rooted)))
    if where is not None:
        kept &= where
    kept &= table["anchored"].to_numpy() == 0
    if not kept.any():
        return
    table.loc[kept, "anchored"] = 1
    spans = kept & (table["front_depth_um"].to_numpy() >= span_from_um)
    table.loc[spans, "spanning"] = 1
    if thickness_um is not None:
        table.loc[spans, "front_depth_um"] = thickness_um
        table.loc[spans, "dry_tip_lead_um"] = thickness_um - table.loc[spans, "li_front_depth_um"]


def root_tracks(tables: list[pd.DataFrame], *, span_from_um: float,
                thickness_um: float | None = None,
                merges: dict[int, int] | None = None,
                min_merged_voxels: int = 12,
                max_gap_um: float | None = None) -> list[pd.DataFrame]:
    """Tracked cracks anchored at every step of their track once anchored at any.

    :class:`CrackHistory` keeps a crack anchored after it touched the anode; this also
    anchors it at the steps before: a crack present in the first scan whose root there was
    too faint to segment (a thin lithium-filled mouth in the interface's partial volume) is
    the same crack, rooted at the same anode, as at the step that showed its root.

    Parameters
    ----------
    tables : list of DataFrame
        :func:`measure_cracks` tables of the steps in time order (same crack ids across steps).
    span_from_um, thickness_um : float
        As in :class:`CrackHistory`.
    merges : dict, optional
        Crack id -> the id it merged into at the next step (its track ends there). A piece
        that merged into a rooted crack is part of it, and rooted too, if it had at least
        ``min_merged_voxels`` voxels (specks beside pores that the crack later ran through
        are not its front).
    min_merged_voxels : int
        See ``merges``.
    max_gap_um : float, optional
        Only a piece whose nearest face lies within this of the anode is rooted from a later
        step: a faint root is a voxel or a few, while a dark speck deep in a crack-free first
        scan that the crack later grew through is not its front.

    Returns
    -------
    list of DataFrame
        Copies of the tables.
    """
    rooted: set[int] = set()
    for tb in tables:
        if len(tb):
            rooted.update(int(c) for c in tb.loc[tb["anchored"] > 0, "crack_id"])
    size: dict[int, int] = {}
    for tb in tables:
        if len(tb):
            size.update(zip(tb["crack_id"].astype(int), tb["n_voxels"].astype(int), strict=True))
    big = {o: n for o, n in (merges or {}).items() if size.get(o, 0) >= min_merged_voxels}
    changed = bool(big)
    while changed:
        changed = False
        for old, new in big.items():
            if new in rooted and old not in rooted:
                rooted.add(old)
                changed = True
    out = []
    for tb in tables:
        tb = tb.copy()
        if len(tb):
            near = (None if max_gap_um is None
                    else tb["min_depth_um"].to_numpy(np.float64) <= max_gap_um)
            _root(tb, rooted, span_from_um, thickness_um, where=near)
        out.append(tb)
    return out


def measure_step(crack: np.ndarray, geometry: Any, voxel_size_um: Any, *,
                 lithium: np.ndarray | None = None, fraction: np.ndarray | None = None,
                 span_tolerance_vox: float = SPAN_TOLERANCE_VOX) -> dict[str, float | int]:
    """Whole-step metrics of a crack mask (one row of ``metrics.csv``).

    Parameters
    ----------
    crack : ndarray, shape (z, y, x)
        Crack mask of one step (nonzero = crack).
    geometry : CellGeometry
        Cell geometry of step 0.
    voxel_size_um : float or (dz, dy, dx)
        Voxel size in micrometres.
    lithium : ndarray, optional
        1 where a crack voxel holds lithium. Without it ``li_front_depth_um`` is NaN.
    fraction : ndarray of float, optional
        Crack fraction of every voxel (:func:`dendritect.measure.deficit.crack_fraction`):
        ``crack_volume_um3`` is then the sum of the cracks' deficit volumes, else the voxel
        count times the voxel volume.
    span_tolerance_vox : float
        A connected crack touches an interface when its nearest face comes within this many
        voxels of it, and spans the electrolyte when it touches both.

    Returns
    -------
    dict
        ``front_depth_um`` (far face of the deepest voxel of the cracks that touch the anode
        interface; the thickness when one spans; 0 without such cracks), ``front_depth_any_um``
        (the same over every crack, including ones that do not touch the anode),
        ``li_front_depth_um`` (deepest lithium-filled crack voxel, 0 without any; NaN when
        lithium is not known), ``crack_volume_um3``, ``crack_area_um2`` (sum of the cracks'
        mid-surface areas, ``face_area_um2`` of :func:`measure_cracks`), ``projected_area_um2``
        (shadow of all cracks on the interface plane), ``n_cracks`` (26-connected components)
        and ``spanning`` (0/1: one connected crack reaches both interfaces).
    """
    crack = _check(crack, "crack") != 0
    spacing = spacing_um(voxel_size_um)
    cc, n = ndi.label(crack, structure=_STRUCTURE)
    table = measure_cracks(cc, geometry, spacing, lithium=lithium, fraction=fraction,
                           span_tolerance_vox=span_tolerance_vox)
    return step_metrics(table, n_cracks=int(n), n_voxels=int(crack.sum()),
                        n_projected=int(crack.any(axis=0).sum()), spacing=spacing,
                        lithium_known=lithium is not None,
                        fraction_known=fraction is not None)


def step_metrics(table: pd.DataFrame, *, n_cracks: int, n_voxels: int, n_projected: int,
                 spacing: np.ndarray, lithium_known: bool,
                 fraction_known: bool = False) -> dict[str, float | int]:
    """The dict of :func:`measure_step` from a step's crack table and voxel counts.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`measure_cracks` of the step's connected components.
    n_cracks, n_voxels, n_projected : int
        Components, crack voxels, and (y, x) columns holding crack.
    spacing : ndarray, (dz, dy, dx)
        Voxel size in micrometres.
    lithium_known : bool
        Whether lithium inside cracks was given.
    fraction_known : bool
        Whether the table's volumes come from the crack fraction: ``crack_volume_um3`` is then
        their sum, else the voxel count times the voxel volume.
    """
    anchored = front_cracks(table)
    out: dict[str, float | int] = {
        "front_depth_um": float(anchored["front_depth_um"].max()) if len(anchored) else 0.0,
        "front_depth_any_um": float(table["front_depth_um"].max()) if n_cracks else 0.0,
        "li_front_depth_um": float("nan"),
        "crack_volume_um3": (float(table["volume_um3"].sum()) if fraction_known
                             else float(n_voxels * np.prod(spacing))),
        "crack_area_um2": float(table["face_area_um2"].sum()),
        "projected_area_um2": float(n_projected * spacing[1] * spacing[2]),
        "n_cracks": int(n_cracks),
        "spanning": int(table["spanning"].any()) if n_cracks else 0,
    }
    if lithium_known:
        out["li_front_depth_um"] = (float(anchored["li_front_depth_um"].max())
                                    if len(anchored) else 0.0)
    return out
