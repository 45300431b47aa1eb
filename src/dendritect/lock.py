"""One run per results folder: a lock file holding the owner's pid and host.

Every command that writes into a results folder (``analyze``, ``report``; later ``fit``,
``watch``, ``export``) wraps its work in :func:`results_lock`::

    with results_lock(out_dir, "analyze"):
        ...   # nothing is written into out_dir before this point

The lock is ``DIR/.dendritect.lock``, made with an atomic create (``O_CREAT | O_EXCL``) so
that of two runs started at once exactly one gets it; the other fails at once with
``<dir> is in use by another run (pid N)`` (an :class:`~dendritect.errors.InputError`, so the
command line exits with status 2). A lock left by a run that was killed (its process gone, on
this host) is stale: it is taken over with a warning. A lock from another host is never taken
over, since its process cannot be checked from here; remove it by hand when that run is gone.

The lock is re-entrant within one process: ``analyze`` holds it while it writes the report,
and the report takes the same lock without waiting on itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dendritect.errors import InputError

__all__ = ["LOCK_NAME", "FolderInUse", "read_lock", "results_lock"]

LOCK_NAME = ".dendritect.lock"
_GUARD_SUFFIX = ".takeover"
#: An empty or unreadable lock younger than this is a run that is still writing it.
_YOUNG_S = 10.0

_held: dict[str, int] = {}   # resolved folder -> depth, for this process


class FolderInUse(InputError):
    """The results folder is locked by another run that is still alive."""


def _host() -> str:
    return socket.gethostname()


def _alive(pid: int, started: float | None) -> bool:
    """Whether process ``pid`` on this host is the one that took the lock."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    except OSError:
        return True
    if pid == os.getpid():
        return True
    if started is not None:
        # The pid may have been reused by a later process since the lock was taken.
        try:
            import psutil

            created = psutil.Process(pid).create_time()
        except Exception:  # psutil missing, or the process just ended
            return True
        if created > started + 2.0:
            return False
    return True


def read_lock(folder: str | Path) -> dict[str, Any] | None:
    """What the lock of ``folder`` says (pid, host, command, started), or None when unlocked
    or unreadable."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text(encoding="utf-8")
        info = json.loads(text)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _create(path: Path, info: dict[str, Any]) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    # Not fsynced: a lock need not outlive a crash (it would be stale), and an fsync can take
    # seconds on a busy disk, a window in which a stop would land here.
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(info, sort_keys=True) + "\n")
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return True


def _in_use(folder: Path, info: dict[str, Any] | None) -> FolderInUse:
    if info is None:
        return FolderInUse(f"{folder} is in use by another run (lock {folder / LOCK_NAME})")
    pid = info.get("pid", "?")
    host = info.get("host")
    where = "" if host in (None, _host()) else f" on {host}"
    return FolderInUse(f"{folder} is in use by another run (pid {pid}{where}); wait for it "
                       f"to end, or remove {folder / LOCK_NAME} if that run is gone")


def _stale(path: Path, info: dict[str, Any] | None) -> bool:
    """A lock whose run is gone: its process ended on this host, or it was never written."""
    if info is None:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        return age > _YOUNG_S
    if info.get("host") != _host():
        return False
    try:
        pid = int(info.get("pid", -1))
    except (TypeError, ValueError):
        return True
    started = info.get("started")
    return not _alive(pid, float(started) if isinstance(started, (int, float)) else None)


def _take_over(path: Path, seen: str) -> bool:
    """Remove a stale lock whose text is ``seen``, guarded so that of several runs taking it
    over at once only one removes it (and none removes a fresh lock)."""
    guard = path.with_name(path.name + _GUARD_SUFFIX)
    try:
        fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        # Another run is taking it over; a guard left by a killed run is cleared after a while.
        with contextlib.suppress(OSError):
            if time.time() - guard.stat().st_mtime > _YOUNG_S:
                guard.unlink()
        return False
    os.close(fd)
    try:
        try:
            now = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return True
        if now != seen:  # someone else took it over in the meantime
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        guard.unlink(missing_ok=True)


def _read_settled(path: Path, wait_s: float = 2.0) -> str:
    """The lock's text; a lock just made by another run is empty for a moment: wait for it."""
    end = time.monotonic() + wait_s
    while True:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise
        except OSError:
            text = ""
        if text.endswith("\n") or time.monotonic() > end:
            return text
        time.sleep(0.02)


def _acquire(folder: Path, info: dict[str, Any]) -> None:
    path = folder / LOCK_NAME
    for _ in range(5):
        if _create(path, info):
            return
        try:
            seen = _read_settled(path)
        except FileNotFoundError:
            continue  # released in the meantime: try again
        try:
            other = json.loads(seen)
            other = other if isinstance(other, dict) else None
        except ValueError:
            other = None
        if not _stale(path, other):
            raise _in_use(folder, other)
        if _take_over(path, seen):
            who = "" if other is None else f" (pid {other.get('pid', '?')}, now gone)"
            warnings.warn(f"{folder}: took over the lock of an earlier run that ended without "
                          f"releasing it{who}", UserWarning, stacklevel=3)
            continue
        raise _in_use(folder, other)
    raise _in_use(folder, read_lock(folder))


def _drop_own(folder: Path, info: dict[str, Any]) -> None:
    """Remove the lock if it is the one made from ``info``: a stop (Ctrl-C, SIGTERM) that
    lands between the lock's creation and the block would otherwise leave a live-looking lock
    behind."""
    if read_lock(folder) == info:
        with contextlib.suppress(OSError):
            (folder / LOCK_NAME).unlink()


@contextlib.contextmanager
def results_lock(folder: str | Path, command: str = "dendritect", *,
                 create: bool = True) -> Iterator[Path]:
    """Hold the lock of results folder ``folder`` (made when missing) for the block.

    Parameters
    ----------
    folder : str or Path
        The results folder. Created (with its parents) when it does not exist; a folder made
        here is removed again on the way out when nothing else was written into it.
    command : str
        Recorded in the lock file, for the message another run gets.
    create : bool
        Make the folder when it is missing (``analyze``); else a missing folder is an error.

    Raises
    ------
    FolderInUse
        When another live run holds the lock (an InputError: exit status 2).
    InputError
        When ``folder`` is a file, or cannot be created.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} exists and is not a folder")
    if not create and not folder.is_dir():
        raise InputError(f"results folder not found: {folder}")
    key = str(folder.resolve())
    if _held.get(key):
        _held[key] += 1
        try:
            yield folder
        finally:
            _held[key] -= 1
        return
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {folder}: {exc.strerror or exc}") from None
    info = {"pid": os.getpid(), "host": _host(), "command": command, "started": time.time()}
    try:
        _acquire(folder, info)
        _held[key] = 1
    except BaseException:
        _held.pop(key, None)
        _drop_own(folder, info)
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    try:
        yield folder
    finally:
        _held.pop(key, None)
        with contextlib.suppress(OSError):
            (folder / LOCK_NAME).unlink()
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a refused run leaves no folder behind
