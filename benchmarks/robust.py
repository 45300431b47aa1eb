"""Robustness of ``dendritect analyze`` over randomised synthetic cells, scored worst case.

Each seed of the twin's ``random`` preset draws its own imaging (reconstruction, phase-contrast
fringes, blur, noise, tilt, anisotropic voxels, interior field of view) and its own cell (die
material, anode-free, porosity, cracks of every aperture, lithium filling with a dry tip,
cracks already present at the first scan, stripping). Every cell is simulated, analysed and
scored against its truth on the criteria of :data:`TARGETS`:

- **span**: the analysed span step equals the true one (both "none" is exact); a *false span*
  is one earlier than the truth, or one where the truth has none;
- **cell F1 / step F1**: crack-voxel F1 with a one-voxel tolerance (3x3x3, as in
  :mod:`benchmarks.accuracy`) over the whole cell, and per step on every step with enough
  true crack voxels (step 0 of a pre-cracked cell included);
- **step-0 false voxels**: crack voxels found in a crack-free first scan;
- **front**: front-depth error in voxels along the cell normal, at every step;
- **volume**: relative error of the crack volume against the partial-volume truth;
- **lithium**: F1 of the lithium-filled voxels where the crack is resolved (the truth's crack
  at least :data:`RESOLVED_APERTURE_VOX` voxels thick, :func:`resolved_crack`), lithium-front
  error and the per-crack dry-tip lead, on the steps where the truth marks the lithium
  resolvable (lithium not reported where it is resolvable is a failure); the F1 over every
  lithium-filled voxel of those steps is reported beside it (``li_f1_all``);
- **lone pores**: share of the pores away from every crack that are called crack.

A metric whose truth is missing from a dataset (a twin that predates a truth field) is
reported "n/a" with the reason, never guessed.

Usage::

    python -m benchmarks.robust [--seeds 0-39,100-139] [--jobs 2] [--work DIR] [--keep]
                                [--preset random] [--shape Z,Y,X] [--steps N] [--write-docs]

Writes ``benchmarks/results/robust.json`` and ``benchmarks/results/robust.md``; with
``--write-docs`` the held-out tables replace the block of ``docs/accuracy.md`` between
``<!-- robust:begin -->`` and ``<!-- robust:end -->``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
DOCS = ROOT / "docs" / "accuracy.md"
DOCS_BEGIN = "<!-- robust:begin -->"
DOCS_END = "<!-- robust:end -->"

#: Thresholds of the requirements; every criterion is reported as its value and pass/fail.
TARGETS: dict[str, float] = {
    "cell_f1_min": 0.92,            # tolerant crack F1 over the whole cell
    "step_f1_min": 0.80,            # tolerant crack F1 at each step with enough truth
    "step_f1_min_truth_vox": 50,    # ... "enough": at least this many true crack voxels
    "step0_false_vox_max": 50,      # crack voxels found in a crack-free first scan
    "front_error_vox_max": 2.0,     # front depth, voxels along the normal, every step
    "volume_error_max": 0.25,       # |found - truth| / truth of the crack volume
    "volume_min_truth_vox": 200,    # ... on steps with at least this many true crack voxels
    "li_f1_min": 0.85,              # tolerant F1 of lithium-filled voxels (resolvable steps)
    "li_front_error_vox_max": 2.0,  # lithium front depth, voxels along the normal
    "dry_tip_error_vox_max": 2.0,   # per-crack dry-tip lead, voxels along the normal
    "lone_pore_called_max": 0.02,   # lone pore voxels (not within 1 voxel of a crack) called crack
}
#: Criteria in report order.
CRITERIA = ("span", "cell_f1", "step_f1", "step0_false", "front", "volume", "li_f1", "li_front",
            "dry_tip", "lone_pores")
CONDITION_TAGS = ("fbp", "fast", "phase", "phase-retrieved", "tilt", "aniso", "interior",
                  "steel-die", "air-die", "anode-free", "wall-crack", "thin", "wide",
                  "precracked", "strip", "no-span", "blur", "noisy")
CRACK_TYPES = ("thin", "wide", "wall-crack", "precracked", "strip", "no-span")
DEFAULT_SEEDS = "0-39,100-139"
DEFAULT_TUNING = "0-39"
CRACK_CODES = (3, 4)
LI_CODE = 4
PORE_CODE = 2
_CUBE = np.ones((3, 3, 3), bool)
#: a crack is resolved where it is at least this thick (voxels): the issue's "aperture >= 3"
RESOLVED_APERTURE_VOX = 3


# ----------------------------------------------------------------------------------------------
# Plain scoring functions
# ----------------------------------------------------------------------------------------------

def tolerant_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """Counts of the one-voxel-tolerant F1 between two masks of one step.

    Parameters
    ----------
    pred, truth : ndarray of bool, (z, y, x)
        Found and true voxels.

    Returns
    -------
    tuple of int
        ``(tp_pred, n_pred, tp_truth, n_truth)``: found voxels with a true voxel within one
        voxel (3x3x3), all found voxels, true voxels with a found voxel within one voxel, all
        true voxels.
    """
    from scipy import ndimage as ndi

    pred = np.asarray(pred, bool)
    truth = np.asarray(truth, bool)
    n_p, n_t = int(pred.sum()), int(truth.sum())
    tp_p = int((pred & ndi.binary_dilation(truth, _CUBE)).sum()) if n_p and n_t else 0
    tp_t = int((truth & ndi.binary_dilation(pred, _CUBE)).sum()) if n_p and n_t else 0
    return tp_p, n_p, tp_t, n_t


def resolved_crack(truth_crack: np.ndarray) -> np.ndarray:
    """True crack voxels where the crack is at least :data:`RESOLVED_APERTURE_VOX` voxels thick.

    Only there can a scan show a crack's content: a thinner crack's voxels mix it with the
    ceramic (the twin labels a sub-voxel crack as a one-voxel sheet). A voxel belongs when a
    voxel within one voxel (3x3x3) of it lies at least ``(RESOLVED_APERTURE_VOX + 1) / 2``
    voxels from the nearest non-crack voxel (the middle of a three-voxel sheet is two voxels
    from the voxels beyond its faces). Distances are in voxels, as the aperture is.

    Parameters
    ----------
    truth_crack : ndarray of bool, (z, y, x)

    Returns
    -------
    ndarray of bool
    """
    from scipy import ndimage as ndi

    tru = np.asarray(truth_crack, bool)
    if not tru.any():
        return tru.copy()
    core = ndi.distance_transform_edt(tru) >= (RESOLVED_APERTURE_VOX + 1) / 2
    return ndi.binary_dilation(core, _CUBE) & tru


def f1_from_counts(tp_p: int, n_p: int, tp_t: int, n_t: int) -> dict[str, float]:
    """Precision, recall and F1 from :func:`tolerant_counts` (summed over steps if wanted).

    Parameters
    ----------
    tp_p, n_p, tp_t, n_t : int
        See :func:`tolerant_counts`.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``. Nothing found where nothing is true scores 1.0.
    """
    precision = tp_p / n_p if n_p else (1.0 if n_t == 0 else 0.0)
    recall = tp_t / n_t if n_t else (1.0 if n_p == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def tolerant_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    """One-voxel-tolerant F1 of two masks (see :func:`tolerant_counts`).

    Parameters
    ----------
    pred, truth : ndarray of bool

    Returns
    -------
    float
    """
    return f1_from_counts(*tolerant_counts(pred, truth))["f1"]


def span_verdict(found: int | None, true: int | None) -> dict[str, bool]:
    """Whether the analysed span step is exact, and whether it is a false span.

    Parameters
    ----------
    found, true : int or None
        Analysed and true first spanning step (None: no span).

    Returns
    -------
    dict
        ``exact``: equal (both None counts as exact); ``false_span``: a span earlier than the
        truth's, or a span where the truth has none.
    """
    exact = found == true
    false_span = found is not None and (true is None or found < true)
    return {"exact": bool(exact), "false_span": bool(false_span)}


def volume_error(found_um3: float, true_um3: float) -> float:
    """Relative crack-volume error ``|found - true| / true``.

    Parameters
    ----------
    found_um3, true_um3 : float
        Analysed and true volume (true > 0).

    Returns
    -------
    float
        NaN when ``found_um3`` is not a number (the analysis reported none).
    """
    found = float(found_um3)
    if not math.isfinite(found):
        return float("nan")
    return abs(found - float(true_um3)) / float(true_um3)


def normal_voxel_um(voxel_size_um: Iterable[float], normal_zyx: Iterable[float] | None) -> float:
    """Length of one voxel step along the cell normal, in µm.

    The physical unit normal ``n`` (z, y, x) points along ``m = (n / vox) / |n / vox|`` in
    voxel-index units; one index step along ``m`` is ``sqrt(sum((m * vox)**2))`` µm long. For an
    untilted cell this is ``dz``; for isotropic voxels it is the voxel size whatever the tilt.

    Parameters
    ----------
    voxel_size_um : (dz, dy, dx)
    normal_zyx : (nz, ny, nx) or None
        The cell normal in µm space; None: the z axis.

    Returns
    -------
    float
    """
    vox = np.asarray(list(voxel_size_um), float)
    if normal_zyx is None:
        return float(vox[0])
    n = np.abs(np.asarray(list(normal_zyx), float))
    if not np.all(np.isfinite(n)) or n.sum() == 0:
        return float(vox[0])
    m = n / vox
    m /= np.linalg.norm(m)
    return float(np.linalg.norm(m * vox))


def _crit(value: Any, threshold: Any, ok: bool | None, reason: str | None = None,
          **extra: Any) -> dict[str, Any]:
    out = {"value": value, "threshold": threshold, "pass": ok}
    if reason:
        out["reason"] = reason
    out.update(extra)
    return out


def _na(threshold: Any, reason: str) -> dict[str, Any]:
    return _crit(None, threshold, None, reason)


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _r(x: float | None, nd: int = 4) -> float | None:
    if x is None or not math.isfinite(float(x)):
        return None
    return round(float(x), nd)


def _majority(an: np.ndarray, ids: np.ndarray) -> dict[int, tuple[int, int]]:
    """For each analysed crack id, its majority truth crack id and the overlap (voxels).

    Truth ids are widened by one voxel (3x3x3 maximum) where a voxel has none, so a crack found
    one voxel off its truth still matches.
    """
    from scipy import ndimage as ndi

    ids = np.asarray(ids)
    wide = np.where(ids > 0, ids, ndi.maximum_filter(ids, size=3))
    sel = (an > 0) & (wide > 0)
    if not sel.any():
        return {}
    a = an[sel].astype(np.int64)
    b = wide[sel].astype(np.int64)
    key = a * 65536 + b
    uniq, counts = np.unique(key, return_counts=True)
    best: dict[int, tuple[int, int]] = {}
    for k, c in zip(uniq.tolist(), counts.tolist(), strict=True):
        ai, bi = divmod(k, 65536)
        if ai not in best or c > best[ai][1]:
            best[ai] = (bi, c)
    return best


def _derived_conditions(meta: dict, truth: dict, step0_truth_vox: int) -> list[str]:
    """Condition tags of a dataset whose truth has none (a preset before ``random``)."""
    p = meta.get("parameters", {})
    tags = set()
    if meta.get("ct") in ("fbp", "fast"):
        tags.add(meta["ct"])
    if step0_truth_vox > 0:
        tags.add("precracked")
    if int(p.get("strip_half_cycles", 0) or 0) > 0:
        tags.add("strip")
    if truth.get("span_index") is None:
        tags.add("no-span")
    if _num(p.get("aperture_mouth_vox")) < 1.6:
        tags.add("thin")
    if _num(p.get("noise_frac")) >= 0.05:
        tags.add("noisy")
    if p.get("counter_electrode") == "collector":
        tags.add("anode-free")
    return sorted(tags)


def score_cell(result_dir: str | Path, dataset_dir: str | Path) -> dict[str, Any]:
    """Score one analysed cell against its truth, one step in memory at a time.

    Parameters
    ----------
    result_dir : path
        The folder ``dendritect.pipeline.analyze`` wrote (summary.json, metrics.csv, cracks.csv,
        cracks.zarr).
    dataset_dir : path
        The simulated dataset (dataset.json, truth/truth.json, truth/labels.zarr and, when the
        twin writes it, truth/crack_ids.zarr).

    Returns
    -------
    dict
        ``criteria``: for each name of :data:`CRITERIA` a dict ``value``, ``threshold``,
        ``pass`` (True, False, or None for "n/a") and ``reason`` when not scored or failed for a
        reason other than the number; ``pass``: every scored criterion passed; ``failing``: the
        names that failed; ``steps``: per-step numbers; ``conditions``: the drawn tags; and
        the numbers behind each criterion.
    """
    import pandas as pd
    import zarr
    from scipy import ndimage as ndi

    res = Path(result_dir)
    data = Path(dataset_dir)
    summary = json.loads((res / "summary.json").read_text())
    truth = json.loads((data / "truth" / "truth.json").read_text())
    meta_path = data / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    metrics = pd.read_csv(res / "metrics.csv")
    cracks = pd.read_csv(res / "cracks.csv")
    labels = zarr.open_array(str(data / "truth" / "labels.zarr"), mode="r")
    cz = zarr.open_group(str(res / "cracks.zarr"), mode="r")
    crack = cz["crack"]
    an_labels = cz["labels"] if "labels" in cz else None
    li_arr = cz["lithium"] if "lithium" in cz else None
    ids_path = data / "truth" / "crack_ids.zarr"
    crack_ids = zarr.open_array(str(ids_path), mode="r") if ids_path.exists() else None
    n = int(labels.shape[0])
    if tuple(crack.shape) != tuple(labels.shape):
        raise ValueError(f"analysed crack array {tuple(crack.shape)} and truth labels "
                         f"{tuple(labels.shape)} differ in shape")
    steps_truth = truth.get("steps", [])
    vox = [float(v) for v in truth.get("voxel_size_um", summary["voxel_size_um"])]
    plane = truth.get("interface_plane") or {}
    vox_n = normal_voxel_um(vox, plane.get("normal_zyx"))

    li_info = summary.get("lithium")
    li_resolved = bool(li_info.get("resolved")) if isinstance(li_info, dict) \
        else bool(summary.get("lithium_segmented", li_arr is not None))
    li_resolved = li_resolved and li_arr is not None
    li_reason = (li_info.get("reason") if isinstance(li_info, dict) else None) \
        or cz.attrs.get("lithium")
    has_resolvable_key = bool(steps_truth) and all("lithium_resolvable" in s
                                                   for s in steps_truth)
    li_steps = [bool(s.get("lithium_resolvable")) for s in steps_truth] if has_resolvable_key \
        else [False] * n

    tot = np.zeros(4, np.int64)
    li_tot = np.zeros(4, np.int64)
    li_all = np.zeros(4, np.int64)
    pore_lone = pore_lone_called = 0
    steps: list[dict[str, Any]] = []
    truth_ids_to_found: list[dict[int, tuple[int, int]]] = []
    for t in range(n):
        lab = np.asarray(labels[t])
        pred = np.asarray(crack[t]) != 0
        tru = np.isin(lab, CRACK_CODES)
        c = np.array(tolerant_counts(pred, tru), np.int64)
        tot += c
        near_truth = ndi.binary_dilation(tru, _CUBE) if tru.any() else np.zeros_like(tru)
        lone = (lab == PORE_CODE) & ~near_truth
        pore_lone += int(lone.sum())
        pore_lone_called += int((lone & pred).sum())
        row: dict[str, Any] = {"t_index": t, "truth_vox": int(c[3]), "found_vox": int(c[1]),
                               "f1": _r(f1_from_counts(*c.tolist())["f1"])}
        if li_steps[t] and li_resolved:
            found_li = np.asarray(li_arr[t]) != 0
            true_li = lab == LI_CODE
            # scored where the truth's crack is resolved (and found lithium within the
            # tolerance of it): elsewhere no scan tells the content
            res = resolved_crack(tru)
            near_res = ndi.binary_dilation(res, _CUBE)
            lc = np.array(tolerant_counts(found_li & near_res, true_li & res), np.int64)
            la = np.array(tolerant_counts(found_li, true_li), np.int64)
            li_tot += lc
            li_all += la
            row["li_truth_vox"] = int(lc[3])
            row["li_f1"] = _r(f1_from_counts(*lc.tolist())["f1"])
            row["li_truth_vox_all"] = int(la[3])
            row["li_f1_all"] = _r(f1_from_counts(*la.tolist())["f1"])
        match: dict[int, tuple[int, int]] = {}
        if crack_ids is not None and an_labels is not None and li_steps[t]:
            for a, (b, cnt) in _majority(np.asarray(an_labels[t]),
                                         np.asarray(crack_ids[t])).items():
                # Keep, for each truth crack, the analysed crack that overlaps it most.
                if b not in match or cnt > match[b][1]:
                    match[b] = (a, cnt)
        truth_ids_to_found.append(match)
        steps.append(row)
        del lab, pred, tru, near_truth, lone

    crit: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {"n_steps": n, "shape_zyx": list(labels.shape[1:]),
                           "voxel_size_um": vox, "voxel_along_normal_um": round(vox_n, 6),
                           "preset": meta.get("preset"), "seed": meta.get("seed")}

    # --- span
    found_span = summary.get("span_index")
    true_span = truth.get("span_index")
    sv = span_verdict(found_span, true_span)
    crit["span"] = _crit(found_span, true_span, sv["exact"],
                         None if sv["exact"] else
                         ("false span" if sv["false_span"] else "span missed or late"),
                         true=true_span, false_span=sv["false_span"])
    out["false_span"] = sv["false_span"]
    # a wrong anode side measures every depth from the wrong interface: named with the
    # failures it causes, not a criterion of its own
    out["anode"], out["anode_true"] = summary.get("anode"), truth.get("anode")
    if (sv["false_span"] and found_span is not None and truth.get("thickness_um") is not None
            and found_span < len(truth.get("steps", []))):
        # what was left of the electrolyte at the step called spanned: a ligament thinner
        # than the blur is not a thing any analysis of the scan can see
        gap_um = float(truth["thickness_um"]) - float(truth["steps"][found_span]["front_depth_um"])
        crit["span"]["ligament_vox"] = _r(max(gap_um, 0.0) / vox_n)

    # --- crack F1, whole cell and per step
    cell = f1_from_counts(*tot.tolist())
    out.update({k: _r(v) for k, v in cell.items()})
    out["crack_voxels_true"], out["crack_voxels_found"] = int(tot[3]), int(tot[1])
    crit["cell_f1"] = _crit(_r(cell["f1"]), TARGETS["cell_f1_min"],
                            cell["f1"] >= TARGETS["cell_f1_min"])
    elig = [s for s in steps if s["truth_vox"] >= TARGETS["step_f1_min_truth_vox"]]
    if elig:
        worst = min(elig, key=lambda s: s["f1"])
        crit["step_f1"] = _crit(worst["f1"], TARGETS["step_f1_min"],
                                worst["f1"] >= TARGETS["step_f1_min"], t_index=worst["t_index"],
                                n_steps_scored=len(elig))
    else:
        crit["step_f1"] = _na(TARGETS["step_f1_min"],
                              f"no step with >= {TARGETS['step_f1_min_truth_vox']} true crack "
                              "voxels")

    # --- crack-free first scan
    if n and steps[0]["truth_vox"] == 0:
        v0 = steps[0]["found_vox"]
        crit["step0_false"] = _crit(v0, TARGETS["step0_false_vox_max"],
                                    v0 <= TARGETS["step0_false_vox_max"])
    else:
        crit["step0_false"] = _na(TARGETS["step0_false_vox_max"],
                                  "first scan has true cracks (pre-cracked)")

    # --- metrics rows by step
    mrow = {int(r.t_index): r for r in metrics.itertuples(index=False)}

    def found(t: int, col: str) -> float:
        r = mrow.get(t)
        return _num(getattr(r, col, float("nan"))) if r is not None else float("nan")

    # --- front depth, every step
    if len(steps_truth) == n and all("front_depth_um" in s for s in steps_truth):
        errs = []
        for t in range(n):
            e = abs(found(t, "front_depth_um") - float(steps_truth[t]["front_depth_um"])) / vox_n
            errs.append(e)
            steps[t]["front_error_vox"] = _r(e, 3)
        bad = [e for e in errs if not math.isfinite(e)]
        emax = max((e for e in errs if math.isfinite(e)), default=float("nan"))
        crit["front"] = _crit(_r(emax, 3), TARGETS["front_error_vox_max"],
                              not bad and emax <= TARGETS["front_error_vox_max"],
                              "front depth missing in metrics.csv" if bad else None,
                              t_index=int(np.nanargmax(errs)) if not bad else None)
    else:
        crit["front"] = _na(TARGETS["front_error_vox_max"], "truth has no front_depth_um per step")

    # --- volume (partial-volume truth)
    if len(steps_truth) == n and all("crack_volume_pv_um3" in s for s in steps_truth):
        elig = [t for t in range(n) if steps[t]["truth_vox"] >= TARGETS["volume_min_truth_vox"]]
        if elig:
            verr = {}
            for t in elig:
                tv = float(steps_truth[t]["crack_volume_pv_um3"])
                verr[t] = volume_error(found(t, "crack_volume_um3"), tv) if tv > 0 \
                    else float("nan")
                steps[t]["volume_error"] = _r(verr[t])
            tw = max(verr, key=lambda t: verr[t] if math.isfinite(verr[t]) else math.inf)
            w = verr[tw]
            crit["volume"] = _crit(_r(w), TARGETS["volume_error_max"],
                                   math.isfinite(w) and w <= TARGETS["volume_error_max"],
                                   None if math.isfinite(w) else "crack volume missing",
                                   t_index=tw, n_steps_scored=len(elig))
        else:
            crit["volume"] = _na(TARGETS["volume_error_max"],
                                 f"no step with >= {TARGETS['volume_min_truth_vox']} true crack "
                                 "voxels")
    else:
        # Informational only: the voxel-count truth is not the partial-volume truth.
        crit["volume"] = _na(TARGETS["volume_error_max"],
                             "truth has no crack_volume_pv_um3 (partial-volume truth)")

    # --- lithium
    li_thr = (TARGETS["li_f1_min"], TARGETS["li_front_error_vox_max"],
              TARGETS["dry_tip_error_vox_max"])
    not_reported = "lithium not reported where resolvable" + (f" ({li_reason})"
                                                               if li_reason else "")
    if not has_resolvable_key:
        why = "truth has no lithium_resolvable per step"
        crit["li_f1"], crit["li_front"], crit["dry_tip"] = (_na(x, why) for x in li_thr)
    elif not any(li_steps):
        why = "lithium not resolvable at any step of this cell"
        crit["li_f1"], crit["li_front"], crit["dry_tip"] = (_na(x, why) for x in li_thr)
    elif not li_resolved:
        crit["li_f1"], crit["li_front"], crit["dry_tip"] = (
            _crit(None, x, False, not_reported) for x in li_thr)
    else:
        li = f1_from_counts(*li_tot.tolist())
        no_resolved = int(li_tot[3]) == 0 and int(li_tot[1]) == 0
        li_steps_scored = [s for s in steps if "li_f1" in s and s["li_truth_vox"] > 0]
        if no_resolved:
            crit["li_f1"] = _na(TARGETS["li_f1_min"], "no lithium-filled crack is resolved (at "
                                f"least {RESOLVED_APERTURE_VOX} voxels thick) at the resolvable "
                                "steps")
        else:
            crit["li_f1"] = _crit(
                _r(li["f1"]), TARGETS["li_f1_min"], li["f1"] >= TARGETS["li_f1_min"],
                worst_step_f1=min((s["li_f1"] for s in li_steps_scored), default=None),
                n_steps_scored=sum(li_steps),
                li_f1_all=_r(f1_from_counts(*li_all.tolist())["f1"]))
        # lithium front
        lerr = {}
        for t in range(n):
            if li_steps[t] and "li_front_depth_um" in steps_truth[t]:
                lerr[t] = abs(found(t, "li_front_depth_um")
                              - float(steps_truth[t]["li_front_depth_um"])) / vox_n
                steps[t]["li_front_error_vox"] = _r(lerr[t], 3)
        if not lerr:
            crit["li_front"] = _na(TARGETS["li_front_error_vox_max"],
                                   "truth has no li_front_depth_um")
        else:
            missing = [t for t, e in lerr.items() if not math.isfinite(e)]
            w = max((e for e in lerr.values() if math.isfinite(e)), default=float("nan"))
            crit["li_front"] = _crit(_r(w, 3), TARGETS["li_front_error_vox_max"],
                                     not missing and w <= TARGETS["li_front_error_vox_max"],
                                     f"li_front_depth_um empty at steps {missing}" if missing
                                     else None)
        crit["dry_tip"] = _score_dry_tip(cracks, steps_truth, li_steps, truth_ids_to_found,
                                         crack_ids is not None, vox_n)

    # --- lone pores
    frac = pore_lone_called / pore_lone if pore_lone else 0.0
    crit["lone_pores"] = _crit(_r(frac, 5), TARGETS["lone_pore_called_max"],
                               frac <= TARGETS["lone_pore_called_max"], lone_pore_voxels=pore_lone,
                               called_crack=pore_lone_called)

    conds = truth.get("conditions")
    out["conditions_source"] = "truth" if conds is not None else "derived"
    if conds is None:
        conds = _derived_conditions(meta, truth, steps[0]["truth_vox"] if steps else 0)
    out["conditions"] = sorted(conds)
    out["imaging"] = truth.get("imaging")
    out["span_index"], out["span_index_true"] = found_span, true_span
    out["lithium_reported"] = li_resolved
    out["lithium_resolvable_steps"] = int(sum(li_steps)) if has_resolvable_key else None
    out["criteria"] = {k: crit[k] for k in CRITERIA}
    out["failing"] = [k for k in CRITERIA if crit[k]["pass"] is False]
    out["pass"] = not out["failing"]
    out["steps"] = steps
    return out


def _score_dry_tip(cracks: Any, steps_truth: list[dict], li_steps: list[bool],
                   matches: list[dict[int, tuple[int, int]]], have_ids: bool,
                   vox_n: float) -> dict[str, Any]:
    """Worst per-crack dry-tip lead error, truth cracks matched to analysed ones by overlap."""
    thr = TARGETS["dry_tip_error_vox_max"]
    if "dry_tip_lead_um" not in getattr(cracks, "columns", ()):
        return _na(thr, "cracks.csv has no dry_tip_lead_um column")
    if not have_ids:
        return _na(thr, "truth has no crack_ids.zarr")
    found = {(int(r.t_index), int(r.crack_id)): _num(r.dry_tip_lead_um)
             for r in cracks.itertuples(index=False)}
    worst, where, n_cmp, n_missing, n_unmatched = -1.0, None, 0, 0, 0
    for t, s in enumerate(steps_truth):
        if not li_steps[t]:
            continue
        for c in s.get("cracks", []):
            lead = c.get("dry_tip_lead_um")
            if lead is None or _num(c.get("li_depth_um", 1.0)) <= 0:
                continue
            m = matches[t].get(int(c["id"]))
            if m is None:
                n_unmatched += 1
                continue
            a = found.get((t, m[0]), float("nan"))
            if not math.isfinite(a):
                n_missing += 1
                continue
            e = abs(a - float(lead)) / vox_n
            n_cmp += 1
            if e > worst:
                worst, where = e, {"t_index": t, "truth_id": int(c["id"]), "crack_id": m[0]}
    if n_cmp == 0:
        return _na(thr, f"no lithium-filled crack matched ({n_unmatched} unmatched, "
                        f"{n_missing} without a dry-tip lead)")
    return _crit(_r(worst, 3), thr, worst <= thr, where=where, n_compared=n_cmp,
                 n_missing=n_missing, n_unmatched=n_unmatched)


# ----------------------------------------------------------------------------------------------
# Running cells
# ----------------------------------------------------------------------------------------------

def parse_seeds(text: str) -> list[int]:
    """Seeds from ``"0-19,100-139,900"`` (ranges inclusive), in order, without repeats.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of int
    """
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "-" in part[1:]:
            a, b = part.split("-", 1) if not part.startswith("-") else part[1:].split("-", 1)
            lo, hi = int(a), int(b)
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    return list(dict.fromkeys(out))


def run_cell(seed: int, work: str | Path, *, preset: str = "random", keep: bool = False,
             seed_set: str = "held-out", **overrides: Any) -> dict[str, Any]:
    """Simulate, analyse and score one cell; an exception is recorded, not raised.

    Parameters
    ----------
    seed : int
        Seed of the twin.
    work : path
        Folder under which ``<preset>-<seed>-data`` and ``-results`` are written.
    preset : str
        Twin preset (``random`` by default).
    keep : bool
        Keep the dataset and results folders (deleted otherwise).
    seed_set : str
        ``"tuning"`` or ``"held-out"``, recorded with the cell.
    **overrides
        Preset parameters (``shape_zyx``, ``n_steps``).

    Returns
    -------
    dict
        :func:`score_cell`'s dict with ``seed``, ``set``, timing (``simulate_s``,
        ``analyze_s``, ``score_s``); on an exception ``error`` and ``traceback`` with
        ``pass`` False and ``failing`` ``["ran"]``.
    """
    from dendritect.errors import InputError
    from dendritect.pipeline import analyze
    from dendritect.synthetic import simulate

    work = Path(work)
    data = work / f"{preset}-{seed}-data"
    res = work / f"{preset}-{seed}-results"
    out: dict[str, Any] = {"seed": int(seed), "set": seed_set, "preset": preset,
                           "overrides": {k: list(v) if isinstance(v, tuple) else v
                                         for k, v in overrides.items()}}
    stage = "simulate"
    t0 = time.perf_counter()
    try:
        simulate(data, preset, seed=seed, overwrite=True, **overrides)
        t1 = time.perf_counter()
        out["simulate_s"] = round(t1 - t0, 2)
        stage = "analyze"
        echem = data / "echem.csv"
        analyze(data, res, overwrite=True, progress=False, report=False,
                echem=echem if echem.is_file() else None)
        t2 = time.perf_counter()
        out["analyze_s"] = round(t2 - t1, 2)
        stage = "score"
        out.update(score_cell(res, data))
        out["score_s"] = round(time.perf_counter() - t2, 2)
    except Exception as exc:  # one cell's failure must not hide the others
        out.update(error="".join(traceback.format_exception_only(exc)).strip(),
                   stage=stage, traceback=traceback.format_exc(),
                   input_error=isinstance(exc, InputError), failing=["ran"], **{"pass": False})
        if stage != "simulate":
            try:  # the drawn conditions still tell which cell broke the method
                truth = json.loads((data / "truth" / "truth.json").read_text())
                out["conditions"] = sorted(truth.get("conditions") or [])
            except (OSError, ValueError):
                pass
    finally:
        out["total_s"] = round(time.perf_counter() - t0, 2)
        if not keep:
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(res, ignore_errors=True)
    return out


def _machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    try:
        from dendritect import __version__
    except ImportError:  # pragma: no cover
        __version__ = None
    return {"dendritect_version": __version__, "git_commit": commit or None,
            "python": platform.python_version(), "machine": platform.machine(),
            "platform": platform.platform(), "cpu_count": os.cpu_count()}


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------

def _vals(cells: list[dict], name: str, key: str = "value") -> list[float]:
    out = []
    for c in cells:
        v = c.get("criteria", {}).get(name, {}).get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def _worst(cells: list[dict], name: str, lo: bool, fmt: str, scale: float = 1.0) -> str:
    """Worst value of a criterion over cells, marked ✗ past its threshold ("n/a" if none)."""
    vals = _vals(cells, name)
    failed_na = [c for c in cells if c.get("criteria", {}).get(name, {}).get("pass") is False
                 and c["criteria"][name].get("value") is None]
    if not vals:
        return "not reported ✗" if failed_na else "n/a"
    w = min(vals) if lo else max(vals)
    bad = any(c["criteria"][name]["pass"] is False for c in cells if name in c.get("criteria", {}))
    text = format(w * scale, fmt)
    if failed_na:
        text += f" (+{len(failed_na)} not reported)"
    return text + (" ✗" if bad else "")


TABLE_HEAD = ("| {what} | n cells | worst cell F1 | worst step F1 | max step-0 false vox | "
              "max front err (vox) | span exact (false) | worst volume err % | worst Li F1 | "
              "max Li-front err (vox) | max lone-pore % |")


def _row(label: str, cells: list[dict]) -> str:
    ran = [c for c in cells if "error" not in c]
    crashed = len(cells) - len(ran)
    n = f"{len(cells)}" + (f" ({crashed} crashed ✗)" if crashed else "")
    exact = sum(1 for c in ran if c["criteria"]["span"]["pass"])
    false = sum(1 for c in ran if c.get("false_span"))
    span = f"{exact}/{len(ran)} ({false})" + (" ✗" if exact < len(ran) else "")
    if not ran:
        return f"| {label} | {n} |" + " – |" * 9
    return (f"| {label} | {n} | {_worst(ran, 'cell_f1', True, '.3f')} | "
            f"{_worst(ran, 'step_f1', True, '.3f')} | {_worst(ran, 'step0_false', False, '.0f')} | "
            f"{_worst(ran, 'front', False, '.2f')} | {span} | "
            f"{_worst(ran, 'volume', False, '.1f', 100.0)} | {_worst(ran, 'li_f1', True, '.3f')} | "
            f"{_worst(ran, 'li_front', False, '.2f')} | "
            f"{_worst(ran, 'lone_pores', False, '.2f', 100.0)} |")


def condition_table(cells: list[dict], tags: Iterable[str], what: str = "condition") -> str:
    """Markdown table of the worst case per condition tag (rows) over ``cells``.

    Parameters
    ----------
    cells : list of dict
        :func:`run_cell` results.
    tags : iterable of str
        Row tags; a cell counts in every row whose tag it carries. An "all cells" row closes
        the table.
    what : str
        Header of the first column.

    Returns
    -------
    str
    """
    head = TABLE_HEAD.format(what=what)
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for tag in tags:
        sub = [c for c in cells if tag in (c.get("conditions") or [])]
        lines.append(_row(tag, sub) if sub else f"| {tag} | 0 |" + " – |" * 9)
    lines.append(_row("**all cells**", cells))
    return "\n".join(lines) + "\n"


def summary_line(name: str, cells: list[dict]) -> str:
    """One line: pass counts per criterion over a seed set (pass/scored, n/a count)."""
    if not cells:
        return f"- **{name}**: no cells in this run"
    ran = [c for c in cells if "error" not in c]
    parts = [f"ran {len(ran)}/{len(cells)}",
             f"all criteria {sum(1 for c in cells if c.get('pass'))}/{len(cells)}"]
    for k in CRITERIA:
        p = sum(1 for c in ran if c["criteria"][k]["pass"] is True)
        f = sum(1 for c in ran if c["criteria"][k]["pass"] is False)
        na = len(ran) - p - f
        parts.append(f"{k} {p}/{p + f}" + (f" (n/a {na})" if na else ""))
    wrong = [c["seed"] for c in ran if _anode_wrong(c)]
    parts.append(f"anode side wrong {len(wrong)}/{len(ran)}"
                 + (f" ({', '.join(str(s) for s in wrong)})" if wrong else ""))
    return f"- **{name}** ({len(cells)} cells): " + "; ".join(parts)


def _anode_wrong(c: dict) -> bool:
    return (c.get("anode") is not None and c.get("anode_true") is not None
            and c["anode"] != c["anode_true"])


def _fmt_fail(c: dict) -> str:
    if "error" in c:
        return f"crashed in {c.get('stage')}: {c['error'].splitlines()[-1][:200]}"
    out = []
    if _anode_wrong(c):
        out.append(f"anode side found {c['anode']}, true {c['anode_true']}")
    no_value: dict[str, list[str]] = {}
    for k in c["failing"]:
        cr = c["criteria"][k]
        if cr.get("value") is None:
            no_value.setdefault(cr.get("reason", "not reported"), []).append(k)
        elif k == "span":
            lig = cr.get("ligament_vox")
            out.append(f"span: found {cr['value']} vs true {cr['true']}"
                       + (" (false span" + ("" if lig is None else
                                            f"; true ligament {lig} voxels there") + ")"
                          if cr.get("false_span") else ""))
        else:
            at = f" at step {cr['t_index']}" if cr.get("t_index") is not None else ""
            cmp = ">=" if k in ("cell_f1", "step_f1", "li_f1") else "<="
            out.append(f"{k}: {cr['value']}{at} (need {cmp} {cr['threshold']})")
    out += [f"{', '.join(ks)}: {why}" for why, ks in no_value.items()]
    return "; ".join(out)


def held_out_section(cells: list[dict]) -> str:
    """The held-out part of the report (summary line and worst-case tables), for the docs."""
    held = [c for c in cells if c.get("set") == "held-out"]
    lines = [summary_line("held-out", held), "",
             "Worst case per condition, held-out seeds:", "",
             condition_table(held, CONDITION_TAGS),
             "Worst case per crack type, held-out seeds:", "",
             condition_table(held, CRACK_TYPES, "crack type")]
    return "\n".join(lines)


def _tables(cells: list[dict]) -> list[str]:
    if not cells:
        return ["No cells of this set in this run.", ""]
    return ["Worst case per condition:", "", condition_table(cells, CONDITION_TAGS),
            "Worst case per crack type:", "", condition_table(cells, CRACK_TYPES, "crack type")]


def report_md(cells: list[dict], info: dict[str, Any]) -> str:
    """The whole ``robust.md``: summaries, worst-case tables, failing cells.

    Parameters
    ----------
    cells : list of dict
        :func:`run_cell` results.
    info : dict
        Run information (``preset``, ``seeds``, ``machine``, ``wall_s``).

    Returns
    -------
    str
    """
    held = [c for c in cells if c.get("set") == "held-out"]
    tune = [c for c in cells if c.get("set") == "tuning"]
    times = [c["total_s"] for c in cells if "error" not in c and "total_s" in c]
    m = info.get("machine", {})
    lines = ["# Robustness over randomised cells", "",
             f"Preset `{info.get('preset')}`, seeds `{info.get('seeds')}` (tuning "
             f"`{info.get('tuning')}`), overrides {info.get('overrides') or 'none'}; "
             f"dendritect {m.get('dendritect_version')} ({m.get('git_commit')}), "
             f"{m.get('cpu_count')} CPUs, {info.get('jobs')} jobs; wall {info.get('wall_s')} s"
             + (f", per cell {min(times):.0f}-{max(times):.0f} s (median "
                f"{float(np.median(times)):.0f} s)" if times else "") + ".", "",
             "Every number is the worst case over the cells, not the mean; ✗ marks a worst case "
             "past its threshold, n/a a criterion no cell could be scored on.", "",
             "## Pass counts", "",
             summary_line("tuning", tune), summary_line("held-out", held), "",
             "## Held-out seeds", "", *_tables(held),
             "## Tuning seeds", "", *_tables(tune),
             "## Failing cells", ""]
    failing = [c for c in cells if not c.get("pass")]
    if not failing:
        lines.append("None.")
    for c in sorted(failing, key=lambda c: (c.get("set") != "held-out", c["seed"])):
        lines.append(f"- seed {c['seed']} ({c.get('set')}; {', '.join(c.get('conditions') or [])}"
                     f"): {_fmt_fail(c)}")
    return "\n".join(lines) + "\n"


def write_docs(section: str, path: Path = DOCS) -> bool:
    """Replace the block between the markers of ``docs/accuracy.md`` with ``section``.

    Parameters
    ----------
    section : str
        Markdown to put between :data:`DOCS_BEGIN` and :data:`DOCS_END`.
    path : Path

    Returns
    -------
    bool
        False when the file or its markers are missing (nothing written).
    """
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    i, j = text.find(DOCS_BEGIN), text.find(DOCS_END)
    if i < 0 or j < i:
        return False
    new = text[: i + len(DOCS_BEGIN)] + "\n" + section.strip() + "\n" + text[j:]
    path.write_text(new, encoding="utf-8")
    return True


def _threads_env(jobs: int) -> None:
    """Share the CPUs between the job processes (inherited by spawned workers)."""
    per = str(max(1, (os.cpu_count() or 1) // max(jobs, 1)))
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        os.environ.setdefault(var, per)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default=DEFAULT_SEEDS,
                    help=f"Seeds to run, ranges inclusive (default {DEFAULT_SEEDS}).")
    ap.add_argument("--tuning", default=DEFAULT_TUNING,
                    help="Seeds the method was tuned on; every other seed is held out "
                         f"(default {DEFAULT_TUNING}).")
    ap.add_argument("--preset", default="random")
    ap.add_argument("--shape", default=None, help="Override shape_zyx, e.g. 48,96,96.")
    ap.add_argument("--steps", type=int, default=None, help="Override n_steps.")
    ap.add_argument("--jobs", type=int, default=2, help="Cells analysed at once (processes).")
    ap.add_argument("--work", type=Path, default=None,
                    help="Folder for the simulated data and results (default: a temporary one).")
    ap.add_argument("--keep", action="store_true", help="Keep each cell's data and results.")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--write-docs", action="store_true",
                    help="Rewrite the held-out block of docs/accuracy.md.")
    ap.add_argument("--report-only", type=Path, default=None, metavar="JSON",
                    help="Rewrite robust.md (and the docs with --write-docs) from a robust.json "
                         "without running any cell.")
    args = ap.parse_args(argv)
    if args.report_only is not None:
        result = json.loads(args.report_only.read_text())
        return _write_reports(result["cells"], result, args.out, args.write_docs,
                              write_json=None)

    seeds = parse_seeds(args.seeds)
    tuning = set(parse_seeds(args.tuning))
    overrides: dict[str, Any] = {}
    if args.shape:
        overrides["shape_zyx"] = tuple(int(s) for s in args.shape.split(","))
    if args.steps:
        overrides["n_steps"] = args.steps
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="dendritect-robust-")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    cells: list[dict] = []
    kw = {"preset": args.preset, "keep": args.keep}

    def report(c: dict) -> None:
        cells.append(c)
        status = "pass" if c.get("pass") else "FAIL " + _fmt_fail(c)
        print(f"[{len(cells)}/{len(seeds)}] seed {c['seed']} ({c['set']}, "
              f"{c.get('total_s')} s): {status}", flush=True)

    if args.jobs <= 1:
        for s in seeds:
            report(run_cell(s, work, seed_set="tuning" if s in tuning else "held-out",
                            **kw, **overrides))
    else:
        import multiprocessing as mp

        _threads_env(args.jobs)
        with ProcessPoolExecutor(max_workers=args.jobs,
                                 mp_context=mp.get_context("spawn")) as ex:
            futs = {ex.submit(run_cell, s, work, seed_set="tuning" if s in tuning else "held-out",
                              **kw, **overrides): s for s in seeds}
            for f in as_completed(futs):
                try:
                    report(f.result())
                except Exception as exc:  # the worker process itself died
                    report({"seed": futs[f], "set": "tuning" if futs[f] in tuning else "held-out",
                            "error": repr(exc), "stage": "worker", "failing": ["ran"],
                            "pass": False})
    cells.sort(key=lambda c: c["seed"])
    info = {"preset": args.preset, "seeds": args.seeds, "tuning": args.tuning,
            "overrides": {k: list(v) if isinstance(v, tuple) else v
                          for k, v in overrides.items()},
            "jobs": args.jobs, "wall_s": round(time.perf_counter() - t0, 1),
            "machine": _machine()}
    result = {**info, "targets": TARGETS, "criteria": list(CRITERIA), "cells": cells}
    rc = _write_reports(cells, info, args.out, args.write_docs, write_json=result)
    if tmp is not None:
        tmp.cleanup()
    return rc


def _write_reports(cells: list[dict], info: dict, out: Path, docs: bool,
                   write_json: dict | None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    if write_json is not None:
        (out / "robust.json").write_text(json.dumps(write_json, indent=2, default=str) + "\n")
    md = report_md(cells, info)
    (out / "robust.md").write_text(md)
    print(md)
    if docs and not any(c.get("set") == "held-out" for c in cells):
        print("docs/accuracy.md not updated: no held-out seed in this run")
    elif docs:
        ok = write_docs(f"_Generated by `python -m benchmarks.robust --write-docs` "
                        f"({info.get('machine', {}).get('git_commit')}, seeds "
                        f"`{info.get('seeds')}`)._\n\n" + held_out_section(cells))
        print("docs/accuracy.md " + ("updated" if ok else "not updated: markers not found"))
    return 0 if all(c.get("pass") for c in cells) else 1


if __name__ == "__main__":
    sys.exit(main())
