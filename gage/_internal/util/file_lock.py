"""An exclusive lock on a file that never waits (`flock`, as the
`filelock` package takes it on Unix, so the two exclude each other).

Starting a run takes one: importing `filelock` costs a simple `gage run`
more than the lock does.
"""

from __future__ import annotations

import fcntl
import os

__all__ = ["Locked", "try_lock", "unlock"]


class Locked(Exception):
    """Another process holds the lock."""


def try_lock(path: str) -> int:
    """Take the lock on `path` (created when missing) now or raise
    Locked; the descriptor to pass to `unlock`. Raises OSError (e.g.
    PermissionError) when the file cannot be opened."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Locked(path) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock(fd: int) -> None:
    """Release a lock `try_lock` took."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
