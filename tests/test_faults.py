"""Fault tests on the real command: kill -9 at random moments, signals, two runs at once.

Every case ends with the same bytes as one uninterrupted run (same folder path, so report.html,
which names its folder, compares too). A tiny simulated cell keeps a run to a few seconds.
Kill moments are drawn from a seeded RNG over one measured uninterrupted run; each resumed run
is killed again after its start-up time plus the gap to the next moment, so that a handful of
processes covers moments spread over the whole run (segmentation, moves, report writing).
Named points (``DENDRITECT_FAULT_AT``, :mod:`dendritect.faults`) hit the finishing moves and the
report deterministically.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dendritect import results as R
from dendritect.lock import LOCK_NAME

pytestmark = pytest.mark.slow

#: The package the runs import: a copy taken when the module starts (see ``runs``), so that
#: every run of a comparison runs the same code even if the source is edited meanwhile.
_SNAPSHOT: dict[str, str] = {}


#: The console script users run (it imports the package from PYTHONPATH first, like -m would).
EXE = Path(sys.executable).with_name("dendritect")


def _cmd(cell: Path, out: Path, *extra: str) -> list[str]:
    head = [str(EXE)] if EXE.is_file() else [sys.executable, "-m", "dendritect"]
    return [*head, "analyze", str(cell), "--out", str(out), "--echem",
            str(cell / "echem.csv"), "--quiet", *extra]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _interruptible() -> None:
    """In the child before exec: SIGINT at its default, so that Python turns it into
    KeyboardInterrupt even when these tests run in a background job (started with SIGINT
    ignored, which a child inherits)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITECT_FAULT")}
    if "pythonpath" in _SNAPSHOT:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_SNAPSHOT["pythonpath"], env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path} appeared"
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.02)


def _assert_clean(out: Path) -> None:
    """A finished folder: no lock, no .partial, no temporary file, marker finished."""
    names = list(_tree(out))
    assert not any(".dtmp-" in n for n in names), names
    assert LOCK_NAME not in names and not (out / R.PARTIAL).exists()
    assert R.read_marker(out)["state"] == "finished" and R.is_finished(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The cell, and two runs started at once into one folder (the winner is the baseline)."""
    import dendritect
    from dendritect.synthetic import simulate

    root = tmp_path_factory.mktemp("faults")
    # With __pycache__ (times kept): compiled code and numba's cache stay valid in the copy.
    shutil.copytree(Path(dendritect.__file__).parent, root / "src" / "dendritect")
    _SNAPSHOT["pythonpath"] = str(root / "src")
    cell = simulate(root / "cell", "demo", seed=0, shape_zyx=(48, 96, 96), n_steps=3)
    out = root / "work" / "out"
    t0 = time.monotonic()
    procs = [subprocess.Popen(_cmd(cell, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env()) for _ in range(2)]
    # each run's own end time: poll both (communicating with one first would time the other
    # as ending no earlier than the first)
    ended: dict[int, float] = {}
    while len(ended) < len(procs) and time.monotonic() - t0 < 300:
        for p in procs:
            if p.pid not in ended and p.poll() is not None:
                ended[p.pid] = time.monotonic() - t0
        time.sleep(0.02)
    results = []
    for p in procs:
        so, se = p.communicate(timeout=300)
        results.append((p.pid, p.returncode, so, se, ended.get(p.pid, time.monotonic() - t0)))
    base = root / "base"
    tree = _tree(out) if out.is_dir() else {}
    info = {"cell": cell, "out": out, "results": results, "clean_error": None}
    try:
        _assert_clean(out)
    except (AssertionError, TypeError) as exc:
        info["clean_error"] = f"{exc!r}: {results}"
    shutil.move(str(out), str(base))
    # Start-up: import and return a finished folder (what every resumed run pays first).
    t1 = time.monotonic()
    subprocess.run(_cmd(cell, base, "--resume"), check=True, capture_output=True, env=_env())
    info.update(base=base, tree=tree, duration=max(r[4] for r in results),
                startup=time.monotonic() - t1)
    return info


def _resume_is_identical(runs: dict, out: Path) -> subprocess.CompletedProcess:
    """``--resume`` into ``out`` completes: a clean folder with the uninterrupted run's bytes."""
    r = subprocess.run(_cmd(runs["cell"], out, "--resume"), capture_output=True, text=True,
                       env=_env(), timeout=300)
    assert r.returncode == 0, r.stderr
    _assert_clean(out)
    assert _tree(out) == runs["tree"]
    return r


def _fresh(runs: dict) -> Path:
    out = runs["out"]
    if out.exists():
        shutil.rmtree(out)
    return out


def test_two_runs_at_once_one_is_refused(runs: dict) -> None:
    codes = sorted(r[1] for r in runs["results"])
    assert codes == [0, 2], runs["results"]
    winner = next(r for r in runs["results"] if r[1] == 0)
    loser = next(r for r in runs["results"] if r[1] == 2)
    assert loser[3].startswith("error: ") and "Traceback" not in loser[3]
    assert f"is in use by another run (pid {winner[0]})" in loser[3]
    assert loser[4] < winner[4]          # refused at once, not after the other run
    assert runs["clean_error"] is None, runs["clean_error"]
    assert any(k.startswith("cracks.zarr/crack/") for k in runs["tree"])   # not empty
    assert "report.html" in runs["tree"] and "echem.csv" in runs["tree"]


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_at_random_moments_then_resume_is_identical(runs: dict, seed: int) -> None:
    out = _fresh(runs)
    rng = np.random.default_rng(20240 + seed)
    moments = np.sort(rng.uniform(0.0, runs["duration"], 5))
    killed, prev = 0, None
    for m in moments:
        delay = m if prev is None else runs["startup"] + (m - prev)
        prev = m
        p = subprocess.Popen(_cmd(runs["cell"], out, "--resume"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=_env())
        try:
            rc = p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            killed += 1
            continue
        # Finished before its moment (the machine ran faster than the measured run): check it,
        # and take the next moment on a fresh run.
        assert rc == 0
        _assert_clean(out)
        assert _tree(out) == runs["tree"]
        out, prev = _fresh(runs), None
    assert killed >= 3, killed
    _resume_is_identical(runs, out)


def test_kill_inside_the_moves_and_the_report_then_resume_is_identical(runs: dict) -> None:
    out = _fresh(runs)
    # Between two moves of finish(), while the report writes its last figure (a temporary file
    # is left behind), after report.html but before the final marker.
    for point in ("finish:previews.zarr", "write:report_slices.svg", "mark_finished"):
        r = subprocess.run(_cmd(runs["cell"], out, "--resume"), capture_output=True,
                           env=_env(DENDRITECT_FAULT_AT=point), timeout=300)
        assert r.returncode == -signal.SIGKILL, (point, r.returncode, r.stderr[-2000:])
        assert not R.is_finished(out)
        if point.startswith("finish:"):
            assert (out / "cracks.zarr").is_dir() and (out / R.PARTIAL / "cracks.csv").is_file()
        if point.startswith("write:"):
            assert list((out / "figures").glob(".report_slices.dtmp-*.svg"))
    r = _resume_is_identical(runs, out)
    assert "took over the lock" in r.stderr      # the killed run's lock was stale


def test_sigint_exits_130_and_resume_completes(runs: dict) -> None:
    out = _fresh(runs)
    p = subprocess.Popen(_cmd(runs["cell"], out), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env(),
                         preexec_fn=_interruptible)
    _wait_for(out / R.PARTIAL / "state.json", p)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert not (out / LOCK_NAME).exists() and not R.is_finished(out)
    _resume_is_identical(runs, out)


def test_sigterm_exits_130_and_leaves_a_resumable_folder(runs: dict) -> None:
    out = _fresh(runs)
    p = subprocess.Popen(_cmd(runs["cell"], out), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for(out / LOCK_NAME, p)
    time.sleep(0.5)
    p.terminate()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert not (out / LOCK_NAME).exists()
    if out.exists():   # stopped before anything was written: nothing to resume, nothing left
        assert R.read_marker(out)["state"] == "running"


def test_a_lost_stop_request_is_raised_at_the_next_step(tmp_path: Path) -> None:
    """A SIGTERM whose KeyboardInterrupt is dropped (raised inside a ctypes callback, as
    numba's JIT makes) is remembered: the pipeline stops at the next step."""
    from dendritect.errors import check_stop, clear_stop, request_stop
    from dendritect.pipeline import analyze
    from dendritect.synthetic import simulate

    data = simulate(tmp_path / "data", "demo", seed=0, shape_zyx=(48, 64, 64), n_steps=2)
    check_stop()  # nothing requested: no-op
    request_stop()
    try:
        with pytest.raises(KeyboardInterrupt):
            analyze(data, tmp_path / "res", progress=False, report=False)
    finally:
        clear_stop()
    check_stop()
    assert not (tmp_path / "res" / "summary.json").exists()
