"""dendritect: see, measure and predict lithium-dendrite cracking in solid-state batteries.

The package is laid out as one folder per pipeline stage::

    io -> preprocess -> segment -> track -> measure -> predict -> report

with ``physics`` (the electro-chemo-mechanical model) and ``synthetic`` (the operando twin)
beside it, and ``cli`` a thin shell over the library.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dendritect")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
from dendritect.reading import read_results as read_results  # light: imports on first call
