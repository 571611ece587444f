"""The run meta directory format.

This is the only module that knows the names and encodings of files in
a run's meta directory (`<run_dir>.meta`). Everything else reads and
writes meta through these functions.

Writes are atomic (temp file + rename). Files that are final are made
read-only. Logs (`log/runner`, `log/files`) are appended to.

How a file is encoded (atomic writes, the line formats of `opref`,
`log/files`, `manifest` and `seal`, quoted fields) is `meta_format`'s;
which file holds what is this module's, and each of its public names is
part of the format's API (the `X as X` imports re-export the types and
encodings callers name with meta files).
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Iterable

from ..types import META_SUFFIX as META_SUFFIX
from ..types import MetaError, OpCmd, OpDef, OpRef, Run
from .meta_format import FileEvent as FileEvent
from .meta_format import ManifestEntry as ManifestEntry
from .meta_format import ProcLock as ProcLock
from .meta_format import (
    RunnerLog,
    append_text,
    files_log_text,
    json_records_text,
    manifest_text,
    open_regular_or_none,
    parse_files_log,
    parse_manifest,
    parse_seal,
    quote,
    read_int,
    read_json,
    read_tail,
    read_text,
    seal_text,
    split_fields,
    write_bytes,
    write_json,
    write_text,
)
from .meta_format import Seal as Seal
from .meta_format import format_timestamp as format_timestamp
from .meta_format import quote_path as quote_path
from .meta_format import timestamp as timestamp

SCHEMA = "1"

_OUTPUT_PHASES = {
    "sourcecode": "10_sourcecode",
    "runtime": "20_runtime",
    "dependencies": "30_dependencies",
    "run": "40_run",
    "finalize": "50_finalize",
}


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


def open_output(run: Run, phase: str = "run") -> BinaryIO | None:
    """A phase's whole output, open for reading in binary (None when
    there is none, or it is not a regular file)."""
    return open_regular_or_none(output_paths(run, phase)[0])


def write_output(
    run: Run, lines: Iterable[tuple[int, int, str]], phase: str = "run"
) -> None:
    """A phase's output (file and index, as the runner writes them) from
    lines that came back from elsewhere: `(timestamp, stream, line)`."""
    path, index_path = output_paths(run, phase)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out, open(index_path, "wb") as index:
        for ts, stream, line in lines:
            out.write(line.encode("utf-8", errors="replace") + b"\n")
            index.write(b"%d %d\n" % (ts, stream))


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
    return read_tail(output_paths(run, phase)[0], lines, max_bytes, max_chars)


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


def python_cache_path(runs_home: str) -> str:
    """What interpreters said of their packages (`util.python_env`): a
    cache beside the runs index, kept once the index's dir exists."""
    return os.path.join(runs_home, ".gage-index", "pythons.json")


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


def objects_pins_dir(runs_home: str) -> str:
    """A file per staging process: the objects it is about to place."""
    return os.path.join(runs_home, OBJECTS_DIR, "pins")


def manifest_path(run: Run) -> str:
    """Path of the run manifest (its digest identifies a run's inputs)."""
    return run_meta_path(run, "manifest")


# ---------------------------------------------------------------------------
# Time


def write_timestamp(run: Run, name: str, ts: int | None = None) -> int:
    """Write a timestamp file (`initialized`, `staged`, `started`, `stopped`)."""
    ts = timestamp() if ts is None else ts
    write_text(run_meta_path(run, name), f"{ts}\n", readonly=True)
    return ts


def read_timestamp(run: Run, name: str) -> int | None:
    """A timestamp, None when not written; MetaError when not a number."""
    try:
        return read_int(run_meta_path(run, name))
    except FileNotFoundError:
        return None


def has_timestamp(run: Run, name: str) -> bool:
    """Whether a timestamp file is written (whatever it holds): what a
    run's status is derived from, so one garbage file cannot hide it."""
    return os.path.lexists(run_meta_path(run, name))


# ---------------------------------------------------------------------------
# Identity and op


def write_schema(run: Run) -> None:
    write_text(run_meta_path(run, "__schema__"), SCHEMA + "\n", readonly=True)


def write_id(run: Run) -> None:
    write_text(run_meta_path(run, "id"), run.id + "\n", readonly=True)


def read_id(run_or_meta_dir: Run | str) -> str:
    return read_text(_path(run_or_meta_dir, "id")).strip()


def write_name(run: Run) -> None:
    write_text(run_meta_path(run, "name"), run.name + "\n", readonly=True)


def read_name(run_or_meta_dir: Run | str) -> str:
    return read_text(_path(run_or_meta_dir, "name")).strip()


def write_opref(run: Run, opref: OpRef) -> None:
    """`opref`: `<ns> <name> [<version>]`, each field quoted when needed
    (a project dir `my proj` is `"my proj"`)."""
    parts = [opref.op_ns, opref.op_name] + (
        [opref.op_version] if opref.op_version else []
    )
    text = " ".join(quote(p, space=True) for p in parts)
    write_text(run_meta_path(run, "opref"), text + "\n", readonly=True)


def read_opref(run: Run) -> OpRef:
    """The run's op; ValueError when `opref` is not two or three fields."""
    path = run_meta_path(run, "opref")
    text = read_text(path)
    try:
        parts = split_fields(text.rstrip("\n"))
    except ValueError:
        parts = []
    if len(parts) not in (2, 3):
        raise MetaError(f"{path}: expected '<namespace> <op> [<version>]'", path=path)
    return OpRef(*parts)


def write_opdef(run: Run, opdef: OpDef) -> None:
    data = {"name": opdef.name, "data": opdef.data}
    write_json(run_meta_path(run, "opdef.json"), data, readonly=True)


def read_opdef(run: Run) -> OpDef:
    data = read_json(run_meta_path(run, "opdef.json"))
    return OpDef(data["name"], data["data"])


def write_config(run: Run, config: dict[str, Any]) -> None:
    write_json(run_meta_path(run, "config.json"), config, readonly=True)


def read_config(run: Run) -> dict[str, Any]:
    try:
        return read_json(run_meta_path(run, "config.json"))
    except FileNotFoundError:
        return {}


def write_user_attrs(run: Run, attrs: dict[str, Any]) -> None:
    write_json(run_meta_path(run, "user.json"), attrs)


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
    write_text(path, label + "\n")


def read_label(run: Run) -> str | None:
    try:
        return read_text(run_meta_path(run, "label")).strip() or None
    except FileNotFoundError:
        return None


def write_proc_cmd(run: Run, cmd: OpCmd) -> None:
    write_json(run_meta_path(run, "proc", "cmd"), list(cmd.args), readonly=True)


def read_proc_cmd(run: Run) -> list[str]:
    return read_json(run_meta_path(run, "proc", "cmd"))


def write_proc_env(run: Run, cmd: OpCmd) -> None:
    write_json(run_meta_path(run, "proc", "env"), dict(cmd.env), readonly=True)


def read_proc_env(run: Run) -> dict[str, str]:
    return read_json(run_meta_path(run, "proc", "env"))


# ---------------------------------------------------------------------------
# Runner log


def runner_log(run: Run) -> RunnerLog:
    """A logger that appends `<timestamp> <message>` lines to `log/runner`."""
    return RunnerLog(run_meta_path(run, "log", "runner"))


# ---------------------------------------------------------------------------
# Files log and manifest


def append_files_log(run: Run, events: Iterable[FileEvent]) -> None:
    append_text(run_meta_path(run, "log", "files"), files_log_text(events))


def read_files_log(run: Run) -> list[FileEvent]:
    """Events of `log/files`; ValueError naming the file and line for a
    line that is not an event."""
    path = run_meta_path(run, "log", "files")
    try:
        text = read_text(path)
    except FileNotFoundError:
        return []
    return parse_files_log(path, text)


def write_manifest(run: Run, entries: Iterable[ManifestEntry]) -> None:
    write_text(run_meta_path(run, "manifest"), manifest_text(entries), readonly=True)


def append_manifest(run: Run, entries: Iterable[ManifestEntry]) -> None:
    """Add entries to the manifest: rewritten whole (atomic, read-only).

    The seal covers the manifest as it was staged (its first bytes); the
    entries added here follow them.
    """
    path = run_meta_path(run, "manifest")
    with open(path, "rb") as f:
        staged = f.read()
    write_bytes(path, staged + manifest_text(entries).encode("utf-8"), True)


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
        text = read_text(path)
    except FileNotFoundError:
        return []
    entries = parse_manifest(path, text)
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
    "git.json",
    "git.diff",
)
"""Meta files that decide what a run is and what it runs.

Their digests are recorded in `seal` at the end of staging; a staged run
whose sealed meta differs is refused at start. `manifest` is sealed as
staged: entries for generated files are added after its sealed bytes.
`git.json` and `git.diff` (where the source came from) do not decide
what runs, but are known at staging: sealed so they cannot be rewritten.
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
    "scalars/keys",
    "scalars/points",
    "scalars/aggs.json",
    "environment.json",
)
"""Meta files that only starting a run writes: a run that has not
started has none of them (one planted there would become its record)."""


def meta_file_path(run: Run, name: str) -> str:
    """Path of a sealed meta file (a name in SEALED_META)."""
    return run_meta_path(run, *name.split("/"))


def write_seal(run: Run, seal: Seal) -> None:
    """Write `seal`: `meta <sha256> <size> <name>` (`meta - - <name>` for an
    absent file), then `mode <mode> <path>` lines; read-only."""
    write_text(run_meta_path(run, "seal"), seal_text(seal), readonly=True)


def seal_path(run: Run) -> str:
    return run_meta_path(run, "seal")


def read_seal(run: Run) -> Seal | None:
    """The run's seal, None when it has none. ValueError when unreadable."""
    try:
        text = read_text(run_meta_path(run, "seal"))
    except FileNotFoundError:
        return None
    return parse_seal(text)


# ---------------------------------------------------------------------------
# Stager


# ---------------------------------------------------------------------------
# Trash

TRASH_DIR = ".trash"


ARCHIVE_DIR = ".archive"


def archive_dir(runs_home: str, name: str) -> str:
    """Where the archive `name` of a runs home keeps its runs: a runs
    home of its own inside the runs home (never listed as runs)."""
    return os.path.join(runs_home, ARCHIVE_DIR, name)


def trash_dir(runs_home: str) -> str:
    """Where runs being deleted go first (never listed as runs)."""
    return os.path.join(runs_home, TRASH_DIR)


# ---------------------------------------------------------------------------
# Process lock and signal


# ---------------------------------------------------------------------------
# Config patches, deps, exit code, summary


def patched_path(run: Run) -> str:
    """`log/patched`, in the meta dir: the diff of applied config."""
    return run_meta_path(run, "log", "patched")


def write_patched(run: Run, diff: str) -> None:
    write_text(patched_path(run), diff, readonly=True)


def write_deps(run: Run, deps: list[dict[str, Any]]) -> None:
    write_text(run_meta_path(run, "deps.json"), json_records_text(deps), readonly=True)


def read_deps(run: Run) -> list[dict[str, Any]]:
    try:
        return read_json(run_meta_path(run, "deps.json"))
    except FileNotFoundError:
        return []


def write_batch(run: Run, batch_id: str) -> None:
    """`batch`: the id of the batch a run is a trial of."""
    write_text(run_meta_path(run, "batch"), batch_id + "\n", readonly=True)


def read_batch(run: Run) -> str | None:
    try:
        return read_text(run_meta_path(run, "batch")).strip() or None
    except FileNotFoundError:
        return None


def write_inputs(run: Run, inputs: dict[str, Any], key: str) -> None:
    """`inputs.json` (what decides the run's result, per file) and
    `input_key` (its sha256, small so that many runs compare fast)."""
    write_text(
        run_meta_path(run, "inputs.json"), json_records_text(inputs), readonly=True
    )
    write_text(run_meta_path(run, "input_key"), key + "\n", readonly=True)


def read_inputs(run: Run) -> dict[str, Any] | None:
    try:
        return read_json(run_meta_path(run, "inputs.json"))
    except FileNotFoundError:
        return None


def read_input_key(run: Run) -> str | None:
    try:
        return read_text(run_meta_path(run, "input_key")).strip()
    except FileNotFoundError:
        return None


def write_exit_code(run: Run, code: int) -> None:
    write_text(run_meta_path(run, "exit_code"), f"{code}\n", readonly=True)


def read_exit_code(run: Run) -> int | None:
    try:
        return read_int(run_meta_path(run, "exit_code"))
    except FileNotFoundError:
        return None


def write_summary(run: Run, summary: dict[str, Any]) -> None:
    write_json(run_meta_path(run, "summary.json"), summary, readonly=True)


def read_summary(run: Run) -> dict[str, Any]:
    try:
        return read_json(run_meta_path(run, "summary.json"))
    except FileNotFoundError:
        return {}


# ---------------------------------------------------------------------------
# Where a run ran


# ---------------------------------------------------------------------------
# Provenance: git state at staging, environment at start


# ---------------------------------------------------------------------------
# Low level


def _path(run_or_meta_dir: Run | str, name: str) -> str:
    if isinstance(run_or_meta_dir, Run):
        return run_meta_path(run_or_meta_dir, name)
    return os.path.join(run_or_meta_dir, name)


# ---------------------------------------------------------------------------
# Scalars: `scalars/keys` (one key a line, in order of first sight; a key's
# number is its line number from 0), `scalars/points` (fixed records of
# key number, step and value, appended as the run goes: see
# `meta_format.POINT`) and `scalars/aggs.json` (per key: first, last,
# last_step, min, min_step, max, max_step, count; rewritten atomically,
# small, so listing and comparing runs never read the points).
