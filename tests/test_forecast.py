"""Span forecast from the front-depth history."""

from __future__ import annotations

import numpy as np
import pytest

from dendritect.errors import InputError
from dendritect.predict.forecast import SpanForecast, forecast_span


def test_linear_front_recovers_span_time_within_uncertainty():
    rng = np.random.default_rng(3)
    t = np.arange(0, 10) * 600.0
    speed = 0.02                     # um/s
    t0 = 900.0                       # the front starts between steps 1 and 2
    d = np.clip(speed * (t - t0), 0, None) + np.where(t > t0, rng.normal(0, 1.0, t.size), 0)
    d = np.clip(d, 0, None)
    thickness = 300.0
    truth = t0 + thickness / speed   # 15900 s
    fc = forecast_span(t, d, thickness)
    assert isinstance(fc, SpanForecast) and fc.method in ("linear", "power-law")
    assert fc.sigma_s > 0
    assert abs(fc.time_s - truth) <= 2 * fc.sigma_s
    assert abs(fc.time_s - truth) < 0.1 * truth


def test_exact_line_and_determinism():
    t = np.arange(6) * 100.0
    d = 5.0 + 0.1 * t
    fc = forecast_span(t, d, 105.0)
    assert fc.time_s == pytest.approx(1000.0)
    assert fc == forecast_span(t, d, 105.0)


def test_no_growth_gives_none():
    t = np.arange(8) * 60.0
    flat = forecast_span(t, np.full(8, 12.0) + np.tile([0.5, -0.5], 4), 100.0)
    assert flat.time_s is None and flat.sigma_s is None and flat.method.startswith("none")
    assert forecast_span(t, np.zeros(8), 100.0).time_s is None
    assert forecast_span(t[:2], [0.0, 5.0], 100.0).time_s is None


def test_power_law_front():
    t = np.arange(1, 12) * 100.0
    d = 0.001 * t**1.5                # accelerating front
    fc = forecast_span(t, d, 80.0)
    truth = (80.0 / 0.001) ** (1 / 1.5)
    assert fc.method == "power-law"
    assert fc.time_s == pytest.approx(truth, rel=0.05)


def test_bad_input():
    with pytest.raises(InputError):
        forecast_span([0, 1, 2], [0, 1], 10.0)
    with pytest.raises(InputError):
        forecast_span([0, 2, 1], [0, 1, 2], 10.0)
    with pytest.raises(InputError):
        forecast_span([0, 1, 2], [0, 1, 2], -1.0)
