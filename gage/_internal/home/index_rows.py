"""A run's row in the runs index, read from its meta: the columns the
index keeps (`COLS`), the `Entry` a row reads as, and `meta_state`, the
one rule that turns a run's timestamps, exit code and signal into what
its meta says of it."""

from __future__ import annotations

import json
import os
import time
from typing import Any, NamedTuple

from ..store import run_meta, run_records
from ..types import Run

__all__ = [
    "COLS",
    "SETTLE_NS",
    "STATES",
    "Entry",
    "meta_state",
    "read_entry",
    "read_row",
    "row_entry",
    "listed_entry",
]

SETTLE_NS = 3_000_000_000
"""A stat this recent (ns) may miss a change in the same clock tick."""

STATES = (
    "pending",
    "staged",
    "started",
    "completed",
    "error",
    "terminated",
    "pruned",
)
"""What meta says of a run; `started` is `running` or `abandoned`,
depending on its process (see `runs.run_status`)."""

COLS = (
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


def read_entry(run_dir: str) -> Entry | None:
    """The entry of a run dir, read from its meta (no index involved);
    None when its identity cannot be read."""
    home, dir = os.path.split(run_dir)
    return listed_entry(read_row(home, dir))


def read_row(home: str, dir: str) -> tuple[Any, ...]:
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
    op_ns, op = _op(run)
    ts = {
        name_: _timestamp(run, name_)
        for name_ in ("initialized", "staged", "started", "stopped")
    }
    exit_code, signal, state = _ending(run, ts)
    created = ts["initialized"] or st.st_mtime_ns // 1000
    input_key = (
        _text(run_meta.read_input_key, run) if ts["staged"] is not None else None
    )
    final = state in ("completed", "error", "terminated", "pruned") and settled
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


def _ending(run: Run, ts: dict[str, int | None]) -> tuple[Any, Any, str]:
    """(exit code, signal, state) of a run with timestamps `ts`."""
    exit_code = _exit_code(run) if ts["stopped"] is not None else None
    signal = (
        _text(run_records.read_proc_signal, run) if ts["started"] is not None else None
    )
    state = meta_state(ts["staged"], ts["started"], ts["stopped"], exit_code, signal)
    if state == "terminated" and _text(run_records.read_pruned, run):
        state = "pruned"
    return exit_code, signal, state


def _op(run: Run) -> tuple[str | None, str | None]:
    try:
        opref = run_meta.read_opref(run)
    except (OSError, TypeError, ValueError):
        return None, None
    return opref.op_ns, opref.op_name


def _unlisted(dir: str, mtime: int) -> tuple[Any, ...]:
    values: dict[str, Any] = dict.fromkeys(COLS)
    values.update(dir=dir, id="", name="", created=0, state="pending")
    values.update(config="{}", summary="{}")
    return tuple(values[c] for c in COLS) + (0, mtime, 0)


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
    UTF-8 (surrogate escapes) is kept as its bytes (see `listed_entry`)."""
    if s is None:
        return None
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(s)
    return s


def listed_entry(values: tuple[Any, ...]) -> Entry | None:
    """The entry of a row as `read_row` gives it, None when not listed."""
    if not values[len(COLS)]:  # ok
        return None
    return row_entry(values[: len(COLS)])


def row_entry(row: Any) -> Entry:
    """An entry from a row: names kept as bytes are names again."""
    entry = Entry(*row)
    if isinstance(entry.op_ns, bytes) or isinstance(entry.op, bytes):
        entry = entry._replace(op_ns=_name(entry.op_ns), op=_name(entry.op))
    return entry


def _name(val: Any) -> Any:
    return os.fsdecode(val) if isinstance(val, bytes) else val
