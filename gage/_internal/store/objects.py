"""The object cache: files by sha256 in the runs home, placed into runs.

Dependency files are not copied from the project into each run. Each is
added once to the runs home's object cache (`.objects/sha256/ab/cdef...`,
read-only) and placed in a run dir from there: by reflink where the file
system has it (a copy-on-write clone, its own inode), else by hardlink
(the run's file is the object's inode: no data blocks added), else by
copy (across devices, or where links are not allowed).

Adding a file reads it once: it is copied into the cache while it is
hashed, in one pass (or cloned by reflink, then hashed). A file seen
before with the same stat (device, inode, size, mtime, ctime; see
`hash_cache`) is not read at all: its digest comes from the digest
cache and its object is placed. The project's file is only ever read:
never linked, never chmodded.

A hardlinked file is shared by every run placed from the same object.
It is read-only; a run that chmods it and writes to it anyway changes
all of them (`gage check` reports the change in each). Such an object
is never placed again: the object's own stat is recorded in the digest
cache whenever gage changes it (a link changes its ctime), so an object
whose stat differs is re-hashed before use, and replaced from the
project when its digest no longer matches (the changed inode stays with
the runs that have it; the project file is not affected).

The cache is only a source of placements: a run never needs it. An
object that no run links (link count 1) can be removed (`prune`).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from ..util import file_util
from ..util.console import Progress
from . import copy_hash, hash_cache, pins
from .run_meta import object_path, objects_dir, objects_tmp_dir

__all__ = [
    "PLACEMENTS",
    "CacheInfo",
    "SourceChanged",
    "add_file",
    "add_files",
    "cache_info",
    "adopt_file",
    "has_object",
    "place_object",
    "place_objects",
    "place_source",
    "source_object_stats",
    "prune",
]

PLACEMENTS = ("reflink", "hardlink", "copy", "symlink")

_READONLY = 0o444


class SourceChanged(Exception):
    """A file changed while it was added to the cache."""


# ---------------------------------------------------------------------------
# Adding files


def add_file(
    runs_home: str,
    src: str,
    st: os.stat_result,
    cache: hash_cache.HashCache,
    progress: Progress | None = None,
) -> str:
    """The sha256 of `src` (stat `st`), with an intact object for it.

    Nothing is read when the digest cache knows `st` and the object's
    stat is what gage recorded. Otherwise `src` is read once, into a new
    object. Raises SourceChanged when `src` changed while it was read.
    """
    return add_files(runs_home, [(src, st)], cache, progress)[0]


def has_object(runs_home: str, digest: str, cache: hash_cache.HashCache) -> bool:
    """True when the object for `digest` is in the cache, intact (one
    whose stat gage did not record is read; changed, it is removed)."""
    return _object_ok(runs_home, digest, cache)


def add_files(
    runs_home: str,
    files: list[tuple[str, os.stat_result]],
    cache: hash_cache.HashCache,
    progress: Progress | None = None,
) -> list[str]:
    """`add_file` for many files (path, stat), in order: the digest
    cache's rows for the files and their objects are read in a few
    queries, and each directory is made once."""
    hash_cache.prefetch(cache, [(st.st_dev, st.st_ino) for _src, st in files])
    known = [hash_cache.lookup(cache, st) for _src, st in files]
    objs = _object_stats(runs_home, {d for d in known if d}, cache)
    made: set[str] = set()
    digests = []
    for (src, st), digest in zip(files, known):
        if digest is not None and _object_ok(
            runs_home, digest, cache, objs.pop(digest, None)
        ):
            if progress:
                progress.add(files=1)
        else:
            digest = _ingest(runs_home, src, st, cache, progress, made)
        digests.append(digest)
    return digests


def _object_stats(
    runs_home: str, digests: set[str], cache: hash_cache.HashCache
) -> dict[str, os.stat_result | None]:
    """The stat of each object in `digests` (None: no object), with the
    digest cache's rows for them read in a few queries."""
    found: dict[str, os.stat_result | None] = {}
    for digest in digests:
        try:
            found[digest] = os.lstat(object_path(runs_home, digest))
        except FileNotFoundError:
            found[digest] = None
    sts = [st for st in found.values() if st is not None]
    hash_cache.prefetch(cache, [(st.st_dev, st.st_ino) for st in sts])
    return found


def _object_ok(
    runs_home: str,
    digest: str,
    cache: hash_cache.HashCache,
    known: os.stat_result | None = None,
) -> bool:
    """True when the object for `digest` exists with that content.

    An object whose stat is not what gage recorded is re-hashed; one
    that no longer has its digest is removed (runs that link it keep
    their file). `known`: the object's stat, just taken.
    """
    path = object_path(runs_home, digest)
    try:
        st = known or os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        file_util.remove_file(path)  # a link or special file put there: never followed
        return False
    if hash_cache.lookup(cache, st) == digest and not st.st_mode & 0o222:
        return True
    try:
        actual = file_util.sha256_file(path)
    except OSError:
        actual = None
    if actual != digest:
        file_util.remove_file(path)
        return False
    if st.st_mode & 0o222:
        os.chmod(path, _READONLY)
    hash_cache.store(cache, os.stat(path), digest)
    return True


def _ingest(
    runs_home: str,
    src: str,
    st: os.stat_result,
    cache: hash_cache.HashCache,
    progress: Progress | None,
    made: set[str] | None = None,
) -> str:
    """Read `src` once into a new object (a small file is read whole and
    written from memory; a large one copied while hashed); the digest.
    `made`: dirs this caller has already made."""
    made = set() if made is None else made
    data = _read_small(src, st) if st.st_size < hash_cache.MIN_SIZE else None
    if data is not None:
        digest = file_util.sha256_bytes(data)
        if _object_ok(runs_home, digest, cache):
            hash_cache.store(cache, st, digest)
            if progress:
                progress.add(st.st_size, 1)
            return digest
    tmp_dir = objects_tmp_dir(runs_home)
    if tmp_dir not in made:
        os.makedirs(tmp_dir, exist_ok=True)
        made.add(tmp_dir)
    tmp = os.path.join(tmp_dir, f"{_PID[0]}-{time.time_ns()}")
    try:
        if data is None:
            digest = _copy_hashing(src, tmp, progress)
            after = os.stat(src)
            if file_util.stat_key(st) != file_util.stat_key(after):
                raise SourceChanged(src)
            os.chmod(tmp, _READONLY)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            _write_new(tmp, data, st)
            if progress:
                progress.add(len(data))
        dest = object_path(runs_home, digest)
        if os.path.dirname(dest) not in made:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            made.add(os.path.dirname(dest))
        # A small file's object was looked for just before it was
        # written (another process adding the same content meanwhile is
        # replaced by the same bytes).
        if data is None and _object_ok(runs_home, digest, cache):
            # The same content came from another file: keep the object
            # runs already share.
            file_util.remove_file(tmp)
        else:
            os.replace(tmp, dest)
            # A new inode: recorded without a lookup.
            hash_cache.record(cache, os.stat(dest), digest)
    except BaseException:
        file_util.remove_file(tmp)
        raise
    hash_cache.store(cache, st, digest)
    if progress:
        progress.add(files=1)
    return digest


# This process's id, asked once (a temp name per object); a forked
# child asks again.
_PID = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def _read_small(src: str, st: os.stat_result) -> bytes:
    """The content of a small file, read whole with plain descriptor
    calls (`file_util.read_sized`); SourceChanged when its stat is no
    longer `st` (also for what is no longer a regular file)."""
    data, after = file_util.read_sized(src, st.st_size)
    if len(data) != st.st_size or file_util.stat_key(st) != file_util.stat_key(after):
        raise SourceChanged(src)
    return data


def _write_new(path: str, data: bytes, st: os.stat_result) -> None:
    """A new read-only file with `data` and the times of `st`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, _READONLY)
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)


def _copy_hashing(src: str, dest: str, progress: Progress | None) -> str:
    """Copy `src` to a new file `dest` while hashing it (`copy_hash`)."""
    return copy_hash.copy_hashing(src, dest, progress, _reflink)


# ---------------------------------------------------------------------------
# Placing objects


def place_object(
    runs_home: str,
    digest: str,
    dest: str,
    cache: hash_cache.HashCache,
    hardlink: bool = True,
) -> str:
    """Place the object for `digest` at `dest`, a new path in a run dir.

    Returns how: `reflink`, `hardlink` or `copy`. The placed file is
    read-only with the object's mtime. `hardlink=False` never shares
    the object's inode.
    """
    return place_objects(runs_home, [(digest, dest)], cache, hardlink)[0][0]


def place_objects(
    runs_home: str,
    items: list[tuple[str, str]],
    cache: hash_cache.HashCache,
    hardlink: bool = True,
    again: Callable[[int], None] | None = None,
) -> list[tuple[str, os.stat_result]]:
    """`place_object` for many (digest, dest), in order: how each was
    placed and the placed file's stat; each dest dir's device read once.
    `again(i)`: adds the object of item `i` again when it is gone (a
    prune), and the placement is tried once more."""
    devs: dict[str, int] = {}
    obj_dev = 0
    placed = []
    for i, (digest, dest) in enumerate(items):
        obj = object_path(runs_home, digest)
        parent = os.path.dirname(dest) or "."
        if parent not in devs:
            devs[parent] = os.stat(parent).st_dev
        try:
            obj_dev = obj_dev or os.lstat(obj).st_dev
            how = _place_one(
                obj, digest, dest, cache, hardlink, (devs[parent], obj_dev)
            )
        except FileNotFoundError:
            if again is None:
                raise
            again(i)
            obj_dev = os.lstat(obj).st_dev
            how = _place_one(
                obj, digest, dest, cache, hardlink, (devs[parent], obj_dev)
            )
        placed.append(how)
    return placed


def _place_one(
    obj: str,
    digest: str,
    dest: str,
    cache: hash_cache.HashCache,
    hardlink: bool,
    devs: tuple[int, int],
) -> tuple[str, os.stat_result]:
    if devs not in _no_reflink:
        _check_regular(obj)
        if _reflink(obj, dest, devs):
            os.chmod(dest, _READONLY)
            st = os.stat(obj)
            os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
            st = os.stat(dest)
            hash_cache.record(cache, st, digest)
            return "reflink", st
    if hardlink and devs[0] not in _no_link and _link(obj, dest, devs[0]):
        # A link changes the object's ctime: record its new stat (the
        # same inode's), so the next placement need not read it; its
        # type checked here, not the object's before (one lstat).
        st = os.lstat(dest)
        if not stat.S_ISREG(st.st_mode):
            file_util.remove_file(dest)
            file_util.remove_file(obj)  # a link or special file put there: never placed
            raise FileNotFoundError(errno.ENOENT, "not a regular file", obj)
        hash_cache.record(cache, st, digest)
        return "hardlink", st
    _check_regular(obj)
    file_util.copy_file(obj, dest)
    os.chmod(dest, _READONLY)
    st = os.stat(dest)
    hash_cache.remember(dest, digest, st)
    hash_cache.store(cache, st, digest)
    return "copy", st


def _check_regular(obj: str) -> None:
    """FileNotFoundError when the object at `obj` is not a regular file
    (gone, or a link put in its place: removed, never followed)."""
    if not stat.S_ISREG(os.lstat(obj).st_mode):
        file_util.remove_file(obj)
        raise FileNotFoundError(errno.ENOENT, "not a regular file", obj)


def place_source(
    runs_home: str,
    digest: str,
    mode: int,
    dest: str,
    cache: hash_cache.HashCache,
    st: os.stat_result | None = None,
    obj: str | None = None,
) -> bool:
    """Hardlink the object for `digest` at `dest` (a new path in a run dir)
    when it exists with file mode `mode`, the mode a copy would get once
    staged; False (nothing placed) when it does not, or links fail.

    An object whose stat is not what gage recorded is read to check it
    (and removed when its content changed). The object's stat after the
    link (a link changes its ctime) is recorded, so the next placement
    reads nothing. `st` and `obj`: the object's stat and path, when the
    caller has them.
    """
    obj = obj or object_path(runs_home, digest)
    try:
        st = st or os.lstat(obj)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        file_util.remove_file(obj)
        return False
    if stat.S_IMODE(st.st_mode) != mode:
        if st.st_mode & 0o222:
            _remove_if_changed(obj, digest)  # made writable: written to?
        return False
    if hash_cache.lookup(cache, st) != digest and _remove_if_changed(obj, digest):
        return False
    if not _link(obj, dest):
        return False
    hash_cache.record(cache, os.stat(dest), digest)
    return True


def _remove_if_changed(obj: str, digest: str) -> bool:
    """Remove the object at `obj` when its content is not `digest` (runs
    that link it keep their file); True when it was removed."""
    try:
        actual = file_util.sha256_file(obj)
    except OSError:
        actual = None
    if actual == digest:
        return False
    file_util.remove_file(obj)
    return True


def source_object_stats(
    runs_home: str, digests: list[str], cache: hash_cache.HashCache
) -> dict[str, tuple[str, os.stat_result]]:
    """The paths and stats of the objects for `digests` that exist, with
    what the digest cache records of them read in a few queries."""
    found = {}
    for digest in digests:
        path = object_path(runs_home, digest)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found[digest] = (path, st)
    keys = [(st.st_dev, st.st_ino) for _path, st in found.values()]
    hash_cache.prefetch(cache, keys)
    return found


def adopt_file(
    runs_home: str, path: str, digest: str, cache: hash_cache.HashCache
) -> None:
    """Make `path`, a file just written in a run dir with content
    `digest`, the object for `digest` when there is none yet: a link (no
    data is copied), made read-only, so later runs can place it.
    Nothing happens when that is not possible."""
    obj = object_path(runs_home, digest)
    if os.path.lexists(obj):
        return
    try:
        os.makedirs(os.path.dirname(obj), exist_ok=True)
        file_util.make_readonly(path)
        if not _link(path, obj):
            return
        st = os.stat(path)
    except OSError:
        return
    hash_cache.record(cache, st, digest)


def _link(src: str, dest: str, dev: int | None = None) -> bool:
    """Hardlink `src` at `dest`; False where links fail. `dev`: the
    device of `dest`'s dir, when the caller has it."""
    if _no_link and (dev if dev is not None else _dev(dest)) in _no_link:
        return False
    try:
        os.link(src, dest, follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.EEXIST:
            raise
        if e.errno not in (errno.EMLINK, errno.ENOENT):
            # No links on this device (ENOENT: the object went, e.g. a
            # concurrent prune, and only this placement falls back).
            _no_link.add(dev if dev is not None else _dev(dest))
        return False
    return True


def _dev(path: str) -> int:
    return os.stat(os.path.dirname(path) or ".").st_dev


_no_link: set[int] = set()


def _reflink(src: str, dest: str, devs: tuple[int, int] | None = None) -> bool:
    """Clone `src` to a new file `dest` where the file system can.
    `devs`: the devices of `dest`'s dir and of `src`, when known."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    if devs is None:
        devs = (os.stat(os.path.dirname(dest) or ".").st_dev, os.stat(src).st_dev)
    if devs in _no_reflink:
        return False
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    with file_util.open_regular(src) as fsrc:
        fd = os.open(dest, flags, 0o600)
        try:
            fcntl.ioctl(fd, file_util.FICLONE, fsrc.fileno())
        except OSError:
            os.close(fd)
            os.unlink(dest)
            _no_reflink.add(devs)
            return False
        os.close(fd)
    return True


_no_reflink: set[tuple[int, int]] = set()


# ---------------------------------------------------------------------------
# Size and prune


@dataclass(frozen=True)
class CacheInfo:
    """The object cache: where, how many objects and bytes, and how many
    of them (and bytes) no run uses."""

    path: str
    objects: int
    size: int
    unused: int
    unused_size: int


def cache_info(runs_home: str) -> CacheInfo:
    objects = size = unused = unused_size = 0
    for _path, st in _objects(runs_home):
        objects += 1
        size += st.st_size
        if st.st_nlink == 1:
            unused += 1
            unused_size += st.st_size
    return CacheInfo(objects_dir(runs_home), objects, size, unused, unused_size)


def prune(runs_home: str, preview: bool = False) -> list[tuple[str, int]]:
    """Remove objects no run uses: (digest, size) of each removed.

    A run placed by hardlink shares the object's inode (link count over
    1); one placed by reflink or copy has its own file. So an object with
    link count 1 is used by no run, and removing it removes no run's
    data. Objects a live staging pinned (`pins.pin`) stay. Leftover temp
    files of a killed stager go too.
    """
    removed = []
    pinned = pins.pinned(runs_home)
    for path, st in _objects(runs_home):
        if st.st_nlink == 1:
            digest = os.path.basename(os.path.dirname(path)) + os.path.basename(path)
            if digest in pinned:
                continue  # a staging is about to place it
            removed.append((digest, st.st_size))
            if not preview:
                file_util.remove_file(path)
    if not preview:
        _clean_tmp(runs_home)
    return removed


def _objects(runs_home: str) -> Iterator[tuple[str, os.stat_result]]:
    root = os.path.join(objects_dir(runs_home), "sha256")
    try:
        subdirs = sorted(os.listdir(root))
    except FileNotFoundError:
        return
    for sub in subdirs:
        with os.scandir(os.path.join(root, sub)) as it:
            for entry in sorted(it, key=lambda e: e.name):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    yield entry.path, st


def _clean_tmp(runs_home: str, age: float = 3600.0) -> None:
    """Remove temp files older than `age` seconds (a live stager's
    temp file is younger)."""
    tmp = objects_tmp_dir(runs_home)
    try:
        entries = list(os.scandir(tmp))
    except FileNotFoundError:
        return
    now = time.time()
    for entry in entries:
        try:
            if now - entry.stat(follow_symlinks=False).st_ctime > age:
                os.unlink(entry.path)
        except OSError:
            pass
