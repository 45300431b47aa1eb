"""Matplotlib figures of a results folder, for the report and for papers (PNG and SVG).

Every function takes plain arrays / tables and returns a :class:`matplotlib.figure.Figure`
built without pyplot, so figures can be made from any thread and never open a window.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dendritect import results as R
from dendritect.atomic import atomic_write
from dendritect.report.results import Results, iter_slabs

__all__ = [
    "arrival_figure",
    "arrival_projections",
    "front_figure",
    "growth_figure",
    "pick_steps",
    "save_figure",
    "slices_figure",
    "time_unit",
]

CRACK_RGB = (1.0, 0.25, 0.1)


def time_unit(times_s: Sequence[float]) -> tuple[str, float]:
    """A readable unit for a time axis: (name, seconds per unit)."""
    t = np.asarray(times_s, dtype=float)
    span = float(np.nanmax(t) - np.nanmin(t)) if t.size else 0.0
    if span >= 3 * 3600:
        return "h", 3600.0
    if span >= 3 * 60:
        return "min", 60.0
    return "s", 1.0


def arrival_projections(time_of_arrival: Any) -> tuple[np.ma.MaskedArray, np.ma.MaskedArray]:
    """Earliest arrival step seen along z (top view, (y,x)) and along y (side view, (z,x)).

    ``time_of_arrival`` may be a zarr array larger than memory: it is read in z-slabs.
    Voxels that never crack (-1) are masked.
    """
    nz, ny, nx = time_of_arrival.shape
    big = np.iinfo(np.int32).max
    top = np.full((ny, nx), big, np.int32)
    side = np.empty((nz, nx), np.int32)
    for z0, z1 in iter_slabs(time_of_arrival.shape):
        slab = np.asarray(time_of_arrival[z0:z1]).astype(np.int32)
        slab[slab < 0] = big
        np.minimum(top, slab.min(axis=0), out=top)
        side[z0:z1] = slab.min(axis=1)
    return np.ma.masked_equal(top, big), np.ma.masked_equal(side, big)


def _step_norm(n_steps: int) -> tuple[mcolors.Colormap, mcolors.BoundaryNorm]:
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].resampled(max(n_steps, 1))
    norm = mcolors.BoundaryNorm(np.arange(-0.5, max(n_steps, 1) + 0.5), cmap.N)
    return cmap, norm


def _step_ticks(n_steps: int, times_s: Sequence[float]) -> tuple[list[int], list[str]]:
    unit, scale = time_unit(times_s)
    stride = max(1, int(np.ceil(n_steps / 10)))
    ticks = list(range(0, n_steps, stride))
    labels = [f"{i}  ({times_s[i] / scale:.3g} {unit})" if i < len(times_s) else str(i)
              for i in ticks]
    return ticks, labels


def arrival_figure(time_of_arrival: Any, voxel_size_um: Sequence[float],
                   times_s: Sequence[float], *, anode: str | None = None,
                   interfaces_um: Sequence[float] | None = None) -> Figure:
    """Time-of-arrival map: crack voxels coloured by the step they first appeared.

    Left: projected along z (seen from the anode, the earliest step along each line of sight).
    Right: projected along y (side view through the electrolyte thickness).
    """
    dz, dy, dx = (float(v) for v in voxel_size_um)
    nz, ny, nx = time_of_arrival.shape
    top, side = arrival_projections(time_of_arrival)
    n_steps = max(len(times_s), int(top.filled(-1).max()) + 1, 1)
    cmap, norm = _step_norm(n_steps)
    cmap = cmap.with_extremes(bad=(0.93, 0.93, 0.93))

    width_top, width_side = nx * dx, nx * dx
    h_top, h_side = ny * dy, nz * dz
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    gs = fig.add_gridspec(1, 3, width_ratios=[width_top / h_top, width_side / h_side, 0.08])
    ax0 = fig.add_subplot(gs[0, 0])
    ax1 = fig.add_subplot(gs[0, 1])
    cax = fig.add_subplot(gs[0, 2])
    im = ax0.imshow(top, cmap=cmap, norm=norm, interpolation="nearest",
                    extent=(0, nx * dx, ny * dy, 0))
    ax0.set(title="seen along z (top view)", xlabel="x (µm)", ylabel="y (µm)")
    ax1.imshow(side, cmap=cmap, norm=norm, interpolation="nearest",
               extent=(0, nx * dx, nz * dz, 0), aspect="equal")
    ax1.set(title="seen along y (side view)", xlabel="x (µm)", ylabel="z (µm)")
    if interfaces_um is not None:
        names = ("anode side", "cathode side")
        for z_um, name in zip(interfaces_um, names, strict=False):
            if z_um is None:
                continue
            ax1.axhline(float(z_um), color="0.35", lw=0.8, ls="--")
            ax1.text(nx * dx * 0.99, float(z_um), f" {name}", color="0.25", fontsize=7,
                     ha="right", va="bottom")
    if anode:
        ax1.text(0.01, 0.99, f"anode: {anode}", transform=ax1.transAxes, fontsize=8,
                 va="top", color="0.2")
    cb = fig.colorbar(im, cax=cax)
    ticks, labels = _step_ticks(n_steps, list(times_s))
    cb.set_ticks(ticks, labels=labels)
    cb.set_label("step of arrival (time)")
    return fig


def front_figure(metrics: pd.DataFrame, summary: dict[str, Any],
                 echem: pd.DataFrame | None = None) -> Figure:
    """Crack and lithium front depth vs time; voltage on a second axis; span, short, forecast.

    ``echem`` is the full cycler record (``time_s``, ``voltage_V``): drawn at full resolution
    over the scans' time range. Without it the voltage at the scan times is drawn as points
    (never joined by lines: nothing is known between two scans). The span is drawn as the
    interval between the last scan without it and the first scan with it.
    """
    t = metrics["time_s"].to_numpy(dtype=float)
    unit, scale = time_unit(t)
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    ax = fig.add_subplot()
    handles = []
    handles += ax.plot(t / scale, metrics["front_depth_um"], "o-", color="C3",
                       label="crack front depth")
    if "li_front_depth_um" in metrics and metrics["li_front_depth_um"].notna().any():
        handles += ax.plot(t / scale, metrics["li_front_depth_um"], "s--", color="C0", ms=4,
                           label="lithium front depth")
    iface = summary.get("electrolyte_interfaces_um")
    if iface and len(iface) == 2 and None not in iface:
        thick = abs(float(iface[1]) - float(iface[0]))
        handles.append(ax.axhline(thick, color="0.4", lw=1, ls=":",
                                  label=f"electrolyte thickness ({thick:.4g} µm)"))
    span = summary.get("span_index")
    if span is not None and 0 < int(span) < len(t):
        i = int(span)
        handles.append(ax.axvspan(t[i - 1] / scale, t[i] / scale, color="C3", alpha=0.12,
                                  label=f"span happened here (between steps {i - 1} and {i})"))
    elif span is not None and int(span) == 0 and len(t):
        handles.append(ax.axvline(t[0] / scale, color="C3", lw=1.2, ls="-.",
                                  label="spanning at the first scan"))
    sc = summary.get("short_circuit") or {}
    if sc.get("echem_time_s") is not None:
        handles.append(ax.axvline(float(sc["echem_time_s"]) / scale, color="k", lw=1.2,
                                  label="short in cycler data"))
    if sc.get("forecast_time_s") is not None:
        ft = float(sc["forecast_time_s"]) / scale
        frm = sc.get("forecast_from_index")
        lab = "forecast span" + (f" (from step {int(frm)})" if frm is not None else "")
        handles.append(ax.axvline(ft, color="C2", lw=1.2, ls="--", label=lab))
        sig = sc.get("forecast_sigma_s")
        if sig is not None and np.isfinite(float(sig)) and float(sig) > 0:
            s = float(sig) / scale
            handles.append(ax.axvspan(ft - s, ft + s, color="C2", alpha=0.15,
                                      label="forecast ± 1σ"))
    ax.set(xlabel=f"time ({unit})", ylabel="depth from anode interface (µm)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    trace = None
    if echem is not None and len(echem) and {"time_s", "voltage_V"} <= set(echem.columns):
        te = echem["time_s"].to_numpy(dtype=float)
        lo, hi = float(np.nanmin(t)), float(np.nanmax(t))
        if sc.get("echem_time_s") is not None:
            hi = max(hi, float(sc["echem_time_s"]))
        pad = 0.02 * (hi - lo) if hi > lo else 1.0
        keep = (te >= lo - pad) & (te <= hi + pad)
        if keep.any():
            trace = (te[keep], echem["voltage_V"].to_numpy(dtype=float)[keep])
    if trace is not None:
        ax2 = ax.twinx()
        handles += ax2.plot(trace[0] / scale, trace[1], "-", color="0.55", lw=0.9,
                            label="cell voltage (cycler, full record)")
        ax2.set_ylabel("voltage (V)", color="0.4")
    elif "voltage_V" in metrics and metrics["voltage_V"].notna().any():
        ax2 = ax.twinx()
        handles += ax2.plot(t / scale, metrics["voltage_V"], "D", color="0.55", ms=4,
                            label="cell voltage at the scan times")
        ax2.set_ylabel("voltage (V)", color="0.4")
    # The legend on the axes drawn last, so the voltage trace never runs over it.
    top = fig.axes[-1]
    top.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9)
    return fig


def growth_figure(metrics: pd.DataFrame) -> Figure:
    """Crack volume, area and count vs time."""
    t = metrics["time_s"].to_numpy(dtype=float)
    unit, scale = time_unit(t)
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    axes = fig.subplots(1, 3)
    cols = [("crack_volume_um3", "crack volume (µm³)"), ("crack_area_um2", "crack area (µm²)"),
            ("n_cracks", "number of cracks")]
    for ax, (col, label) in zip(axes, cols, strict=True):
        if col in metrics:
            ax.plot(t / scale, metrics[col], "o-", color="C1", ms=4)
        ax.set(xlabel=f"time ({unit})", ylabel=label)
        ax.grid(alpha=0.3)
    axes[2].yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def pick_steps(n_steps: int, span_index: int | None = None, k: int = 4) -> list[int]:
    """A few steps to show: first, last, the span step, and evenly spaced ones between."""
    if n_steps <= 0:
        return []
    picks = {0, n_steps - 1}
    if span_index is not None and 0 <= span_index < n_steps:
        picks.add(int(span_index))
    for v in np.linspace(0, n_steps - 1, k):
        if len(picks) >= k:
            break
        picks.add(round(float(v)))
    return sorted(picks)[:k] if len(picks) > k else sorted(picks)


def _overlay(ax: Any, mask: np.ndarray | None, extent: tuple[float, ...]) -> None:
    if mask is None or not np.any(mask):
        return
    cmap = mcolors.ListedColormap([CRACK_RGB])
    ax.imshow(np.ma.masked_equal(mask.astype(np.uint8), 0), cmap=cmap, alpha=0.6,
              interpolation="nearest", extent=extent, vmin=0, vmax=1)


def crack_slice(res: Results, view: str, t: int) -> np.ndarray | None:
    """The crack mask on the plane of preview ``view`` at step ``t`` (None when unknown)."""
    if res.crack is None:
        return None
    i = res.preview_index.get(view, -1)
    shape = res.crack.shape
    if view == R.PREVIEW_YX and 0 <= i < shape[1]:
        return np.asarray(res.crack[t, i, :, :]) > 0
    if view == R.PREVIEW_ZX and 0 <= i < shape[2]:
        return np.asarray(res.crack[t, :, i, :]) > 0
    if view == R.PREVIEW_ZY and 0 <= i < shape[3]:
        return np.asarray(res.crack[t, :, :, i]) > 0
    return None


def grey_limits(previews: dict[str, np.ndarray]) -> tuple[float, float]:
    """Shared display range of all previews (0.5-99.5 percentiles) so steps compare."""
    vals = np.concatenate([np.ravel(v[:: max(1, len(v) // 8)]) for v in previews.values()])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def slices_figure(res: Results, steps: Sequence[int]) -> Figure | None:
    """Orthogonal slices (top view through mid-electrolyte, side view) with the crack overlaid."""
    views = [v for v in (R.PREVIEW_YX, R.PREVIEW_ZX) if v in res.previews]
    if not views or not steps:
        return None
    dz, dy, dx = res.voxel_size_um
    lo, hi = grey_limits(res.previews)
    t_unit, scale = time_unit(res.times_s)
    fig = Figure(figsize=(4.2 * len(views), 3.3 * len(steps)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(steps), len(views), squeeze=False))
    for r, t in enumerate(steps):
        for c, view in enumerate(views):
            ax = axes[r, c]
            img = res.previews[view][t]
            h, w = img.shape
            ext = ((0, w * dx, h * dy, 0) if view == R.PREVIEW_YX else (0, w * dx, h * dz, 0))
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", extent=ext)
            _overlay(ax, crack_slice(res, view, t), ext)
            where = {R.PREVIEW_YX: "z", R.PREVIEW_ZX: "y"}[view]
            idx = res.preview_index.get(view, -1)
            ttl = f"step {t} ({res.times_s[t] / scale:.3g} {t_unit}) - "
            ttl += ("top view" if view == R.PREVIEW_YX else "side view")
            if idx >= 0:
                ttl += f", {where} = {idx}"
            ax.set_title(ttl, fontsize=9)
            ax.set_xlabel("x (µm)", fontsize=8)
            ax.set_ylabel("y (µm)" if view == R.PREVIEW_YX else "z (µm)", fontsize=8)
            ax.tick_params(labelsize=7)
    return fig


def save_figure(fig: Figure, folder: Path, name: str, *, dpi: int = 150) -> bytes:
    """Save ``fig`` as ``folder/name.png`` and ``.svg`` (atomically); return the PNG bytes.

    No date and a fixed id salt: the same results give the same bytes.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    png = buf.getvalue()
    folder = Path(folder)
    atomic_write(folder / f"{name}.png", lambda p: p.write_bytes(png))
    with matplotlib.rc_context({"svg.hashsalt": "dendritect"}):
        atomic_write(folder / f"{name}.svg",
                     lambda p: fig.savefig(p, format="svg", metadata={"Date": None}))
    return png
