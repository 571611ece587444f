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
the lock rather than failing, within a bound (`util.sqlite_wait`: a
line on a terminal after a second, then one warning and no cache). The cache is only an
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

`file_sha256` hashes files smaller than `MIN_SIZE` directly: a file
read for any other reason is not worth a row. Source files are recorded
whatever their size (`store(..., text=...)`): with their text verdict,
so that selecting and placing them needs no read (see `objects`); rows
are per inode, so they do not grow with the number of runs.

Writes are collected and written in one transaction when the cache is
closed (or `flush`ed): a row written per file would cost a transaction
(and a sync) per file. Until then, lookups in this process see them.

A folder of many files has a record of its own (`folder_digests`,
`store_folder`): keyed by a scope (the folder, or the patterns that
name its files, under a root) and a digest of its listing's stats
(names, device, inode, size, mtime, ctime), it holds its files'
digests in listing order, so a folder whose files all kept their stat
is decided with one lookup instead of one per file. It follows the
same rule on recent mtimes: a listing with a file modified in the last
`RACY_SECONDS` is not stored.
"""

from __future__ import annotations

import array
import itertools
import operator
import os
import sqlite3
import stat as statlib
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..util import file_util, sqlite_wait
from ..util.file_util import stat_key

__all__ = [
    "MIN_SIZE",
    "RACY_SECONDS",
    "HashCache",
    "file_digests",
    "file_sha256",
    "folder_digests",
    "listing_digest",
    "lookup",
    "lookup_text",
    "prefetch",
    "open_cache",
    "record",
    "remember",
    "remembered",
    "store",
    "store_folder",
]

MIN_SIZE = 1024 * 1024
RACY_SECONDS = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests_v3 (
  dev INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  text INTEGER,
  PRIMARY KEY (dev, ino)
);
CREATE TABLE IF NOT EXISTS folders_v1 (
  scope TEXT PRIMARY KEY,
  listing TEXT NOT NULL,
  digests TEXT NOT NULL
)
"""

# A row's text verdict stays when the same file is stored again without
# one (its stat unchanged).
_UPSERT = """
INSERT INTO digests_v3 VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (dev, ino) DO UPDATE SET
  text = COALESCE(excluded.text, CASE WHEN size = excluded.size
    AND mtime_ns = excluded.mtime_ns AND ctime_ns = excluded.ctime_ns
    THEN text END),
  size = excluded.size, mtime_ns = excluded.mtime_ns,
  ctime_ns = excluded.ctime_ns, sha256 = excluded.sha256
"""


@dataclass
class HashCache:
    """A cache handle; the database is opened when first needed.

    `db` is None until then, and stays None when the cache cannot be
    opened (`failed`), or does not exist yet (`missing`: made by the
    first write). `pending` holds rows stored but not yet written
    (see `flush`), by (dev, ino); `rows` those read (None: no row).
    """

    path: str
    db: sqlite3.Connection | None = None
    failed: bool = False
    missing: bool = False
    pending: dict[tuple[int, int], tuple[Any, ...]] = field(default_factory=dict)
    rows: dict[tuple[int, int], tuple[Any, ...] | None] = field(default_factory=dict)
    folders: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Folder records stored but not yet written, by scope."""

    def flush(self) -> None:
        """Write pending rows, in one transaction."""
        if not (self.pending or self.folders) or _db(self, create=True) is None:
            self.pending.clear()
            self.folders.clear()
            return
        assert self.db is not None
        rows = list(self.pending.values())
        folders = [(k, *v) for k, v in self.folders.items()]
        self.pending.clear()
        self.folders.clear()
        db = self.db
        try:
            sqlite_wait.call(db, self.path, lambda: _write(db, rows, folders))
        except sqlite3.Error as e:
            _gave_up(self, e)  # a cache: the next use hashes again

    def close(self) -> None:
        self.flush()
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write(
    db: sqlite3.Connection,
    rows: list[tuple[Any, ...]],
    folders: list[tuple[str, str, str]],
) -> None:
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(_UPSERT, rows)
        db.executemany("INSERT OR REPLACE INTO folders_v1 VALUES (?, ?, ?)", folders)


def _gave_up(cache: HashCache, e: Exception) -> None:
    """After a lock held past the bound: no more waits in this process's
    use of the cache, whichever handle (every later lookup would wait
    again)."""
    if isinstance(e, sqlite_wait.Locked) and cache.db is not None:
        cache.db.close()
        cache.db = None
        cache.failed = True
        _locked.add(cache.path)


def open_cache(path: str) -> HashCache:
    """The digest cache in the sqlite database at `path` (created when a
    digest is stored); a runs home's is `run_meta.hash_cache_path(home)`."""
    return HashCache(path)


def _db(cache: HashCache, create: bool = False) -> sqlite3.Connection | None:
    """The open database; None when it cannot be opened, or does not
    exist and `create` is false (a lookup never makes one)."""
    if cache.db is None and not cache.failed:
        if cache.path in _locked:  # waited for in vain once: not again
            cache.failed = True
            return None
        if not create and (cache.missing or not os.path.exists(cache.path)):
            cache.missing = True
            return None
        cache.db = _connect(cache.path)
        cache.failed = cache.db is None
    return cache.db


def _connect(path: str, again: bool = True) -> sqlite3.Connection | None:
    """The database at `path` with its table; one that holds garbage is
    made again (a cache: it is rebuilt as files are hashed)."""
    try:
        db = sqlite_wait.connect(path)
        sqlite_wait.call(db, path, lambda: db.executescript(_SCHEMA))
    except sqlite_wait.Locked:
        _locked.add(path)  # past the bound: this process does without it
        return None
    except (sqlite3.OperationalError, OSError):
        return None  # locked, unwritable: do without
    except sqlite3.DatabaseError:
        if not again:
            return None
        try:
            if db is not None:
                db.close()
            os.unlink(path)
        except OSError:
            return None
        return _connect(path, again=False)
    return db


_locked: set[str] = set()


def remember(path: str, digest: str, st: os.stat_result | None = None) -> None:
    """Remember, in this process, that the file at `path` has `digest`.

    For a file whose content was just written from bytes in memory (a
    source file copied into a run), so finalizing the run need not read
    it again. The key includes ctime, which no process can set, so any
    later change to the file (a write, a chmod, a utime) misses. `st`:
    the file's stat, when the caller has just taken it.
    """
    _memo_put(stat_key(st or os.stat(path)), digest)


def record(cache: HashCache | None, st: os.stat_result, digest: str) -> None:
    """`remember` and `store` a file this process just placed (stat `st`)
    at once: its digest is known, its text verdict is not needed."""
    key = stat_key(st)
    _memo_put(key, digest)
    if cache is None or cache.failed or not statlib.S_ISREG(st.st_mode):
        return
    if st.st_mtime_ns > time.time_ns() - int(RACY_SECONDS * 1e9):
        return
    cache.pending[key[:2]] = (*key, digest, None)


def remembered(st: os.stat_result, digest: str) -> bool:
    """True when this process recorded `digest` for a file with stat `st`
    (`remember`: gage wrote or placed it, and stored what it needs)."""
    return _memo.get(stat_key(st)) == digest


def _memo_put(key: tuple[int, int, int, int, int], digest: str) -> None:
    """Remember `digest` by `key`; when full, the oldest quarter goes (a
    file placed after it was added has a newer entry: the staging of a
    folder of 100,000 files keeps what finalizing it looks up)."""
    if len(_memo) >= _MEMO_MAX:
        for old in list(itertools.islice(_memo, _MEMO_MAX // 4)):
            del _memo[old]
    _memo[key] = digest


_memo: dict[tuple[int, int, int, int, int], str] = {}
_MEMO_MAX = 200_000


def file_sha256(
    path: str, cache: HashCache | None = None, st: os.stat_result | None = None
) -> str:
    """sha256 of the file at `path` (a symlink is followed): the one way
    gage takes a file's digest. Known in this process or (for a file of
    in `cache` by its stat: not read; else read and, when it is at least
    `MIN_SIZE` and its stat held, stored. `st`: its stat, when the caller has it."""
    st = st or os.stat(path)
    digest = _memo.get(stat_key(st))
    if digest is not None:
        return digest
    if cache is None or cache.failed:
        return file_util.sha256_file(path)
    found = _lookup(cache, st)
    if found is not None:
        return found[0]
    digest = file_util.sha256_file(path)
    if st.st_size >= MIN_SIZE and stat_key(st) == stat_key(os.stat(path)):
        _store(cache, st, digest)
    return digest


def file_digests(
    files: Sequence[tuple[str, os.stat_result | None]], cache: HashCache | None
) -> list[str]:
    """sha256 of many files (path and stat, or None: not taken; links
    followed), in order: `file_sha256` batch-wise. The cache's rows for
    them are read in a few queries (`prefetch`); a file it does not know
    is read, and its digest stored whatever its size (a dependency file
    is looked up again with every run: worth a row)."""
    stats = [st or os.stat(path) for path, st in files]
    prefetch(cache, [(st.st_dev, st.st_ino) for st in stats])
    digests = []
    for (path, _st), st in zip(files, stats):
        digest = lookup(cache, st)
        if digest is None:
            digest = file_util.sha256_file(path)
            if cache is not None and not cache.failed:
                if stat_key(st) == stat_key(os.stat(path)):
                    _store(cache, st, digest)
        digests.append(digest)
    return digests


def listing_digest(names: Sequence[str], stats: Sequence[os.stat_result]) -> str:
    """sha256 of a folder's listing: each file's name and stat identity
    (device, inode, size, mtime, ctime), in order. Any change to a
    file's content, and any file added, removed or renamed, changes it.
    The names, then the stats packed as 64-bit ints (taken in C: a
    folder of 20,000 files in a few ms; stats that do not fit, as text)."""
    import hashlib  # on use: `gage run --needed` of an op without folders

    h = hashlib.sha256("\0".join(names).encode("utf-8", "surrogateescape"))
    idents = map(_IDENT, stats)
    try:
        h.update(array.array("q", itertools.chain.from_iterable(idents)).tobytes())
    except OverflowError:
        h.update(repr(list(map(_IDENT, stats))).encode())
    return h.hexdigest()


_IDENT = operator.attrgetter(
    "st_dev", "st_ino", "st_size", "st_mtime_ns", "st_ctime_ns"
)


def folder_digests(
    cache: HashCache | None, scope: str, listing: str
) -> list[str] | None:
    """The digests of a folder's files, in listing order, as stored for
    `scope` with the listing digest `listing` (`listing_digest`); None
    when not stored or the listing differs. One query."""
    if cache is None:
        return None
    row = cache.folders.get(scope)
    if row is None:
        ok, row = _query_one(
            cache, "SELECT listing, digests FROM folders_v1 WHERE scope = ?", (scope,)
        )
        if not ok:
            return None
    if row is None or row[0] != listing or len(row[1]) % 64:
        return None
    text = row[1]
    return [text[i : i + 64] for i in range(0, len(text), 64)]


def store_folder(
    cache: HashCache | None,
    scope: str,
    listing: str,
    stats: Sequence[os.stat_result],
    digests: Sequence[str],
) -> None:
    """Record a folder's file digests for `scope` and `listing` (the
    digest of its listing, with `stats`), unless a file in it was
    modified in the last `RACY_SECONDS` (the rule `store` follows) or is
    not a regular file."""
    if cache is None or cache.failed or len(stats) != len(digests):
        return
    racy = time.time_ns() - int(RACY_SECONDS * 1e9)
    if any(st.st_mtime_ns > racy or not statlib.S_ISREG(st.st_mode) for st in stats):
        return
    cache.folders[scope] = (listing, "".join(digests))


def lookup(cache: HashCache | None, st: os.stat_result) -> str | None:
    """The digest recorded for a file with stat `st`, if any (nothing is
    read)."""
    digest = _memo.get(stat_key(st))
    if digest is not None:
        return digest
    if cache is None or cache.failed:
        return None
    found = _lookup(cache, st)
    return found[0] if found else None


def prefetch(cache: HashCache | None, keys: list[tuple[int, int]]) -> None:
    """Read the rows of many files, by (device, inode), in a few queries,
    so the lookups that follow need none. A cache another process holds
    locked is waited for once, for all of them (`sqlite_wait`), then
    given up on (later lookups do not wait)."""
    if cache is None or _db(cache) is None:
        return
    db = cache.db
    assert db is not None
    todo = [k for k in keys if k not in cache.rows and k not in cache.pending]
    if not todo:
        return
    by_dev: dict[int, list[int]] = {}
    for dev, ino in todo:
        by_dev.setdefault(dev, []).append(ino)
    found: list[tuple[Any, ...]] = []

    def read() -> None:
        found.clear()
        for dev, inos in by_dev.items():
            for i in range(0, len(inos), _PREFETCH_CHUNK):
                chunk = inos[i : i + _PREFETCH_CHUNK]
                marks = ",".join("?" * len(chunk))
                found.extend(
                    db.execute(
                        "SELECT dev, ino, size, mtime_ns, ctime_ns, sha256, text"
                        f" FROM digests_v3 WHERE dev = ? AND ino IN ({marks})",
                        (dev, *chunk),
                    ).fetchall()
                )

    try:
        sqlite_wait.call(db, cache.path, read)
    except sqlite3.Error as e:
        _gave_up(cache, e)
        return
    cache.rows.update(dict.fromkeys(todo))
    for row in found:
        cache.rows[(row[0], row[1])] = row


_PREFETCH_CHUNK = 500


def lookup_text(cache: HashCache | None, st: os.stat_result) -> bool | None:
    """Whether the file with stat `st` is text, as recorded with its
    digest (`store(..., text=)`); None when not known."""
    if cache is None or cache.failed:
        return None
    found = _lookup(cache, st)
    return found[1] if found else None


def store(
    cache: HashCache | None,
    st: os.stat_result,
    digest: str,
    extracted: bool = False,
    text: bool | None = None,
) -> None:
    """Record `digest` (and the text verdict `text`, when known) for the
    file with stat `st` (see the module's rules); the caller knows the
    file had that content with that stat.

    `extracted`: the caller wrote the file from bytes it hashed and then
    set its mtime to an earlier time (a file extracted from an archive),
    so a later write cannot leave that mtime unchanged: the rule on
    recent mtimes does not apply.
    """
    if cache is None or cache.failed:
        return
    found = _lookup(cache, st)
    if found is None or found[0] != digest or (text is not None and found[1] != text):
        _store(cache, st, digest, racy_ok=extracted, text=text)


def _query_one(cache: HashCache, sql: str, args: tuple) -> tuple[bool, Any]:
    """(True, the row or None) of a one-row query; (False, None) when the
    cache has no database or was given up on (locked past the bound)."""
    if _db(cache) is None:
        return False, None
    db = cache.db
    assert db is not None
    try:
        return True, sqlite_wait.call(
            db, cache.path, lambda: db.execute(sql, args).fetchone()
        )
    except sqlite3.Error as e:
        _gave_up(cache, e)
        return False, None


def _lookup(cache: HashCache, st: os.stat_result) -> tuple[str, bool | None] | None:
    key = (st.st_dev, st.st_ino)
    row = cache.pending.get(key)
    if row is None:
        if key in cache.rows:
            row = cache.rows[key]
        else:
            ok, row = _query_one(
                cache,
                "SELECT dev, ino, size, mtime_ns, ctime_ns, sha256, text"
                " FROM digests_v3 WHERE dev = ? AND ino = ?",
                key,
            )
            if not ok:
                return None
            cache.rows[key] = row
    if row and tuple(row[2:5]) == (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
        return row[5], (None if row[6] is None else bool(row[6]))
    return None


def _store(
    cache: HashCache,
    st: os.stat_result,
    digest: str,
    racy_ok: bool = False,
    text: bool | None = None,
) -> None:
    if not statlib.S_ISREG(st.st_mode):
        return
    if not racy_ok and st.st_mtime_ns > time.time_ns() - int(RACY_SECONDS * 1e9):
        return
    key = (st.st_dev, st.st_ino)
    if text is None:
        old = cache.pending.get(key)
        if old is not None and old[2:5] == (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            text = old[6]
    cache.pending[key] = (
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        digest,
        text,
    )
