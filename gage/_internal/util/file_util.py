"""File operations: copy, read-only, sha256."""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import re
import stat
import sys
from typing import IO, Any, Iterator

__all__ = [
    "which",
    "remove_tree",
    "NotRegularFile",
    "copy_file",
    "is_inside",
    "path_problem",
    "make_dirs",
    "make_readonly",
    "file_kind",
    "open_regular",
    "tomllib",
    "snapshot_dir",
    "snapshot_stats",
    "walk_files",
    "sha256_file",
    "read_head",
    "remove_file",
    "read_sized",
    "sha256_bytes",
    "stat_key",
    "write_atomic",
]

_BUF_SIZE = 1024 * 1024
FICLONE = 0x40049409  # Linux ioctl: share extents (reflink)


class NotRegularFile(OSError):
    """A path that gage would read is a FIFO, device, socket or dir."""


def open_regular(path: str) -> IO[bytes]:
    """Open a regular file for reading (a link to one is followed).

    Anything else raises NotRegularFile without blocking or reading: the
    file is opened with O_NONBLOCK (so opening a FIFO does not wait for a
    writer) and its type checked with fstat before any read, so a FIFO
    or a link to `/dev/zero` never hangs gage.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, _not_regular(st), path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str) -> bytes:
    """The bytes of a regular file, as `open_regular` would read them
    (NotRegularFile for anything else, never blocking), with plain
    descriptor calls: reading the meta of many runs (a first index
    build) spends its time here, so a small file costs an open, one read
    and a close: a read that is short and not empty is a whole regular
    file (it reads short only at its end; a directory, a device, an
    empty FIFO or a full read go on to the type check; a FIFO whose
    writer left less is taken as it is, never waited on)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        try:
            data: bytes | None = os.read(fd, _FIRST_READ)
        except OSError:
            data = None  # a directory, a device that would block: see below
        if data and len(data) < _FIRST_READ:
            return data
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, _not_regular(st), path)
        if data is None:
            data = os.read(fd, _FIRST_READ)  # a regular file's read error
        if len(data) < _FIRST_READ:
            return data
        size = max(st.st_size + 1, 4096)
        chunks = [data]
        while chunk := os.read(fd, size):  # it grew since the fstat
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


_FIRST_READ = 4096  # a page: most meta files are a line


def read_sized(path: str, size: int) -> tuple[bytes, os.stat_result]:
    """Up to `size` + 1 bytes of the file at `path` in one read, and its
    fstat after the read: four calls (open, read, fstat, close), for a
    small file whose size the caller knows (a caller compares both to
    see it unchanged). Opened without blocking: a FIFO reads nothing."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        data = os.read(fd, size + 1)
        return data, os.fstat(fd)
    finally:
        os.close(fd)


def read_head(path: str, size: int) -> bytes:
    """Up to `size` bytes from the start of a regular file, as
    `open_regular` would read them (NotRegularFile for anything else,
    checked before any read), with plain descriptor calls: open, fstat,
    read, close (a type check of each of 5,000 source files)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, _not_regular(st), path)
        return os.read(fd, size)
    finally:
        os.close(fd)


def _not_regular(st: os.stat_result) -> str:
    return f"not a regular file ({file_kind(st)})"


def file_kind(st: os.stat_result) -> str:
    """A word for the type of a file: `file`, `directory`, `FIFO`, ..."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def sha256_file(path: str) -> str:
    """Hex sha256 digest of a regular file's content (see `open_regular`)."""
    import hashlib

    with open_regular(path) as f:
        if hasattr(hashlib, "file_digest"):  # Python 3.11+
            return hashlib.file_digest(f, "sha256").hexdigest()
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(_BUF_SIZE), b""):
            h.update(chunk)
        return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 digest of `data`. Small data is hashed by Python's own
    sha256: `hashlib` loads and sets up OpenSSL first (a few ms, more
    than hashing kilobytes; `gage run --needed` hashes only small data),
    which pays only for big data."""
    if len(data) < _SMALL_HASH:
        return _builtin_sha256()(data).hexdigest()
    import hashlib

    return hashlib.sha256(data).hexdigest()


_SMALL_HASH = 256 * 1024


def _builtin_sha256() -> Any:
    """Python's own sha256 (`_sha256`, `_sha2` from 3.12), else hashlib's."""
    global _sha256
    if _sha256 is None:
        for name in ("_sha2", "_sha256", "hashlib"):
            try:
                _sha256 = importlib.import_module(name).sha256
                break
            except (ImportError, AttributeError):
                continue
    return _sha256


_sha256: Any = None


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with a new file holding `data`, atomically: a temp
    file in the same directory, then a rename. The new file is a new
    inode (a link at `path` is replaced, never written through)."""
    dirname = os.path.dirname(path) or "."
    fd, tmp = _mkstemp(dirname)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _mkstemp(dirname: str) -> tuple[int, str]:
    """A new temp file in `dirname` (like tempfile.mkstemp, without
    importing tempfile: reading runs should import little)."""
    while True:
        path = os.path.join(dirname, f".tmp-{os.urandom(6).hex()}")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path
        except FileExistsError:
            continue


def stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What identifies a file's content version: device, inode, size,
    mtime and ctime (ns). ctime changes on any write, chmod or utime, and
    no process can set it back."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def copy_file(
    src: str,
    dest: str,
    st: os.stat_result | None = None,
    data: bytes | None = None,
) -> str | None:
    """Copy content, mode and mtime of `src` to a new file `dest`.

    Small files are read whole and written in one go (one open each side),
    or written from `data` when the caller has already read them; their
    sha256 is returned, computed from the bytes written. Larger files are
    cloned with a reflink (copy-on-write) where the file system supports
    it, else copied with `shutil.copyfile` (`sendfile` on Linux), and None
    is returned. Never hardlinks: `dest` is its own inode, so changing its
    mode can never change `src`. `st` is `src`'s stat when the caller has
    it.
    """
    st = st or os.stat(src)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(errno.EINVAL, _not_regular(st), src)
    mode = stat.S_IMODE(st.st_mode) | stat.S_IRUSR | stat.S_IWUSR
    times = (st.st_atime_ns, st.st_mtime_ns)
    if data is None and st.st_size <= _SMALL_FILE:
        with open_regular(src) as f:
            data = f.read()
    if data is not None:
        # A new file, never through a link: a link where a copy goes
        # (made by a hook) must not lead the write out of the run dir.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(dest, flags, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.utime(fd, ns=times)
        finally:
            os.close(fd)
        return sha256_bytes(data)
    if os.path.lexists(dest):
        raise FileExistsError(errno.EEXIST, "file exists", dest)
    if st.st_dev in _no_reflink or not _try_reflink(src, dest):
        _no_reflink.add(st.st_dev)
        import shutil  # only here: a simple run need not import it

        shutil.copyfile(src, dest)
    os.chmod(dest, mode)
    os.utime(dest, ns=times)
    return None


_SMALL_FILE = 256 * 1024
_no_reflink: set[int] = set()


def _try_reflink(src: str, dest: str) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    with open_regular(src) as fsrc, open(dest, "wb") as fdest:
        try:
            fcntl.ioctl(fdest.fileno(), FICLONE, fsrc.fileno())
        except OSError:
            return False
        return True


def path_problem(path: str) -> str | None:
    """Why a relative path from gage.toml would leave its root, or None.

    Config files, dependency globs and target paths name files inside
    the run dir (or the project or upstream run they come from): an
    absolute path, `~`, a `..` part or a NUL character is refused.
    """
    if "\0" in path:
        return "has a NUL character"
    if os.path.isabs(path) or path.startswith("~"):
        return "is absolute"
    if ".." in re.split(r"[\\/]", path):
        return "uses '..'"
    return None


def is_inside(root: str, path: str) -> bool:
    """True when writing `path` (replacing its last part) stays under
    `root`: no link among its parent dirs leads out of `root`.

    The last part is not followed: a write that replaces it (rename,
    unlink, a new file opened with O_EXCL|O_NOFOLLOW) never goes
    through a link.
    """
    real_root = os.path.realpath(root)
    parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    return parent == real_root or parent.startswith(real_root + os.sep)


def reserve_space(path: str, size: int) -> bool:
    """Hold `size` bytes of disk in a new file at `path`, freed by
    removing it; False (and no file) when the disk cannot give them."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError:
        return False
    try:
        os.posix_fallocate(fd, 0, size)  # glibc writes where unsupported
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return False
    finally:
        os.close(fd)


def make_readonly(path: str, st: os.stat_result | None = None) -> None:
    """Remove write permission for everyone.

    A symlink is left alone: chmod would follow it and change the mode of
    its target, which may be a file the user's project owns. `st`: the
    path's lstat, when the caller has just taken it.
    """
    st = st or os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o222:
        # Already read-only: a chmod would still change its ctime (a
        # hardlinked object's stat, recorded in the digest cache).
        return
    os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o222)


def tomllib() -> Any:
    """The TOML reader: `tomllib` (3.11+), else `tomli`."""
    if sys.version_info >= (3, 11):
        import tomllib as toml
    else:
        import tomli as toml
    return toml


def snapshot_dir(root: str) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) for every file and link under root.

    Symlinks are recorded, not followed; nothing is opened (a FIFO is
    only stat'ed). Used to find what a process added or changed in a run
    dir. A stack, not recursion: a tree of any depth is walked.
    """
    return {p: (st.st_size, st.st_mtime_ns) for p, st in snapshot_stats(root).items()}


def snapshot_stats(root: str) -> dict[str, os.stat_result]:
    """Relative path -> lstat of every file and link under root (see
    `snapshot_dir`)."""
    return {
        relpath: entry.stat(follow_symlinks=False)
        for relpath, entry in walk_files(root)
    }


def walk_files(
    root: str, reldir: str = "", follow_links: bool = False
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(path relative to root, entry) for every file and link under
    `root/reldir`, in no set order: the one generic tree walker.

    Directories are descended, not yielded. A symlink is yielded; with
    `follow_links`, a link to a directory is then descended too (each real
    directory once, so a link cycle ends): a caller that must refuse a
    link (one that leaves its root) raises when it is yielded, before
    anything under it is read. `file_select` keeps its own walker, which
    prunes directories by rule before descending.
    """
    seen: set[str] = set()
    stack = [reldir]
    while stack:
        rel = stack.pop()
        path = os.path.join(root, rel) if rel else root
        if follow_links:
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
        with os.scandir(path) as it:
            for entry in it:
                relpath = rel + "/" + entry.name if rel else entry.name
                if entry.is_symlink():
                    yield relpath, entry
                    if follow_links and entry.is_dir():
                        stack.append(relpath)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(relpath)
                else:
                    yield relpath, entry


def make_dirs(path: str) -> None:
    """`os.makedirs(path, exist_ok=True)` without recursion (a path may be
    deeper than Python's recursion limit)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for p in reversed(missing):
        try:
            os.mkdir(p)
        except FileExistsError:
            if not os.path.isdir(p):
                raise


def remove_file(path: str) -> None:
    """Unlink `path` (a file or link, never followed); gone already is
    fine."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remove_tree(path: str, ignore_errors: bool = False) -> None:
    """Remove a tree (or a file or link): read-only files and dirs too, a
    tree of any depth, links never followed, what another process removed
    meanwhile ignored. A failure raises GageError naming the path, unless
    `ignore_errors`."""
    import shutil  # here: most commands never remove a tree

    def onerror(func: Any, p: str, _exc: Any) -> None:
        _force_remove(func, p, ignore_errors)

    try:
        if os.path.islink(path) or not os.path.isdir(path):
            _force_remove(os.unlink, path, ignore_errors)
        else:
            shutil.rmtree(path, onerror=onerror)
    except RecursionError:
        # shutil.rmtree recurses (Python < 3.12): a tree deeper than the
        # recursion limit is removed with a stack.
        _remove_deep(path, ignore_errors)


def _remove_deep(top: str, ignore_errors: bool) -> None:
    stack = [(top, False)]
    while stack:
        path, listed = stack.pop()
        if listed or os.path.islink(path) or not os.path.isdir(path):
            _force_remove(os.rmdir if listed else os.unlink, path, ignore_errors)
            continue
        try:
            os.chmod(path, os.stat(path).st_mode | stat.S_IRWXU)
        except OSError:
            pass
        stack.append((path, True))
        stack.extend((os.path.join(path, n), False) for n in os.listdir(path))


def _force_remove(func: Any, path: str, ignore_errors: bool) -> None:
    if not os.path.lexists(path):
        return  # removed by another process meanwhile
    parent = os.path.dirname(path)
    try:
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        if not os.path.islink(path) and os.path.isdir(path):
            os.chmod(path, os.stat(path).st_mode | stat.S_IRWXU)
    except OSError:
        pass
    try:
        func(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        if not ignore_errors:
            from ..types import GageError

            raise GageError(f"cannot delete {path}: {e.strerror}", path=path) from None


def which(prog: str, path: str | None = None) -> str | None:
    """The executable `prog` names on `path` (PATH by default), as
    `shutil.which` finds it, without importing shutil on a run's path."""
    if os.sep in prog:
        return prog if os.access(prog, os.X_OK) and os.path.isfile(prog) else None
    for d in (os.environ.get("PATH", os.defpath) if path is None else path).split(
        os.pathsep
    ):
        full = os.path.join(d or ".", prog)
        if os.access(full, os.X_OK) and os.path.isfile(full):
            return full
    return None
