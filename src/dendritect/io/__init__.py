"""Input/output: open any supported CT series lazily, and read cycler data."""

from dendritect.io.readers import open_series
from dendritect.io.series import Series

__all__ = ["Series", "open_series"]
