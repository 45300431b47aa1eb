"""Read cycler (electrochemistry) data into one table, and sample it at the scan times.

Every reader returns a :class:`pandas.DataFrame` with float64 columns ``time_s``,
``voltage_V`` and ``current_mA``, sorted by time, plus the extra columns the file has
(``cycle``, ``step``, ``half_cycle``, ``charge_mAh``, ``capacity_mAh``,
``charge_capacity_mAh``, ``discharge_capacity_mAh``). ``df.attrs["source"]`` is the path
and ``df.attrs["format"]`` a short name of the format.

Supported inputs (see ``docs/echem.md``):

- BioLogic EC-Lab binary ``.mpr`` (through the optional ``galvani`` package),
- BioLogic EC-Lab text ``.mpt`` (decimal comma and latin-1 accepted),
- Neware ``.nda``/``.ndax`` (through the optional ``NewareNDA`` package),
- Maccor text export,
- CSV/TSV whose headers carry units: ``time/s,Ewe/V,I/mA``, ``time_s,voltage_V,current_mA``,
  ``Test_Time(s),Voltage(V),Current(A)``, ``Time (h)``, the Battery Data Format's
  ``Test Time / s,Voltage / V,Current / A`` and ``test_time_second,voltage_volt,current_ampere``.

Units written in headers are parsed with pint and converted (h to s, A to mA, mV to V).
"""

from __future__ import annotations

import ast
import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pint
from scipy.integrate import cumulative_trapezoid

from dendritect.errors import InputError
from dendritect.units import ureg

__all__ = ["ECHEM_COLUMNS", "EchemWarning", "read_echem", "sample_at"]

ECHEM_COLUMNS = ("time_s", "voltage_V", "current_mA")


class EchemWarning(UserWarning):
    """Cycler data that can be used, but not fully (no current column, scans outside the record)."""


# Column roles: (output name, unit it is converted to, header names it may have).
# Names are compared after lower-casing and turning "_" into spaces; the first name of a
# role that a file has wins, so the order is the preference.
_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "time_s": ("s", (
        "time", "test time", "total time", "elapsed time", "test", "~time", "time elapsed",
        "run time", "testtime",
    )),
    # Ecell is the full-cell voltage when EC-Lab records a counter electrode too; for a
    # two-electrode cell Ewe is the same thing.
    "voltage_V": ("V", (
        "ecell", "ewe", "voltage", "volts", "cell voltage", "potential", "u", "e", "<ewe>",
        "<ecell>", "ewe-ece",
    )),
    "current_mA": ("mA", ("i", "current", "amps", "<i>", "control")),
    "charge_mAh": ("mA*h", ("(q-qo)", "net capacity", "charge", "q")),
    "capacity_mAh": ("mA*h", ("q charge/discharge", "amp-hr", "capacity", "amp hr")),
    "charge_capacity_mAh": ("mA*h", (
        "charging capacity", "charge capacity", "chg. cap.", "q charge",
    )),
    "discharge_capacity_mAh": ("mA*h", (
        "discharging capacity", "discharge capacity", "dchg. cap.", "q discharge",
    )),
    "cycle": ("", ("cycle", "cycle number", "cycle index", "cyc#", "cycle count", "cycle no")),
    "half_cycle": ("", ("half cycle",)),
    "step": ("", ("ns", "step", "step index", "step count", "step number", "step no")),
}

# Headers whose unit is implied by the name (Maccor: "Amps", "Volts", "Amp-hr").
_IMPLIED_UNITS = {"amps": "A", "volts": "V", "amp-hr": "A*h", "amp hr": "A*h"}
# A bare "voltage" header is volts on every cycler we know; time and current are too
# ambiguous (s or h, mA or A) to guess.
_DEFAULT_UNITS = {"voltage_V": "V"}

_TIME_WORDS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "min": "min", "mins": "min", "minute": "min", "minutes": "min",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "ms": "ms", "d": "day", "day": "day", "days": "day",
}


def _unit(text: str | None) -> pint.Unit | None:
    """A header's unit text as a pint unit; None when there is none or pint cannot read it."""
    if text is None:
        return None
    u = text.strip().replace("µ", "u").replace("μ", "u")
    if not u:
        return None
    low = u.lower()
    if low in _TIME_WORDS:  # "Min" would otherwise be mega-inch, "S" siemens
        u = _TIME_WORDS[low]
    else:
        u = re.sub(r"(?<![A-Za-z])(m|u)?Ah\b", lambda m: f"{m.group(1) or ''}A*h", u)
        u = re.sub(r"(?<![A-Za-z])(m|u)?Wh\b", lambda m: f"{m.group(1) or ''}W*h", u)
        u = u.replace("_", "*")
        # EC-Lab writes products with a dot: "mA.h", "W.h".
        u = re.sub(r"(?<=[A-Za-z])\.(?=[A-Za-z])", "*", u)
        u = re.sub(r"([a-zA-Z])(\d)\b", r"\1**\2", u)  # cm2 -> cm**2
    try:
        unit = ureg.Unit(u)
    except Exception:  # pint raises several exception types for unknown names
        return None
    return unit


def _split_header(header: str) -> tuple[str, str | None]:
    """Split a column header into a normalised name and its unit text (None when absent).

    Forms: ``name(unit)``, ``name [unit]``, ``name/unit`` (EC-Lab), ``name / unit`` (BDF),
    ``name_unit`` (``time_s``, ``current_mA``, BDF's ``test_time_second``).
    """
    h = str(header).strip().strip('"').strip()
    if h == "control/V/mA":  # EC-Lab's control value: a current in galvanostatic techniques
        return "control", "mA"
    m = re.fullmatch(r"(.*?)\s*[(\[]\s*([^()\[\]]*?)\s*[)\]]", h)
    if m and m.group(1).strip():
        return _norm_name(m.group(1)), m.group(2) or None
    if "/" in h:
        name, unit = h.rsplit("/", 1)
        if name.strip() and _unit(unit) is not None:
            return _norm_name(name), unit.strip()
    parts = h.split("_")
    for k in range(1, len(parts)):  # longest unit first: "ampere_hour" before "hour"
        unit = "_".join(parts[k:])
        if _unit(unit) is not None and not unit.isdigit():
            return _norm_name("_".join(parts[:k])), unit
    return _norm_name(h), None


def _norm_name(name: str) -> str:
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().lower()


def _factor(unit_text: str | None, target: str) -> float | None:
    """Factor from ``unit_text`` to ``target``; None when the dimensions differ or unreadable."""
    if target == "":
        return 1.0 if unit_text is None or _unit(unit_text) is not None else None
    unit = _unit(unit_text)
    if unit is None:
        return None
    try:
        return float(ureg.Quantity(1.0, unit).to(ureg.Unit(target)).magnitude)
    except pint.DimensionalityError:
        return None


def _as_float(col: pd.Series, where: str) -> np.ndarray:
    """A column as float64; a decimal comma in text is accepted."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    text = col.astype("string").str.strip().str.replace(",", ".", regex=False)
    out = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(out).all() and col.notna().any():
        raise InputError(f"{where}: column {col.name!r} holds no numbers")
    return out


_DURATION = re.compile(r"^\s*\d+:\d{1,2}:\d{1,2}(\.\d+)?\s*$")


def _is_duration_text(col: pd.Series) -> bool:
    first = col.dropna().head(20).astype(str)
    return len(first) > 0 and bool(first.map(lambda x: bool(_DURATION.match(x))).all())


def _time_column(col: pd.Series, factor: float, where: str) -> np.ndarray:
    """Seconds from a time column: numbers in its unit, ``h:mm:ss`` durations, or date-times
    (seconds since the first)."""
    if _is_duration_text(col):
        dur = pd.to_timedelta(col.astype("string").str.strip(), errors="coerce")
        return dur.dt.total_seconds().to_numpy(np.float64, na_value=np.nan)
    if not pd.api.types.is_numeric_dtype(col.dtype):
        num = pd.to_numeric(col.astype("string").str.strip().str.replace(",", ".", regex=False),
                            errors="coerce")
        if num.isna().mean() > 0.5:
            # EC-Lab's "absolute time" export writes dates in the time/s column.
            stamps = pd.to_datetime(col, errors="coerce", format="mixed")
            if stamps.notna().sum() >= 1:
                first = stamps.dropna().min()
                return (stamps - first).dt.total_seconds().to_numpy(np.float64, na_value=np.nan)
            raise InputError(f"{where}: time column {col.name!r} holds neither numbers nor dates")
        return num.to_numpy(np.float64, na_value=np.nan) * factor
    return col.to_numpy(dtype=np.float64, na_value=np.nan) * factor


def _standardise(table: pd.DataFrame, *, source: str, fmt: str) -> pd.DataFrame:
    """Map a raw table's columns onto the standard names, convert units, sort, drop NaN rows."""
    where = source
    parsed: list[tuple[str, str, str | None]] = []
    for col in table.columns:
        name, unit = _split_header(str(col))
        parsed.append((str(col), name, unit))

    chosen: dict[str, tuple[str, float]] = {}
    for role, (target, names) in _ROLES.items():
        for alias in names:
            for col, name, unit in parsed:
                if name != alias or any(c == col for c, _ in chosen.values()):
                    continue
                u = unit if unit is not None else _IMPLIED_UNITS.get(name)
                if u is None:
                    u = _DEFAULT_UNITS.get(role)
                if u is None and role == "time_s" and _is_duration_text(table[col]):
                    u = "s"  # "h:mm:ss" text (Neware's "Total Time") is read as a duration
                if u is None and target:
                    continue  # a bare "time" or "current": unit unknown
                f = _factor(u, target)
                if f is None:
                    continue  # e.g. "I/mA/cm2" is a current density, not a current
                chosen[role] = (col, f)
                break
            if role in chosen:
                break

    found = ", ".join(repr(str(c)) for c in table.columns) or "none"
    for role, what in (("time_s", "time"), ("voltage_V", "voltage")):
        if role not in chosen:
            raise InputError(
                f"{where}: no {what} column with a unit found (columns: {found}); "
                "name them like time/s, Ewe/V, I/mA or time_s, voltage_V, current_mA"
            )

    out = pd.DataFrame(index=pd.RangeIndex(len(table)))
    col, f = chosen["time_s"]
    out["time_s"] = _time_column(table[col], f, where)
    col, f = chosen["voltage_V"]
    out["voltage_V"] = _as_float(table[col], where) * f
    if "current_mA" in chosen:
        col, f = chosen["current_mA"]
        out["current_mA"] = _as_float(table[col], where) * f
    else:
        out["current_mA"] = np.nan
        warnings.warn(
            f"{where}: no current column found (columns: {found}); current_mA is NaN",
            EchemWarning, stacklevel=3,
        )
    for role in _ROLES:
        if role in ECHEM_COLUMNS or role not in chosen:
            continue
        col, f = chosen[role]
        try:
            vals = _as_float(table[col], where) * f
        except InputError:
            continue  # an extra column holding text (e.g. a step named "CC_Chg"): left out
        if _ROLES[role][0] == "" and np.isfinite(vals).all() and (vals == np.round(vals)).all():
            out[role] = vals.astype(np.int64)
        else:
            out[role] = vals
    return _finish(out, source=source, fmt=fmt,
                   columns={role: c for role, (c, _) in chosen.items()})


def _finish(out: pd.DataFrame, *, source: str, fmt: str,
            columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Drop rows without time/voltage (and current where there is a current), sort by time."""
    need = ["time_s", "voltage_V"]
    if out["current_mA"].notna().any():
        need.append("current_mA")
    out = out.dropna(subset=need)
    if out.empty:
        raise InputError(f"{source}: no rows with a time and a voltage")
    out = out.sort_values("time_s", kind="stable").reset_index(drop=True)
    for c in ECHEM_COLUMNS:
        out[c] = out[c].astype(np.float64)
    out.attrs["source"] = source
    out.attrs["format"] = fmt
    if columns:
        out.attrs["columns"] = dict(columns)
    return out


# --------------------------------------------------------------------------- formats


def _readable(exc: BaseException, limit: int = 120) -> str:
    """A reader's error as one short line of text: raw bytes it quotes (``b'\\x1a...'``) are
    replaced by their length, control characters and line breaks dropped."""
    def n_bytes(m: re.Match) -> str:
        try:
            return f"<{len(ast.literal_eval(m.group(0)))} bytes>"
        except (ValueError, SyntaxError):
            return "<bytes>"

    text = re.sub(r"""b(['"])(?:\\.|(?!\1).)*\1""", n_bytes, str(exc))
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_mpr(path: Path) -> pd.DataFrame:
    try:
        from galvani import BioLogic  # GPLv3+: optional, imported only when needed
    except ImportError:
        raise InputError(
            f"{path}: reading EC-Lab .mpr files needs the optional package galvani "
            "(pip install 'dendritect[echem]'), or export the data as .mpt text from EC-Lab"
        ) from None
    try:
        with open(path, "rb") as fh:
            mpr = BioLogic.MPRfile(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # galvani raises ValueError, NotImplementedError, struct errors
        raise InputError(f"{path}: cannot read as an EC-Lab .mpr file "
                         f"({_readable(exc)}); is it damaged or cut short?") from None
    raw = pd.DataFrame({name: mpr.data[name] for name in mpr.data.dtype.names})
    if "control/V/mA" in raw.columns and not ({"I/mA", "<I>/mA"} & set(raw.columns)):
        # Galvanostatic techniques store the set current as the control value; during
        # open-circuit rests (mode 3) no current flows, whatever the control value holds.
        try:
            mode = np.asarray(mpr.get_flag("mode"))
        except Exception:  # files without a mode flag
            mode = None
        if mode is not None and len(mode) == len(raw):
            raw["control/V/mA"] = np.where(mode == 3, 0.0, raw["control/V/mA"])
    return _standardise(raw, source=str(path), fmt="eclab-mpr")


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if b"\x00" in data[:4096]:
        raise InputError(
            f"{path}: a binary file in no supported cycler format (.mpr, .nda, .ndax); "
            "export the data as CSV or text"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # EC-Lab and older Windows exports


def _read_table(text: str, path: Path, *, sep: str | None = None) -> pd.DataFrame:
    """A delimited table whose first line is the header; decimal comma detected."""
    lines = text.splitlines()
    if not lines:
        raise InputError(f"{path}: empty file")
    header = lines[0]
    if sep is None:
        if "\t" in header:
            sep = "\t"
        elif ";" in header and "," not in header:
            sep = ";"
        else:
            sep = ","
    sample = "\n".join(lines[1:50])
    decimal = "," if sep != "," and re.search(r"\d,\d", sample) else "."
    try:
        table = pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal, skipinitialspace=True,
                            low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path}: cannot read as a table ({exc})") from None
    # Trailing separators give empty "Unnamed" columns.
    keep = [c for c in table.columns
            if not (str(c).startswith("Unnamed:") and table[c].isna().all())]
    return table[keep]


_ECLAB_MAGIC = ("EC-LAB ASCII FILE", "BT-LAB ASCII FILE")


def _read_mpt(path: Path) -> pd.DataFrame:
    text = _decode(path)
    lines = text.splitlines()
    n_header = 1
    if lines and lines[0].strip().upper().startswith(_ECLAB_MAGIC):
        m = re.search(r"Nb header lines\s*:\s*(\d+)", "\n".join(lines[:5]))
        if not m:
            raise InputError(f"{path}: EC-Lab text file without a 'Nb header lines' line")
        n_header = int(m.group(1))
        if n_header < 1 or n_header > len(lines):
            raise InputError(
                f"{path}: header says {n_header} header lines but the file has {len(lines)}"
            )
    table = _read_table("\n".join(lines[n_header - 1:]), path, sep="\t")
    return _standardise(table, source=str(path), fmt="eclab-mpt")


def _read_maccor(path: Path, text: str) -> pd.DataFrame:
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines[:20])
                  if re.match(r"\s*(Rec#|Rec\b)", ln)), None)
    if start is None:
        raise InputError(f"{path}: Maccor export without a 'Rec#' header line")
    table = _read_table("\n".join(lines[start:]), path, sep="\t")
    state_col = next((c for c in table.columns if str(c).strip().lower() == "state"), None)
    amps_col = next((c for c in table.columns
                     if _split_header(str(c))[0] in ("amps", "current")), None)
    if state_col is not None and amps_col is not None:
        amps = pd.to_numeric(table[amps_col], errors="coerce")
        if not (amps < 0).any():
            # Maccor writes the current unsigned; the state says which way it flows.
            state = table[state_col].astype("string").str.strip().str.upper()
            table[amps_col] = amps.where(state != "D", -amps)
    return _standardise(table, source=str(path), fmt="maccor-txt")


def _read_neware(path: Path) -> pd.DataFrame:
    try:
        import NewareNDA
    except ImportError:
        raise InputError(
            f"{path}: reading Neware .nda/.ndax files needs the optional package NewareNDA "
            "(pip install NewareNDA)"
        ) from None
    try:
        raw = NewareNDA.read(str(path))
    except Exception as exc:  # the reader raises many kinds of error on a bad file
        raise InputError(f"{path}: cannot read as a Neware file ({exc})") from None
    if raw.empty or not {"Time", "Voltage", "Current(mA)"} <= set(raw.columns):
        raise InputError(f"{path}: Neware file without time, voltage and current records")
    # NewareNDA's "Time" restarts at each step: add up the steps' durations.
    t = raw["Time"].to_numpy(np.float64)
    step_key = raw["Step_Index"] if "Step_Index" in raw.columns else raw.get("Step")
    new_step = np.zeros(len(t), dtype=bool)
    new_step[1:] = t[1:] < t[:-1]
    if step_key is not None:
        k = step_key.to_numpy()
        new_step[1:] |= k[1:] != k[:-1]
    seg = np.cumsum(new_step)
    ends = pd.Series(t).groupby(seg).max().to_numpy()
    offsets = np.concatenate([[0.0], np.cumsum(ends)[:-1]])
    out = pd.DataFrame({
        "time_s": t + offsets[seg],
        "voltage_V": raw["Voltage"].to_numpy(np.float64),
        "current_mA": raw["Current(mA)"].to_numpy(np.float64),
    })
    if "Cycle" in raw.columns:
        out["cycle"] = raw["Cycle"].to_numpy(np.int64)
    if "Step" in raw.columns:
        out["step"] = raw["Step"].to_numpy(np.int64)
    for src, dst in (("Charge_Capacity(mAh)", "charge_capacity_mAh"),
                     ("Discharge_Capacity(mAh)", "discharge_capacity_mAh")):
        if src in raw.columns:
            out[dst] = raw[src].to_numpy(np.float64)
    return _finish(out, source=str(path), fmt="neware-nda")


def read_echem(path: str | Path) -> pd.DataFrame:
    """Read a cycler file into a table of time, voltage and current.

    Parameters
    ----------
    path : str or path-like
        An EC-Lab ``.mpr`` or ``.mpt`` file, a Neware ``.nda``/``.ndax`` file, a Maccor text
        export, or a CSV/TSV (``.csv``, ``.tsv``, ``.txt``, ``.bdf``) whose headers name
        time, voltage and (optionally) current with units.

    Returns
    -------
    pandas.DataFrame
        float64 columns ``time_s`` (the file's own clock), ``voltage_V``, ``current_mA``,
        sorted by time, rows without a time or voltage dropped; extra columns where the file
        has them (``cycle``, ``step``, ``half_cycle``, ``charge_mAh``, ``capacity_mAh``,
        ``charge_capacity_mAh``, ``discharge_capacity_mAh``). ``attrs["source"]`` is the path,
        ``attrs["format"]`` the format's short name, ``attrs["columns"]`` (text formats) the
        header each column came from. A file without current gives a NaN ``current_mA``
        column and an :class:`EchemWarning`.

    Raises
    ------
    InputError
        When the file is missing, unreadable, or has no time or voltage column with a unit.

    Examples
    --------
    >>> df = read_echem("cell.mpr")                     # doctest: +SKIP
    >>> df[["time_s", "voltage_V", "current_mA"]].head()  # doctest: +SKIP
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such cycler file")
    if p.is_dir():
        raise InputError(f"{p}: a folder, not a cycler file")
    suffix = p.suffix.lower()
    if suffix == ".mpr":
        return _read_mpr(p)
    if suffix in (".nda", ".ndax"):
        return _read_neware(p)
    if suffix == ".mpt":
        return _read_mpt(p)
    text = _decode(p)
    head = text[:2048]
    if head.lstrip().upper().startswith(_ECLAB_MAGIC):
        return _read_mpt(p)
    if re.search(r"^\s*Rec#", head, flags=re.MULTILINE) or "Date of Test" in head:
        return _read_maccor(p, text)
    lines = text.splitlines()
    # Skip leading comment lines ("# instrument ...") that some exporters write.
    n_skip = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")),
                  len(lines))
    table = _read_table("\n".join(lines[n_skip:]), p)
    fmt = "bdf" if suffix == ".bdf" else ("tsv" if suffix == ".tsv" else "csv")
    return _standardise(table, source=str(p), fmt=fmt)


def sample_at(df: pd.DataFrame, times_s: Sequence[float] | np.ndarray, *,
              tolerance_s: float | None = None) -> pd.DataFrame:
    """Sample cycler data at the scan times: voltage, current and charge passed so far.

    Parameters
    ----------
    df : pandas.DataFrame
        A table from :func:`read_echem` (``time_s``, ``voltage_V``, ``current_mA``).
    times_s : sequence of float
        The acquisition time of each scan, on the cycler's clock (seconds).
    tolerance_s : float, optional
        How far outside the record a scan time may be and still be read from the nearest
        end. Default: one median sampling interval of the record.

    Returns
    -------
    pandas.DataFrame
        One row per scan: ``time_s``; ``voltage_V`` (linear interpolation); ``current_mA``
        (the last recorded value at or before the scan time, because cyclers step the
        current); ``charge_mAh`` (trapezoid integral of the current since the start of the
        record, signed); ``in_record`` (bool). Rows outside the record have NaN values.
        ``attrs["all_in_record"]`` is False, and an :class:`EchemWarning` is issued, when
        any scan time falls outside the record.
    """
    for c in ECHEM_COLUMNS:
        if c not in df.columns:
            raise InputError(f"cycler table: missing column {c!r}")
    t = df["time_s"].to_numpy(np.float64)
    v = df["voltage_V"].to_numpy(np.float64)
    i = df["current_mA"].to_numpy(np.float64)
    q = np.asarray(times_s, dtype=np.float64).ravel()
    if len(t) == 0:
        raise InputError("cycler table: no rows")
    if np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        t, v, i = t[order], v[order], i[order]
    if tolerance_s is None:
        dt = np.diff(t)
        tolerance_s = float(np.median(dt)) if len(dt) else 0.0
    inside = (q >= t[0] - tolerance_s) & (q <= t[-1] + tolerance_s) & np.isfinite(q)
    qc = np.clip(q, t[0], t[-1])

    charge = np.zeros_like(t)
    if len(t) > 1:
        charge[1:] = cumulative_trapezoid(i, t) / 3600.0  # mA s -> mAh
    pos = np.clip(np.searchsorted(t, qc, side="right") - 1, 0, len(t) - 1)
    out = pd.DataFrame({
        "time_s": q,
        "voltage_V": np.interp(qc, t, v),
        "current_mA": i[pos],
        "charge_mAh": np.interp(qc, t, charge),
        "in_record": inside,
    })
    out.loc[~inside, ["voltage_V", "current_mA", "charge_mAh"]] = np.nan
    out.attrs["all_in_record"] = bool(inside.all())
    out.attrs["source"] = df.attrs.get("source", "")
    if not inside.all():
        bad = q[~inside]
        warnings.warn(
            f"{(~inside).sum()} of {len(q)} scan time(s) fall outside the cycler record "
            f"[{t[0]:g}, {t[-1]:g}] s (e.g. {bad[0]:g} s); their cycler values are NaN",
            EchemWarning, stacklevel=2,
        )
    return out
