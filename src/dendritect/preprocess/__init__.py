"""Bring every step into the frame and grey levels of step 0, and find the cell in it."""

from dendritect.preprocess.cell import CellGeometry, anode_evidence, decide_anode, find_cell
from dendritect.preprocess.normalise import fit_gain_offset, match_intensity
from dendritect.preprocess.register import apply_shift, estimate_shift

__all__ = [
    "CellGeometry",
    "anode_evidence",
    "apply_shift",
    "decide_anode",
    "estimate_shift",
    "find_cell",
    "fit_gain_offset",
    "match_intensity",
]
