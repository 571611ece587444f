"""The runs index: a cache of what listing and selecting runs need.

Listing 10,000 runs by reading each run's meta takes seconds. The index
keeps, per run in a runs home, the facts `gage runs` shows and selection
and `--needed` ask for (identity, op, creation time, timestamps, exit
code, signal, config, summary, input key, batch, label) in one sqlite file in the runs
home (`run_meta.runs_index_path`).

It is a cache, never the source of truth: meta is. A missing, unreadable
or older-schema index is rebuilt from meta; where it cannot be written
(a read-only runs home) it is built in memory. It is brought up to date
before every use, cheaply:

- the runs home's stat (mtime, link count, inode) is compared with the
  one recorded at the last listing: when it differs, the home is listed
  again (names only) and runs that appeared are read, runs that went
  are dropped;
- runs that are not finished are checked by their meta dir's mtime (one
  stat each) and read again when it changed;
- a finished run (stopped, and its meta settled for a few seconds) is
  final: its row is read again only when it is shown (a page of entries,
  `entry_fresh`) or when `invalidate` is called for it (`runs.label_run`
  does);
- a stat taken less than a few seconds after the change it shows is
  not trusted (file times are coarse): the next use looks again.

Writers never need the index: making, staging and running a run only
write meta. Readers update it in short transactions, so any number of
concurrent `gage` processes share it.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

from ..store import run_meta
from ..store.run_meta import META_SUFFIX
from ..util import sqlite_wait
from .index_rows import COLS, SETTLE_NS, listed_entry, read_row, row_entry
from .index_rows import STATES as STATES
from .index_rows import Entry as Entry
from .index_rows import meta_state as meta_state
from .index_rows import read_entry as read_entry
from .progress import counted

__all__ = [
    "Entry",
    "STATES",
    "count",
    "entries",
    "entry_fresh",
    "exists",
    "find",
    "invalidate",
    "meta_state",
    "numbered",
    "read_entry",
    "rebuild",
]

_SELECT = "SELECT " + ", ".join(COLS) + " FROM runs WHERE ok = 1"
_ORDER_NEWEST = " ORDER BY created DESC, id DESC"


# ---------------------------------------------------------------------------
# Queries


def entries(
    home: str,
    where: str = "",
    params: tuple[Any, ...] = (),
    limit: int | None = None,
    offset: int = 0,
) -> list[Entry]:
    """Entries newest first, optionally filtered by an SQL condition on
    the columns of `Entry` (`where`, with `params`), paged. A page
    (`limit`) is checked against meta, one stat per entry."""
    sql = _SELECT + (f" AND ({where})" if where else "") + _ORDER_NEWEST
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    with _synced(home) as db:
        if db is None:
            return []
        found = [row_entry(row) for row in db.execute(sql, params)]
        return _fresh(db, home, found) if limit is not None else found


def count(home: str, where: str = "", params: tuple[Any, ...] = ()) -> int:
    """How many entries match `where` (all when empty)."""
    sql = "SELECT count(*) FROM runs WHERE ok = 1" + (
        f" AND ({where})" if where else ""
    )
    with _synced(home) as db:
        if db is None:
            return 0
        if not where:
            return _total(db)
        return db.execute(sql, params).fetchone()[0]


def _total(db: Any) -> int:
    """How many entries are listed, without a scan of every row: sqlite
    counts a whole table from its b-tree, and rows not listed (ok = 0)
    are never final, so the unfinished index finds them."""
    rows = db.execute("SELECT count(*) FROM runs").fetchone()[0]
    unlisted = db.execute(
        "SELECT count(*) FROM runs WHERE final = 0 AND ok = 0"
    ).fetchone()[0]
    return rows - unlisted


def exists(home: str, wheres: Sequence[str]) -> list[bool]:
    """For each condition, whether an entry matches it (each query stops
    at the first), in one use of the index."""
    with _synced(home) as db:
        if db is None:
            return [False for _w in wheres]
        return [
            bool(
                db.execute(
                    f"SELECT EXISTS (SELECT 1 FROM runs WHERE ok = 1 AND ({w}))"
                ).fetchone()[0]
            )
            for w in wheres
        ]


def numbered(
    home: str,
    where: str = "",
    params: tuple[Any, ...] = (),
    limit: int | None = None,
) -> tuple[list[tuple[int, Entry]], int]:
    """Entries matching `where`, newest first, each with its number in
    the listing of all runs (1 = newest), up to `limit` (checked against
    meta, one stat each); and how many match in all.

    The numbers come from a walk of the (created, id) index in listing
    order, stopped at the last entry found: no window over every row."""
    cond = f" AND ({where})" if where else ""
    sql = _SELECT + cond + _ORDER_NEWEST
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with _synced(home) as db:
        if db is None:
            return [], 0
        found = [row_entry(row) for row in db.execute(sql, params)]
        if limit is None or len(found) < limit:
            total = len(found)
        elif not where:
            total = _total(db)
        else:
            count = "SELECT count(*) FROM runs WHERE ok = 1" + cond
            total = db.execute(count, params).fetchone()[0]
        numbers = _numbers(db, found) if where else range(1, len(found) + 1)
        by_dir = dict(zip((e.dir for e in found), numbers))
        fresh = _fresh(db, home, found) if limit is not None else found
        return [(by_dir.get(e.dir, 0), e) for e in fresh], total


def _numbers(db: Any, found: list[Entry]) -> list[int]:
    """The listing number of each of `found` (newest first): listed
    rows have `created` > 0 (rows not listed have 0), so the covering
    index gives the listing order without reading a row."""
    numbers: list[int] = []
    if not found:
        return numbers
    rows = db.execute(
        "SELECT created, id FROM runs WHERE created > 0 ORDER BY created DESC, id DESC"
    )
    keys = [(e.created, e.id) for e in found]
    for n, row in enumerate(rows, 1):
        if tuple(row) == keys[len(numbers)]:
            numbers.append(n)
            if len(numbers) == len(keys):
                break
    return numbers


def find(home: str, spec: str) -> list[Entry]:
    """Entries whose id or name is `spec`, newest first."""
    return entries(home, "id = ? OR name = ?", (spec, spec))


def entry_fresh(home: str, entry: Entry) -> Entry | None:
    """`entry` as meta has it now: read again when its meta dir changed
    since it was indexed (one stat); None when the run is gone."""
    with _synced(home, sync=False) as db:
        if db is None:
            return entry
        fresh = _fresh(db, home, [entry])
        return fresh[0] if fresh else None


def _fresh(db: Any, home: str, found: list[Entry]) -> list[Entry]:
    """`found` with entries whose meta dir changed read again, and runs
    that are gone left out."""
    if not found:
        return found
    marks = ",".join("?" * len(found))
    stored = dict(
        db.execute(
            f"SELECT dir, mtime FROM runs WHERE dir IN ({marks})",
            tuple(e.dir for e in found),
        )
    )
    result, changed = [], []
    for entry in found:
        try:
            mtime = os.stat(os.path.join(home, entry.dir + META_SUFFIX)).st_mtime_ns
        except OSError:
            continue
        if stored.get(entry.dir) == mtime:
            result.append(entry)
            continue
        values = read_row(home, entry.dir)
        changed.append(values)
        again = listed_entry(values)
        if again is not None:
            result.append(again)
    try:
        _write_rows(db, changed)
    except _sqlite_error():
        pass  # a cache: the next use reads them again
    return result


def invalidate(home: str, dir: str) -> None:
    """Read the run in `dir` again at the next use (its meta changed in
    a way its meta dir's mtime may not show, e.g. a label)."""
    with _synced(home, sync=False) as db:
        if db is not None:
            try:
                db.execute("UPDATE runs SET mtime = 0, final = 0 WHERE dir = ?", (dir,))
            except _sqlite_error():
                rebuild(home)  # not writable now: the next use reads all


def rebuild(home: str) -> None:
    """Drop the index and build it again from meta."""
    path = run_meta.runs_index_path(home)
    for p in (path, path + "-journal"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    with _synced(home):
        pass


# ---------------------------------------------------------------------------
# Open and sync


class _Synced:
    def __init__(self, home: str, sync: bool = True):
        self.home = home
        self.sync = sync
        self.db: Any = None

    def __enter__(self) -> Any:
        if not os.path.isdir(self.home):
            return None
        self.db = _open(self.home)
        if self.sync:
            path = run_meta.runs_index_path(self.home)
            try:
                sqlite_wait.call(self.db, path, lambda: _sync(self.db, self.home))
            except _sqlite_error() as e:
                self.db.close()
                self.db = _reopen_after(self.home, e)
                _sync(self.db, self.home)
        return self.db

    def __exit__(self, *exc: Any) -> None:
        if self.db is not None:
            self.db.close()


def _synced(home: str, sync: bool = True) -> _Synced:
    return _Synced(home, sync)


def _sqlite_error() -> type[Exception]:
    import sqlite3

    return sqlite3.Error


def _open(home: str) -> Any:
    """The index db of `home`: the file, made (or made again) when
    missing, unreadable or of another schema; in memory when the runs
    home cannot hold it."""
    import sqlite3

    path = run_meta.runs_index_path(home)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        db = sqlite_wait.connect(path)
        sqlite_wait.call(db, path, lambda: _init(db))
        return db
    except sqlite3.DatabaseError as e:
        return _reopen_after(home, e)
    except (OSError, sqlite3.OperationalError):
        return _memory_db()


def _reopen_after(home: str, error: Exception) -> Any:
    import sqlite3

    if isinstance(error, sqlite3.OperationalError) and (
        "locked" in str(error) or "full" in str(error)
    ):
        # Held too long by another process, or a full disk: do without.
        return _memory_db()
    path = run_meta.runs_index_path(home)
    try:
        os.unlink(path)
        db = sqlite_wait.connect(path)
        _init(db)
        return db
    except (OSError, sqlite3.Error):
        return _memory_db()


def _memory_db() -> Any:
    import sqlite3

    db = sqlite3.connect(":memory:", isolation_level=None)
    _init(db)
    return db


_DDL = (
    "CREATE TABLE runs (dir TEXT PRIMARY KEY, id TEXT, name TEXT, "
    "created INTEGER, op_ns TEXT, op TEXT, state TEXT, "
    "initialized INTEGER, staged INTEGER, started INTEGER, "
    "stopped INTEGER, exit_code INTEGER, signal TEXT, config TEXT, "
    "summary TEXT, input_key TEXT, batch TEXT, label TEXT, ok INTEGER NOT NULL, "
    "mtime INTEGER NOT NULL, final INTEGER NOT NULL)",
    "CREATE INDEX runs_created ON runs (created, id)",
    "CREATE INDEX runs_unfinished ON runs (final)",
    # (input_key, op): find_run's "no key recorded, same op" is a seek
    # too, not a scan of every run staged before keys were recorded.
    "CREATE INDEX runs_key ON runs (input_key, op)",
    # A run by id, name or their prefix (select_run) is a seek.
    "CREATE INDEX runs_id ON runs (id)",
    "CREATE INDEX runs_name ON runs (name)",
    "CREATE TABLE home (stamp TEXT)",
)


def _schema() -> int:
    """The schema's version: a checksum of its DDL (and of what a row
    holds), so any change to either rebuilds older indexes."""
    import zlib

    return zlib.crc32("\n".join(_DDL + COLS).encode()) & 0x7FFFFFFF


def _init(db: Any) -> None:
    # Room for the whole index of a large home (allocated as used): a
    # query that scans every row (--where) leaves it for the next one.
    db.execute("PRAGMA cache_size = -65536")
    schema = _schema()
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == schema:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != schema:
            db.execute("DROP TABLE IF EXISTS runs")
            db.execute("DROP TABLE IF EXISTS home")
            for statement in _DDL:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {schema}")
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _sync(db: Any, home: str) -> None:
    rows: list[tuple[Any, ...]] = []
    gone: list[str] = []
    stamp = _home_stamp(home)
    row = db.execute("SELECT stamp FROM home").fetchone()
    relisted = row is None or not stamp or row[0] != stamp
    if relisted:
        names = _list_run_dirs(home)
        known = {r[0] for r in db.execute("SELECT dir FROM runs")}
        rows.extend(_read_rows(home, sorted(names - known)))
        gone.extend(known - names)
    for dir, mtime in db.execute("SELECT dir, mtime FROM runs WHERE final = 0"):
        if dir in gone:
            continue
        try:
            now = os.stat(os.path.join(home, dir + META_SUFFIX)).st_mtime_ns
        except OSError:
            gone.append(dir)
            continue
        if now != mtime:
            rows.append(read_row(home, dir))
    if not rows and not gone and not relisted:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        _write_rows(db, rows, in_tx=True)
        db.executemany("DELETE FROM runs WHERE dir = ?", [(d,) for d in gone])
        if relisted:
            db.execute("DELETE FROM home")
            db.execute("INSERT INTO home VALUES (?)", (stamp,))
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _rollback(db: Any) -> None:
    # sqlite ends a transaction itself on some errors (a full disk).
    if db.in_transaction:
        db.execute("ROLLBACK")


_READERS = 8
"""Threads that read the meta of many runs at once (a first index
build): reading meta is waiting on the file system (open and read let
other threads run), so a few readers cut the wait, even on one core."""

_READERS_COLD = 32
"""Readers when the meta is not in the page cache: each waits on the
disk, and more of them keep more reads in flight (100,000 runs: 66 s
with 8, 32 s with 32). With the meta cached, more readers only contend
(13 s with 8, 21 s with 32): a sample of rows, read first, tells which."""

_READERS_MIN = 200
_SAMPLE = 64
_COLD_ROW_S = 0.001  # a cached row reads in about 0.15 ms


def _read_rows(home: str, dirs: list[str]) -> list[tuple[Any, ...]]:
    """Rows of runs read from meta, in the order of `dirs`, counted on a
    terminal (a first listing of many runs builds the index)."""
    if len(dirs) < _READERS_MIN:
        return [read_row(home, d) for d in counted("Indexing runs", dirs)]
    import threading

    rows: list[tuple[Any, ...]] = [()] * len(dirs)
    readers = _readers(home, dirs, rows)
    todo = (i for i in counted("Indexing runs", range(len(dirs))) if not rows[i])
    lock = threading.Lock()
    failed: list[BaseException] = []

    def read() -> None:
        while not failed:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            try:
                rows[i] = read_row(home, dirs[i])
            except BaseException as e:
                failed.append(e)

    threads = [
        threading.Thread(target=read, name="gage-index", daemon=True)
        for _ in range(readers - 1)
    ]
    for t in threads:
        t.start()
    read()
    for t in threads:
        t.join()
    if failed:
        raise failed[0]
    return rows


def _readers(home: str, dirs: list[str], rows: list[tuple[Any, ...]]) -> int:
    """How many threads read the rest: a sample of rows spread over
    `dirs` is read first (into `rows`), one at a time; rows that wait on
    the disk call for `_READERS_COLD`."""
    step = len(dirs) // _SAMPLE
    sample = range(0, step * _SAMPLE, step)
    t0 = time.perf_counter()
    for i in sample:
        rows[i] = read_row(home, dirs[i])
    cold = (time.perf_counter() - t0) / len(sample) > _COLD_ROW_S
    return _READERS_COLD if cold else _READERS


def _home_stamp(home: str) -> str:
    """The runs home's stat as text; empty (never equal) when too recent
    to trust."""
    st = os.stat(home)
    if time.time_ns() - st.st_mtime_ns < SETTLE_NS:
        return ""
    return f"{st.st_mtime_ns} {st.st_nlink} {st.st_ino}"


def _list_run_dirs(home: str) -> set[str]:
    n = len(META_SUFFIX)
    return {name[:-n] for name in os.listdir(home) if name.endswith(META_SUFFIX)}


def _write_rows(db: Any, rows: list[tuple[Any, ...]], in_tx: bool = False) -> None:
    if not rows:
        return
    sql = (
        "INSERT OR REPLACE INTO runs ("
        + ", ".join(COLS)
        + ", ok, mtime, final) VALUES ("
        + ", ".join("?" * (len(COLS) + 3))
        + ")"
    )
    if in_tx:
        db.executemany(sql, rows)
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(sql, rows)
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise
