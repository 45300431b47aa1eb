"""Measure cracks: per-crack and per-step tables in micrometres."""

from dendritect.measure.cracks import (
    CRACK_COLUMNS,
    STEP_COLUMNS,
    CrackHistory,
    measure_cracks,
    measure_step,
)

__all__ = ["CRACK_COLUMNS", "STEP_COLUMNS", "CrackHistory", "measure_cracks", "measure_step"]
