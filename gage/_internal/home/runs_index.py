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

import json
import os
import time
from typing import Any, NamedTuple

from ..store import run_meta
from ..store.run_meta import META_SUFFIX
from ..types import Run
from .progress import counted

__all__ = [
    "Entry",
    "STATES",
    "count",
    "entries",
    "entry_fresh",
    "find",
    "invalidate",
    "meta_state",
    "numbered",
    "read_entry",
    "rebuild",
]

SETTLE_NS = 3_000_000_000
"""A stat this recent (ns) may miss a change in the same clock tick."""

STATES = ("pending", "staged", "started", "completed", "error", "terminated")
"""What meta says of a run; `started` is `running` or `abandoned`,
depending on its process (see `runs.run_status`)."""

_COLS = (
    "dir",
    "id",
    "name",
    "created",
    "op_ns",
    "op",
    "state",
    "initialized",
    "staged",
    "started",
    "stopped",
    "exit_code",
    "signal",
    "config",
    "summary",
    "input_key",
    "batch",
    "label",
)


class Entry(NamedTuple):
    """A run as the index knows it. `dir` is the run dir's name in the
    runs home; `config` and `summary` are JSON text."""

    dir: str
    id: str
    name: str
    created: int
    op_ns: str | None
    op: str | None
    state: str
    initialized: int | None
    staged: int | None
    started: int | None
    stopped: int | None
    exit_code: int | None
    signal: str | None
    config: str
    summary: str
    input_key: str | None
    batch: str | None
    label: str | None

    def run(self, home: str) -> Run:
        return Run(self.id, os.path.join(home, self.dir), self.name)


_SELECT = "SELECT " + ", ".join(_COLS) + " FROM runs WHERE ok = 1"
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
        found = [_row_entry(row) for row in db.execute(sql, params)]
        return _fresh(db, home, found) if limit is not None else found


def count(home: str, where: str = "", params: tuple[Any, ...] = ()) -> int:
    """How many entries match `where` (all when empty)."""
    sql = "SELECT count(*) FROM runs WHERE ok = 1" + (
        f" AND ({where})" if where else ""
    )
    with _synced(home) as db:
        if db is None:
            return 0
        return db.execute(sql, params).fetchone()[0]


def numbered(
    home: str,
    where: str = "",
    params: tuple[Any, ...] = (),
    limit: int | None = None,
) -> tuple[list[tuple[int, Entry]], int]:
    """Entries matching `where`, newest first, each with its number in
    the listing of all runs (1 = newest), up to `limit` (checked against
    meta, one stat each); and how many match in all."""
    if where:
        inner = (
            "SELECT ROW_NUMBER() OVER (ORDER BY created DESC, id DESC) AS n, "
            + ", ".join(_COLS)
            + " FROM runs WHERE ok = 1"
        )
        cond = f" WHERE {where}"
        sql = f"SELECT * FROM ({inner}){cond} ORDER BY n"
    else:  # numbers without a window over every run
        inner, cond = "", ""
        sql = "SELECT 0, " + _SELECT[len("SELECT ") :] + _ORDER_NEWEST
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with _synced(home) as db:
        if db is None:
            return [], 0
        rows = db.execute(sql, params).fetchall()
        if not where:
            rows = [(i,) + tuple(row[1:]) for i, row in enumerate(rows, 1)]
        if limit is None or len(rows) < limit:
            total = len(rows)
        elif not where:
            total = db.execute("SELECT count(*) FROM runs WHERE ok = 1").fetchone()[0]
        else:
            total = db.execute(
                f"SELECT count(*) FROM ({inner}){cond}", params
            ).fetchone()[0]
        found = [_row_entry(row[1:]) for row in rows]
        fresh = _fresh(db, home, found) if limit is not None else found
        by_dir = {e.dir: e for e in fresh}
        return [(r[0], by_dir[r[1]]) for r in rows if r[1] in by_dir], total


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
        values = _read_row(home, entry.dir)
        changed.append(values)
        again = _entry(values)
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
            with db:
                db.execute("UPDATE runs SET mtime = 0, final = 0 WHERE dir = ?", (dir,))


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
            try:
                _sync(self.db, self.home)
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
        db = sqlite3.connect(path, timeout=10, isolation_level=None)
        _init(db)
        return db
    except sqlite3.DatabaseError as e:
        return _reopen_after(home, e)
    except (OSError, sqlite3.OperationalError):
        return _memory_db()


def _reopen_after(home: str, error: Exception) -> Any:
    import sqlite3

    if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
        return _memory_db()  # another process holds it too long: do without
    path = run_meta.runs_index_path(home)
    try:
        os.unlink(path)
        db = sqlite3.connect(path, timeout=10, isolation_level=None)
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

    return zlib.crc32("\n".join(_DDL + _COLS).encode()) & 0x7FFFFFFF


def _init(db: Any) -> None:
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
        db.execute("ROLLBACK")
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
            rows.append(_read_row(home, dir))
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
        db.execute("ROLLBACK")
        raise


def _read_rows(home: str, dirs: list[str]) -> list[tuple[Any, ...]]:
    """Rows of runs read from meta, counted on a terminal (a first
    listing of many runs builds the index)."""
    return [_read_row(home, d) for d in counted("Indexing runs", dirs)]


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
        + ", ".join(_COLS)
        + ", ok, mtime, final) VALUES ("
        + ", ".join("?" * (len(_COLS) + 3))
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
        db.execute("ROLLBACK")
        raise


# ---------------------------------------------------------------------------
# Reading a run's meta


def read_entry(run_dir: str) -> Entry | None:
    """The entry of a run dir, read from its meta (no index involved);
    None when its identity cannot be read."""
    home, dir = os.path.split(run_dir)
    return _entry(_read_row(home, dir))


def _read_row(home: str, dir: str) -> tuple[Any, ...]:
    """The index row of the run in `dir`, read from its meta.

    The meta dir's mtime is taken first, so a change made while reading
    shows as a different mtime next time. A run whose identity is not
    written yet is kept as a row that is not listed (ok = 0) and looked
    at again.
    """
    run_dir = os.path.join(home, dir)
    run = Run("", run_dir, "")
    try:
        st = os.stat(run.meta_dir)
    except OSError:
        return _unlisted(dir, 0)
    settled = time.time_ns() - st.st_mtime_ns >= SETTLE_NS
    mtime = st.st_mtime_ns if settled else 0
    try:
        run_id = run_meta.read_id(run.meta_dir)
        name = run_meta.read_name(run.meta_dir)
    except (OSError, ValueError):
        return _unlisted(dir, mtime)
    op_ns: str | None = None
    op: str | None = None
    try:
        opref = run_meta.read_opref(run)
        op_ns, op = opref.op_ns, opref.op_name
    except (OSError, TypeError, ValueError):
        pass
    ts = {
        name_: _timestamp(run, name_)
        for name_ in ("initialized", "staged", "started", "stopped")
    }
    exit_code = _exit_code(run) if ts["stopped"] is not None else None
    signal = (
        _text(run_meta.read_proc_signal, run) if ts["started"] is not None else None
    )
    state = meta_state(ts["staged"], ts["started"], ts["stopped"], exit_code, signal)
    created = ts["initialized"] or st.st_mtime_ns // 1000
    input_key = (
        _text(run_meta.read_input_key, run) if ts["staged"] is not None else None
    )
    final = state in ("completed", "error", "terminated") and settled
    return (
        dir,
        run_id,
        name,
        created,
        _db_text(op_ns),
        _db_text(op),
        state,
        ts["initialized"],
        ts["staged"],
        ts["started"],
        ts["stopped"],
        exit_code,
        signal,
        _json_text(run_meta.read_config, run),
        _json_text(run_meta.read_summary, run),
        input_key,
        _text(run_meta.read_batch, run),
        _text(run_meta.read_label, run),
        1,
        mtime,
        1 if final else 0,
    )


def _unlisted(dir: str, mtime: int) -> tuple[Any, ...]:
    values: dict[str, Any] = dict.fromkeys(_COLS)
    values.update(dir=dir, id="", name="", created=0, state="pending")
    values.update(config="{}", summary="{}")
    return tuple(values[c] for c in _COLS) + (0, mtime, 0)


def meta_state(
    staged: int | None,
    started: int | None,
    stopped: int | None,
    exit_code: int | None,
    signal: str | None,
) -> str:
    """What a run's meta says of it (one of STATES): the one rule behind
    `runs.run_status`, which tells `started` runs apart by their process
    (`running` or `abandoned`)."""
    if started is None:
        return "staged" if staged is not None else "pending"
    if stopped is None:
        return "started"
    if signal or (exit_code is not None and exit_code < 0):
        return "terminated"
    return "completed" if exit_code == 0 else "error"


def _timestamp(run: Run, name: str) -> int | None:
    try:
        return run_meta.read_timestamp(run, name)
    except (OSError, ValueError):
        return None


def _exit_code(run: Run) -> int | None:
    try:
        return run_meta.read_exit_code(run)
    except (OSError, ValueError):
        return None


def _text(read: Any, run: Run) -> str | None:
    """`read(run)`, None when the meta file is not UTF-8 (MetaError)."""
    try:
        return read(run)
    except (OSError, ValueError):
        return None


def _json_text(read: Any, run: Run) -> str:
    try:
        return json.dumps(read(run), sort_keys=True)
    except (OSError, ValueError):
        return "{}"


def _db_text(s: str | None) -> str | bytes | None:
    """A name as sqlite can hold it: a project dir whose name is not
    UTF-8 (surrogate escapes) is kept as its bytes (see `_entry`)."""
    if s is None:
        return None
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(s)
    return s


def _entry(values: tuple[Any, ...]) -> Entry | None:
    if not values[len(_COLS)]:  # ok
        return None
    return _row_entry(values[: len(_COLS)])


def _row_entry(row: Any) -> Entry:
    """An entry from a row: names kept as bytes are names again."""
    entry = Entry(*row)
    if isinstance(entry.op_ns, bytes) or isinstance(entry.op, bytes):
        entry = entry._replace(op_ns=_name(entry.op_ns), op=_name(entry.op))
    return entry


def _name(val: Any) -> Any:
    return os.fsdecode(val) if isinstance(val, bytes) else val
