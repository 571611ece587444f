"""How meta files are encoded, apart from their names (which only
`run_meta` knows): atomic reads and writes, appends, timestamps, the
runner log's lines, and the line formats of `log/files` and `manifest`.

A field of a line format (`opref`, `log/files`, `manifest`) holds any
op name and any path: a field that is empty, starts with `"`, has a
control character (a newline, a tab, ...), a line separator, bytes that
are not UTF-8 (as Python's surrogate escapes) or, in `opref`, a space,
is written as a JSON string (`"my proj"`, `"new\nline.txt"`,
`"bad\\udcffname"`); every other field is written as is. Reading undoes
it exactly, so a path read back is the path that was written.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
import stat
import struct
import time
from typing import Any, BinaryIO, Iterable, NamedTuple

from ..types import MetaError
from ..util import file_util

__all__ = [
    "json_records_text",
    "open_regular_or_none",
    "read_file_bytes",
    "DirLock",
    "json_lines_text",
    "parse_json_lines",
    "POINT",
    "append_points",
    "read_points",
    "sample_points",
    "ProcLock",
    "Seal",
    "files_log_text",
    "manifest_text",
    "parse_files_log",
    "parse_manifest",
    "parse_seal",
    "pid_text",
    "read_pid_file",
    "read_tail",
    "seal_text",
    "FileEvent",
    "ManifestEntry",
    "RunnerLog",
    "append_text",
    "format_timestamp",
    "numbered_lines",
    "quote",
    "quote_path",
    "read_int",
    "read_json",
    "read_text",
    "split_fields",
    "timestamp",
    "unquote",
    "write_bytes",
    "write_json",
    "write_text",
]


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


def timestamp() -> int:
    """Microseconds since the epoch."""
    return time.time_ns() // 1000


def format_timestamp(ts: int) -> str:
    """ISO 8601 in UTC with milliseconds, as used in `log/runner`."""
    dt = datetime.datetime.fromtimestamp(ts / 1_000_000, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class RunnerLog:
    def __init__(self, path: str):
        self.path = path

    def info(self, msg: str, *args: Any) -> None:
        if args:
            msg = msg % args
        ts = format_timestamp(timestamp())
        lines = msg.split("\n")
        text = f"{ts} {lines[0]}\n" + "".join(f"  {line}\n" for line in lines[1:])
        # A message may name a path that is not UTF-8: escaped, not an error.
        try:
            append_text(self.path, text, errors="backslashreplace")
        except OSError as e:
            if e.errno not in _DISK_FULL:
                raise  # a full disk loses a log line, not the command

    warning = info
    error = info


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


_NEEDS_QUOTE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")


def quote(field: str, space: bool = False) -> str:
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
    return quote(path)


def unquote(field: str) -> str:
    """The field `quote` wrote (the rest of a line)."""
    if field.startswith('"'):
        val = json.loads(field)
        if not isinstance(val, str):
            raise ValueError(field)
        return val
    return field


def split_fields(line: str) -> list[str]:
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


def numbered_lines(text: str) -> Iterable[tuple[int, str]]:
    """(line number, line) for each line; split on newlines only (a path
    may hold other line separators, quoted)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return ((i, line) for i, line in enumerate(lines, 1))


def read_text(path: str) -> str:
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


def open_regular_or_none(path: str) -> BinaryIO | None:
    """`path` open for reading in binary; None when it is missing or not
    a regular file (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def read_file_bytes(path: str) -> bytes:
    """A meta file's bytes (a regular file only; never blocks)."""
    with file_util.open_regular(path) as f:
        return f.read()


def read_json(path: str) -> Any:
    try:
        return json.loads(read_text(path))
    except (json.JSONDecodeError, RecursionError) as e:
        raise MetaError(f"{path}: not valid JSON: {e}", path=path) from None


def read_int(path: str) -> int:
    text = read_text(path).strip()
    try:
        return int(text)
    except ValueError:
        raise MetaError(f"{path}: not a number: {text[:30]!r}", path=path) from None


def write_json(path: str, data: Any, readonly: bool = False) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", readonly)


def write_text(path: str, text: str, readonly: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), readonly)


def write_bytes(path: str, data: bytes, readonly: bool = False) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    file_util.write_atomic(path, data, 0o444 if readonly else 0o644)


def append_text(path: str, text: str, errors: str = "strict") -> None:
    """Append with a single write on an O_APPEND descriptor."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode("utf-8", errors))
    finally:
        os.close(fd)


def files_log_text(events: Iterable[FileEvent]) -> str:
    """`<event> <type>[:<placed>] <mtime> <path>` per event."""
    return "".join(
        f"{e.event} {e.type}{':' + e.placed if e.placed else ''} {e.mtime} "
        f"{quote(e.path)}\n"
        for e in events
    )


def parse_files_log(path: str, text: str) -> list[FileEvent]:
    """The events `files_log_text` wrote; MetaError naming `path` and the
    line for a line that is not an event."""
    events = []
    for n, line in numbered_lines(text):
        try:
            event, type, mtime, rest = line.split(" ", 3)
            type, _, placed = type.partition(":")
            events.append(
                FileEvent(event, type, int(mtime), unquote(rest), placed or None)
            )
        except ValueError:
            raise MetaError(
                f"{path}:{n}: not a file event: {line[:60]!r}", path=path
            ) from None
    return events


def manifest_text(entries: Iterable[ManifestEntry]) -> str:
    """`<type> <sha256> <path>` per entry."""
    return "".join(f"{e.type} {e.sha256} {quote(e.path)}\n" for e in entries)


def parse_manifest(path: str, text: str) -> list[ManifestEntry]:
    """The entries `manifest_text` wrote; MetaError naming `path` and the
    line for a line that is not an entry."""
    entries = []
    for n, line in numbered_lines(text):
        try:
            type, digest, rest = line.split(" ", 2)
            if len(digest) != 64:
                raise ValueError(digest)
            entries.append(ManifestEntry(type, digest, unquote(rest)))
        except ValueError:
            raise MetaError(
                f"{path}:{n}: not a manifest entry: {line[:60]!r}", path=path
            ) from None
    return entries


class Seal(NamedTuple):
    """`seal`: what a staged run's meta and file modes were.

    `meta`: sealed meta name -> (sha256, size), or None when the file was
    absent (`config.json` of a run without config). `modes`: run dir path
    -> mode (`0555`) or `link`, for staged files that are not read-only
    regular files with mode 0444 (the usual case is not listed).
    """

    meta: dict[str, tuple[str, int] | None]
    modes: dict[str, str]


def seal_text(seal: Seal) -> str:
    """`meta <sha256> <size> <name>` (`meta - - <name>` for an absent
    file), then `mode <mode> <path>` lines."""
    lines = []
    for name, val in seal.meta.items():
        digest, size = (val[0], str(val[1])) if val else ("-", "-")
        lines.append(f"meta {digest} {size} {name}\n")
    for path, mode in sorted(seal.modes.items()):
        lines.append(f"mode {mode} {path}\n")
    return "".join(lines)


def parse_seal(text: str) -> Seal:
    """The seal `seal_text` wrote; ValueError when it is not one."""
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


class ProcLock(NamedTuple):
    """`proc/lock`: the runner's pid and process start time (None if unknown)."""

    pid: int
    start_time: int | None


def pid_text(pid: int, start_time: int | None) -> str:
    """`<pid> <start time or ->`, the line of `proc/lock` and `proc/stager`."""
    return f"{pid} {'-' if start_time is None else start_time}\n"


def read_pid_file(path: str) -> ProcLock | None:
    try:
        parts = read_text(path).split()
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


def read_tail(path: str, lines: int, max_bytes: int, max_chars: int) -> list[str]:
    """The last `lines` lines of a file, reading at most `max_bytes` from
    its end (see `run_meta.read_output_tail`); [] when there is none."""
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


POINT = struct.Struct("<Iqd")
"""A step scalar's record: key number (u32), step (i64), value (f64),
little-endian, 20 bytes."""


def append_points(path: str, points: Iterable[tuple[int, int, float]]) -> None:
    """Append records in one write on an O_APPEND descriptor."""
    data = b"".join(POINT.pack(*p) for p in points)
    if not data:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_points(
    path: str, offset: int = 0, limit: int | None = None
) -> tuple[list[tuple[int, int, float]], int]:
    """Records from byte `offset` (at most `limit`) and the offset after
    the last whole record read."""
    try:
        with file_util.open_regular(path) as f:
            f.seek(offset)
            data = f.read(-1 if limit is None else limit * POINT.size)
    except FileNotFoundError:
        return [], offset
    end = len(data) - len(data) % POINT.size
    return list(POINT.iter_unpack(data[:end])), offset + end


def sample_points(path: str, n: int) -> list[tuple[int, int, float]]:
    """About `n` records spread evenly over the file, read by seeking."""
    try:
        with file_util.open_regular(path) as f:
            total = os.fstat(f.fileno()).st_size // POINT.size
            if total <= n:
                return list(POINT.iter_unpack(f.read(total * POINT.size)))
            fd, size, stride = f.fileno(), POINT.size, total / n
            recs = (os.pread(fd, size, int(i * stride) * size) for i in range(n))
            return [POINT.unpack(r) for r in recs if len(r) == size]
    except FileNotFoundError:
        return []


def json_lines_text(items: Iterable[Any]) -> str:
    """One JSON value a line (keys sorted, text kept as it is)."""
    return "".join(
        json.dumps(v, sort_keys=True, ensure_ascii=False) + "\n" for v in items
    )


def parse_json_lines(text: str) -> list[Any]:
    """The values of `json_lines_text`; a line that is not JSON (a torn
    write) is skipped."""
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


class DirLock:
    """An exclusive flock on a directory, for a short change by one
    process at a time (`what` names it in the error after 10 s); released
    when the process dies."""

    def __init__(self, path: str, what: str):
        self.path, self.what = path, what
        self.fd = -1

    def __enter__(self) -> DirLock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        deadline = time.monotonic() + 10
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise MetaError(
                        f"{self.path} is locked by another process "
                        f"{self.what} for 10 s: try again",
                        path=self.path,
                    ) from None
                time.sleep(0.005)

    def __exit__(self, *exc: Any) -> None:
        os.close(self.fd)  # releases the lock


def json_records_text(data: Any) -> str:
    """JSON indented as `json.dumps(indent=2, sort_keys=True)` would, but
    a dict of scalars on one line: a file record per line (deps.json,
    inputs.json list a file each), written at the C encoder's speed."""
    out: list[str] = []
    _json_append(data, "", out)
    out.append("\n")
    return "".join(out)


_SORTED = json.JSONEncoder(sort_keys=True)  # one encoder, not one a record


def _json_append(val: Any, pad: str, out: list[str]) -> None:
    if isinstance(val, str):
        out.append(json.encoder.encode_basestring_ascii(val))
        return
    flat = isinstance(val, dict) and not any(
        isinstance(v, (dict, list)) for v in val.values()
    )
    if not val or not isinstance(val, (dict, list)) or (flat and len(val) <= 8):
        out.append(_SORTED.encode(val))  # json.dumps(val, sort_keys=True)
        return
    inner = ",\n" + pad + "  "
    out.append("{" if isinstance(val, dict) else "[")
    first = "\n" + pad + "  "
    if isinstance(val, dict):
        for key, item in sorted(val.items()):
            out.append(first)
            first = inner
            key = key if isinstance(key, str) else json.dumps(key)
            out.append(json.encoder.encode_basestring_ascii(key) + ": ")
            _json_append(item, pad + "  ", out)
    else:
        for item in val:
            out.append(first)
            first = inner
            _json_append(item, pad + "  ", out)
    out.append("\n" + pad + ("}" if isinstance(val, dict) else "]"))
