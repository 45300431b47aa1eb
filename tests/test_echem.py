"""Cycler data: reading every supported format, units, and sampling at the scan times."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dendritect.errors import InputError
from dendritect.io.echem import EchemWarning, read_echem, sample_at

GCPL_MPR = "jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
MB_MPR = "00_test_04_MB_C01.mpr"


def _check_table(df: pd.DataFrame) -> None:
    for c in ("time_s", "voltage_V", "current_mA"):
        assert df[c].dtype == np.float64, c
    assert not df[["time_s", "voltage_V", "current_mA"]].isna().any().any()
    assert (np.diff(df["time_s"].to_numpy()) >= 0).all()
    assert df.attrs["source"] and df.attrs["format"]


# --------------------------------------------------------------------------- real files


def test_mpr_gcpl_real(shared_data: Path) -> None:
    df = read_echem(shared_data / "echem" / GCPL_MPR)
    _check_table(df)
    assert df.attrs["format"] == "eclab-mpr"
    assert len(df) == 46_102  # SOURCE.md
    assert 1.99 < df["voltage_V"].min() < 2.01 and 3.79 < df["voltage_V"].max() < 3.81
    assert df["time_s"].iloc[0] == 0.0
    assert df["time_s"].iloc[-1] == pytest.approx(456_309.586, abs=0.01)
    # C/24 galvanostatic: the set current is +-0.0888 mA; open-circuit rows carry none.
    assert np.abs(df["current_mA"]).max() == pytest.approx(0.0888, abs=1e-4)
    assert ((df["step"] == 0) == (df["current_mA"] == 0)).mean() > 0.999
    assert df["half_cycle"].max() == 13


def test_mpr_gcpl_charge_matches_instrument(shared_data: Path) -> None:
    # The trapezoid integral of the current must reproduce EC-Lab's own (Q-Qo) counter.
    df = read_echem(shared_data / "echem" / GCPL_MPR)
    ts = np.linspace(0.0, df["time_s"].iloc[-1], 25)
    s = sample_at(df, ts)
    ref = np.interp(ts, df["time_s"], df["charge_mAh"])
    span = df["charge_mAh"].max() - df["charge_mAh"].min()
    assert span > 1.0
    assert np.abs(s["charge_mAh"] - ref).max() < 0.01 * span
    assert s.attrs["all_in_record"]


def test_mpr_modulo_bat_real(shared_data: Path) -> None:
    df = read_echem(shared_data / "echem" / MB_MPR)
    _check_table(df)
    assert len(df) == 1501
    assert df.attrs["columns"]["current_mA"] == "I/mA"
    assert df["voltage_V"].between(-1.651, -1.649).all()
    assert df["current_mA"].between(-0.046, -0.040).all()
    # EC-Lab's clock: the record does not start at zero, and that is kept.
    assert df["time_s"].iloc[0] == pytest.approx(16.1674, abs=1e-3)


def test_neware_ndax_real(shared_data: Path) -> None:
    pytest.importorskip("NewareNDA")
    df = read_echem(shared_data / "echem" / "test.ndax")
    _check_table(df)
    assert df.attrs["format"] == "neware-nda"
    assert len(df) == 1464
    assert 1.49 < df["voltage_V"].min() < 1.51 and 4.39 < df["voltage_V"].max() < 4.41
    assert np.abs(df["current_mA"]).max() == pytest.approx(0.12, abs=1e-3)
    # Step times added up: the record spans 20:24:23 to 08:34:23 next day = 43,800 s.
    assert df["time_s"].iloc[-1] == pytest.approx(43_800.0)
    assert (df.loc[df["step"] == 3, "current_mA"] < 0).all()  # the discharge step


def test_maccor_real(shared_data: Path) -> None:
    df = read_echem(shared_data / "echem" / "maccor_example.txt")
    _check_table(df)
    assert df.attrs["format"] == "maccor-txt"
    assert len(df) == 37
    assert df["time_s"].iloc[-1] == pytest.approx(37 * 60.0)  # "Test (Min)" -> s
    assert set(np.round(np.unique(np.abs(df["current_mA"])), 3)) == {0.0, 0.61}  # A -> mA
    # Maccor writes the current unsigned: discharge ("D", step 4) must come out negative.
    assert (df.loc[df["step"] == 4, "current_mA"] < 0).all()
    assert (df.loc[df["step"] == 3, "current_mA"] > 0).all()
    assert 2.31 < df["voltage_V"].min() and df["voltage_V"].max() < 2.77


def test_bdf_real(shared_data: Path) -> None:
    df = read_echem(shared_data / "echem" / "test_with_capacity.bdf")
    _check_table(df)
    assert df.attrs["format"] == "bdf"
    np.testing.assert_allclose(df["time_s"], np.arange(10.0))
    np.testing.assert_allclose(df["current_mA"], [1.0] * 5 + [-1.0] * 5)  # A -> mA
    assert df["charge_capacity_mAh"].max() == pytest.approx(0.4)  # Ah -> mAh
    assert df["discharge_capacity_mAh"].max() == pytest.approx(0.5)


# --------------------------------------------------------------------------- text formats


@pytest.mark.parametrize(
    ("header", "scale_t", "scale_v", "scale_i"),
    [
        ("time/s,Ewe/V,I/mA", 1.0, 1.0, 1.0),
        ("time_s,voltage_V,current_mA", 1.0, 1.0, 1.0),
        ("Test_Time(s),Voltage(V),Current(A)", 1.0, 1.0, 1000.0),
        ("Time (h),Voltage (mV),<I>/mA", 3600.0, 1e-3, 1.0),
        ("Test Time / s,Voltage / V,Current / A", 1.0, 1.0, 1000.0),
        ("test_time_second,voltage_volt,current_ampere", 1.0, 1.0, 1000.0),
        ("time [min],U [V],I [uA]", 60.0, 1.0, 1e-3),
        ("time/s,Ewe/V,control/V/mA", 1.0, 1.0, 1.0),
    ],
)
def test_csv_headers_and_units(tmp_path: Path, header: str, scale_t: float, scale_v: float,
                               scale_i: float) -> None:
    rows = [(0.0, 0.1, 0.5), (1.0, 0.2, -0.5), (2.5, 0.3, 0.0)]
    p = tmp_path / "cell.csv"
    p.write_text(header + "\n" + "\n".join(",".join(str(x) for x in r) for r in rows) + "\n")
    df = read_echem(p)
    _check_table(df)
    arr = np.array(rows)
    np.testing.assert_allclose(df["time_s"], arr[:, 0] * scale_t)
    np.testing.assert_allclose(df["voltage_V"], arr[:, 1] * scale_v)
    np.testing.assert_allclose(df["current_mA"], arr[:, 2] * scale_i)


def test_csv_sorted_nan_rows_dropped_and_extras(tmp_path: Path) -> None:
    p = tmp_path / "cell.csv"
    p.write_text("time_s,voltage_V,current_mA,Cycle_Index,charge_mAh\n"
                 "20,0.3,1,2,0.5\n0,0.1,1,1,0\nnan,0.2,1,1,0\n10,,1,1,0.2\n5,0.15,1,1,0.1\n")
    df = read_echem(p)
    np.testing.assert_allclose(df["time_s"], [0, 5, 20])
    np.testing.assert_allclose(df["voltage_V"], [0.1, 0.15, 0.3])
    assert df["cycle"].tolist() == [1, 1, 2]
    np.testing.assert_allclose(df["charge_mAh"], [0, 0.1, 0.5])
    assert p.read_text().startswith("time_s,")  # the input is untouched


def test_semicolon_decimal_comma_latin1(tmp_path: Path) -> None:
    p = tmp_path / "cell.txt"
    p.write_bytes("# Zelle 3, 25 °C\ntime/s;Ewe/V;I/µA\n0,0;0,050;500,0\n1,5;0,075;-500,0\n"
                  .encode("latin-1"))
    df = read_echem(p)
    np.testing.assert_allclose(df["time_s"], [0.0, 1.5])
    np.testing.assert_allclose(df["voltage_V"], [0.05, 0.075])
    np.testing.assert_allclose(df["current_mA"], [0.5, -0.5])


def _mpt_text(rows: list[tuple[float, float, float]]) -> str:
    cols = "mode\tox/red\terror\ttime/s\tcontrol/V/mA\tEwe/V\tI/mA\t(Q-Qo)/mA.h\tTemperature/°C\t"
    header = [
        "EC-Lab ASCII FILE",
        "Nb header lines : 6",
        "",
        "Galvanostatic Cycling with Potential Limitation",
        "Electrode surface area : 0,785 cm²",
        cols,
    ]
    body = []
    for t, v, i in rows:
        vals = ["1", "1", "0", f"{t:.4f}", f"{i:.4f}", f"{v:.6f}", f"{i:.4f}", "0,0", "25,0"]
        body.append("\t".join(x.replace(".", ",") for x in vals) + "\t")
    return "\n".join(header + body) + "\n"


def test_mpt_header_decimal_comma(tmp_path: Path) -> None:
    p = tmp_path / "cell.mpt"
    rows = [(0.0, -0.0512, -0.25), (10.0, -0.0534, -0.25), (20.0, 0.0498, 0.25)]
    p.write_bytes(_mpt_text(rows).encode("latin-1"))
    df = read_echem(p)
    _check_table(df)
    assert df.attrs["format"] == "eclab-mpt"
    assert df.attrs["columns"]["current_mA"] == "I/mA"  # the measured current wins
    np.testing.assert_allclose(df[["time_s", "voltage_V", "current_mA"]].to_numpy(), rows)


def test_mpt_without_header_count_is_error(tmp_path: Path) -> None:
    p = tmp_path / "cell.mpt"
    p.write_text("EC-Lab ASCII FILE\nsomething else\ntime/s\tEwe/V\n0\t1\n")
    with pytest.raises(InputError, match="Nb header lines"):
        read_echem(p)


def test_no_voltage_column_names_file_and_columns(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("time/s,I/mA,temperature/K\n0,1,300\n")
    with pytest.raises(InputError) as exc:
        read_echem(p)
    msg = str(exc.value)
    assert "bad.csv" in msg and "voltage" in msg and "'I/mA'" in msg and "'temperature/K'" in msg


def test_time_without_unit_is_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("time,voltage_V,current_mA\n0,1,1\n")
    with pytest.raises(InputError, match="no time column"):
        read_echem(p)


def test_current_density_is_not_a_current(tmp_path: Path) -> None:
    p = tmp_path / "cell.csv"
    p.write_text("time_s,voltage_V,I/mA/cm2\n0,0.1,1\n1,0.1,1\n")
    with pytest.warns(EchemWarning, match="no current column"):
        df = read_echem(p)
    assert df["current_mA"].isna().all()
    assert len(df) == 2


@pytest.mark.parametrize("what", ["missing", "folder", "binary"])
def test_unreadable_inputs(tmp_path: Path, what: str) -> None:
    if what == "missing":
        p = tmp_path / "none.csv"
    elif what == "folder":
        p = tmp_path
    else:
        p = tmp_path / "x.csv"
        p.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(InputError):
        read_echem(p)


def test_corrupt_mpr(tmp_path: Path) -> None:
    p = tmp_path / "bad.mpr"
    p.write_bytes(b"BIO-LOGIC MODULAR FILE\x1a" + b"\x00" * 50)
    with pytest.raises(InputError, match=r"bad\.mpr") as err:
        read_echem(p)
    # One readable line: the raw bytes the reader quotes are not dumped.
    msg = str(err.value)
    assert "\\x" not in msg and "b'" not in msg and "\n" not in msg and msg.isprintable()
    assert "damaged" in msg and len(msg) < 300


def test_mpr_without_galvani(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "galvani", None)  # import now raises ImportError
    p = tmp_path / "a.mpr"
    p.write_bytes(b"x")
    with pytest.raises(InputError, match="galvani"):
        read_echem(p)


# --------------------------------------------------------------------------- sample_at


def _plating_table() -> pd.DataFrame:
    t = np.arange(0.0, 7200.0 + 1, 10.0)
    i = np.where(t < 3600.0, 1.0, -0.5)
    v = 0.05 + 1e-5 * t
    return pd.DataFrame({"time_s": t, "voltage_V": v, "current_mA": i})


def test_sample_at_analytic() -> None:
    df = _plating_table()
    s = sample_at(df, [0.0, 1800.0, 3600.0, 3605.0, 7200.0])
    # 1 mA for 1 h, then -0.5 mA for 1 h. The records say 1 mA at 3590 s and -0.5 mA at
    # 3600 s: the trapezoid takes the mean, 0.25 mA, over that last 10 s interval.
    q_1h = (3590.0 * 1.0 + 10.0 * 0.25) / 3600.0
    np.testing.assert_allclose(
        s["charge_mAh"], [0.0, 0.5, q_1h, q_1h - 0.5 * 5 / 3600, q_1h - 0.5], atol=1e-12)
    np.testing.assert_allclose(s["voltage_V"], 0.05 + 1e-5 * s["time_s"])  # interpolated
    np.testing.assert_allclose(s["current_mA"], [1.0, 1.0, -0.5, -0.5, -0.5])  # last set value
    assert s["in_record"].all() and s.attrs["all_in_record"]


def test_sample_at_outside_record_warns_and_flags() -> None:
    df = _plating_table()
    with pytest.warns(EchemWarning, match="outside the cycler record"):
        s = sample_at(df, [-100.0, 100.0, 9000.0])
    assert s["in_record"].tolist() == [False, True, False]
    assert not s.attrs["all_in_record"]
    assert s.loc[[0, 2], ["voltage_V", "current_mA", "charge_mAh"]].isna().all().all()
    assert s.loc[1, "voltage_V"] == pytest.approx(0.051)


def test_sample_at_tolerance_and_input_untouched() -> None:
    df = _plating_table()
    before = df.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within one sample period: no warning
        s = sample_at(df, [-5.0, 7205.0])
    assert s["in_record"].all()
    pd.testing.assert_frame_equal(df, before)


def test_sample_at_missing_column() -> None:
    with pytest.raises(InputError, match="current_mA"):
        sample_at(pd.DataFrame({"time_s": [0.0], "voltage_V": [1.0]}), [0.0])


def test_mpt_absolute_time_btlab_and_coulombs(tmp_path: Path) -> None:
    p = tmp_path / "cell.mpt"
    p.write_text(
        "BT-Lab ASCII FILE\nNb header lines : 3\ntime/s\tEcell/V\tEwe/V\tI/mA\t(Q-Qo)/C\n"
        "11/11/2019 12:25:53.5000\t3,5\t9\t1\t0\n"
        "11/11/2019 12:26:53.5000\t3,6\t9\t1\t3,6\n"
        "11/11/2019 13:25:53.5000\t3,7\t9\t1\t7,2\n", encoding="latin-1")
    df = read_echem(p)
    np.testing.assert_allclose(df["time_s"], [0.0, 60.0, 3600.0])  # dates -> s since first
    np.testing.assert_allclose(df["voltage_V"], [3.5, 3.6, 3.7])  # Ecell preferred to Ewe
    np.testing.assert_allclose(df["charge_mAh"], [0.0, 1.0, 2.0])  # 3.6 C = 1 mAh


def test_bare_voltage_is_volts(tmp_path: Path) -> None:
    p = tmp_path / "cell.csv"
    p.write_text("time_s,Voltage,current_mA\n0,0.1,1\n1,0.2,1\n")
    np.testing.assert_allclose(read_echem(p)["voltage_V"], [0.1, 0.2])


def test_duration_text_time(tmp_path: Path) -> None:
    # Neware's CSV export writes "Total Time" as h:mm:ss text, past 24 h too.
    p = tmp_path / "neware.csv"
    p.write_text("Total Time,Voltage(V),Current(mA)\n0:00:00,3.1,1\n0:00:30,3.2,1\n"
                 "25:00:00.5,3.3,-1\n")
    df = read_echem(p)
    np.testing.assert_allclose(df["time_s"], [0.0, 30.0, 25 * 3600.0 + 0.5])


def test_text_in_extra_column_is_left_out(tmp_path: Path) -> None:
    p = tmp_path / "cell.csv"
    p.write_text("time_s,voltage_V,current_mA,Step\n0,0.1,1,CC_Chg\n1,0.2,1,CC_Chg\n")
    df = read_echem(p)
    assert "step" not in df.columns and len(df) == 2
