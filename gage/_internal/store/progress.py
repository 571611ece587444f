"""Progress of reading files (bytes, files, rate) on stderr: what the
object cache and `gage check` show while they read (see `objects`)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

__all__ = ["Progress", "format_size", "terminal_progress"]


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

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        self.nbytes += nbytes
        self.files += files
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start >= self.delay and now - self.shown >= 0.2:
            self._show(now, "\r")

    def done(self) -> None:
        if self.shown:
            self._show(time.monotonic(), "\r")
            sys.stderr.write("\n")
            sys.stderr.flush()

    def _show(self, now: float, lead: str) -> None:
        self.shown = now
        rate = self.nbytes / max(now - self.start, 1e-6)
        files = f"{self.files} file{'' if self.files == 1 else 's'}"
        size = format_size(self.nbytes)
        sys.stderr.write(f"{lead}{self.what}: {size}, {files}, {format_size(rate)}/s  ")
        sys.stderr.flush()


def terminal_progress(what: str, quiet: bool = False) -> Progress:
    """Progress shown on stderr when it is a terminal and not `quiet`."""
    return Progress(what, enabled=not quiet and _isatty())


def _isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def format_size(n: float) -> str:
    """A size for people: `512 B`, `1.5 MiB`."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError
