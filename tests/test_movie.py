"""The movie: one frame per step, crack overlay visible, GIF and MP4."""

from __future__ import annotations

import itertools
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from dendritect.report import load_results, write_movie
from dendritect.report.movie import movie_frames
from tests.test_report_fixture import make_results_dir


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_results_dir(tmp_path_factory.mktemp("mov") / "results", n_steps=6)


def _red(frame: np.ndarray) -> np.ndarray:
    f = frame.astype(int)
    return (f[..., 0] > 180) & (f[..., 1] < 120) & (f[..., 2] < 100)


def test_gif_and_mp4_have_one_frame_per_step(root: Path) -> None:
    paths = write_movie(root)
    gif = iio.imread(paths["gif"], index=None)
    assert gif.shape[0] == 6
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(paths["mp4"]))
    assert n_frames == 6
    assert not [p for p in root.iterdir() if p.name.startswith(".")]


def test_frames_show_the_crack_growing(root: Path) -> None:
    frames = movie_frames(load_results(root))
    assert len({f.shape for f in frames}) == 1
    h, w, _ = frames[0].shape
    assert h % 16 == 0 and w % 16 == 0
    red = [int(_red(f).sum()) for f in frames]
    assert red[0] == 0                          # no crack at step 0
    assert all(b >= a for a, b in itertools.pairwise(red))  # grows
    assert red[-1] > red[1] > 0


def test_movie_without_previews_uses_the_masks(tmp_path: Path) -> None:
    root = make_results_dir(tmp_path / "r", n_steps=3, with_previews=False)
    paths = write_movie(root, mp4=False)
    assert iio.imread(paths["gif"], index=None).shape[0] == 3
    assert "mp4" not in paths
