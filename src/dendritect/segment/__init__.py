"""Crack segmentation: Hessian sheetness and crack/pore/lithium masks per step."""

from dendritect.segment.cracks import SegmentParams, StepSegmentation, segment_step
from dendritect.segment.hessian import eigvalsh3, sheetness

__all__ = ["SegmentParams", "StepSegmentation", "eigvalsh3", "segment_step", "sheetness"]
