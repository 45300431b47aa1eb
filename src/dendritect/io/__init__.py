"""Input/output: open any supported CT series lazily, and read cycler data."""

from dendritect.io.series import Series, open_series

__all__ = ["Series", "open_series"]
