"""Pins: what a live gage process holds in a runs home.

A process that stages runs pins what must not go while it works: the
objects it is about to place (their digests: `gage cache prune` leaves
them), the run it stages and will start, and the upstream runs it reads
(`run:<id>`, `upstream:<id>`: `gage runs rm` leaves them). Each process appends to its
own pin file in `<runs home>/.objects/pins`, which it holds locked
(flock) while it lives: a pin file no process holds is stale, whatever
pid it names, and is removed by the next reader. Pins are a courtesy
between processes, never the only guard: a placement whose object went
adds it again.
"""

from __future__ import annotations

import contextlib
import os
from typing import IO

from .run_meta import objects_pins_dir

__all__ = ["pin", "pin_all", "pin_run", "pinned", "run_pinned", "unpin", "unpin_run"]


def pin(runs_home: str, key: str, group: str = "") -> None:
    """Pin `key` (a digest, or `run:<id>`) until `unpin(runs_home, group)`
    or until this process ends."""
    pin_all(runs_home, [key], group)


def pin_all(runs_home: str, keys: list[str], group: str = "") -> None:
    """`pin` each of `keys`, in one write."""
    if not keys:
        return
    f = _files.get((runs_home, group))
    if f is None:
        f = _open(runs_home, group)
        if f is None:
            return
        _files[(runs_home, group)] = f
    try:
        f.write("".join(key + "\n" for key in keys))
        f.flush()
    except OSError:
        pass


def pin_run(runs_home: str, run_id: str, upstream: bool = False) -> None:
    """Keep the run `run_id` from `gage runs rm` while this process lives:
    it stages the run and will start it (`run:<id>`), or with `upstream`
    reads it for a run it stages (`upstream:<id>`)."""
    pin(runs_home, _key(run_id, upstream), ".runs")


def _key(run_id: str, upstream: bool) -> str:
    return ("upstream:" if upstream else "run:") + run_id


def unpin_run(runs_home: str, run_id: str, upstream: bool = False) -> None:
    """Release this process's pin of the run `run_id` (it started, or it
    no longer needs it); the pin file goes with its last pin."""
    f = _files.get((runs_home, ".runs"))
    if f is None:
        return
    key = _key(run_id, upstream)
    try:
        with open(_path(runs_home, ".runs")) as r:
            keys = r.read().split()
        rest = [k for k in keys if k != key]
        if not rest:
            unpin(runs_home, ".runs")
        elif len(rest) < len(keys):
            f.seek(0)
            f.truncate()
            f.write("".join(k + "\n" for k in rest))
            f.flush()
    except OSError:
        pass


def unpin(runs_home: str, group: str = "") -> None:
    """Release this process's pins of `group` in `runs_home`."""
    f = _files.pop((runs_home, group), None)
    if f is not None:
        with contextlib.suppress(OSError):
            os.unlink(_path(runs_home, group))
        with contextlib.suppress(OSError):
            f.close()
        pins_dir = objects_pins_dir(runs_home)
        for d in (pins_dir, os.path.dirname(pins_dir)):
            with contextlib.suppress(OSError):
                os.rmdir(d)  # the last pin leaves no dirs behind


def _open(runs_home: str, group: str) -> IO[str] | None:
    import fcntl

    path = _path(runs_home, group)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
    try:
        for _ in range(3):  # another process may remove the empty dir
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, flags, 0o644)
                break
            except FileNotFoundError:
                continue
        else:
            return None
        f = os.fdopen(fd, "a")
        fcntl.flock(f, fcntl.LOCK_EX)
    except OSError:
        return None  # pins are a courtesy (see the module doc)
    return f


def _path(runs_home: str, group: str) -> str:
    return os.path.join(objects_pins_dir(runs_home), f"{os.getpid()}{group}")


_files: dict[tuple[str, str], IO[str]] = {}


def pinned(runs_home: str) -> set[str]:
    """Keys pinned by live processes; stale pin files are removed."""
    import fcntl

    pins_dir = objects_pins_dir(runs_home)
    try:
        names = os.listdir(pins_dir)
    except OSError:
        return set()
    found: set[str] = set()
    for name in names:
        path = os.path.join(pins_dir, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        with os.fdopen(fd) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                found.update(f.read().split())  # its process is alive
                continue
            except OSError:
                continue
            with contextlib.suppress(OSError):
                os.unlink(path)  # no process holds it
    return found


def run_pinned(
    runs_home: str, run_id: str, found: set[str] | None = None, upstream: bool = False
) -> bool:
    """Whether a live process pinned the run `run_id` (as an upstream with
    `upstream`; `found`: what `pinned` gave, when the caller has it)."""
    keys = pinned(runs_home) if found is None else found
    return _key(run_id, upstream) in keys
