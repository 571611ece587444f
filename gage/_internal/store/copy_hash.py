"""Copying a file while hashing it (the object cache's big files; see
`objects`): a big copy costs about the larger of copying and hashing."""

from __future__ import annotations

import os
import time
from typing import Callable, Protocol

from ..util import file_util

__all__ = ["Counter", "copy_hashing", "hash_stream", "kernel_copy_hashing"]

_BUF_SIZE = 4 * 1024 * 1024
# The first `copy_file_range` only asks whether the kernel copies these
# files: small, so that hashing starts at once.
_FIRST_SIZE = 256 * 1024
# A file changed less than this long ago is not trusted to show a later
# change in its stat (as `hash_cache.RACY_SECONDS`).
SETTLED_NS = 1_000_000_000


class Counter(Protocol):
    """What counts bytes done (`objects.Progress`)."""

    def add(self, nbytes: int = 0, files: int = 0) -> None: ...


def copy_hashing(
    src: str, dest: str, progress: Counter | None, reflink: Callable[[str, str], bool]
) -> str:
    """Copy `src` to a new file `dest` and return the sha256 of what was
    written: a reflink (`reflink(src, dest)`), else a copy by the kernel
    (`copy_file_range`) in a second thread while this one hashes (so a
    copy costs about the larger of copying and hashing, not their sum),
    else one pass that reads, hashes and writes each block. The digest
    is always of `dest`'s bytes (`kernel_copy_hashing` says when they
    are read from `src`)."""
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
    import hashlib

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
    thread while this one hashes; None (nothing written) where the kernel
    cannot copy these files. The digest is of `dest`'s bytes.

    The hash reads `dest` just behind the copy (pages still in the CPU's
    cache). Where it catches up with the copy (the kernel slowed by
    writeback), it reads the next block from `src` instead of waiting, so
    a copy costs the larger of copying and hashing; only when `src` is
    settled: its ctime older than `SETTLED_NS` (file times are coarse: a
    write within a tick of the last one could leave them as they were)
    and its stat the same after the copy as before, else `dest` is
    hashed again from its start (the caller's stat check then refuses
    the copy)."""
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is None:
        return None
    before = os.fstat(src)
    try:
        first = copy_range(src, dest, _FIRST_SIZE)
    except OSError:
        return None
    settled = before.st_ctime_ns < time.time_ns() - SETTLED_NS
    copy = _Copy(copy_range, src, dest, first)
    copy.start()
    try:
        digest, from_src = _hash_copy(dest, src if settled else None, copy, progress)
    finally:
        copy.join()
    if copy.failed:
        raise copy.failed[0]
    if from_src and file_util.stat_key(before) != file_util.stat_key(os.fstat(src)):
        return _hash_copy(dest, None, None, None)[0]
    return digest


class _Copy:
    """`copy_file_range` of `src` to `dest` in a thread of its own, from
    what `first` copied on; what is copied so far, under `cond`."""

    def __init__(self, copy_range: Callable[..., int], src: int, dest: int, first: int):
        import threading

        self.copied = first
        self.done = first == 0
        self.failed: list[BaseException] = []
        self.cond = threading.Condition()
        self._args = copy_range, src, dest
        self._thread = threading.Thread(target=self._run, name="gage-copy", daemon=True)

    def start(self) -> None:
        if not self.done:
            self._thread.start()

    def join(self) -> None:
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        copy_range, src, dest = self._args
        try:
            while n := copy_range(src, dest, _BUF_SIZE):
                with self.cond:
                    self.copied += n
                    self.cond.notify()
        except BaseException as e:
            self.failed.append(e)
        finally:
            with self.cond:
                self.done = True
                self.cond.notify()

    def wait(self, hashed: int) -> tuple[int, bool]:
        """(bytes copied, done), once more than `hashed` are copied or
        the copy ended (a hash that read ahead from the source waits
        here, never spins, for the copy to reach it)."""
        with self.cond:
            while self.copied <= hashed and not self.done:
                self.cond.wait()
            return self.copied, self.done


def _hash_copy(
    dest: int, src: int | None, copy: _Copy | None, progress: Counter | None
) -> tuple[str, bool]:
    """The sha256 of `dest` from its start, read with `preadv` (file
    positions are the copier's), and whether a block came from `src`:
    up to what `copy` has copied until it ends (with `src`, a block the
    copy has not reached is read from `src`), or without `copy` to the
    end of `dest`."""
    import hashlib

    h = hashlib.sha256()
    buf = bytearray(_BUF_SIZE)
    view = memoryview(buf)
    hashed = 0
    from_src = False
    while True:
        fd, want = dest, _BUF_SIZE
        if copy is not None:
            # A look without the lock: `done` first, as it is set after
            # the last count (done and copied == hashed: all is hashed).
            done = copy.done
            copied = copy.copied
            if copied == hashed and not done and src is None:
                copied, done = copy.wait(hashed)
            if copied > hashed:
                want = min(_BUF_SIZE, copied - hashed)
            elif done:
                return h.hexdigest(), from_src
            elif src is not None:
                fd = src
            else:
                continue  # (waited above: not reached)
        n = os.preadv(fd, [view[:want]], hashed)
        if not n:
            if copy is None:
                return h.hexdigest(), from_src
            if fd == dest:
                raise OSError(f"short read of a copy at {hashed}")
            copy.wait(hashed)  # `src` ends here: the copy too, soon
            continue
        from_src = from_src or fd != dest
        h.update(view[:n])
        hashed += n
        if progress:
            progress.add(n)
