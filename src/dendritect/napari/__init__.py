"""napari plugin (npe2): open CT series and results, analyse cracks, demo sample data.

A thin layer over the library; napari itself is the optional extra ``dendritect[napari]``.
The reader functions return napari *layer data tuples* and need neither napari nor Qt.
"""

from dendritect.napari._reader import get_reader, read_results, read_series

__all__ = ["get_reader", "read_results", "read_series"]
