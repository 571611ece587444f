"""File operations: copy, read-only, sha256."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat

__all__ = [
    "copy_file",
    "make_readonly",
    "make_writable",
    "snapshot_dir",
    "sha256_file",
    "sha256_bytes",
]

_BUF_SIZE = 1024 * 1024
_FICLONE = 0x40049409  # Linux ioctl: share extents (reflink)


def sha256_file(path: str) -> str:
    """Hex sha256 digest of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if hasattr(hashlib, "file_digest"):
            return hashlib.file_digest(f, "sha256").hexdigest()
        for chunk in iter(lambda: f.read(_BUF_SIZE), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def copy_file(src: str, dest: str) -> None:
    """Copy content and mtime of `src` to `dest`, cheapest safe way first.

    Tries a reflink (copy-on-write clone) where the file system supports
    it, then falls back to `shutil.copyfile` (which uses `sendfile` on
    Linux). Never hardlinks: `dest` must be its own inode so changing its
    mode can never change `src`.
    """
    if not _try_reflink(src, dest):
        shutil.copyfile(src, dest)
    st = os.stat(src)
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.chmod(dest, stat.S_IMODE(st.st_mode) | stat.S_IWUSR | stat.S_IRUSR)


def _try_reflink(src: str, dest: str) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    try:
        with open(src, "rb") as fsrc, open(dest, "wb") as fdest:
            try:
                fcntl.ioctl(fdest.fileno(), _FICLONE, fsrc.fileno())
            except OSError:
                return False
            return True
    except OSError:
        return False


def make_readonly(path: str) -> None:
    """Remove write permission for everyone.

    A symlink is left alone: chmod would follow it and change the mode of
    its target, which may be a file the user's project owns.
    """
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return
    os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o222)


def make_writable(path: str) -> None:
    mode = stat.S_IMODE(os.lstat(path).st_mode)
    os.chmod(path, mode | stat.S_IWUSR)


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
