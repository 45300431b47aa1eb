"""What a user can rely on about a results folder, checked in-process on stand-in stages:
the lock, users' files, --overwrite, interrupts, the finishing steps and unit checks.

The kill -9 and signal tests on the real pipeline are in tests/test_faults.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dendritect import pipeline
from dendritect import results as R
from dendritect.errors import InputError
from dendritect.faults import InjectedFault
from dendritect.lock import LOCK_NAME, read_lock, results_lock
from dendritect.plausible import check_thickness, check_units
from tests import test_cli_analyze as _cli_analyze
from tests.conftest import assert_input_error
from tests.test_pipeline import FakeStages, _tree, make_series

# The stand-in stages and --param settings of the analyze CLI tests.
fake_stages = _cli_analyze.fake_stages
segment_params = _cli_analyze.segment_params


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_series(tmp_path / "s.tif")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# -- the lock -------------------------------------------------------------------------------

def test_lock_holds_pid_and_host_and_is_released(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with results_lock(out, "analyze"):
        info = read_lock(out)
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        assert info["command"] == "analyze"
        with results_lock(out, "report"):   # re-entrant in one process
            pass
        assert (out / LOCK_NAME).is_file()
    assert not out.exists()   # made for the run, nothing written: removed again


@pytest.mark.parametrize("where", ["writing", "after"])
def test_a_stop_while_taking_the_lock_leaves_no_lock(tmp_path: Path, monkeypatch,
                                                     where: str) -> None:
    """A SIGTERM that lands while the lock is being written or just after it was made must
    not leave a lock that looks like a live run's."""
    import dendritect.lock as L

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    if where == "writing":   # the file exists, its text not yet written
        monkeypatch.setattr(L.json, "dumps", stop)
    else:
        real = L._acquire

        def acquire_then_stop(folder, info):
            real(folder, info)
            assert (folder / LOCK_NAME).exists()
            stop()

        monkeypatch.setattr(L, "_acquire", acquire_then_stop)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), results_lock(out, "analyze"):
        pass
    assert not out.exists()            # made here, so removed again with its lock
    monkeypatch.undo()
    with results_lock(out, "analyze"):  # and the next run takes it without a warning
        assert read_lock(out)["pid"] == os.getpid()


def test_second_run_into_a_folder_in_use_fails_at_once(cli, fake_stages, segment_params,
                                                       src, tmp_path) -> None:
    out = tmp_path / "res"
    out.mkdir()
    # A live process on this host (this one, as seen from a lock file it did not take here).
    pid = os.getpid()
    other = {"pid": pid, "host": socket.gethostname(), "command": "analyze",
             "started": time.time()}
    (out / LOCK_NAME).write_text(json.dumps(other))
    r = cli("analyze", src, "--out", out, "--quiet")
    assert_input_error(r, f"{out} is in use by another run (pid {pid})")
    assert fake_stages.calls == []                     # nothing analysed, nothing written
    assert sorted(os.listdir(out)) == [LOCK_NAME]
    # `report` takes the same lock.
    assert_input_error(cli("report", out), f"in use by another run (pid {pid})")


def test_lock_of_another_host_is_not_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "res"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere"}))
    with pytest.raises(InputError, match=r"in use by another run \(pid \d+ on elsewhere\)"):
        with results_lock(out):
            pass


def test_stale_lock_is_taken_over_with_a_warning(cli, fake_stages, segment_params, src,
                                                 tmp_path) -> None:
    out = tmp_path / "res"
    out.mkdir()
    dead = _dead_pid()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    r = cli("analyze", src, "--out", out, "--quiet")
    assert r.code == 0, r.err
    assert "warning:" in r.err and "took over the lock" in r.err and str(dead) in r.err
    assert not (out / LOCK_NAME).exists()
    assert R.is_finished(out)


# -- users' files -----------------------------------------------------------------------------

def test_foreign_folder_is_refused_and_left_untouched(cli, fake_stages, segment_params, src,
                                                      tmp_path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.csv").write_text("my,own\n1,2\n")
    before = _tree(out)
    for extra in ((), ("--overwrite",), ("--resume",)):
        r = cli("analyze", src, "--out", out, "--quiet", *extra)
        assert_input_error(r, "not a dendritect results folder", "metrics.csv")
        assert _tree(out) == before and sorted(os.listdir(out)) == ["metrics.csv"]
    assert fake_stages.calls == []


def test_empty_folder_is_used(cli, fake_stages, segment_params, src, tmp_path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    assert cli("analyze", src, "--out", out, "--quiet").code == 0
    assert R.read_marker(out)["state"] == "finished"


def test_overwrite_removes_only_what_dendritect_wrote(cli, fake_stages, segment_params, src,
                                                      tmp_path) -> None:
    out = tmp_path / "res"
    assert cli("analyze", src, "--out", out, "--quiet").code == 0
    marker = R.read_marker(out)
    assert marker["state"] == "finished"
    assert {"summary.json", "metrics.csv", "cracks.csv", "cracks.zarr"} <= set(marker["files"])
    (out / "notes.txt").write_text("my notes")
    (out / "figures").mkdir()
    (out / "figures" / "my_plot.png").write_bytes(b"mine")
    (out / "figures" / ".report_front.dtmp-x1.svg").write_bytes(b"stray temporary")
    r = cli("analyze", src, "--out", out, "--quiet", "--overwrite", "--times-s", "0,1,2,3,5")
    assert r.code == 0, r.err
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "figures" / "my_plot.png").read_bytes() == b"mine"
    assert not (out / "figures" / ".report_front.dtmp-x1.svg").exists()
    assert pd.read_csv(out / "metrics.csv").time_s.iloc[-1] == 5.0
    assert R.read_marker(out)["state"] == "finished"


def test_folder_of_an_earlier_version_is_recognised(cli, fake_stages, segment_params, src,
                                                    tmp_path) -> None:
    out = tmp_path / "old"
    assert cli("analyze", src, "--out", out, "--quiet").code == 0
    (out / R.MARKER).unlink()                       # as written before the marker existed
    (out / "notes.txt").write_text("mine")
    assert_input_error(cli("analyze", src, "--out", out, "--quiet"), "--overwrite")
    assert cli("analyze", src, "--out", out, "--quiet", "--resume").code == 0
    assert cli("analyze", src, "--out", out, "--quiet", "--overwrite").code == 0
    assert (out / "notes.txt").read_text() == "mine" and R.is_finished(out)


def test_overwrite_removes_the_fit_and_its_figure(cli, fake_stages, segment_params, src,
                                                  tmp_path, monkeypatch) -> None:
    from dendritect.report import write_report

    # The analysis writes its report (without the movie, to stay fast): a fit.json left behind
    # would be drawn into the new report.
    monkeypatch.setattr(pipeline, "_write_report", lambda out: write_report(out, movie=False))
    out = tmp_path / "res"
    assert cli("analyze", src, "--out", out, "--quiet").code == 0
    r = cli("fit", out, "--electrolyte", "Li6PS5Cl", "--current-density", "1mA/cm2",
            "--stack-pressure", "5MPa")
    assert r.code == 0, r.err
    assert R.FIT_JSON in R.read_marker(out)["files"]
    assert cli("report", out, "--no-movie").code == 0
    fit_figures = {f"{R.FIGURES_DIR}/{R.REPORT_FIGURE_PREFIX}fit.{ext}" for ext in ("png", "svg")}
    assert all((out / f).is_file() for f in fit_figures)
    marker = R.read_marker(out)
    assert marker["state"] == "finished" and fit_figures <= set(marker["files"])
    assert R.is_finished(out)
    r = cli("analyze", src, "--out", out, "--quiet", "--overwrite")
    assert r.code == 0, r.err
    assert not (out / R.FIT_JSON).exists()
    assert not list((out / R.FIGURES_DIR).glob(f"{R.REPORT_FIGURE_PREFIX}fit.*"))
    assert (out / R.REPORT_HTML).is_file() and R.is_finished(out)
    assert not fit_figures & set(R.read_marker(out)["files"])
    # While a run is in progress, the marker lists the fit figure among what it may write.
    assert fit_figures <= set(R.OWN_NAMES)


def test_a_finished_run_stays_finished_without_its_fit(cli, fake_stages, segment_params, src,
                                                       tmp_path) -> None:
    out = tmp_path / "res"
    assert cli("analyze", src, "--out", out, "--quiet").code == 0
    assert cli("fit", out, "--electrolyte", "Li6PS5Cl", "--current-density", "1mA/cm2",
               "--stack-pressure", "5MPa").code == 0
    (out / R.FIT_JSON).unlink()   # the user drops a fit: the analysis itself is still whole
    assert R.is_finished(out)
    assert_input_error(cli("analyze", src, "--out", out, "--quiet"), "--overwrite")


# -- interrupts and finishing ---------------------------------------------------------------

def test_keyboard_interrupt_exits_130_and_resumes(cli, fake_stages, segment_params, src,
                                                  tmp_path, monkeypatch) -> None:
    whole = tmp_path / "whole"
    assert cli("analyze", src, "--out", whole, "--quiet").code == 0
    out = tmp_path / "res"
    real = FakeStages.segment_step.__func__

    def interrupted(cls, volume, geometry, **kw):
        if len(cls.calls) == 3:   # step 2 (after steps 0, 1 and step 0's second look)
            raise KeyboardInterrupt
        return real(cls, volume, geometry, **kw)

    monkeypatch.setattr(FakeStages, "segment_step", classmethod(interrupted))
    FakeStages.calls = []
    r = cli("analyze", src, "--out", out, "--quiet")
    assert r.code == 130 and r.err.strip() == "error: interrupted", (r.code, r.err)
    assert not (out / LOCK_NAME).exists() and not R.is_finished(out)
    assert (out / R.PARTIAL / "state.json").is_file()
    monkeypatch.setattr(FakeStages, "segment_step", classmethod(real))
    FakeStages.calls = []
    r = cli("analyze", src, "--out", out, "--quiet", "--resume")
    assert r.code == 0, r.err
    assert len(FakeStages.calls) == 3              # steps 2, 3, 4: what was done was kept
    assert _tree(out) == _tree(whole)


@pytest.mark.parametrize("point", ["finish:metrics.csv", "finish:summary.json",
                                   "finish:partial", "mark_finished"])
def test_stopped_while_finishing_then_resumed_is_identical(fake_stages, src, tmp_path,
                                                           monkeypatch, point) -> None:
    whole = tmp_path / "whole"
    pipeline.analyze(src, whole, progress=False, report=False)
    out = tmp_path / "res"
    monkeypatch.setenv("DENDRITECT_FAULT_AT", point)
    monkeypatch.setenv("DENDRITECT_FAULT_MODE", "raise")
    with pytest.raises(InjectedFault):
        pipeline.analyze(src, out, progress=False, report=False)
    assert not R.is_finished(out)
    # Without --resume a finished-looking folder is never returned as finished.
    monkeypatch.delenv("DENDRITECT_FAULT_AT")
    FakeStages.calls = []
    pipeline.analyze(src, out, progress=False, report=False, resume=True)
    assert FakeStages.calls == []                  # nothing re-segmented: only finishing left
    assert _tree(out) == _tree(whole)


def test_finish_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "res"
    partial = out / R.PARTIAL
    partial.mkdir(parents=True)
    (partial / "metrics.csv").write_text("a\n1\n")
    (partial / "cracks.csv").write_text("b\n2\n")
    R.finish(out, partial, {"x": 1})
    R.finish(out, partial, {"x": 1})   # nothing left to move: no error, same folder
    assert (out / "metrics.csv").read_text() == "a\n1\n"
    assert json.loads((out / "summary.json").read_text()) == {"x": 1}
    assert not partial.exists()


# -- units ------------------------------------------------------------------------------------

def test_implausible_units_are_refused(cli, fake_stages, segment_params, src,
                                       tmp_path) -> None:
    o = tmp_path / "o"
    assert_input_error(cli("analyze", src, "--out", o, "--voxel-size", "1e9m"),
                       "outside 10 nm - 1 mm", "--force-units")
    assert_input_error(cli("analyze", src, "--out", o, "--voxel-size", "1pm"), "voxel size")
    assert_input_error(cli("analyze", src, "--out", o, "--times-s", "0,10,5,20,30"),
                       "increase")
    assert_input_error(cli("analyze", src, "--out", o, "--interval", "0s"), "--interval")
    assert not o.exists() and fake_stages.calls == []
    r = cli("analyze", src, "--out", o, "--voxel-size", "2mm", "--force-units", "--quiet")
    assert r.code == 0, r.err
    assert "warning:" in r.err and "--force-units" in r.err


def test_thickness_check() -> None:
    class Cell:
        z_anode_vox, z_cathode_vox = 10.0, 210.0

    assert check_thickness(Cell(), (100.0, 1.0, 1.0)) == []          # 2 cm
    with pytest.raises(InputError, match="thick"):
        check_thickness(Cell(), (1000.0, 1.0, 1.0))                   # 20 cm
    assert check_thickness(Cell(), (1000.0, 1.0, 1.0), force=True)
    assert check_units((1, 0.65, 0.65), np.arange(3.0)) == []
    with pytest.raises(InputError, match="do not increase: step 2"):   # e.g. from metadata
        check_units((1, 1, 1), [0.0, 10.0, 5.0])
    assert check_units((1, 1, 1), [0.0, 10.0, 5.0], force=True)
    with pytest.raises(InputError, match="not a positive length"):
        check_units((0, 1, 1), [0.0])


def test_half_written_store_chunks_are_removed(tmp_path):
    """A kill while zarr writes a chunk leaves ``<key>.<uuid>.partial`` in the store; the run's
    end removes it (and nothing else: chunks and metadata stay)."""
    import uuid

    import zarr

    from dendritect import results as R

    store = tmp_path / R.CRACKS_ZARR
    z = zarr.create_array(store=str(store), shape=(4, 4), chunks=(2, 2), dtype="u1")
    z[...] = 1
    chunk = next(p for p in store.rglob("*") if p.is_file() and p.parent.name.isdigit())
    stray = chunk.with_suffix(f".{uuid.uuid4().hex}.partial")
    stray.write_bytes(b"half")
    other = store / "notes.partial"  # not zarr's pattern: left alone
    other.write_text("x")
    before = {p for p in store.rglob("*") if p.is_file()}
    assert R.remove_store_temporaries(store) == [stray]
    assert {p for p in store.rglob("*") if p.is_file()} == before - {stray}
    assert (zarr.open_array(str(store), mode="r")[...] == 1).all()
