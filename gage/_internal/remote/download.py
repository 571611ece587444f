"""Objects from a remote into a runs home's object cache (`.objects`).

Each object is written to a new file, checked against its sha256 (a
small one from the bytes read, before anything is written; a big one
as it is written, or from the file), and only then becomes the object:
never partly visible under its name. It is written where it is used
when the caller says (`dests`: a file of a run being put together in
`.gage-pull`, read-only as a placement by hardlink leaves it) and
linked into the cache from there, one file made per object; else in
the cache's temp dir and renamed in place. An interrupted download
keeps the objects that arrived whole, so the next downloads only the
rest.

From a directory remote, one thread reads and writes (the kernel's
work of making files is the cost, and creates in one dir do not run
in parallel); from an ssh one, small objects come in one call (`sftp.cat_all`) and
are written in this thread as they arrive, while the next are read.
"""

from __future__ import annotations

import errno
import itertools
import os
import time
from typing import Any, Mapping

from ..faults import fault_point
from ..store import hash_cache, run_meta
from ..types import RemoteError
from ..util import file_util
from ..util.console import Progress
from . import layout
from .backend import SMALL, Backend, run_all

__all__ = ["ObjectMismatch", "download", "local_error", "object_error"]


class ObjectMismatch(RemoteError):
    """An object whose bytes are not its sha256 (refused on arrival)."""


def download(
    home: str,
    b: Backend,
    sizes: Mapping[str, int | None],
    progress: Progress | None = None,
    name: Any = None,
    dests: Mapping[str, str] | None = None,
) -> None:
    """Download the objects `sizes` names (digest -> size, None when not
    known) into the object cache of `home`. `dests`: digest -> a new
    path (its dir made) where that object is written and stays, linked
    as the object. `name(digest, error)`: the RemoteError to raise for
    an object that is missing or does not match (else the error as it
    is)."""
    dests = dests or {}
    tmp_dir = run_meta.objects_tmp_dir(home)
    os.makedirs(tmp_dir, exist_ok=True)
    prefix = f"pull-{os.getpid()}-{time.time_ns()}-"
    count = itertools.count()

    def fetch(digest: str, data: bytes | None = None) -> os.stat_result:
        keep = digest in dests
        dest = dests[digest] if keep else f"{tmp_dir}/{prefix}{next(count)}"
        path = layout.object_path(b, digest)
        try:
            if data is None:
                data = b.read_small(path, sizes[digest])
            if data is not None:
                st = _land_bytes(home, dest, digest, data, keep)
            else:
                st = _land_file(home, dest, digest, b.get_file(path, dest), keep)
            fault_point("remote-pull")
            return st
        except RemoteError as e:
            file_util.remove_file(dest)
            raise (name(digest, e) if name else e) from None
        except OSError as e:
            file_util.remove_file(dest)
            raise local_error(home, e) from None
        except BaseException:
            file_util.remove_file(dest)
            raise

    with hash_cache.open_cache(run_meta.hash_cache_path(home)) as cache:

        def done(digest: str, st: os.stat_result) -> None:
            hash_cache.record(cache, st, digest)
            if progress:
                progress.add(st.st_size, 1)

        rest = sorted(sizes)
        if b.pipelined:
            rest = _cat_small(b, sizes, fetch, done, name)
        # From a directory, one thread: the files are made in a run's few
        # dirs, whose creates the kernel serializes; more threads only
        # contend (5,000 small files: 0.40 s against 0.49 s, CPU 0.39 s
        # against 0.65 s with two).
        run_all(1 if b.local else b.jobs, fetch, rest, done)


def _cat_small(
    b: Backend, sizes: Mapping[str, int | None], fetch: Any, done: Any, name: Any
) -> list[str]:
    """Read the objects known to be small in one call (`sftp.cat_all`),
    each landed by `fetch(digest, data)` as it arrives; the others."""
    from .sftp import cat_all

    small = {
        layout.object_path(b, d): d
        for d in sorted(sizes)
        if 0 < (sizes[d] or 0) <= SMALL
    }

    def got(path: str, data: bytes) -> None:
        done(small[path], fetch(small[path], data))

    def named(path: str, e: BaseException) -> BaseException:
        if name and isinstance(e, RemoteError) and path in small:
            return name(small[path], e)
        return e

    cat_all(b, {p: sizes[d] or 0 for p, d in small.items()}, got, named)
    return sorted(set(sizes) - set(small.values()))


def _land_bytes(
    home: str, dest: str, digest: str, data: bytes, keep: bool
) -> os.stat_result:
    """The object for `digest` written from `data` when it is (checked
    before anything is written): a new read-only file `dest` (open,
    write, utime), made the object, its stat taken before it is
    closed."""
    actual = file_util.sha256_bytes(data)
    if actual != digest:
        raise ObjectMismatch(f"its content has sha256 {actual[:12]}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(dest, flags, 0o444)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        then = time.time_ns() - 60 * 10**9  # earlier than now: hash_cache.store
        os.utime(fd, ns=(then, then))
        _make_object(home, dest, digest, keep)
        return os.fstat(fd)  # after the link or rename: its ctime
    finally:
        os.close(fd)


def _land_file(
    home: str, dest: str, digest: str, actual: str | None, keep: bool
) -> os.stat_result:
    """Make the downloaded file `dest` the object for `digest` when it
    is; its stat. `actual`: the sha256 of its bytes when the download
    computed it as it wrote them (else the file is read)."""
    actual = actual or file_util.sha256_file(dest)
    if actual != digest:
        raise ObjectMismatch(f"its content has sha256 {actual[:12]}")
    os.chmod(dest, 0o444)
    then = time.time() - 60  # earlier than now: see hash_cache.store
    os.utime(dest, (then, then))
    _make_object(home, dest, digest, keep)
    return os.stat(dest if keep else run_meta.object_path(home, digest))


def _make_object(home: str, path: str, digest: str, keep: bool) -> None:
    """Make the file `path` the object for `digest`: linked in the cache
    (`keep`: the file stays where it is; one the cache has already, or
    a cache that takes no link, is left alone or gets a copy) or
    renamed there."""
    obj = run_meta.object_path(home, digest)
    parent = os.path.dirname(obj)
    if parent not in _made:
        os.makedirs(parent, exist_ok=True)
        _made.add(parent)
    try:
        _place(home, path, obj, keep)
    except FileNotFoundError:
        # Its dir went since this process made it (a cache prune, in a
        # process that pulls more than once): made again, once.
        os.makedirs(parent, exist_ok=True)
        _place(home, path, obj, keep)


def _place(home: str, path: str, obj: str, keep: bool) -> None:
    if not keep:
        os.replace(path, obj)
        return
    try:
        os.link(path, obj, follow_symlinks=False)
    except FileExistsError:
        pass  # another pull was first: the same bytes
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        tmp = f"{run_meta.objects_tmp_dir(home)}/copy-{os.getpid()}-{time.time_ns()}"
        file_util.copy_file(path, tmp)
        os.replace(tmp, obj)


_made: set[str] = set()  # object cache dirs made by this process


_REPAIR = "'gage push --force {}' from a runs home that has it repairs it"


def object_error(
    b: Backend, digest: str, entry: dict | None, e: RemoteError
) -> RemoteError:
    """The one line for object `digest` of the run of `entry` that is
    missing on the remote or does not match (else `e` as it is)."""
    what = "meta" if entry and digest == entry["meta"] else None
    if entry and not what:
        what = next((f[0] for f in entry["files"] if f[1] == digest), None)
    run = f"run {entry['name']} ({entry['id']})" if entry else "a run"
    of = f"object {digest[:12]} ({what}) of {run}"
    if isinstance(e, ObjectMismatch):
        return RemoteError(
            f"{b.label}: {of} does not match its sha256 ({e}): refused; "
            f"{_REPAIR.format(entry['name'] if entry else 'RUN')}",
            run=entry["id"] if entry else None,
        )
    if "not found" in str(e):
        return RemoteError(
            f"{b.label}: {of} is missing: "
            f"{_REPAIR.format(entry['name'] if entry else 'RUN')}",
            run=entry["id"] if entry else None,
        )
    return e


def local_error(home: str, e: OSError) -> RemoteError:
    if e.errno == errno.ENOSPC:
        return RemoteError(
            f"no space left in runs home {home}: free space and pull again"
        )
    return RemoteError(f"cannot write in runs home {home}: {e.strerror}: {e.filename}")
