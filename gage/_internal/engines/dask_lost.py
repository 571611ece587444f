"""What the dask engine keeps for a lost scheduler, and says of it.

Every run in flight has its last output lines kept at home as they come
(`Tail`, at most `TAIL_BYTES` a run) until its record comes home. When
the scheduler is lost instead (killed, its host gone), no record comes
home: `abandon` writes what is known into the run's record at home (it
started, where and when, the output that came back, a runner log line),
so the run is `abandoned`, never started again by mistake while its
copy may still run on its worker; `message` is the one line that says
what became of each run. Distributed's own log records of the lost
client (a reconnect that failed, its traceback when the client is
closed meanwhile) are dropped by `LostLogFilter`: gage says it once.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from ..store import run_meta, run_records
from ..types import Run

__all__ = ["TAIL_BYTES", "LostLogFilter", "Tail", "abandon", "message"]

TAIL_BYTES = 1 << 20

_LOGGER = "distributed.client"
_RECONNECT = "Failed to reconnect to scheduler"


class Tail:
    """Where a run started (the first event of its attempt) and its last
    output lines, at most `TAIL_BYTES`."""

    def __init__(self, time: float, msg: dict[str, Any]) -> None:
        self.started = int(time * 1_000_000)
        self.where = {k: msg.get(k) for k in ("host", "worker")}
        self.lines: collections.deque[tuple[int, int, str]] = collections.deque()
        self.size = 0
        self.dropped = 0

    def add(self, time: float, stream: int, line: str) -> None:
        self.lines.append((int(time * 1_000_000), stream, line))
        self.size += len(line) + 1
        while self.size > TAIL_BYTES and len(self.lines) > 1:
            self.size -= len(self.lines.popleft()[2]) + 1
            self.dropped += 1


def abandon(run: Run, tail: Tail, scheduler: str) -> None:
    """Record at home a run whose scheduler was lost while it ran: it
    started (where and when), the output that came back; no end."""
    where = f"Dask worker {tail.where['worker']} (host {tail.where['host']})"
    cut = f" (the first {tail.dropped} lines were not kept)" if tail.dropped else ""
    try:
        run_records.write_worker(
            run, dict(tail.where, engine="dask", scheduler=scheduler)
        )
        run_meta.write_output(run, tail.lines)
        run_meta.write_timestamp(run, "started", tail.started)
        run_meta.runner_log(run).info(
            f"Started on {where}; the Dask scheduler at {scheduler} was lost while "
            f"it ran, so its record did not come home: abandoned, with the "
            f"output that came back{cut}; a copy may still run on that worker"
        )
    except OSError:
        pass  # the engine's error names the run; its record has what fit


def message(scheduler: str, abandoned: list[str], staged: list[str]) -> str:
    """The one line of a lost scheduler: what became of the runs."""
    msg = f"lost the Dask scheduler at {scheduler} while runs were in flight"
    if abandoned:
        msg += (
            f"; {_names(abandoned)} had started: abandoned, with the output "
            "that came back (a copy may still run on its worker)"
        )
    if staged:
        msg += (
            f"; {_names(staged)} did not start: still staged (start them once "
            f"the scheduler is back: gage run --start {' '.join(staged)})"
        )
    return msg


def _names(names: list[str]) -> str:
    if len(names) == 1:
        return f"run {names[0]}"
    return f"{len(names)} runs ({', '.join(names)})"


class LostLogFilter(logging.Filter):
    """Drops distributed's client log records once `lost` is set (and
    its failed reconnect always): an engine installs one while it is
    open."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = False

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.lost or str(record.msg).startswith(_RECONNECT))

    def install(self) -> None:
        logging.getLogger(_LOGGER).addFilter(self)

    def remove(self) -> None:
        logging.getLogger(_LOGGER).removeFilter(self)
