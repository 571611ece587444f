"""File operations: copy, read-only, sha256."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
from typing import Any

__all__ = [
    "copy_file",
    "make_readonly",
    "tomllib",
    "snapshot_dir",
    "sha256_file",
    "sha256_bytes",
]

_BUF_SIZE = 1024 * 1024
_FICLONE = 0x40049409  # Linux ioctl: share extents (reflink)


def sha256_file(path: str) -> str:
    """Hex sha256 digest of a file's content."""
    with open(path, "rb") as f:
        if hasattr(hashlib, "file_digest"):  # Python 3.11+
            return hashlib.file_digest(f, "sha256").hexdigest()
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(_BUF_SIZE), b""):
            h.update(chunk)
        return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
    mode = stat.S_IMODE(st.st_mode) | stat.S_IRUSR | stat.S_IWUSR
    times = (st.st_atime_ns, st.st_mtime_ns)
    if data is None and st.st_size <= _SMALL_FILE:
        with open(src, "rb") as f:
            data = f.read()
    if data is not None:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.utime(fd, ns=times)
        finally:
            os.close(fd)
        return sha256_bytes(data)
    if st.st_dev in _no_reflink or not _try_reflink(src, dest):
        _no_reflink.add(st.st_dev)
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
    with open(src, "rb") as fsrc, open(dest, "wb") as fdest:
        try:
            fcntl.ioctl(fdest.fileno(), _FICLONE, fsrc.fileno())
        except OSError:
            return False
        return True


def make_readonly(path: str) -> None:
    """Remove write permission for everyone.

    A symlink is left alone: chmod would follow it and change the mode of
    its target, which may be a file the user's project owns.
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
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

    Symlinks are recorded, not followed. Used to find what a process added
    or changed in a run dir.
    """
    result: dict[str, tuple[int, int]] = {}
    _snapshot(root, "", result)
    return result


def _snapshot(root: str, reldir: str, result: dict[str, tuple[int, int]]) -> None:
    with os.scandir(os.path.join(root, reldir) if reldir else root) as it:
        for entry in it:
            relpath = reldir + "/" + entry.name if reldir else entry.name
            if entry.is_dir(follow_symlinks=False):
                _snapshot(root, relpath, result)
            else:
                st = entry.stat(follow_symlinks=False)
                result[relpath] = (st.st_size, st.st_mtime_ns)
