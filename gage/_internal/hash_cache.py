"""A cache of file sha256 digests, keyed by device, inode, size, mtime, ctime.

Hashing a large data file every time a run is staged costs seconds per
GiB. The cache remembers the digest of a file by its stat identity: when
device, inode, size, mtime and ctime (ns) are the same as when it was
hashed, the file has not changed and the digest is reused. ctime is in
the key because no process can set it: an in-place edit that keeps the
size and restores mtime (`touch -d`, `os.utime`) still changes ctime.

The cache is a small sqlite3 database whose path the caller gives (a
runs home's is `run_meta.hash_cache_path(home)`: this module knows no
meta layout). sqlite serializes writers across processes, so
concurrent stagings share it safely; a writer waits for
the lock (busy timeout) rather than failing. The cache is only an
optimisation: when it cannot be opened or read (read-only runs home,
corrupt file) files are hashed as if it were empty.

Two rules keep a cached digest honest:

- A digest is stored only when the file's stat is the same after
  hashing as before, so a file written while it was read is not cached.
- A digest is not stored for a file modified in the last
  `RACY_SECONDS`: file systems record mtime at a coarse granularity, so
  a write right after hashing could leave mtime unchanged. (Not for a
  file extracted from an archive with an earlier mtime set after it was
  written, `store(..., extracted=True)`: a later write sets mtime anew.)

Files smaller than `MIN_SIZE` are hashed directly: a lookup costs about
as much as hashing them.
"""

from __future__ import annotations

import os
import sqlite3
import stat as statlib
import time

from dataclasses import dataclass

from . import file_util
from .file_util import stat_key

__all__ = [
    "MIN_SIZE",
    "RACY_SECONDS",
    "HashCache",
    "file_sha256",
    "lookup",
    "open_cache",
    "remember",
    "store",
    "store_copy",
]

MIN_SIZE = 1024 * 1024
RACY_SECONDS = 1.0
_BUSY_TIMEOUT = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests_v2 (
  dev INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  PRIMARY KEY (dev, ino)
)
"""


@dataclass
class HashCache:
    """A cache handle; the database is opened when first needed.

    `db` is None until then, and stays None when the cache cannot be
    opened (`failed`).
    """

    path: str
    db: sqlite3.Connection | None = None
    failed: bool = False

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_cache(path: str) -> HashCache:
    """The digest cache in the sqlite database at `path` (created when a
    digest is stored); a runs home's is `run_meta.hash_cache_path(home)`."""
    return HashCache(path)


def _db(cache: HashCache) -> sqlite3.Connection | None:
    if cache.db is None and not cache.failed:
        try:
            db = sqlite3.connect(
                cache.path, timeout=_BUSY_TIMEOUT, isolation_level=None
            )
            db.execute(_SCHEMA)
        except (sqlite3.Error, OSError):
            cache.failed = True
        else:
            cache.db = db
    return cache.db


def remember(path: str, digest: str) -> None:
    """Remember, in this process, that the file at `path` has `digest`.

    For a file whose content was just written from bytes in memory (a
    source file copied into a run), so finalizing the run need not read
    it again. The key includes ctime, which no process can set, so any
    later change to the file (a write, a chmod, a utime) misses.
    """
    if len(_memo) >= _MEMO_MAX:
        _memo.clear()
    _memo[stat_key(os.stat(path))] = digest


_memo: dict[tuple[int, int, int, int, int], str] = {}
_MEMO_MAX = 200_000


def file_sha256(path: str, cache: HashCache | None = None) -> str:
    """sha256 of the file at `path` (a symlink is followed), cached."""
    st = os.stat(path)
    digest = _memo.get(stat_key(st))
    if digest is not None:
        return digest
    if cache is None or st.st_size < MIN_SIZE or _db(cache) is None:
        return file_util.sha256_file(path)
    digest = _lookup(cache, st)
    if digest is not None:
        return digest
    digest = file_util.sha256_file(path)
    if stat_key(st) == stat_key(os.stat(path)):
        _store(cache, st, digest)
    return digest


def store_copy(
    cache: HashCache | None,
    src_before: os.stat_result,
    src_after: os.stat_result,
    dest: str,
    digest: str,
) -> None:
    """Record `digest` for `dest`, a copy of a file whose digest it is.

    Stored only when the source did not change while it was copied
    (same stat before and after), so the copy has the same content.
    """
    if (
        cache is None
        or stat_key(src_before) != stat_key(src_after)
        or _db(cache) is None
    ):
        return
    st = os.stat(dest)
    if st.st_size >= MIN_SIZE and st.st_size == src_after.st_size:
        _store(cache, st, digest)


def lookup(cache: HashCache | None, st: os.stat_result) -> str | None:
    """The digest recorded for a file with stat `st`, if any (nothing is
    read): for files of at least `MIN_SIZE`."""
    digest = _memo.get(stat_key(st))
    if digest is not None:
        return digest
    if cache is None or st.st_size < MIN_SIZE or _db(cache) is None:
        return None
    return _lookup(cache, st)


def store(
    cache: HashCache | None, st: os.stat_result, digest: str, extracted: bool = False
) -> None:
    """Record `digest` for the file with stat `st` (see the module's rules);
    the caller knows the file had that content with that stat.

    `extracted`: the caller wrote the file from bytes it hashed and then
    set its mtime to an earlier time (a file extracted from an archive),
    so a later write cannot leave that mtime unchanged: the rule on
    recent mtimes does not apply.
    """
    if cache is None or st.st_size < MIN_SIZE or _db(cache) is None:
        return
    if _lookup(cache, st) != digest:
        # A write is a transaction (and a sync): only when it changes.
        _store(cache, st, digest, racy_ok=extracted)


def _lookup(cache: HashCache, st: os.stat_result) -> str | None:
    assert cache.db is not None
    try:
        row = cache.db.execute(
            "SELECT size, mtime_ns, ctime_ns, sha256 FROM digests_v2"
            " WHERE dev = ? AND ino = ?",
            (st.st_dev, st.st_ino),
        ).fetchone()
    except sqlite3.Error:
        return None
    if row and tuple(row[:3]) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
        return row[3]
    return None


def _store(
    cache: HashCache, st: os.stat_result, digest: str, racy_ok: bool = False
) -> None:
    assert cache.db is not None
    if not statlib.S_ISREG(st.st_mode):
        return
    if not racy_ok and st.st_mtime_ns > time.time_ns() - int(RACY_SECONDS * 1e9):
        return
    try:
        cache.db.execute(
            "INSERT OR REPLACE INTO digests_v2 VALUES (?, ?, ?, ?, ?, ?)",
            (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest),
        )
    except sqlite3.Error:
        pass
