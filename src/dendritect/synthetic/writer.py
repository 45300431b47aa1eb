"""Write a :class:`~dendritect.synthetic.twin.SyntheticCell` in the CONTRACT.md dataset layout.

The folder is built under a temporary sibling name and renamed into place, so a reader never
sees half a dataset. Nothing written carries a timestamp: the same seed gives the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tifffile
import zarr

from dendritect.errors import InputError
from dendritect.synthetic.twin import SyntheticCell

__all__ = ["check_out_dir", "write_dataset"]


def check_out_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Refuse an output path that is a file, or a non-empty folder without ``overwrite``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"OUT: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"OUT: {out} is not empty (use --overwrite to replace it)")
    return out


def _write_scan(path: Path, vol: np.ndarray, vox: tuple[float, float, float]) -> None:
    dz, dy, dx = vox
    # ImageJ hyperstack metadata: pixel size from the resolution tags, z spacing and unit.
    tifffile.imwrite(path, vol, imagej=True, resolution=(1.0 / dx, 1.0 / dy),
                     metadata={"spacing": dz, "unit": "um", "axes": "ZYX"})


def _write_echem(path: Path, echem: dict[str, np.ndarray]) -> None:
    t, v, i = echem["time_s"], echem["voltage_V"], echem["current_mA"]
    lines = ["time_s,voltage_V,current_mA"]
    lines += [f"{a:.3f},{b:.6f},{c:.6e}" for a, b, c in zip(t, v, i, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def write_dataset(cell: SyntheticCell, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``cell`` to ``out_dir`` atomically.

    Parameters
    ----------
    cell : SyntheticCell
        From :func:`dendritect.synthetic.generate`.
    out_dir : path
        The dataset folder (created; its parent must exist or is created).
    overwrite : bool
        Replace an existing non-empty folder.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    out = check_out_dir(out_dir, overwrite)
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    try:
        (tmp / "scans").mkdir()
        (tmp / "truth").mkdir()
        for i in range(cell.scans.shape[0]):
            _write_scan(tmp / "scans" / f"t{i:03d}.tif", cell.scans[i], cell.voxel_size_um)
        _write_echem(tmp / "echem.csv", cell.echem)
        arr = zarr.create_array(store=str(tmp / "truth" / "labels.zarr"),
                                shape=cell.labels.shape, chunks=(1, *cell.labels.shape[1:]),
                                dtype="uint8", fill_value=0,
                                attributes={"codes": cell.truth["labels"],
                                            "axes": ["t", "z", "y", "x"],
                                            "voxel_size_um": list(cell.voxel_size_um)})
        arr[...] = cell.labels
        if cell.crack_ids is not None:
            ids = zarr.create_array(store=str(tmp / "truth" / "crack_ids.zarr"),
                                    shape=cell.crack_ids.shape,
                                    chunks=(1, *cell.crack_ids.shape[1:]), dtype="uint8",
                                    fill_value=0,
                                    attributes={"axes": ["t", "z", "y", "x"],
                                                "voxel_size_um": list(cell.voxel_size_um),
                                                "meaning": "truth crack id (truth.json cracks"
                                                           "[].id) of each crack voxel, 0 "
                                                           "elsewhere"})
            ids[...] = cell.crack_ids
        _write_json(tmp / "truth" / "truth.json", cell.truth)
        _write_json(tmp / "dataset.json", cell.meta)
        os.chmod(tmp, 0o755)  # mkdtemp makes the folder private
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
