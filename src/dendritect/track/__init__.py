"""Track cracks across time steps: the same crack keeps the same id."""

from dendritect.track.link import time_of_arrival, track_cracks

__all__ = ["time_of_arrival", "track_cracks"]
