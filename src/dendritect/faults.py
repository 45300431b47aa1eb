"""Named points where the fault tests stop a run, as a kill would.

``DENDRITECT_FAULT_AT=NAME`` makes the process kill itself (SIGKILL: no clean-up, no finally)
when it reaches :func:`checkpoint` ``NAME``; with ``DENDRITECT_FAULT_MODE=raise`` it raises
:class:`InjectedFault` instead (for in-process tests). Unset, a checkpoint costs one dictionary
look-up. The points are named in docs/guarantees.md.
"""

from __future__ import annotations

import os
import signal

__all__ = ["InjectedFault", "checkpoint"]

ENV_AT = "DENDRITECT_FAULT_AT"
ENV_MODE = "DENDRITECT_FAULT_MODE"


class InjectedFault(BaseException):
    """Raised at a checkpoint under test (a BaseException: nothing catches it by accident)."""


def checkpoint(name: str) -> None:
    """Stop here when the environment names this point (fault tests only)."""
    if os.environ.get(ENV_AT) != name:
        return
    if os.environ.get(ENV_MODE) == "raise":
        raise InjectedFault(name)
    os.kill(os.getpid(), signal.SIGKILL)  # pragma: no cover - the process ends here
