"""Copying a file while hashing it: the bytes of the copy, each read
once (the object cache's big files; see `objects`)."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Protocol

from ..util import file_util

__all__ = ["Counter", "copy_hashing", "hash_stream", "kernel_copy_hashing"]

_BUF_SIZE = 4 * 1024 * 1024


class Counter(Protocol):
    """What counts bytes done (`objects.Progress`)."""

    def add(self, nbytes: int = 0, files: int = 0) -> None: ...


def copy_hashing(
    src: str, dest: str, progress: Counter | None, reflink: Callable[[str, str], bool]
) -> str:
    """Copy `src` to a new file `dest` and return the sha256 of what was
    written: a reflink (`reflink(src, dest)`), else a copy by the kernel
    (`copy_file_range`) while this thread hashes each block of `dest` as
    soon as it is written (so a copy costs about the larger of copying
    and hashing, not their sum), else one pass that reads, hashes and
    writes each block. The digest is always of `dest`'s bytes."""
    if reflink(src, dest):
        with file_util.open_regular(dest) as f:
            return hash_stream(f, None, progress)
    with file_util.open_regular(src) as f:
        fd = os.open(dest, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            digest = kernel_copy_hashing(f.fileno(), fd, progress)
            if digest is None:
                return hash_stream(f, fd, progress)
            return digest
        finally:
            os.close(fd)


def hash_stream(f: object, fd: int | None, progress: Counter | None) -> str:
    h = hashlib.sha256()
    buf = bytearray(_BUF_SIZE)
    view = memoryview(buf)
    readinto: Callable[[memoryview], int] = f.readinto  # type: ignore[attr-defined]
    while True:
        n = readinto(view)
        if not n:
            break
        chunk = view[:n]
        h.update(chunk)
        if fd is not None:
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
        if progress:
            progress.add(n)
    return h.hexdigest()


def kernel_copy_hashing(src: int, dest: int, progress: Counter | None) -> str | None:
    """Copy `src` to the empty `dest` by `copy_file_range` in a second
    thread while this one hashes `dest` up to what is copied; None
    (nothing written) where the kernel cannot copy these files."""
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is None:
        return None
    try:
        first = copy_range(src, dest, _BUF_SIZE)
    except OSError:
        return None
    import threading

    state = {"copied": first, "done": first == 0}
    cond = threading.Condition()
    failed: list[BaseException] = []

    def copy() -> None:
        try:
            while n := copy_range(src, dest, _BUF_SIZE):
                with cond:
                    state["copied"] += n
                    cond.notify()
        except BaseException as e:
            failed.append(e)
        finally:
            with cond:
                state["done"] = True
                cond.notify()

    copier = threading.Thread(target=copy, name="gage-copy", daemon=True)
    copier.start()
    try:
        digest = _hash_copied(dest, state, cond, progress)
    finally:
        copier.join()
    if failed:
        raise failed[0]
    return digest


def _hash_copied(
    fd: int, state: dict[str, Any], cond: Any, progress: Counter | None
) -> str:
    h = hashlib.sha256()
    buf = bytearray(_BUF_SIZE)
    view = memoryview(buf)
    hashed = 0
    while True:
        with cond:
            while state["copied"] == hashed and not state["done"]:
                cond.wait()
            copied, done = state["copied"], state["done"]
        if copied == hashed and done:
            return h.hexdigest()
        n = os.preadv(fd, [view[: min(_BUF_SIZE, copied - hashed)]], hashed)
        if not n:
            raise OSError(f"short read of a copy at {hashed}")
        h.update(view[:n])
        hashed += n
        if progress:
            progress.add(n)
