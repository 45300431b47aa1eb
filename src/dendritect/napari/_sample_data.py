"""napari sample data: a small synthetic operando cell with its ground-truth labels."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from dendritect.napari._reader import LayerData, read_series, spatial_kwargs

__all__ = ["demo_cell"]

#: Names of the truth codes (CONTRACT "Dataset layout written by simulate").
TRUTH_CODES = {0: "electrolyte", 1: "lithium electrode", 2: "pore", 3: "crack (empty)",
               4: "crack with lithium", 5: "other"}


def demo_cell(out_dir: str | Path | None = None, **overrides: Any) -> list[LayerData]:
    """Simulate the demo cell and return the scans and the truth labels as layers.

    Parameters
    ----------
    out_dir : str or Path, optional
        Where to write the dataset (a new temporary folder by default).
    **overrides
        Passed to :func:`dendritect.synthetic.simulate` (e.g. ``n_steps=5``).
    """
    import dask.array as da
    import zarr

    from dendritect.synthetic import simulate

    out = Path(out_dir) if out_dir is not None else Path(
        tempfile.mkdtemp(prefix="dendritect-sample-")) / "demo"
    simulate(out, preset="demo", overwrite=True, **overrides)
    layers = read_series(out)
    voxel = tuple(layers[0][1]["metadata"]["voxel_size_um"])
    truth = out / "truth" / "labels.zarr"
    if truth.exists():
        node = zarr.open(str(truth), mode="r")
        arr = node if hasattr(node, "shape") else next(iter(node.array_values()))
        data = da.from_array(arr, chunks=arr.chunks)
        layers.append((data, {"name": "truth", "opacity": 0.5, "visible": False,
                              "metadata": {"codes": TRUTH_CODES},
                              **spatial_kwargs(data.ndim, voxel)}, "labels"))
    return layers
