"""Atomic file writes: nothing half-written ever stands under its final name; and how a file
is seen to change (its size and modification time)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from dendritect.faults import checkpoint

__all__ = ["TEMP_MARK", "atomic_write", "atomic_write_bytes", "file_signature",
           "remove_temporaries"]

#: In the name of every temporary file (``.NAME.dtmp-XXXX.SUFFIX``): a run killed between the
#: write and the rename leaves one behind, and the next run into that folder removes it.
TEMP_MARK = ".dtmp-"


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary name in ``path``'s folder, then move it into place.

    The temporary name keeps ``path``'s suffix so writers that pick a format from it
    (matplotlib, imageio, pandas) still work. On any failure the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}{TEMP_MARK}", suffix=path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        # mkstemp makes the file private; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        checkpoint(f"write:{path.name}")
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files :func:`atomic_write` left in ``folder`` (not recursive)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in sorted(folder.glob(f".*{TEMP_MARK}*")):
        if p.is_file() or p.is_symlink():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def file_signature(path: str | Path) -> tuple[int, int] | None:
    """``(size, modification time in ns)`` of a file, or None when it cannot be read: two
    equal signatures a poll apart say the file stopped changing."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (int(st.st_size), int(st.st_mtime_ns))
