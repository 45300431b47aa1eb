"""``dendritect watch``: complete-scan detection, the live analysis of a growing twin series,
the alarm, and the end state equal to a batch ``analyze``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from dendritect.errors import InputError
from dendritect.watch import ALARM_ENV, check_alarm, complete_steps
from tests.conftest import assert_input_error

# --------------------------------------------------------------------------------------------
# Which scans are complete
# --------------------------------------------------------------------------------------------


def _tiff_bytes(tmp: Path, vol: np.ndarray) -> bytes:
    p = tmp / "whole.tif"
    tifffile.imwrite(p, vol, imagej=True, metadata={"spacing": 1.0, "unit": "um",
                                                   "axes": "ZYX"})
    data = p.read_bytes()
    p.unlink()
    return data


def _look_twice(path: Path, **kw):
    first = complete_steps(path, **kw)
    return complete_steps(path, before=first, **kw)


def test_truncated_tiff_never_counts(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    vol = np.arange(6 * 16 * 16, dtype=np.uint16).reshape(6, 16, 16)
    data = _tiff_bytes(tmp_path, vol)
    (folder / "t000.tif").write_bytes(data)
    (folder / "t001.tif").write_bytes(data[: len(data) * 2 // 3])  # stopped mid-write
    scan = _look_twice(folder)
    assert scan.kind == "tiff-files"
    assert scan.n_complete == 1
    assert "t001.tif" in scan.waiting and "not whole" in scan.waiting
    # unchanged for as long as you like, it is still not whole
    assert complete_steps(folder, before=scan).n_complete == 1
    (folder / "t001.tif").write_bytes(data)
    grown = complete_steps(folder, before=scan)
    assert grown.n_complete == 1  # changed since the last look: not yet
    assert complete_steps(folder, before=grown).n_complete == 2


def test_growing_file_waits_for_a_stable_poll(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    data = _tiff_bytes(tmp_path, np.ones((4, 16, 16), np.uint16))
    (folder / "t000.tif").write_bytes(data)
    assert complete_steps(folder).n_complete == 0  # never seen before: not known stable
    scan = complete_steps(folder, before=complete_steps(folder))
    assert scan.n_complete == 1
    with open(folder / "t000.tif", "ab") as fh:  # someone still appends
        fh.write(b"\0" * 16)
    assert complete_steps(folder, before=scan).n_complete == 0


def test_step_of_another_shape_does_not_count(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "t000.tif").write_bytes(_tiff_bytes(tmp_path, np.ones((4, 16, 16), np.uint16)))
    (folder / "t001.tif").write_bytes(_tiff_bytes(tmp_path, np.ones((3, 16, 16), np.uint16)))
    scan = _look_twice(folder)
    assert scan.n_complete == 1
    assert "differs" in scan.waiting


def test_slice_folder_missing_slices(tmp_path):
    root = tmp_path / "series"
    for step, n in (("scan_0", 5), ("scan_1", 3)):
        (root / step).mkdir(parents=True)
        for z in range(n):
            tifffile.imwrite(root / step / f"slice_{z:03d}.tif",
                             np.full((12, 12), z, np.uint16))
    scan = _look_twice(root)
    assert scan.kind == "slice-folders"
    assert scan.n_complete == 1
    assert "3 of 5 slices" in scan.waiting
    for z in range(3, 5):
        tifffile.imwrite(root / "scan_1" / f"slice_{z:03d}.tif", np.zeros((12, 12), np.uint16))
    scan = complete_steps(root, before=scan)
    assert scan.n_complete == 1
    assert complete_steps(root, before=scan).n_complete == 2


def test_hdf5_step_counts_once_all_its_chunks_are_written(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "scan.nxs"
    shape = (6, 16, 16)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("entry/data/data", shape=(1, *shape), maxshape=(None, *shape),
                              chunks=(1, 2, 16, 16), dtype="uint16")
        ds[0] = 1
    scan = _look_twice(path)
    assert scan.kind == "hdf5" and scan.n_complete == 1
    with h5py.File(path, "a") as f:
        ds = f["entry/data/data"]
        ds.resize((2, *shape))
        ds[1, :4] = 2  # half of step 1
    scan = _look_twice(path)
    assert scan.n_complete == 1
    assert "t=1" in scan.waiting
    with h5py.File(path, "a") as f:
        f["entry/data/data"][1, 4:] = 2
    assert _look_twice(path).n_complete == 2


def test_a_single_tiff_cannot_be_watched(tmp_path):
    p = tmp_path / "one.tif"
    tifffile.imwrite(p, np.ones((4, 8, 8), np.uint16))
    with pytest.raises(InputError, match="watch reads"):
        complete_steps(p)


# --------------------------------------------------------------------------------------------
# The alarm
# --------------------------------------------------------------------------------------------

def _summary(times, span=None, fc=None, sig=None, short=None):
    return {"times_s": times, "span_index": span,
            "short_circuit": {"forecast_time_s": fc, "forecast_sigma_s": sig,
                              "echem_time_s": short}}


def test_alarm_rules():
    times = [0.0, 600.0, 1200.0]
    assert check_alarm(_summary(times), 900.0) is None
    # forecast 3000 +- 500: its lower edge (2500) is 1300 s after the latest scan
    assert check_alarm(_summary(times, fc=3000.0, sig=500.0), 900.0) is None
    got = check_alarm(_summary(times, fc=3000.0, sig=500.0), 1300.0)
    assert got is not None and got.kind == "forecast" and got.time_s == 1200.0
    assert got.t_index == 2
    # default lead: the last interval (600 s): 1700 +- 0 is within it
    assert check_alarm(_summary(times, fc=1700.0), None).kind == "forecast"
    assert check_alarm(_summary(times, fc=1900.0), None) is None
    assert check_alarm(_summary(times, span=2, fc=3000.0), 0.0).kind == "span"
    assert check_alarm(_summary(times, short=1100.0), 0.0).kind == "short"
    assert check_alarm(_summary(times), 0.0, short_time_s=1250.0).kind == "short"


# --------------------------------------------------------------------------------------------
# A twin series landing scan by scan
# --------------------------------------------------------------------------------------------

#: The writer: copies the twin's scans into the watched folder, each in four parts with
#: pauses (one longer than the poll, so that only the parse check stands between the watch
#: and a half-written file), and the cycler rows up to each scan's time. Like a beamline,
#: where a scan takes longer than its analysis, it lands a scan once the previous one is
#: analysed (status.json), so that each scan has its own turn (scan 1 comes right after scan
#: 0: with --anode auto the watch analyses the first two together).
_WRITER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    src, dst, echem, log, status = map(Path, sys.argv[1:6])
    pause, gap = float(sys.argv[6]), float(sys.argv[7])
    times = json.loads((src / "dataset.json").read_text())["times_s"]
    rows = (src / "echem.csv").read_text().splitlines()[1:]  # the header is there already

    def analysed():
        try:
            return json.loads(status.read_text())["steps_done"]
        except (OSError, ValueError):
            return 0

    for k, f in enumerate(sorted((src / "scans").glob("t*.tif"))):
        end = time.monotonic() + 120
        while analysed() < k and k != 1 and time.monotonic() < end:
            time.sleep(0.05)
        data = f.read_bytes()
        n = len(data)
        with open(dst / f.name, "wb") as fh:
            for i in range(4):
                fh.write(data[i * n // 4:(i + 1) * n // 4])
                fh.flush()
                time.sleep(pause if i == 1 else pause / 4)
        with open(log, "a") as fh:
            fh.write(f"{k} {time.time()}\\n")
        now = [r for r in rows if float(r.split(",")[0]) <= times[k]]
        rows = rows[len(now):]
        with open(echem, "a") as fh:
            fh.write("".join(r + "\\n" for r in now))
        time.sleep(gap)
    with open(echem, "a") as fh:
        fh.write("".join(r + "\\n" for r in rows))
""")

POLL_S = 0.4


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """The smallest twin whose forecast alarm can come before its span: 6 scans of
    48 x 96 x 96, span at step 4 (with 5 scans the span comes at step 3, before a forecast)."""
    from dendritect.synthetic import simulate

    root = tmp_path_factory.mktemp("watch")
    data = simulate(root / "twin", "demo", seed=0, shape_zyx=(48, 96, 96), n_steps=6)
    truth = json.loads((data / "truth" / "truth.json").read_text())
    assert truth["span_index"] is not None and truth["span_index"] >= 2
    return root, data, truth


@pytest.fixture(scope="module")
def watched(twin):
    """Watch the twin while a writer process lands it; then a batch run on the final series."""
    from dendritect.pipeline import analyze
    from dendritect.watch import watch

    root, data, truth = twin
    live = root / "live"
    live.mkdir()
    echem = root / "echem_live.csv"
    log = root / "landed.txt"
    alarms = root / "alarms.txt"
    interval = json.loads((data / "dataset.json").read_text())["times_s"][1]
    echem.write_text((data / "echem.csv").read_text().splitlines()[0] + "\n")
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(data), str(live), str(echem),
                               str(log), str(root / "out" / "status.json"), str(3 * POLL_S),
                               str(POLL_S)])
    lines: list[str] = []
    # --anode auto (the default): the watch waits for a second scan, decides the side from the
    # change, and checks the decision on the whole series at the end
    options = {"interval": f"{interval}s", "echem": echem}
    try:
        status = watch(live, root / "out", poll_s=POLL_S, alarm_before_s=600.0,
                       on_alarm=f"echo \"$DENDRITECT_ALARM_KIND $DENDRITECT_ALARM_TIME_S "
                                f"$DENDRITECT_FORECAST_SPAN_TIME_S\" >> {alarms}",
                       idle_timeout_s=6.0, echo=lines.append, report=False, **options)
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0
    batch = analyze(live, root / "batch", progress=False, report=False, **options)
    landed = {int(k): float(t) for k, t in
              (ln.split() for ln in log.read_text().splitlines())}
    return {"root": root, "out": root / "out", "batch": root / "batch", "status": status,
            "lines": lines, "truth": truth, "landed": landed, "alarms": alarms,
            "summary": batch}


def test_every_step_analysed_once_and_none_before_it_was_whole(watched):
    status = watched["status"]
    n = watched["summary"]["n_steps"]
    assert n == 6 and status["steps_done"] == n
    assert status["analysed_steps"] == list(range(n))  # segmented once each, in order
    # one scan per pass, but for the first two (the anode side is decided on the pair)
    assert [s["analysed_with"] for s in status["steps"]] == [[0, 1], [0, 1]] + [
        [k] for k in range(2, n)]
    assert [s["t_index"] for s in status["steps"]] == list(range(n))
    for step in status["steps"]:
        # seen complete only after the writer had written its last byte
        assert step["complete_unix_s"] >= watched["landed"][step["t_index"]]
    assert status["state"] == "stopped"
    on_disk = json.loads((watched["out"] / "status.json").read_text())
    assert on_disk["steps_done"] == n and on_disk["alarm"] == status["alarm"]


def test_alarm_before_the_true_span_and_on_alarm_run_once(watched):
    alarm = watched["status"]["alarm"]
    span = watched["truth"]["span_index"]
    assert alarm is not None
    assert alarm["t_index"] < span
    assert isinstance(alarm["time_s"], float) and isinstance(alarm["reason"], str)
    runs = watched["alarms"].read_text().splitlines()
    assert len(runs) == 1
    kind, time_s, forecast = runs[0].split()
    assert kind == alarm["kind"] and float(time_s) == pytest.approx(alarm["time_s"])
    assert float(forecast) > alarm["time_s"]
    assert sum(ln.startswith("ALARM") for ln in watched["lines"]) == 1
    assert watched["status"]["on_alarm"]["returncode"] == 0


def _assert_same_results(out: Path, batch: Path, summary: dict) -> None:
    """``out`` holds what ``analyze`` wrote into ``batch``: tables and stores byte for byte
    (chunk files and array metadata), an equal summary, a finished marker, no work left."""
    for name in ("metrics.csv", "cracks.csv", "echem.csv"):
        if (batch / name).exists() or (out / name).exists():
            assert (out / name).read_bytes() == (batch / name).read_bytes(), name
    for store in ("cracks.zarr", "previews.zarr"):
        a, b = zarr.open_group(str(out / store), mode="r"), zarr.open_group(str(batch / store),
                                                                             mode="r")
        assert sorted(a.array_keys()) == sorted(b.array_keys())
        for key in a.array_keys():
            x, y = a[key], b[key]
            assert x.shape == y.shape and x.dtype == y.dtype, key
            assert np.array_equal(x[...], y[...]), key
        files = sorted(p.relative_to(out / store) for p in (out / store).rglob("*")
                       if p.is_file())
        assert files == sorted(p.relative_to(batch / store) for p in (batch / store).rglob("*")
                               if p.is_file())
        for rel in files:
            assert (out / store / rel).read_bytes() == (batch / store / rel).read_bytes(), rel
    assert json.loads((out / "summary.json").read_text()) == summary
    # a finished results folder: the marker, and no work left behind
    marker = json.loads((out / ".dendritect.json").read_text())
    assert marker["state"] == "finished"
    assert not (out / ".partial").exists()


def test_final_results_identical_to_batch(watched):
    _assert_same_results(watched["out"], watched["batch"], watched["summary"])


def test_live_report_reloads_itself(watched, monkeypatch):
    import dendritect.report.html as H
    from dendritect.report import load_results

    # the page only: no figures, no 3D view (what this test is about is the page's head)
    for name in ("arrival_figure", "front_figure", "growth_figure", "slices_figure"):
        monkeypatch.setattr(H.F, name, lambda *a, **k: None)
    monkeypatch.setattr(H, "crack_mesh", lambda *a, **k: None)
    res = load_results(watched["batch"])
    live = H.render_html(res, live=True)
    assert f'<meta http-equiv="refresh" content="{H.LIVE_RELOAD_S}">' in live
    assert "http-equiv" not in H.render_html(res)


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------

def test_cli_bad_input(cli, tmp_path):
    assert_input_error(cli("watch", tmp_path / "missing", "--out", tmp_path / "o"), "not found")
    (tmp_path / "in").mkdir()
    assert_input_error(cli("watch", tmp_path / "in", "--out", tmp_path / "o", "--poll", "0s"),
                       "--poll")
    assert_input_error(cli("watch", tmp_path / "in", "--out", tmp_path / "o",
                           "--alarm-before", "soon"), "--alarm-before")
    assert_input_error(cli("watch", tmp_path / "in", "--out", tmp_path / "in" / "o"),
                       "inside the input")
    assert not (tmp_path / "o").exists()


def test_cli_help_names_the_alarm_environment(cli):
    res = cli("watch", "--help")
    assert res.code == 0
    for opt in ("--poll", "--alarm-before", "--on-alarm", "--idle-timeout", "--voxel-size",
                "--echem", "--interval", "--anode"):
        assert opt in res.out
    assert "DENDRITECT_ALARM_REASON" in ALARM_ENV and "DENDRITECT_ALARM_TIME_S" in ALARM_ENV


def test_cli_interrupt_exits_130(tmp_path):
    (tmp_path / "in").mkdir()
    out = tmp_path / "out"
    # SIGINT at its default in the child: a background test run starts with it ignored
    proc = subprocess.Popen([sys.executable, "-m", "dendritect", "watch", str(tmp_path / "in"),
                             "--out", str(out), "--poll", "0.2s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        end = time.monotonic() + 60
        while not (out / "status.json").is_file() and time.monotonic() < end:
            time.sleep(0.1)
        assert (out / "status.json").is_file()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.strip().endswith("error: interrupted")
    assert json.loads((out / "status.json").read_text())["state"] == "interrupted"
    assert not (out / ".dendritect.lock").exists()


def test_hdf5_view_holds_the_complete_steps_only(tmp_path):
    """The analysis reads a copy of a growing HDF5 file (never the file a writer holds), with
    the complete steps copied one at a time and everything else as in the file."""
    h5py = pytest.importorskip("h5py")
    from dendritect.io import open_series
    from dendritect.watch import _hdf5_view

    path = tmp_path / "scan.nxs"
    rng = np.random.default_rng(0)
    vols = rng.integers(0, 60000, size=(3, 6, 16, 16)).astype(np.uint16)
    with h5py.File(path, "w") as f:
        f.attrs["NX_class"] = "NXroot"
        ds = f.create_dataset("entry/data/data", data=vols[:2], maxshape=(None, 6, 16, 16),
                              chunks=(1, 6, 16, 16))
        ds.attrs["units"] = "counts"
    view = _hdf5_view(path, None, 1, tmp_path / "view")
    with h5py.File(path, "a") as f:
        f["entry/data/data"].resize((3, 6, 16, 16))
        f["entry/data/data"][2] = vols[2]
    view = _hdf5_view(path, None, 3, tmp_path / "view")
    series = open_series(view)
    assert series.n_steps == 3
    assert np.array_equal(np.asarray(series.data), vols)
    with h5py.File(view, "r") as f:
        assert f.attrs["NX_class"] == "NXroot"
        assert f["entry/data/data"].attrs["units"] == "counts"


#: A writer that grows an HDF5 file step by step as a detector's software does: the t axis
#: extended, the step written in two halves with a pause (longer than the poll), the file
#: closed between writes.
_H5_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import h5py, tifffile
    src, dst, pause = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    for k, f in enumerate(sorted((src / "scans").glob("t*.tif"))):
        vol = tifffile.imread(f)
        half = vol.shape[0] // 2
        with h5py.File(dst, "a") as h:
            if "entry/data/data" not in h:
                h.create_dataset("entry/data/data", shape=(0, *vol.shape),
                                 maxshape=(None, *vol.shape), chunks=(1, 8, *vol.shape[1:]),
                                 dtype=vol.dtype)
            ds = h["entry/data/data"]
            ds.resize((k + 1, *vol.shape))
            ds[k, :half] = vol[:half]
        time.sleep(pause)
        with h5py.File(dst, "a") as h:
            h["entry/data/data"][k, half:] = vol[half:]
        time.sleep(pause)
""")


def test_growing_hdf5_file_watched_equals_batch(twin, tmp_path):
    """An HDF5 file grown step by step is watched (--anode auto: the side is checked on the
    whole file at the end) and ends with the results of a batch run on the final file."""
    pytest.importorskip("h5py")
    from dendritect.pipeline import analyze
    from dendritect.watch import watch

    _, data, _ = twin
    interval = json.loads((data / "dataset.json").read_text())["times_s"][1]
    h5 = tmp_path / "live.h5"
    writer = subprocess.Popen([sys.executable, "-c", _H5_WRITER, str(data), str(h5),
                               str(3 * POLL_S)])
    try:
        end = time.monotonic() + 60
        while not h5.exists() and time.monotonic() < end:
            time.sleep(0.05)
        status = watch(h5, tmp_path / "out", poll_s=POLL_S, idle_timeout_s=5.0,
                       echo=lambda line: None, report=False, interval=f"{interval}s")
    finally:
        writer.wait(timeout=120)
    assert writer.returncode == 0
    assert status["steps_done"] == 6 and status["analysed_steps"] == list(range(6))
    assert len({tuple(s["analysed_with"]) for s in status["steps"]}) > 1  # the run grew
    summary = analyze(h5, tmp_path / "batch", progress=False, report=False,
                      interval=f"{interval}s")
    _assert_same_results(tmp_path / "out", tmp_path / "batch", summary)


def test_interrupted_watch_resumes_and_ends_equal_to_batch(twin, tmp_path):
    """A watch stopped after its first pass (Ctrl-C) and resumed once more scans landed
    continues from its run (the steps segmented are not segmented again); with --anode auto
    the side is checked on the whole series, and the end equals batch."""
    import shutil

    from dendritect.pipeline import analyze
    from dendritect.watch import watch

    _, data, _ = twin
    interval = json.loads((data / "dataset.json").read_text())["times_s"][1]
    live = tmp_path / "live"
    live.mkdir()
    scans = sorted((data / "scans").glob("t*.tif"))
    for f in scans[:3]:
        shutil.copy(f, live / f.name)

    def interrupt(line: str) -> None:
        if line.startswith("  written"):  # the first pass is published
            raise KeyboardInterrupt

    options = {"interval": f"{interval}s"}
    with pytest.raises(KeyboardInterrupt):
        watch(live, tmp_path / "out", poll_s=POLL_S, echo=interrupt, report=False,
              max_polls=5, **options)
    assert json.loads((tmp_path / "out" / "status.json").read_text())["steps_done"] == 3
    for f in scans[3:]:
        shutil.copy(f, live / f.name)
    status = watch(live, tmp_path / "out", poll_s=POLL_S, echo=lambda line: None,
                   report=False, max_polls=3, resume=True, **options)
    assert status["analysed_steps"] == list(range(6))  # each segmented once
    assert [s["analysed_with"] for s in status["steps"]] == [[0, 1, 2]] * 3 + [[3, 4, 5]] * 3
    summary = analyze(live, tmp_path / "batch", progress=False, report=False, **options)
    _assert_same_results(tmp_path / "out", tmp_path / "batch", summary)
