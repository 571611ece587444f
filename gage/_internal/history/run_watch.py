"""Follow a run as it goes: its output and its latest scalars.

`watch(run)` yields events until the run has ended and its output has
been read to the end:

- `Output(data)`: bytes the run printed since the last event (whole
  output from the start, at most `BLOCK` bytes an event);
- `Scalars(aggs)`: the run's scalar aggregates (`scalars.read_aggs`),
  each time they change;
- `Ended(status)`: the run is no longer running (or waiting to start).

Watching only reads meta: stopping a watch (the generator is closed)
does nothing to the run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Generator, Union

from ..home.runs import run_status
from ..lifecycle import scalars
from ..store import run_meta, run_records
from ..types import Run

__all__ = ["BLOCK", "Ended", "Output", "Scalars", "WAITING", "watch"]

BLOCK = 1 << 20
WAITING = ("pending", "staged", "running")
"""Statuses a watch waits through; any other ends it."""


@dataclass(frozen=True)
class Output:
    """Output a run wrote since the last event."""

    data: bytes


@dataclass(frozen=True)
class Scalars:
    """Scalar aggregates that changed."""

    aggs: dict[str, Any]


@dataclass(frozen=True)
class Ended:
    """The run ended with `status`."""

    status: str


Event = Union[Output, Scalars, Ended]


def watch(run: Run, interval: float = 0.25) -> Generator[Event, None, None]:
    """Events of a run until it ends (see the module doc)."""
    output, _index = run_meta.output_paths(run, "run")
    offset = 0
    seen: tuple[int, int] | None = None
    while True:
        status = run_status(run)
        ended = status not in WAITING
        data = _read(output, offset)
        while data:
            offset += len(data)
            yield Output(data)
            data = _read(output, offset)
        stat = run_records.scalars_stat(run)
        if stat != seen:
            seen = stat
            aggs = scalars.read_aggs(run)
            if aggs:
                yield Scalars(aggs)
        if ended:
            yield Ended(status)
            return
        time.sleep(interval)


def _read(path: str, offset: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return b""
    try:
        return os.pread(fd, BLOCK, offset)
    except OSError:
        return b""
    finally:
        os.close(fd)
