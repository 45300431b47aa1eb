"""Shared test fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dendritect.cli.main import main

#: The real instrument and lab files: $DENDRITECT_SHARED_DATA, else ../shared/data beside the
#: repository.
SHARED_DATA = Path(os.environ.get("DENDRITECT_SHARED_DATA")
                   or Path(__file__).resolve().parents[2] / "shared" / "data")
SHARED_DATA_SKIP = f"shared data not found at {SHARED_DATA}; set DENDRITECT_SHARED_DATA"
_shared_skips: list[str] = []


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``dendritect ARGS...`` in-process and return exit code, stdout and stderr."""

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def shared_data(request: pytest.FixtureRequest) -> Path:
    """The real instrument and lab files shipped beside the repository (skip when absent)."""
    if not SHARED_DATA.is_dir():
        _shared_skips.append(request.node.nodeid)
        pytest.skip(SHARED_DATA_SKIP)
    return SHARED_DATA


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say once, at the end, why the tests on real files were skipped."""
    if _shared_skips:
        terminalreporter.write_line(f"{len(_shared_skips)} test(s) on real instrument files "
                                    f"skipped: {SHARED_DATA_SKIP}", yellow=True)


def assert_input_error(result: CliResult, *needles: str) -> None:
    """A bad-input exit: status 2, one ``error:`` line on stderr, no traceback."""
    assert result.code == 2, (result.code, result.err)
    assert result.err.startswith("error: "), result.err
    assert "Traceback" not in result.err
    low = result.err.lower()
    for n in needles:
        assert n.lower() in low, (n, result.err)
