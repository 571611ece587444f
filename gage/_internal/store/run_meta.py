"""The run meta directory format.

This is the only module that knows the names and encodings of files in
a run's meta directory (`<run_dir>.meta`). Everything else reads and
writes meta through these functions.

Writes are atomic (temp file + rename). Files that are final are made
read-only. Logs (`log/runner`, `log/files`) are appended to.

Line formats (`opref`, `log/files`, `manifest`) hold any op name and any
path: a field that is empty, starts with `"`, has a control character
(a newline, a tab, ...), a line separator, bytes that are not UTF-8 (as
Python's surrogate escapes) or, in `opref`, a space, is written as a
JSON string (`"my proj"`, `"new\nline.txt"`, `"bad\\udcffname"`);
every other field is written as is. Reading undoes it exactly, so a
path read back is the path that was written.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import stat
import time
from typing import Any, Iterable, NamedTuple

from ..types import META_SUFFIX, MetaError, OpCmd, OpDef, OpRef, Run
from ..util import file_util

__all__ = [
    "META_SUFFIX",
    "SCHEMA",
    "FileEvent",
    "ManifestEntry",
    "append_files_log",
    "append_manifest",
    "format_timestamp",
    "read_batch",
    "read_config",
    "read_deps",
    "read_exit_code",
    "read_files_log",
    "read_id",
    "read_input_key",
    "read_inputs",
    "read_label",
    "read_manifest",
    "read_name",
    "read_opdef",
    "read_opref",
    "read_proc_cmd",
    "read_proc_env",
    "read_summary",
    "read_timestamp",
    "quote_path",
    "has_timestamp",
    "run_meta_dir",
    "run_meta_path",
    "runner_log",
    "timestamp",
    "write_batch",
    "write_config",
    "write_deps",
    "write_exit_code",
    "write_id",
    "write_inputs",
    "write_label",
    "write_manifest",
    "write_name",
    "write_opdef",
    "write_opref",
    "patched_path",
    "write_patched",
    "write_proc_cmd",
    "write_proc_env",
    "write_schema",
    "write_summary",
    "write_timestamp",
    "write_user_attrs",
    "output_paths",
    "read_output_tail",
    "lock_path",
    "proc_lock_path",
    "hash_cache_path",
    "runs_index_path",
    "object_path",
    "objects_dir",
    "objects_tmp_dir",
    "manifest_path",
    "ProcLock",
    "write_proc_lock",
    "read_proc_lock",
    "delete_proc_lock",
    "write_proc_signal",
    "read_proc_signal",
    "SEALED_META",
    "RUN_RECORD_META",
    "Seal",
    "meta_file_path",
    "write_seal",
    "read_seal",
    "seal_path",
    "read_manifest_bytes",
    "write_stager",
    "read_stager",
    "delete_stager",
    "TRASH_DIR",
    "trash_dir",
    "write_worker",
    "read_worker",
]

SCHEMA = "1"

_OUTPUT_PHASES = {
    "sourcecode": "10_sourcecode",
    "runtime": "20_runtime",
    "dependencies": "30_dependencies",
    "run": "40_run",
    "finalize": "50_finalize",
}


class FileEvent(NamedTuple):
    """A `log/files` line: event (a|m|d), type (s|r|d|g), mtime, path.

    `placed` says how a dependency file was placed (reflink, hardlink,
    copy, symlink); the line's type reads `d:hardlink` then.
    """

    event: str
    type: str
    mtime: int
    path: str
    placed: str | None = None


class ManifestEntry(NamedTuple):
    """A `manifest` line: type, sha256, path."""

    type: str
    sha256: str
    path: str


# ---------------------------------------------------------------------------
# Paths


def run_meta_dir(run: Run) -> str:
    return run.meta_dir


def run_meta_path(run: Run, *parts: str) -> str:
    return os.path.join(run.meta_dir, *parts)


def output_paths(run: Run, phase: str) -> tuple[str, str]:
    """Output file and its index for a phase (`run`, `runtime`, ...)."""
    path = run_meta_path(run, "output", _OUTPUT_PHASES[phase])
    return path, path + ".index"


OUTPUT_TAIL_BYTES = 64 * 1024
OUTPUT_LINE_CHARS = 500


def read_output_tail(
    run: Run,
    phase: str = "run",
    lines: int = 10,
    max_bytes: int = OUTPUT_TAIL_BYTES,
    max_chars: int = OUTPUT_LINE_CHARS,
) -> list[str]:
    """The last `lines` lines of a phase's output, read from the end.

    At most `max_bytes` are read, whatever the output's size. A line
    longer than `max_chars` is cut with a marker saying how much is not
    shown; a last line that began before the bytes read shows its end,
    after `[...]`. [] when there is no output.
    """
    path = output_paths(run, phase)[0]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - max_bytes)
        f.seek(start)
        data = f.read(max_bytes)
    parts = data.decode("utf-8", errors="replace").splitlines()
    cut_first = start > 0
    if cut_first and len(parts) > 1:
        parts.pop(0)  # the end of a line that began earlier
        cut_first = False
    tail = parts[-lines:] if lines > 0 else []
    result = []
    for i, line in enumerate(tail):
        if cut_first and i == 0:
            line = "[...] " + line[-max_chars:]
        elif len(line) > max_chars:
            line = line[:max_chars] + f" [... {len(line) - max_chars} more chars]"
        result.append(line)
    return result


def lock_path(run: Run) -> str:
    """Path of the file lock that serializes starting a run."""
    return run_meta_path(run, "proc", ".lock")


def proc_lock_path(run: Run) -> str:
    """Path of `proc/lock`, which holds the pid of a running run."""
    return run_meta_path(run, "proc", "lock")


def hash_cache_path(runs_home: str) -> str:
    return os.path.join(runs_home, ".gage-hash-cache.sqlite3")


def runs_index_path(runs_home: str) -> str:
    """The runs index (`runs_index`): a cache in its own dir, so that
    writing it does not change the runs home's mtime, which tells the
    index that runs came or went."""
    return os.path.join(runs_home, ".gage-index", "runs.sqlite3")


OBJECTS_DIR = ".objects"


def objects_dir(runs_home: str) -> str:
    """The object cache of a runs home (never listed as runs)."""
    return os.path.join(runs_home, OBJECTS_DIR)


def object_path(runs_home: str, digest: str) -> str:
    """Where the object with sha256 `digest` is: `sha256/ab/cdef...`."""
    return f"{runs_home}/{OBJECTS_DIR}/sha256/{digest[:2]}/{digest[2:]}"


def objects_tmp_dir(runs_home: str) -> str:
    """Where objects are written before they are renamed into place."""
    return os.path.join(runs_home, OBJECTS_DIR, "tmp")


def manifest_path(run: Run) -> str:
    """Path of the run manifest (its digest identifies a run's inputs)."""
    return run_meta_path(run, "manifest")


# ---------------------------------------------------------------------------
# Time


def timestamp() -> int:
    """Microseconds since the epoch."""
    return time.time_ns() // 1000


def format_timestamp(ts: int) -> str:
    """ISO 8601 in UTC with milliseconds, as used in `log/runner`."""
    dt = datetime.datetime.fromtimestamp(ts / 1_000_000, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def write_timestamp(run: Run, name: str, ts: int | None = None) -> int:
    """Write a timestamp file (`initialized`, `staged`, `started`, `stopped`)."""
    ts = timestamp() if ts is None else ts
    _write(run_meta_path(run, name), f"{ts}\n", readonly=True)
    return ts


def read_timestamp(run: Run, name: str) -> int | None:
    """A timestamp, None when not written; MetaError when not a number."""
    try:
        return _int(run_meta_path(run, name))
    except FileNotFoundError:
        return None


def has_timestamp(run: Run, name: str) -> bool:
    """Whether a timestamp file is written (whatever it holds): what a
    run's status is derived from, so one garbage file cannot hide it."""
    return os.path.lexists(run_meta_path(run, name))


# ---------------------------------------------------------------------------
# Identity and op


def write_schema(run: Run) -> None:
    _write(run_meta_path(run, "__schema__"), SCHEMA + "\n", readonly=True)


def write_id(run: Run) -> None:
    _write(run_meta_path(run, "id"), run.id + "\n", readonly=True)


def read_id(run_or_meta_dir: Run | str) -> str:
    return _read(_path(run_or_meta_dir, "id")).strip()


def write_name(run: Run) -> None:
    _write(run_meta_path(run, "name"), run.name + "\n", readonly=True)


def read_name(run_or_meta_dir: Run | str) -> str:
    return _read(_path(run_or_meta_dir, "name")).strip()


def write_opref(run: Run, opref: OpRef) -> None:
    """`opref`: `<ns> <name> [<version>]`, each field quoted when needed
    (a project dir `my proj` is `"my proj"`)."""
    parts = [opref.op_ns, opref.op_name] + (
        [opref.op_version] if opref.op_version else []
    )
    text = " ".join(_quote(p, space=True) for p in parts)
    _write(run_meta_path(run, "opref"), text + "\n", readonly=True)


def read_opref(run: Run) -> OpRef:
    """The run's op; ValueError when `opref` is not two or three fields."""
    path = run_meta_path(run, "opref")
    text = _read(path)
    try:
        parts = _split_fields(text.rstrip("\n"))
    except ValueError:
        parts = []
    if len(parts) not in (2, 3):
        raise MetaError(f"{path}: expected '<namespace> <op> [<version>]'", path=path)
    return OpRef(*parts)


def write_opdef(run: Run, opdef: OpDef) -> None:
    data = {"name": opdef.name, "data": opdef.data}
    _write_json(run_meta_path(run, "opdef.json"), data, readonly=True)


def read_opdef(run: Run) -> OpDef:
    data = _read_json(run_meta_path(run, "opdef.json"))
    return OpDef(data["name"], data["data"])


def write_config(run: Run, config: dict[str, Any]) -> None:
    _write_json(run_meta_path(run, "config.json"), config, readonly=True)


def read_config(run: Run) -> dict[str, Any]:
    try:
        return _read_json(run_meta_path(run, "config.json"))
    except FileNotFoundError:
        return {}


def write_user_attrs(run: Run, attrs: dict[str, Any]) -> None:
    _write_json(run_meta_path(run, "user.json"), attrs)


def write_label(run: Run, label: str | None) -> None:
    """Set (or with None, clear) a run's `label`: one line of text the
    user gives a run at any time (`gage runs label`)."""
    path = run_meta_path(run, "label")
    if label is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    _write(path, label + "\n")


def read_label(run: Run) -> str | None:
    try:
        return _read(run_meta_path(run, "label")).strip() or None
    except FileNotFoundError:
        return None


def write_proc_cmd(run: Run, cmd: OpCmd) -> None:
    _write_json(run_meta_path(run, "proc", "cmd"), list(cmd.args), readonly=True)


def read_proc_cmd(run: Run) -> list[str]:
    return _read_json(run_meta_path(run, "proc", "cmd"))


def write_proc_env(run: Run, cmd: OpCmd) -> None:
    _write_json(run_meta_path(run, "proc", "env"), dict(cmd.env), readonly=True)


def read_proc_env(run: Run) -> dict[str, str]:
    return _read_json(run_meta_path(run, "proc", "env"))


# ---------------------------------------------------------------------------
# Runner log


class _RunnerLog:
    def __init__(self, path: str):
        self.path = path

    def info(self, msg: str, *args: Any) -> None:
        if args:
            msg = msg % args
        ts = format_timestamp(timestamp())
        lines = msg.split("\n")
        text = f"{ts} {lines[0]}\n" + "".join(f"  {line}\n" for line in lines[1:])
        # A message may name a path that is not UTF-8: escaped, not an error.
        _append(self.path, text, errors="backslashreplace")

    warning = info
    error = info


def runner_log(run: Run) -> _RunnerLog:
    """A logger that appends `<timestamp> <message>` lines to `log/runner`."""
    return _RunnerLog(run_meta_path(run, "log", "runner"))


# ---------------------------------------------------------------------------
# Files log and manifest


def append_files_log(run: Run, events: Iterable[FileEvent]) -> None:
    text = "".join(
        f"{e.event} {e.type}{':' + e.placed if e.placed else ''} {e.mtime} "
        f"{_quote(e.path)}\n"
        for e in events
    )
    _append(run_meta_path(run, "log", "files"), text)


def read_files_log(run: Run) -> list[FileEvent]:
    """Events of `log/files`; ValueError naming the file and line for a
    line that is not an event."""
    path = run_meta_path(run, "log", "files")
    try:
        text = _read(path)
    except FileNotFoundError:
        return []
    events = []
    for n, line in _lines(text):
        try:
            event, type, mtime, rest = line.split(" ", 3)
            type, _, placed = type.partition(":")
            events.append(
                FileEvent(event, type, int(mtime), _unquote(rest), placed or None)
            )
        except ValueError:
            raise MetaError(
                f"{path}:{n}: not a file event: {line[:60]!r}", path=path
            ) from None
    return events


def write_manifest(run: Run, entries: Iterable[ManifestEntry]) -> None:
    _write(run_meta_path(run, "manifest"), _manifest_text(entries), readonly=True)


def append_manifest(run: Run, entries: Iterable[ManifestEntry]) -> None:
    """Add entries to the manifest: rewritten whole (atomic, read-only).

    The seal covers the manifest as it was staged (its first bytes); the
    entries added here follow them.
    """
    path = run_meta_path(run, "manifest")
    with open(path, "rb") as f:
        staged = f.read()
    _write_bytes(path, staged + _manifest_text(entries).encode("utf-8"), True)


def _manifest_text(entries: Iterable[ManifestEntry]) -> str:
    return "".join(f"{e.type} {e.sha256} {_quote(e.path)}\n" for e in entries)


def read_manifest(run: Run) -> list[ManifestEntry]:
    """Entries of the manifest; ValueError naming the file and line for a
    line that is not an entry (`gage check` reports it)."""
    path = run_meta_path(run, "manifest")
    # A manifest is written whole (a new inode) or appended: the same
    # stat is the same content, parsed once per process.
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    known = _manifests.get(path)
    if known and known[0] == key:
        return list(known[1])
    try:
        text = _read(path)
    except FileNotFoundError:
        return []
    entries = []
    for n, line in _lines(text):
        try:
            type, digest, rest = line.split(" ", 2)
            if len(digest) != 64:
                raise ValueError(digest)
            entries.append(ManifestEntry(type, digest, _unquote(rest)))
        except ValueError:
            raise MetaError(
                f"{path}:{n}: not a manifest entry: {line[:60]!r}", path=path
            ) from None
    if len(entries) >= 1000:
        _manifests.clear()  # the last large one only
        _manifests[path] = (key, entries)
    return list(entries)


_manifests: dict[str, tuple[Any, list[ManifestEntry]]] = {}


def read_manifest_bytes(run: Run) -> bytes:
    with open(run_meta_path(run, "manifest"), "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# Seal

SEALED_META = (
    "__schema__",
    "id",
    "name",
    "opref",
    "opdef.json",
    "config.json",
    "proc/cmd",
    "proc/env",
    "deps.json",
    "inputs.json",
    "input_key",
    "manifest",
)
"""Meta files that decide what a run is and what it runs.

Their digests are recorded in `seal` at the end of staging; a staged run
whose sealed meta differs is refused at start. `manifest` is sealed as
staged: entries for generated files are added after its sealed bytes.
"""


RUN_RECORD_META = (
    "stopped",
    "exit_code",
    "proc/signal",
    "summary.json",
    "output/40_run",
    "output/40_run.index",
    "output/50_finalize",
    "output/50_finalize.index",
)
"""Meta files that only starting a run writes: a run that has not
started has none of them (one planted there would become its record)."""


class Seal(NamedTuple):
    """`seal`: what a staged run's meta and file modes were.

    `meta`: sealed meta name -> (sha256, size), or None when the file was
    absent (`config.json` of a run without config). `modes`: run dir path
    -> mode (`0555`) or `link`, for staged files that are not read-only
    regular files with mode 0444 (the usual case is not listed).
    """

    meta: dict[str, tuple[str, int] | None]
    modes: dict[str, str]


def meta_file_path(run: Run, name: str) -> str:
    """Path of a sealed meta file (a name in SEALED_META)."""
    return run_meta_path(run, *name.split("/"))


def write_seal(run: Run, seal: Seal) -> None:
    """Write `seal`: `meta <sha256> <size> <name>` (`meta - - <name>` for an
    absent file), then `mode <mode> <path>` lines; read-only."""
    lines = []
    for name, val in seal.meta.items():
        digest, size = (val[0], str(val[1])) if val else ("-", "-")
        lines.append(f"meta {digest} {size} {name}\n")
    for path, mode in sorted(seal.modes.items()):
        lines.append(f"mode {mode} {path}\n")
    _write(run_meta_path(run, "seal"), "".join(lines), readonly=True)


def seal_path(run: Run) -> str:
    return run_meta_path(run, "seal")


def read_seal(run: Run) -> Seal | None:
    """The run's seal, None when it has none. ValueError when unreadable."""
    try:
        text = _read(run_meta_path(run, "seal"))
    except FileNotFoundError:
        return None
    meta: dict[str, tuple[str, int] | None] = {}
    modes: dict[str, str] = {}
    lines = text.split("\n")
    if lines.pop() != "":
        raise ValueError("seal does not end with a newline")
    for line in lines:
        kind, rest = line.split(" ", 1)
        if kind == "meta":
            digest, size, name = rest.split(" ", 2)
            meta[name] = None if digest == "-" else (digest, int(size))
        elif kind == "mode":
            mode, path = rest.split(" ", 1)
            modes[path] = mode
        else:
            raise ValueError(f"unknown seal line: {line!r}")
    return Seal(meta, modes)


# ---------------------------------------------------------------------------
# Stager


def write_stager(run: Run, pid: int, start_time: int | None) -> None:
    """Write `proc/stager` (`<pid> <start time or ->`): the process that
    stages the run. Removed when staging completes."""
    start = "-" if start_time is None else str(start_time)
    _write(run_meta_path(run, "proc", "stager"), f"{pid} {start}\n")


def read_stager(run: Run) -> ProcLock | None:
    return _read_pid_file(run_meta_path(run, "proc", "stager"))


def delete_stager(run: Run) -> None:
    try:
        os.unlink(run_meta_path(run, "proc", "stager"))
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------
# Trash

TRASH_DIR = ".trash"


def trash_dir(runs_home: str) -> str:
    """Where runs being deleted go first (never listed as runs)."""
    return os.path.join(runs_home, TRASH_DIR)


# ---------------------------------------------------------------------------
# Process lock and signal


class ProcLock(NamedTuple):
    """`proc/lock`: the runner's pid and process start time (None if unknown)."""

    pid: int
    start_time: int | None


def write_proc_lock(run: Run, pid: int, start_time: int | None) -> None:
    """Write `proc/lock` as `<pid> <start time or ->`."""
    start = "-" if start_time is None else str(start_time)
    _write(proc_lock_path(run), f"{pid} {start}\n")


def read_proc_lock(run: Run) -> ProcLock | None:
    return _read_pid_file(proc_lock_path(run))


def _read_pid_file(path: str) -> ProcLock | None:
    try:
        parts = _read(path).split()
    except FileNotFoundError:
        return None
    try:
        pid = int(parts[0])
    except (IndexError, ValueError):
        return None
    start = parts[1] if len(parts) > 1 else "-"
    try:
        return ProcLock(pid, None if start == "-" else int(start))
    except ValueError:
        return ProcLock(pid, None)


def delete_proc_lock(run: Run) -> None:
    try:
        os.unlink(proc_lock_path(run))
    except FileNotFoundError:
        pass


def write_proc_signal(run: Run, name: str) -> None:
    """Record a signal (`SIGINT`, `SIGTERM`) the runner passed to the run."""
    _write(run_meta_path(run, "proc", "signal"), name + "\n", readonly=True)


def read_proc_signal(run: Run) -> str | None:
    try:
        return _read(run_meta_path(run, "proc", "signal")).strip() or None
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------------------
# Config patches, deps, exit code, summary


def patched_path(run: Run) -> str:
    """`log/patched`, in the meta dir: the diff of applied config."""
    return run_meta_path(run, "log", "patched")


def write_patched(run: Run, diff: str) -> None:
    _write(patched_path(run), diff, readonly=True)


def write_deps(run: Run, deps: list[dict[str, Any]]) -> None:
    _write(run_meta_path(run, "deps.json"), _json_lines(deps), readonly=True)


def read_deps(run: Run) -> list[dict[str, Any]]:
    try:
        return _read_json(run_meta_path(run, "deps.json"))
    except FileNotFoundError:
        return []


def write_batch(run: Run, batch_id: str) -> None:
    """`batch`: the id of the batch a run is a trial of."""
    _write(run_meta_path(run, "batch"), batch_id + "\n", readonly=True)


def read_batch(run: Run) -> str | None:
    try:
        return _read(run_meta_path(run, "batch")).strip() or None
    except FileNotFoundError:
        return None


def write_inputs(run: Run, inputs: dict[str, Any], key: str) -> None:
    """`inputs.json` (what decides the run's result, per file) and
    `input_key` (its sha256, small so that many runs compare fast)."""
    _write(run_meta_path(run, "inputs.json"), _json_lines(inputs), readonly=True)
    _write(run_meta_path(run, "input_key"), key + "\n", readonly=True)


def read_inputs(run: Run) -> dict[str, Any] | None:
    try:
        return _read_json(run_meta_path(run, "inputs.json"))
    except FileNotFoundError:
        return None


def read_input_key(run: Run) -> str | None:
    try:
        return _read(run_meta_path(run, "input_key")).strip()
    except FileNotFoundError:
        return None


def write_exit_code(run: Run, code: int) -> None:
    _write(run_meta_path(run, "exit_code"), f"{code}\n", readonly=True)


def read_exit_code(run: Run) -> int | None:
    try:
        return _int(run_meta_path(run, "exit_code"))
    except FileNotFoundError:
        return None


def write_summary(run: Run, summary: dict[str, Any]) -> None:
    _write_json(run_meta_path(run, "summary.json"), summary, readonly=True)


def read_summary(run: Run) -> dict[str, Any]:
    try:
        return _read_json(run_meta_path(run, "summary.json"))
    except FileNotFoundError:
        return {}


# ---------------------------------------------------------------------------
# Where a run ran


def write_worker(run: Run, worker: dict[str, Any]) -> None:
    """`worker.json`: the engine and worker that ran a run elsewhere
    (`engine`, `host`, `worker` address, `scheduler` address)."""
    _write_json(run_meta_path(run, "worker.json"), worker, readonly=True)


def read_worker(run: Run) -> dict[str, Any] | None:
    try:
        return _read_json(run_meta_path(run, "worker.json"))
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------------------
# Low level


_NEEDS_QUOTE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")


def _quote(field: str, space: bool = False) -> str:
    """`field` as written in a line of a meta file (see the module doc).

    `space`: the field is followed by others, so a space needs quoting.
    """
    if (
        not field
        or field.startswith('"')
        or _NEEDS_QUOTE.search(field)
        or (space and " " in field)
    ):
        return json.dumps(field)
    return field


def quote_path(path: str) -> str:
    """A path as meta files write it: as is, or a JSON string when it has
    a newline, other control characters or bytes that are not UTF-8."""
    return _quote(path)


def _unquote(field: str) -> str:
    """The field `_quote` wrote (the rest of a line)."""
    if field.startswith('"'):
        val = json.loads(field)
        if not isinstance(val, str):
            raise ValueError(field)
        return val
    return field


def _split_fields(line: str) -> list[str]:
    """Space-separated fields, each as is or a JSON string."""
    fields = []
    decoder = json.JSONDecoder()
    i = 0
    while i < len(line):
        if line[i] == '"':
            val, i = decoder.raw_decode(line, i)
            if not isinstance(val, str):
                raise ValueError(line)
            fields.append(val)
        else:
            end = line.find(" ", i)
            end = len(line) if end < 0 else end
            fields.append(line[i:end])
            i = end
        if i < len(line):
            if line[i] != " ":
                raise ValueError(line)
            i += 1
    return fields


def _lines(text: str) -> Iterable[tuple[int, str]]:
    """(line number, line) for each line; split on newlines only (a path
    may hold other line separators, quoted)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return ((i, line) for i, line in enumerate(lines, 1))


def _path(run_or_meta_dir: Run | str, name: str) -> str:
    if isinstance(run_or_meta_dir, Run):
        return run_meta_path(run_or_meta_dir, name)
    return os.path.join(run_or_meta_dir, name)


def _read(path: str) -> str:
    """A meta file's text; MetaError when it is not UTF-8 or not a file
    (never blocks on a FIFO)."""
    try:
        with file_util.open_regular(path) as f:
            data = f.read()
    except file_util.NotRegularFile as e:
        raise MetaError(f"{path}: {e.strerror}", path=path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MetaError(f"{path}: not UTF-8 text ({e.reason})", path=path) from None


def _read_json(path: str) -> Any:
    try:
        return json.loads(_read(path))
    except (json.JSONDecodeError, RecursionError) as e:
        raise MetaError(f"{path}: not valid JSON: {e}", path=path) from None


def _int(path: str) -> int:
    text = _read(path).strip()
    try:
        return int(text)
    except ValueError:
        raise MetaError(f"{path}: not a number: {text[:30]!r}", path=path) from None


def _write_json(path: str, data: Any, readonly: bool = False) -> None:
    _write(path, json.dumps(data, indent=2, sort_keys=True) + "\n", readonly)


def _json_lines(data: Any) -> str:
    """JSON indented as `json.dumps(indent=2, sort_keys=True)` would, but
    a dict of scalars on one line: a file record per line (deps.json,
    inputs.json list a file each), written at the C encoder's speed."""
    out: list[str] = []
    _json_append(data, "", out)
    out.append("\n")
    return "".join(out)


def _json_append(val: Any, pad: str, out: list[str]) -> None:
    if isinstance(val, str):
        out.append(_json_str(val))
        return
    flat = isinstance(val, dict) and not any(
        isinstance(v, (dict, list)) for v in val.values()
    )
    if not val or not isinstance(val, (dict, list)) or (flat and len(val) <= 8):
        out.append(json.dumps(val, sort_keys=True))
        return
    inner = ",\n" + pad + "  "
    out.append("{" if isinstance(val, dict) else "[")
    first = "\n" + pad + "  "
    if isinstance(val, dict):
        for key, item in sorted(val.items()):
            out.append(first)
            first = inner
            key = key if isinstance(key, str) else json.dumps(key)
            out.append(_json_str(key) + ": ")
            _json_append(item, pad + "  ", out)
    else:
        for item in val:
            out.append(first)
            first = inner
            _json_append(item, pad + "  ", out)
    out.append("\n" + pad + ("}" if isinstance(val, dict) else "]"))


def _json_str(val: str) -> str:
    return json.encoder.encode_basestring_ascii(val)


def _write(path: str, text: str, readonly: bool = False) -> None:
    _write_bytes(path, text.encode("utf-8"), readonly)


def _write_bytes(path: str, data: bytes, readonly: bool = False) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    file_util.write_atomic(path, data, 0o444 if readonly else 0o644)


def _append(path: str, text: str, errors: str = "strict") -> None:
    """Append with a single write on an O_APPEND descriptor."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode("utf-8", errors))
    finally:
        os.close(fd)
