"""Short-circuit detection in cycler data, on synthetic traces with a known answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dendritect.errors import InputError
from dendritect.io.echem import read_echem
from dendritect.predict import ShortCircuit, detect_short

# A Li|Li6PS5Cl|Li cell at 0.5 mA: overpotential of tens of mV (Ning et al., Nature Materials
# 2021 report 10-100 mV at 0.5-1 mA/cm2), half ohmic (instant), half interfacial (relaxes
# with tau_s); at rest it relaxes to the 0 V open-circuit voltage of a symmetric cell.
R_OHM_V_PER_MA = 0.12  # 60 mV ohmic drop at 0.5 mA
ETA_POL_V = 0.06  # interfacial polarisation at 0.5 mA
TAU_S = 20.0


def symmetric_trace(protocol: list[tuple[float, float]], *, dt: float = 5.0,
                    short_at: float | None = None, short_ramp_s: float = 0.0,
                    noise_V: float = 0.001, seed: int = 0, t0: float = 0.0) -> pd.DataFrame:
    """Voltage of a symmetric cell under ``protocol`` = [(duration_s, current_mA), ...]."""
    rng = np.random.default_rng(seed)
    ends = t0 + np.cumsum([d for d, _ in protocol])
    t = np.arange(t0, ends[-1] + 1e-9, dt)
    seg = np.minimum(np.searchsorted(ends, t, side="right"), len(protocol) - 1)
    cur = np.array([protocol[s][1] for s in seg])
    starts = np.concatenate([[t0], ends[:-1]])
    v = np.zeros_like(t)
    pol = 0.0  # interfacial polarisation carried from segment to segment
    for s, (dur, i_mA) in enumerate(protocol):
        m = seg == s
        tau = t[m] - starts[s]
        target = np.sign(i_mA) * ETA_POL_V * (abs(i_mA) / 0.5)
        p = target + (pol - target) * np.exp(-tau / TAU_S)
        v[m] = i_mA * R_OHM_V_PER_MA + p
        pol = target + (pol - target) * np.exp(-dur / TAU_S)
    if short_at is not None:
        # Lithium bridges the electrodes: a near-zero resistance (1 mV at 0.5 mA).
        frac = np.clip((t - short_at) / short_ramp_s, 0, 1) if short_ramp_s else t >= short_at
        v = v * (1 - frac) + frac * cur * 0.002
    v = v + rng.normal(0.0, noise_V, t.shape)
    return pd.DataFrame({"time_s": t, "voltage_V": v, "current_mA": cur})


PLATE = -0.5  # mA; plating the anode gives a negative cell voltage in this convention


@pytest.mark.parametrize(("short_at", "seed"), [(3603.3, 0), (5007.7, 1), (9998.0, 2)])
def test_short_found_within_one_sample(short_at: float, seed: int) -> None:
    dt = 5.0
    df = symmetric_trace([(4 * 3600.0, PLATE)], dt=dt, short_at=short_at, seed=seed)
    r = detect_short(df)
    assert r.detected, r.reason
    assert 0.0 <= r.time_s - short_at < dt
    assert df["time_s"].iloc[r.index] == r.time_s
    assert r.voltage_before_V == pytest.approx(-0.12, abs=0.01)
    assert abs(r.voltage_after_V) < 0.003
    assert "mV" in r.reason


def test_no_short_constant_plating() -> None:
    r = detect_short(symmetric_trace([(4 * 3600.0, PLATE)], noise_V=0.003))
    assert not r.detected
    assert r.time_s is None and r.index is None
    assert "no sustained" in r.reason


def test_rests_do_not_count() -> None:
    # At rest a symmetric cell relaxes to 0 V: |V| collapses, but no current flows.
    proto = [(3600.0, PLATE), (1800.0, 0.0)] * 3
    assert not detect_short(symmetric_trace(proto)).detected
    # ... even when the cycler reports a little noise current during the rests.
    df = symmetric_trace(proto, seed=3)
    rest = df["current_mA"] == 0
    df.loc[rest, "current_mA"] = np.random.default_rng(3).normal(0, 1e-4, rest.sum())
    assert not detect_short(df).detected


def test_current_reversal_does_not_count() -> None:
    # Plating / stripping half-cycles: |V| passes through zero at each reversal.
    proto = [(1800.0, PLATE), (1800.0, -PLATE)] * 4
    df = symmetric_trace(proto, dt=2.0)
    assert (np.abs(df["voltage_V"]) < 0.005).any()  # the zero crossings are sampled
    r = detect_short(df)
    assert not r.detected, r.reason


def test_short_during_stripping_half_cycle() -> None:
    proto = [(1800.0, PLATE), (1800.0, -PLATE)] * 3
    short_at = 2 * 3600.0 + 1800.0 + 1000.0 + 1.3  # 1000 s into the 3rd stripping half-cycle
    df = symmetric_trace(proto, short_at=short_at, seed=4)
    r = detect_short(df)
    assert r.detected and 0 <= r.time_s - short_at < 5.0
    assert r.voltage_before_V > 0.09  # the sign follows the current


def test_short_just_after_a_long_rest() -> None:
    # The rest is longer than the reference window: the reference comes from the last
    # current-carrying samples before it.
    proto = [(3600.0, PLATE), (7200.0, 0.0), (3600.0, PLATE)]
    short_at = 3600.0 + 7200.0 + 60.0 + 2.0
    r = detect_short(symmetric_trace(proto, short_at=short_at, seed=5))
    assert r.detected and 0 <= r.time_s - short_at < 5.0


def test_short_that_takes_half_a_minute() -> None:
    short_at = 5000.0 + 1.0
    df = symmetric_trace([(3 * 3600.0, PLATE)], short_at=short_at, short_ramp_s=30.0, seed=6)
    r = detect_short(df)
    assert r.detected and short_at <= r.time_s <= short_at + 30.0 + 5.0


def test_brief_dip_is_not_a_short() -> None:
    df = symmetric_trace([(3 * 3600.0, PLATE)], seed=7)
    dip = df["time_s"].between(5000.0, 5030.0)  # 30 s, shorter than min_duration_s
    df.loc[dip, "voltage_V"] = 0.0005
    r = detect_short(df)
    assert not r.detected and "brief" in r.reason
    # With a shorter required duration the same dip counts.
    assert detect_short(df, min_duration_s=20.0).time_s == pytest.approx(5000.0)


def test_gradual_decay_is_not_a_short() -> None:
    # The overpotential creeps from 120 mV to 2 mV over 10 h (e.g. interface improving):
    # below 20 % of the start value, but never abruptly.
    t = np.arange(0.0, 36_000.0, 10.0)
    v = -(0.002 + 0.118 * np.exp(-t / 6000.0))
    df = pd.DataFrame({"time_s": t, "voltage_V": v, "current_mA": PLATE})
    assert abs(v[-1]) < 0.2 * abs(v[0])
    assert not detect_short(df).detected


def test_full_cell_cycling_is_not_a_short() -> None:
    # CC charge 3.0 -> 4.2 V, rest, CC discharge 4.1 -> 3.0 V, rest, three times.
    rows = []
    t = 0.0
    for _ in range(3):
        for i_mA, v0, v1 in ((0.1, 3.0, 4.2), (0.0, 4.2, 4.1), (-0.1, 4.1, 3.0),
                             (0.0, 3.0, 3.2)):
            for x in np.linspace(0, 1, 361):
                rows.append((t, v0 + (v1 - v0) * np.sqrt(x), i_mA))
                t += 10.0
    df = pd.DataFrame(rows, columns=["time_s", "voltage_V", "current_mA"])
    assert not detect_short(df).detected


def test_record_ending_in_a_short() -> None:
    short_at = 3600.0 + 2.0
    df = symmetric_trace([(3600.0 + 40.0, PLATE)], short_at=short_at, seed=8)
    r = detect_short(df)
    assert r.detected and 0 <= r.time_s - short_at < 5.0
    assert "until the record ends" in r.reason


def test_unsorted_rows_and_input_untouched() -> None:
    short_at = 4000.0 + 3.0
    df = symmetric_trace([(2 * 3600.0, PLATE)], short_at=short_at, seed=9)
    shuffled = df.sample(frac=1.0, random_state=1).reset_index(drop=True)
    before = shuffled.copy()
    r = detect_short(shuffled)
    assert r.detected and 0 <= r.time_s - short_at < 5.0
    assert shuffled["time_s"].iloc[r.index] == r.time_s
    pd.testing.assert_frame_equal(shuffled, before)


def test_no_current_data() -> None:
    df = symmetric_trace([(3600.0, PLATE)], short_at=1800.0)
    df["current_mA"] = np.nan
    r = detect_short(df)
    assert not r.detected and "no current" in r.reason
    df["current_mA"] = 0.0
    assert "no current flows" in detect_short(df).reason


@pytest.mark.parametrize("kwargs", [{"drop_fraction": 0.0}, {"drop_fraction": 0.7},
                                    {"window_s": 0.0}, {"min_duration_s": -1.0},
                                    {"min_points": 0}, {"fall_within_s": float("nan")}])
def test_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(InputError):
        detect_short(symmetric_trace([(600.0, PLATE)]), **kwargs)


def test_missing_column() -> None:
    with pytest.raises(InputError, match="voltage_V"):
        detect_short(pd.DataFrame({"time_s": [0.0], "current_mA": [1.0]}))


REAL_FILES = ["jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr", "00_test_04_MB_C01.mpr",
              "test.ndax", "maccor_example.txt", "test_with_capacity.bdf"]


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_have_no_short(shared_data: Path, name: str) -> None:
    if name.endswith(".ndax"):
        pytest.importorskip("NewareNDA")
    df = read_echem(shared_data / "echem" / name)
    r = detect_short(df)
    assert isinstance(r, ShortCircuit)
    assert not r.detected, r.reason


def test_short_then_cycler_stops_current() -> None:
    # The short, then the tester's safety limit ends the step: the record goes on at rest.
    short_at = 3000.0 + 1.5
    df = symmetric_trace([(3000.0 + 30.0, PLATE), (600.0, 0.0)], short_at=short_at, seed=10)
    r = detect_short(df)
    assert r.detected and 0 <= r.time_s - short_at < 5.0
    assert "last current-carrying sample" in r.reason
