"""A movie of the series with the crack overlay: one frame per step, GIF and MP4.

Each frame shows, side by side, the top view (yx slice through mid-electrolyte), the side view
(zx slice) with the crack of that step overlaid in red, and the cracks seen along y so far
(side projection), so growth stays visible even where a crack misses the slice planes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dendritect import results as R
from dendritect.atomic import atomic_write
from dendritect.errors import InputError
from dendritect.report.figures import CRACK_RGB, crack_slice, grey_limits, time_unit
from dendritect.report.results import Results, iter_slabs, load_results

__all__ = ["movie_frames", "write_movie"]

_PANEL_H = 320      # target panel height, pixels
_TITLE_H = 26
_GAP = 6


def _resize_nearest(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    rows = np.minimum((np.arange(out_h) * img.shape[0] / out_h).astype(np.intp), img.shape[0] - 1)
    cols = np.minimum((np.arange(out_w) * img.shape[1] / out_w).astype(np.intp), img.shape[1] - 1)
    return img[rows][:, cols]


def _panel(grey: np.ndarray | None, mask: np.ndarray | None, size_um: tuple[float, float],
           lo: float, hi: float, *, alpha: float = 0.6) -> np.ndarray:
    """RGB uint8 panel of ``grey`` (or black) with ``mask`` in red, at physical aspect ratio."""
    base = grey if grey is not None else mask
    assert base is not None
    h_um, w_um = size_um
    out_h = _PANEL_H
    out_w = max(8, round(_PANEL_H * w_um / h_um))
    if grey is not None:
        g = np.clip((grey.astype(np.float32) - lo) / (hi - lo), 0, 1)
        rgb = np.repeat(g[..., None], 3, axis=2)
    else:
        rgb = np.zeros((*base.shape, 3), np.float32)
    if mask is not None and mask.any():
        m = mask.astype(bool)
        rgb[m] = (1 - alpha) * rgb[m] + alpha * np.asarray(CRACK_RGB, np.float32)
    rgb = _resize_nearest(rgb, out_h, out_w)
    return (rgb * 255 + 0.5).astype(np.uint8)


def _label(frame: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(frame)
    draw = ImageDraw.Draw(im)
    try:
        font = ImageFont.load_default(size=16)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        font = ImageFont.load_default()
    draw.text((8, 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(im)


def movie_frames(res: Results) -> list[np.ndarray]:
    """One RGB uint8 frame per step, all the same size (multiples of 16 pixels)."""
    n = res.n_steps
    if n == 0:
        raise InputError(f"{res.root}: {R.METRICS_CSV} has no step; nothing to animate")
    if not res.previews and res.crack is None:
        raise InputError(f"{res.root}: neither {R.PREVIEWS_ZARR} nor {R.CRACKS_ZARR} found; "
                         "nothing to animate")
    dz, dy, dx = res.voxel_size_um
    lo, hi = grey_limits(res.previews) if res.previews else (0.0, 1.0)
    unit, scale = time_unit(res.times_s)
    seen_side: np.ndarray | None = None
    frames = []
    for t in range(n):
        panels = []
        for view in (R.PREVIEW_YX, R.PREVIEW_ZX):
            grey = res.previews[view][t] if view in res.previews else None
            mask = crack_slice(res, view, t)
            if grey is None and mask is None:
                continue
            h, w = (grey if grey is not None else mask).shape
            size = (h * dy, w * dx) if view == R.PREVIEW_YX else (h * dz, w * dx)
            panels.append(_panel(grey, mask, size, lo, hi))
        if res.crack is not None:
            proj = np.concatenate([np.asarray(res.crack[t, z0:z1]).any(axis=1)
                                   for z0, z1 in iter_slabs(res.crack.shape[1:])], axis=0)
            seen_side = proj if seen_side is None else (seen_side | proj)
            # Dark background with the electrolyte interfaces in grey for orientation.
            back = np.zeros(proj.shape, np.float32)
            for z_um in res.interfaces_um or ():
                back[int(np.clip(round(z_um / dz), 0, proj.shape[0] - 1))] = 0.45
            panels.append(_panel(back, seen_side, (proj.shape[0] * dz, proj.shape[1] * dx),
                                 0.0, 1.0, alpha=1.0))
        width = sum(p.shape[1] for p in panels) + _GAP * (len(panels) + 1)
        height = _PANEL_H + _TITLE_H + _GAP
        # H.264 wants dimensions that are multiples of 16 (and even for yuv420p).
        width, height = -(-width // 16) * 16, -(-height // 16) * 16
        frame = np.full((height, width, 3), 24, np.uint8)
        x = _GAP
        for p in panels:
            frame[_TITLE_H:_TITLE_H + p.shape[0], x:x + p.shape[1]] = p
            x += p.shape[1] + _GAP
        sp = res.summary.get("span_index")
        tag = "   spanning" if sp is not None and t >= int(sp) else ""
        text = (f"step {t}/{n - 1}   t = {res.times_s[t] / scale:.4g} {unit}{tag}   "
                "(top | side | cracks seen along y)")
        frames.append(_label(frame, text))
    # Panels keep their size across steps, but guard against any rounding difference.
    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    return [np.pad(f, ((0, h - f.shape[0]), (0, w - f.shape[1]), (0, 0))) for f in frames]


def _write_gif(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, np.stack(frames), extension=".gif", duration=int(1000 / fps), loop=0)


def _write_mp4(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", quality=8,
                                         macro_block_size=16, ffmpeg_log_level="error")
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()


def write_movie(results_dir: str | Path | Results, *, fps: float = 2.0,
                mp4: bool = True) -> dict[str, Path]:
    """Write ``movie.gif`` (and ``movie.mp4``) into a results folder, one frame per step.

    Parameters
    ----------
    results_dir : str, Path or Results
        The results folder (or it already loaded).
    fps : float
        Frames (steps) per second.
    mp4 : bool
        Also write the MP4 (H.264, with the ffmpeg that ships inside imageio-ffmpeg).

    Returns
    -------
    dict
        ``{"gif": path, "mp4": path}``.
    """
    res = results_dir if isinstance(results_dir, Results) else load_results(results_dir)
    frames = movie_frames(res)
    out = {"gif": atomic_write(res.root / R.MOVIE_GIF, lambda p: _write_gif(p, frames, fps))}
    if mp4:
        out["mp4"] = atomic_write(res.root / R.MOVIE_MP4, lambda p: _write_mp4(p, frames, fps))
    return out
