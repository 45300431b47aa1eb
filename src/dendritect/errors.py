"""Errors that the command line turns into ``error: ...`` and exit status 2."""

from __future__ import annotations

import threading


class InputError(ValueError):
    """Bad input or bad usage: a file that cannot be read, a value that makes no sense.

    The message must say what is wrong and where (a path, an option), in one line.
    The command line prints it as ``error: <message>`` and exits with status 2.
    """


#: Set by the SIGTERM handler, kept until the command ends.
_STOP = threading.Event()


def request_stop() -> None:
    """Remember that the command was asked to stop (the SIGTERM handler calls this)."""
    _STOP.set()


def clear_stop() -> None:
    """Forget a stop request (the command has ended)."""
    _STOP.clear()


def check_stop() -> None:
    """Raise :class:`KeyboardInterrupt` if a stop was requested.

    A signal handler's exception raised while compiled code calls back into Python (numba's
    JIT, through a ctypes callback) is printed and dropped, and the run would go on to the
    end; long loops call this between steps, so the stop still comes at the next one.
    """
    if _STOP.is_set():
        raise KeyboardInterrupt
