"""Accuracy of ``dendritect analyze`` against the synthetic twin's ground truth.

For each preset (``demo``, ``paper``, ``hard``) a dataset is simulated, analysed, and scored:

- **F1 of crack voxels** with a one-voxel tolerance, over all steps: a detected voxel counts as
  right when a true crack voxel (labels 3 or 4) lies within one voxel of it (3x3x3), and a true
  voxel as found when a detected one lies within one voxel;
- **front-depth error** in voxels (along z), per step, largest and mean;
- **span step** exact or not;
- **pore voxels called crack**: fraction of the pre-existing pore voxels (label 2) marked crack.

The real laboratory CT of a Li-ion cell (no solid electrolyte, no cracks) is analysed too: it must
not crash, and must either say that no electrolyte layer was found or report no crack-like field.

Targets: F1 >= 0.9 on every preset, front error <= 2 voxels, span step exact, <= 2 % of pore
voxels called crack.

Usage: ``python -m benchmarks.accuracy [--presets demo,paper,hard] [--seed 0] [--work DIR]``.
Writes ``benchmarks/results/accuracy.json`` and ``benchmarks/results/accuracy.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

RESULTS = Path(__file__).resolve().parent / "results"
REAL_CT = (Path(__file__).resolve().parents[2] / "shared" / "data" / "real-lab-ct-liion-cell"
           / "cell_vol_stack_zlib.tif")
TARGETS = {"f1_min": 0.9, "front_error_vox_max": 2.0, "span_exact": True,
           "pore_called_crack_max": 0.02}
CRACK_CODES = (3, 4)
PORE_CODE = 2
_CUBE = np.ones((3, 3, 3), bool)


def score_masks(pred_steps, truth_steps) -> dict[str, float]:
    """Tolerant voxel F1 and pore confusion over all steps (one step in memory at a time)."""
    from benchmarks.robust import f1_from_counts, tolerant_counts

    counts = np.zeros(4, np.int64)  # tp_pred, n_pred, tp_truth, n_truth
    pore = pore_hit = 0
    for pred, lab in zip(pred_steps, truth_steps, strict=True):
        pred = np.asarray(pred) != 0
        lab = np.asarray(lab)
        counts += tolerant_counts(pred, np.isin(lab, CRACK_CODES))
        pores = lab == PORE_CODE
        pore += int(pores.sum())
        pore_hit += int((pores & pred).sum())
    tp_p, n_p, tp_t, n_t = (int(c) for c in counts)
    return {**f1_from_counts(tp_p, n_p, tp_t, n_t), "crack_voxels_true": n_t,
            "crack_voxels_found": n_p,
            "pore_called_crack": pore_hit / pore if pore else 0.0, "pore_voxels": pore}


def _same_dataset(data: Path, preset: str, seed: int) -> bool:
    try:
        meta = json.loads((data / "dataset.json").read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("preset") == preset and meta.get("seed") == seed
            and (data / "truth" / "truth.json").is_file())


def score_preset(preset: str, seed: int, work: Path, *, reuse: bool = False,
                 **overrides) -> dict:
    """Simulate, analyse and score one preset (``reuse``: keep a dataset already simulated)."""
    from dendritect.pipeline import analyze
    from dendritect.synthetic import simulate

    data = work / f"{preset}-data"
    res = work / f"{preset}-results"
    t0 = time.perf_counter()
    if not (reuse and not overrides and _same_dataset(data, preset, seed)):
        simulate(data, preset, seed=seed, overwrite=True, **overrides)
    t1 = time.perf_counter()
    echem = data / "echem.csv"
    summary = analyze(data, res, overwrite=True, progress=False, report=False,
                      echem=echem if echem.is_file() else None)
    t2 = time.perf_counter()
    truth = json.loads((data / "truth" / "truth.json").read_text())
    labels = zarr.open_array(str(data / "truth" / "labels.zarr"), mode="r")
    crack = zarr.open_group(str(res / "cracks.zarr"), mode="r")["crack"]
    n = crack.shape[0]
    masks = score_masks((crack[t] for t in range(n)), (labels[t] for t in range(n)))
    metrics = pd.read_csv(res / "metrics.csv")
    dz = float(summary["voxel_size_um"][0])
    true_front = np.array([s["front_depth_um"] for s in truth["steps"]], dtype=float)
    err = np.abs(metrics["front_depth_um"].to_numpy(dtype=float) - true_front) / dz
    out = {
        "preset": preset, "seed": seed, "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in overrides.items()},
        "shape_zyx": list(crack.shape[1:]), "n_steps": n,
        "voxel_size_um": summary["voxel_size_um"],
        **masks,
        "front_error_vox_max": float(err.max()), "front_error_vox_mean": float(err.mean()),
        "front_error_vox": [round(float(e), 3) for e in err],
        "span_index": summary["span_index"], "span_index_true": truth.get("span_index"),
        "span_exact": summary["span_index"] == truth.get("span_index"),
        "anode": summary["anode"], "anode_true": truth.get("anode"),
        "forecast_time_s": summary["short_circuit"]["forecast_time_s"],
        "span_time_true_s": truth.get("span_time_s"),
        "echem_short_s": summary["short_circuit"]["echem_time_s"],
        "short_time_true_s": truth.get("short_time_s"),
        "simulate_s": round(t1 - t0, 1), "analyze_s": round(t2 - t1, 1),
    }
    out["meets_targets"] = bool(out["f1"] >= TARGETS["f1_min"]
                                and out["front_error_vox_max"] <= TARGETS["front_error_vox_max"]
                                and out["span_exact"]
                                and out["pore_called_crack"] <= TARGETS["pore_called_crack_max"])
    return out


def score_real(work: Path, path: Path = REAL_CT) -> dict:
    """Analyse the real Li-ion lab CT: must not crash; no crack-like false alarms."""
    from dendritect.errors import InputError
    from dendritect.pipeline import analyze

    out: dict = {"input": str(path)}
    if not path.is_file():
        out["status"] = "skipped: file not found"
        return out
    t0 = time.perf_counter()
    try:
        summary = analyze(path, work / "real-results", overwrite=True, progress=False,
                          report=False, voxel_size="68,34,34um")
    except InputError as exc:
        out["status"] = "input error"
        out["message"] = str(exc)
        out["no_electrolyte_layer"] = "no electrolyte layer" in str(exc)
        out["ok"] = out["no_electrolyte_layer"]
    except Exception as exc:  # a crash is what this check looks for
        out["status"] = "crashed"
        out["message"] = "".join(traceback.format_exception_only(exc)).strip()
        out["ok"] = False
    else:
        m = pd.read_csv(work / "real-results" / "metrics.csv")
        crack = zarr.open_group(str(work / "real-results" / "cracks.zarr"), mode="r")["crack"]
        frac = float(np.asarray(crack[0]).mean())
        out.update(status="analysed", n_cracks=int(m["n_cracks"].iloc[0]),
                   crack_voxel_fraction=frac, span_index=summary["span_index"])
        # A single scan has no time evolution: any crack it reports is a false alarm.
        out["ok"] = frac < 1e-3
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _table(rows: list[dict], real: dict) -> str:
    lines = [
        "| preset | shape (z,y,x) | steps | F1 (±1 vox) | precision | recall | front err max / "
        "mean (vox) | span step (found / true) | pore voxels called crack | analyse (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['preset']} | | | failed: {r['error']} | | | | | | |")
            continue
        lines.append(
            f"| {r['preset']} | {'x'.join(map(str, r['shape_zyx']))} | {r['n_steps']} | "
            f"{r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
            f"{r['front_error_vox_max']:.2f} / {r['front_error_vox_mean']:.2f} | "
            f"{r['span_index']} / {r['span_index_true']} "
            f"({'exact' if r['span_exact'] else 'wrong'}) | "
            f"{100 * r['pore_called_crack']:.2f} % | {r['analyze_s']} |")
    lines.append("")
    lines.append(f"Real lab CT ({Path(real.get('input', '')).name}): {real.get('status')}"
                 + (f" — {real['message']}" if real.get("message") else "")
                 + (f"; {real['n_cracks']} cracks, crack voxel fraction "
                    f"{real['crack_voxel_fraction']:.2e}" if real.get("status") == "analysed"
                    else "")
                 + f"; acceptable: {real.get('ok')}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="demo,paper,hard")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None,
                    help="Folder for the simulated data and results (default: a temporary one).")
    ap.add_argument("--no-real", action="store_true", help="Skip the real lab CT check.")
    ap.add_argument("--reuse-data", action="store_true",
                    help="Keep datasets already simulated in --work for the same preset and seed.")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix="dendritect-accuracy-")
        work = Path(tmp.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    rows = []
    for preset in [p for p in args.presets.split(",") if p]:
        print(f"-- {preset}", flush=True)
        try:
            rows.append(score_preset(preset, args.seed, work, reuse=args.reuse_data))
        except Exception as exc:  # record and go on: one failing preset must not hide the rest
            traceback.print_exc()
            rows.append({"preset": preset, "error": repr(exc)})
        print(json.dumps(rows[-1], default=str)[:400], flush=True)
    real = {"status": "skipped"} if args.no_real else score_real(work)
    print(json.dumps(real, default=str), flush=True)
    from dendritect import __version__

    result = {"dendritect_version": __version__, "python": platform.python_version(),
              "machine": platform.machine(), "targets": TARGETS, "presets": rows,
              "real_lab_ct": real}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out / "accuracy.md").write_text(_table(rows, real))
    print(_table(rows, real))
    if tmp is not None:
        tmp.cleanup()
    ok = all(r.get("meets_targets") for r in rows) and real.get("ok", True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
