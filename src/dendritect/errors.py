"""Errors that the command line turns into ``error: ...`` and exit status 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input or bad usage: a file that cannot be read, a value that makes no sense.

    The message must say what is wrong and where (a path, an option), in one line.
    The command line prints it as ``error: <message>`` and exits with status 2.
    """
