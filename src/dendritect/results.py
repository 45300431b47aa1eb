"""Writing a results folder: atomic files, the zarr stores, and the resume record.

A run is built in ``DIR/.partial/``. Files are moved into ``DIR`` only when everything is done,
``summary.json`` last: a folder with ``summary.json`` is a finished run, anything else is not.
``DIR/.partial/state.json`` records the settings and every finished step so that an interrupted
run can be resumed and still give the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from dendritect.atomic import atomic_write_bytes
from dendritect.errors import InputError

__all__ = [
    "PARTIAL",
    "RESULT_NAMES",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "create_array",
    "dumps_json",
    "finish",
    "read_state",
    "write_csv",
    "write_state",
]

PARTIAL = ".partial"
STATE = "state.json"
#: What a finished run holds (report.html is added by the report).
RESULT_NAMES = ("cracks.zarr", "previews.zarr", "metrics.csv", "cracks.csv", "summary.json")
_OLD_NAMES = (*RESULT_NAMES, "report.html", "figures", "movie.gif", "movie.mp4")


def _clean(obj: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null, tuples to lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps_json(obj: Any) -> str:
    """Stable JSON text (sorted keys, no NaN)."""
    return json.dumps(_clean(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomic UTF-8 text write."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Atomic, sorted-key JSON write."""
    return atomic_write_text(path, dumps_json(obj))


def write_csv(path: str | Path, table: pd.DataFrame) -> Path:
    """Atomic CSV write with a fixed float format (same data, same bytes)."""
    text = table.to_csv(index=False, float_format="%.9g", lineterminator="\n")
    return atomic_write_text(path, text)


def create_array(group: zarr.Group, name: str, shape: tuple[int, ...], dtype: Any, *,
                 chunks: tuple[int, ...], fill_value: Any = 0,
                 attrs: dict[str, Any] | None = None) -> zarr.Array:
    """Create (or replace) an array in a zarr v3 group, zstd-compressed by zarr's default."""
    arr = group.create_array(name, shape=shape, dtype=dtype, chunks=chunks,
                             fill_value=fill_value, overwrite=True)
    if attrs:
        arr.attrs.update(_clean(attrs))
    return arr


def read_state(partial: Path) -> dict[str, Any] | None:
    """The resume record of an unfinished run, or None."""
    path = partial / STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_state(partial: Path, state: dict[str, Any]) -> None:
    atomic_write_json(partial / STATE, state)


def prepare(out_dir: Path, *, resume: bool, overwrite: bool) -> tuple[Path, bool]:
    """Make ``out_dir/.partial`` ready; says whether a finished run is there to return.

    Returns
    -------
    partial : Path
    finished : bool
        True when ``resume`` is set and ``out_dir`` already holds a finished run.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a folder")
    partial = out_dir / PARTIAL
    done = (out_dir / "summary.json").is_file()
    if done and resume and not overwrite:
        return partial, True
    if done and not overwrite:
        raise InputError(
            f"--out {out_dir} already holds a finished analysis; pass --overwrite to replace it")
    if overwrite:
        for name in (*_OLD_NAMES, PARTIAL):
            p = out_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    elif not resume and partial.exists():
        # An interrupted run that the user chose not to resume: start it again.
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    return partial, False


def finish(out_dir: Path, partial: Path, summary: dict[str, Any]) -> None:
    """Move the finished files into ``out_dir`` (``summary.json`` last) and drop ``.partial``."""
    for name in RESULT_NAMES[:-1]:
        src = partial / name
        dst = out_dir / name
        if not src.exists():
            continue
        if dst.is_dir():
            shutil.rmtree(dst)
        elif dst.exists():
            dst.unlink()
        os.replace(src, dst)
    atomic_write_json(out_dir / "summary.json", summary)
    shutil.rmtree(partial, ignore_errors=True)
