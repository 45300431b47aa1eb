"""napari plugin (npe2): open CT series and results, analyse cracks, follow a live results
folder, demo sample data.

A thin layer over the library; napari itself is the optional extra ``dendritect[napari]``.
The reader functions return napari *layer data tuples* and need neither napari nor Qt;
:class:`LiveResults` needs napari's viewer model, not Qt.
"""

from dendritect.napari._live import LiveResults, follow_results
from dendritect.napari._reader import get_reader, read_results, read_series

__all__ = ["LiveResults", "follow_results", "get_reader", "read_results", "read_series"]
