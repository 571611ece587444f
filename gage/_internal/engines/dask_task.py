"""The worker side of the dask engine: run one staged run from its bytes.

`run_task` is what the dask engine submits to a Dask worker. It needs
only gage (and distributed, which the worker runs) installed there, and
no filesystem shared with the client:

1. the archive's format is checked (a worker with another gage version
   refuses it naming both formats, raising `IncompatibleWorker`: the
   client gives this worker no more runs), then its digest, then it is
   unpacked into a scratch
   dir of its own under the worker's local directory (`dask worker
   --local-directory`), a fresh one for each attempt; the files' digests
   that the check computed go to the scratch dir's digest cache, so start
   verification does not read the files again;
2. the run is started by gage itself, `gage run --start DIR -y`, in a
   child of the worker's warm starter (`dask_starter`: gage imported
   once per worker, a fork per run) that leads its own session:
   `start_run` verifies the run dir against its manifest and sealed
   meta, and refuses a run that differs (then nothing runs and the
   result says `refused`);
3. each line the run writes is sent to the client as it comes (a worker
   event on the engine's topic, with the run's id);
4. the result is the meta dir and the files the run generated, modified
   or deleted (never the staged inputs again), with the worker's host and
   address and the exit code. The scratch dir is then removed.

`cancel_runs(token)` is run on every worker by the client
(`Client.run`) when the user cancels: each run of that engine gets
SIGTERM (its runner passes it on and completes the record, `terminated`)
and runs of it that have not started yet are not started.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import uuid
from typing import IO, Any

from ..store import run_meta
from ..util import file_util
from . import dask_starter, run_archive

__all__ = ["IncompatibleWorker", "cancel_runs", "run_task"]

_TERM_WAIT = 10.0


class IncompatibleWorker(Exception):
    """This worker reads another run archive format than the client
    writes; args: the message (naming both), the worker, its host."""


_lock = threading.Lock()
_procs: dict[str, dict[str, dask_starter.Child]] = {}
_cancelled: set[str] = set()


def run_task(
    data: bytes,
    digest: str,
    run_id: str,
    token: str,
    topic: str | None,
    **options: Any,
) -> dict[str, Any]:
    """Run the staged run in `data` here; what happened, for the client.

    Events go to `topic` (None: none): one when the run starts, then its
    output lines unless option `quiet` (options a worker does not know
    are ignored: clients and workers of other gage versions meet).

    The result is a dict: `status` (`ran`, `refused` or `cancelled`),
    `host`, `worker`, and for a run that ran `exit_code`, `archive` (tar
    bytes: meta dir and changed files), `deleted` (paths) and `lines`
    (how many output lines were sent); for a refused run `error`.
    IncompatibleWorker when this worker reads another archive format.
    """
    where = dict(_where(), attempt=uuid.uuid4().hex)
    with _lock:
        if token in _cancelled:
            return dict(where, status="cancelled")
    try:
        run_archive.check_format(data, "this worker")
    except run_archive.FormatError as e:
        raise IncompatibleWorker(str(e), where["worker"], where["host"]) from None
    try:
        digests = run_archive.check_digest(data, digest, f"run {run_id}")
    except run_archive.ArchiveError as e:
        return dict(where, status="refused", error=str(e))
    scratch = tempfile.mkdtemp(prefix=f"gage-{run_id[:8]}-", dir=_local_dir())
    try:
        try:
            run = run_archive.unpack_run(data, scratch, run_id, digests)
        except run_archive.ArchiveError as e:
            return dict(where, status="refused", error=str(e))
        quiet = bool(options.get("quiet"))
        return dict(where, **_run(run, token, topic, where, quiet))
    finally:
        file_util.remove_tree(scratch, ignore_errors=True)


def cancel_runs(token: str) -> int:
    """SIGTERM every run of engine `token` on this worker; start no more.
    Returns how many runs were signalled."""
    with _lock:
        _cancelled.add(token)
        procs = list(_procs.get(token, {}).values())
    for child in procs:
        child.signal(signal.SIGTERM)
        timer = threading.Timer(_TERM_WAIT, child.signal, args=(signal.SIGKILL,))
        timer.daemon = True
        timer.start()
    return len(procs)


def _where() -> dict[str, Any]:
    from distributed import get_worker

    return {"host": socket.gethostname(), "worker": get_worker().address}


class _Events:
    """Sends events to the client's topic (None: sends nothing). The
    worker is looked up in the task's thread: output threads have none."""

    def __init__(self, topic: str | None) -> None:
        from distributed import get_worker

        self.topic = topic
        self.worker = get_worker() if topic else None

    def send(self, msg: dict[str, Any]) -> bool:
        if self.worker is None or self.topic is None:
            return False
        try:
            self.worker.log_event(self.topic, msg)
        except Exception:  # the worker is closing: the output is in meta
            return False
        return True


def _local_dir() -> str | None:
    from distributed import get_worker

    path = getattr(get_worker(), "local_directory", None)
    return path if path and os.path.isdir(path) else None


def _run(
    run: Any, token: str, topic: str | None, where: dict[str, Any], quiet: bool
) -> dict[str, Any]:
    files_before = len(run_meta.read_files_log(run))
    with _lock:
        if token in _cancelled:
            return {"status": "cancelled"}
        child = dask_starter.start_run_child(run.run_dir, run.runs_home)
        _procs.setdefault(token, {})[run.id] = child
    try:
        counts = [0, 0]
        stderr: list[str] = []
        event = dict(where, run=run.id)
        events = _Events(topic)
        events.send(event)
        pumps = [
            threading.Thread(
                target=_pump,
                args=(src, n, event, None if quiet else events, counts, stderr),
                daemon=True,
            )
            for n, src in enumerate((child.stdout, child.stderr))
        ]
        for t in pumps:
            t.start()
        for t in pumps:
            t.join()
        code = child.wait()
    finally:
        with _lock:
            _procs.get(token, {}).pop(run.id, None)
    if run_meta.read_timestamp(run, "started") is None:
        msg = "".join(stderr).strip().removeprefix("gage: ")
        return {"status": "refused", "error": msg or f"gage exited with {code}"}
    changed, deleted = _changed_files(run, files_before)
    return {
        "status": "ran",
        "exit_code": run_meta.read_exit_code(run),
        "archive": run_archive.pack_paths(run, changed),
        "deleted": deleted,
        "lines": counts[0] + counts[1],
    }


def _pump(
    src: IO[bytes],
    stream: int,
    event: dict[str, Any],
    events: _Events | None,
    counts: list[int],
    stderr: list[str],
) -> None:
    for raw in iter(src.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        if stream == 1:
            stderr.append(line + "\n")
        if events and events.send(dict(event, stream=stream, line=line)):
            counts[stream] += 1
    src.close()


def _changed_files(run: Any, skip: int) -> tuple[list[str], list[str]]:
    """Files the run added or modified, and those it deleted: the
    `log/files` events after the first `skip` (those were staging's)."""
    changed: list[str] = []
    deleted: list[str] = []
    for e in run_meta.read_files_log(run)[skip:]:
        (deleted if e.event == "d" else changed).append(e.path)
    return changed, deleted
