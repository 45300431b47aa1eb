"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dendritect.cli.main import main

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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
def shared_data() -> Path:
    """The real instrument and lab files shipped beside the repository (skip when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


def assert_input_error(result: CliResult, *needles: str) -> None:
    """A bad-input exit: status 2, one ``error:`` line on stderr, no traceback."""
    assert result.code == 2, (result.code, result.err)
    assert result.err.startswith("error: "), result.err
    assert "Traceback" not in result.err
    low = result.err.lower()
    for n in needles:
        assert n.lower() in low, (n, result.err)
