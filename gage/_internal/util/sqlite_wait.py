"""Waiting for a sqlite file another process holds, within a bound.

gage keeps caches in sqlite files that any number of processes share
(the digest cache, the runs index). A process that holds one's write
lock (a long transaction, a stopped process) must not make a command
wait silently: `call` runs an operation with a short busy timeout, then
says that it waits (a `wait` notice, `console.notice`: the command shows
it on a terminal), then gives up after a bound (`GAGE_LOCK_TIMEOUT`
seconds, 10 by default) with one `warn` notice naming the file, raising
`Locked`. Callers fall back (their files are caches).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Callable, TypeVar

from . import console

__all__ = ["NOTICE", "Locked", "call", "connect", "lock_timeout"]

T = TypeVar("T")

NOTICE = 1.0  # seconds before a wait is noticed


class Locked(sqlite3.OperationalError):
    """A sqlite file stayed locked by another process past the bound."""

    def __init__(self, path: str):
        super().__init__(f"database is locked: {path}")
        self.path = path


def connect(path: str) -> sqlite3.Connection:
    """A connection (autocommit) whose waits for a lock are short; use
    `call` for what must wait longer."""
    return sqlite3.connect(path, timeout=NOTICE, isolation_level=None)


def lock_timeout() -> float:
    """How long to wait for another process's lock, in all (seconds)."""
    try:
        return max(NOTICE, float(os.environ.get("GAGE_LOCK_TIMEOUT", "10")))
    except ValueError:
        return 10.0


def call(db: sqlite3.Connection, path: str, op: Callable[[], T]) -> T:
    """`op()`; when `path` is locked, a `wait` notice, a wait up to the
    bound, then one `warn` notice (once a file) and `Locked`."""
    try:
        return op()
    except sqlite3.OperationalError as e:
        if not _locked(e):
            raise
    console.notice("wait", f"waiting for {path} (locked by another process)")
    rest = int((lock_timeout() - NOTICE) * 1000)
    db.execute(f"PRAGMA busy_timeout = {rest}")
    try:
        return op()
    except sqlite3.OperationalError as e:
        if not _locked(e):
            raise
        _warn(path)
        raise Locked(path) from None
    finally:
        db.execute(f"PRAGMA busy_timeout = {int(NOTICE * 1000)}")


def _locked(e: sqlite3.OperationalError) -> bool:
    msg = str(e)
    return "locked" in msg or "busy" in msg


def _warn(path: str) -> None:
    if path in _warned:
        return
    _warned.add(path)
    console.notice(
        "warn",
        f"{path} is locked by another process: going on without it (a "
        "cache); stop that process if this repeats",
    )


_warned: set[str] = set()
