"""Lines gage draws on a terminal: one status line on stderr, redrawn in
place, with other lines printed above it.

`Progress` (bytes, files and rate of reading files) and `RunsConsole`
(runs' prefixed output and a `[N done, M running, K waiting]` line, for
engines) both draw through `StatusLine`, the one place that knows how a
line is erased and redrawn.

Notices (`notice`) are what library code has to tell a person while it
works: that it waits for another process (`wait`), or went on without
something (`warn`). Library code never prints them: they go where the
program installed (`set_notices`; the `gage` command and a run's child
process print them as `gage:` lines), and nowhere otherwise.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable

from .fmt import format_size

__all__ = [
    "Progress",
    "RunsConsole",
    "StatusLine",
    "isatty",
    "notice",
    "gage_lines",
    "set_notices",
    "warn_line",
    "terminal_progress",
]


def isatty(f: IO[Any] | None = None) -> bool:
    """Whether `f` (stderr by default) is a terminal; False for a closed
    or replaced stream."""
    try:
        return (sys.stderr if f is None else f).isatty()
    except (AttributeError, ValueError):
        return False


class StatusLine:
    """One line on stderr, redrawn in place when `enabled`; `print`
    writes a line of output above it. Thread-safe."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.lock = threading.RLock()
        self.text = ""
        self.shown = False

    def show(self, text: str) -> None:
        with self.lock:
            self.text = text
            self._erase()
            self._draw()

    def print(self, dest: IO[str], line: str) -> None:
        with self.lock:
            self._erase()
            dest.write(line + "\n")
            dest.flush()
            self._draw()

    def clear(self) -> None:
        with self.lock:
            self._erase()
            self.text = ""

    def end(self) -> None:
        """Leave the line as it is and go to the next one."""
        with self.lock:
            if self.shown:
                sys.stderr.write("\n")
                sys.stderr.flush()
                self.shown = False

    def _draw(self) -> None:
        if self.enabled and self.text:
            sys.stderr.write(self.text)
            sys.stderr.flush()
            self.shown = True

    def _erase(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False


@dataclass
class Progress:
    """Progress of reading files (bytes, files, rate) on stderr.

    Shown only when `enabled` (stderr is a terminal and not quiet) and
    the work has taken more than `delay` seconds; one line redrawn in
    place, ended when `done`.
    """

    what: str
    enabled: bool = False
    delay: float = 1.0
    start: float = field(default_factory=time.monotonic)
    nbytes: int = 0
    files: int = 0
    shown: float = 0.0
    line: StatusLine | None = None

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        self.nbytes += nbytes
        self.files += files
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start >= self.delay and now - self.shown >= 0.2:
            self._show(now)

    def done(self) -> None:
        if self.shown:
            self._show(time.monotonic())
            assert self.line
            self.line.end()

    def _show(self, now: float) -> None:
        self.shown = now
        if self.line is None:
            self.line = StatusLine(True)
        rate = self.nbytes / max(now - self.start, 1e-6)
        files = f"{self.files} file{'' if self.files == 1 else 's'}"
        size = format_size(self.nbytes)
        self.line.show(f"{self.what}: {size}, {files}, {format_size(rate)}/s")


def terminal_progress(what: str, quiet: bool = False) -> Progress:
    """Progress shown on stderr when it is a terminal and not `quiet`."""
    return Progress(what, enabled=not quiet and isatty())


class RunsConsole:
    """Runs' output lines prefixed with their names (`name| line`) and a
    status line of the runs an engine holds."""

    def __init__(self, progress: bool) -> None:
        self.status = StatusLine(progress)
        self.counts = {"queued": 0, "running": 0, "done": 0, "failed": 0}

    def pump(self, src: IO[bytes], dest: IO[str], name: str) -> None:
        for raw in iter(src.readline, b""):
            self.line(dest, name, raw.decode("utf-8", errors="replace"))
        src.close()

    def line(self, dest: IO[str], name: str, line: str) -> None:
        """Print one line of run `name`'s output as `name| line`."""
        self.status.print(dest, f"{name}| {line.rstrip(chr(10))}")

    def error(self, msg: str) -> None:
        """A `gage: msg` line about a run the engine holds (it could not
        start, or its job ended early), printed above the status line."""
        self.status.print(sys.stderr, f"gage: {msg}")

    def update(self, **delta: int) -> None:
        with self.status.lock:
            for k, v in delta.items():
                self.counts[k] += v
            c = self.counts
            failed = f", {c['failed']} failed" if c["failed"] else ""
            self.status.show(
                f"[{c['done']} done{failed}, {c['running']} running, "
                f"{c['queued']} waiting]"
            )

    def clear(self) -> None:
        self.status.clear()


# ---------------------------------------------------------------------------
# Notices

_notices: dict[str, Callable[[str], None]] = {}


def set_notices(
    wait: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Where notices go: `wait` (a wait for another process, worth a line
    on a terminal) and `warn` (gage went on without something). None
    drops them."""
    _notices.clear()
    for kind, fn in (("wait", wait), ("warn", warn)):
        if fn is not None:
            _notices[kind] = fn


def gage_lines() -> None:
    """Notices as `gage:` lines on stderr, as the `gage` command and a
    run's child process print them: a wait on a terminal only, a warning
    always."""

    def wait(msg: str) -> None:
        if isatty():
            print(f"gage: {msg}", file=sys.stderr)

    set_notices(wait=wait, warn=warn_line)


def warn_line(msg: str) -> None:
    """A warning as the `gage` command prints it."""
    print(f"gage: warning: {msg}", file=sys.stderr)


def notice(kind: str, msg: str) -> None:
    """Pass `msg` to the notice handler of `kind` (`wait`, `warn`), if any."""
    fn = _notices.get(kind)
    if fn is not None:
        fn(msg)
