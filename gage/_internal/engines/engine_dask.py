"""The dask engine: staged runs start on a Dask distributed cluster.

Dask distributed is the engine, not a home-made one: the same client
reaches a local cluster, a Slurm or PBS cluster (dask-jobqueue),
Kubernetes (dask-kubernetes) or ssh hosts (`dask ssh`); its scheduler
places runs on workers and starts a run again on another worker when the
one running it dies. It is an optional extra (`dask`: `pip install
'.[dask]'` in a clone of gage), imported only when `--engine dask` is used.

No filesystem is shared with the workers. For each run:

1. the client packs the staged run (run dir and meta dir) into tar bytes
   (`run_archive.pack_run`) and submits `dask_task.run_task` with the
   bytes and their sha256 as its arguments: the scheduler holds them, so
   a run that starts again starts from a fresh copy;
2. the worker checks and unpacks them in a scratch dir of its own, starts
   the run with gage (`gage run --start DIR`, which verifies the run dir
   against its manifest and sealed meta and refuses a run that differs),
   sends each output line back as it comes, and returns the meta dir and
   the files the run generated (`dask_task`);
3. the client accepts exactly one result per run: it puts the generated
   files in the run dir, records the worker (`worker.json`) and swaps the
   returned meta dir for the staged one in one rename, so the run's
   record at home is complete and true (`gage check` passes).

Output lines are worker events on a topic of this engine
(`Worker.log_event`, `Client.subscribe_topic`), printed as `name| line`;
the last of them (up to `dask_lost.TAIL_BYTES` a run) are kept until the run's
record comes home.

A scheduler lost while runs are in flight (killed, its host gone) is one
error for every run (`DaskEngineError`), once the records at home say
what is known: a run that had started is `abandoned` (`started`, the
worker, the output that came back and a runner log line: its copy on the
worker may still run, so it is not started again), the others stay
`staged`. Distributed's own log line about it is not shown.

With no scheduler, the engine starts a local cluster of `jobs` worker
processes on 127.0.0.1. A scheduler that cannot be reached is one error
(`DaskEngineError`) when the engine is made, before anything is staged.
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
import uuid
from typing import Any

from ..store import run_meta
from ..types import Run, RunError
from ..util import console
from . import dask_lost, dask_task, run_archive
from .dask_result import place_result

__all__ = ["CONNECT_TIMEOUT", "DaskEngine", "DaskEngineError", "make_engine"]

CONNECT_TIMEOUT = 5.0
"""Seconds to reach a scheduler before giving up (GAGE_DASK_CONNECT_TIMEOUT)."""

_CANCEL_WAIT = 30.0
_LINES_WAIT = 5.0
_CONNECTION_LOST = "scheduler-connection-lost"


class DaskEngineError(RunError):
    """The Dask cluster cannot be reached or cannot run a run."""


def make_engine(
    jobs: int,
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    timeout: float | None = None,
    progress: bool | None = None,
) -> DaskEngine:
    """A dask engine with up to `jobs` runs in flight, connected to
    `scheduler` (an address) or `scheduler_file`, else to a local
    cluster of `jobs` worker processes."""
    if timeout is None:
        timeout = _connect_timeout()
    return DaskEngine(jobs, scheduler, scheduler_file, timeout, progress)


def _connect_timeout() -> float:
    text = os.environ.get("GAGE_DASK_CONNECT_TIMEOUT")
    if not text:
        return CONNECT_TIMEOUT
    try:
        val = float(text)
    except ValueError:
        val = -1.0
    if not val > 0:
        raise DaskEngineError(
            f"GAGE_DASK_CONNECT_TIMEOUT must be a number of seconds above 0, "
            f"got '{text}'"
        )
    return val


class DaskEngine:
    def __init__(
        self,
        jobs: int,
        scheduler: str | None = None,
        scheduler_file: str | None = None,
        timeout: float = CONNECT_TIMEOUT,
        progress: bool | None = None,
    ) -> None:
        self.client, self.cluster = _connect(jobs, scheduler, scheduler_file, timeout)
        self.address = self.client.scheduler.address
        self.token = uuid.uuid4().hex
        self.topic = f"gage-output-{self.token}"
        show = console.isatty(sys.stderr) if progress is None else progress
        self.console = console.RunsConsole(show)
        # A slot is a run on the cluster; it is free again as soon as the
        # run's task ends there, while its result comes home meanwhile.
        self._slots = threading.BoundedSemaphore(jobs)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2 * jobs, thread_name_prefix="gage-dask"
        )
        self._lock = threading.Condition()
        self._names: dict[str, str] = {}
        self._attempts: dict[str, str] = {}
        self._lines: dict[str, int] = {}
        self._accepted: set[str] = set()
        self._retired: dict[str, str] = {}  # worker -> why it gets no runs
        self._notes: dict[str, list[str]] = {}  # run id -> runner log lines
        self._futures: list[concurrent.futures.Future[int]] = []
        self._runs: dict[str, tuple[Run, bool]] = {}  # id -> run, quiet
        self._dfuts: dict[str, Any] = {}
        self._tails: dict[str, dask_lost.Tail] = {}
        self._lost: DaskEngineError | None = None
        self._cancelled = False
        self._closed = False
        self._log_filter = dask_lost.LostLogFilter()
        self._log_filter.install()
        self.client.subscribe_topic(self.topic, self._on_event)

    def submit(
        self, run: Run, *, quiet: bool = False
    ) -> concurrent.futures.Future[int]:
        """Send a staged run to the cluster; its exit code once its record
        is complete here."""
        with self._lock:
            lost = self._lost
            self._runs[run.id] = (run, quiet)
        if lost is not None:
            fut: concurrent.futures.Future[int] = concurrent.futures.Future()
            fut.set_exception(lost)
            return fut
        self.console.update(queued=1)
        fut = self._pool.submit(self._run, run, quiet)
        self._futures.append(fut)
        return fut

    def cancel(self) -> None:
        """End every run in flight (`terminated`, their records brought
        home); runs not started yet stay staged."""
        with self._lock:
            self._cancelled = True
        for fut in self._futures:
            fut.cancel()
        try:
            self.client.run(dask_task.cancel_runs, self.token, on_error="ignore")
        except Exception as e:  # a cluster gone away: nothing left to end
            self._warn(f"cannot reach the Dask workers to cancel runs: {e}")
        concurrent.futures.wait(self._futures, timeout=_CANCEL_WAIT)

    def close(self) -> None:
        """Wait for the runs in flight; end the local cluster, if any."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        self.console.clear()
        try:
            if self._lost is None:
                self.client.unsubscribe_topic(self.topic)
        except Exception:
            pass
        if self.cluster is not None:
            from .dask_local import SHUTDOWN_WAIT

            wait = SHUTDOWN_WAIT
            try:
                self.client.shutdown()  # the local scheduler and its workers
            except Exception:
                wait = 0.0
            self.cluster.close(wait)
        self.client.close()
        self._log_filter.remove()

    # -- one run

    def _run(self, run: Run, quiet: bool) -> int:
        # Packed while the runs before it are in flight: a free slot
        # sends it at once.
        sent = _Sent(run, _pack(run), quiet)
        with self._lock:
            self._names[run.id] = run.name
        try:
            dfut = self._submit(sent)
        except BaseException:
            self.console.update(queued=-1)
            raise
        if dfut is None:
            self.console.update(queued=-1)
            return 130
        self.console.update(queued=-1, running=1)
        code = 1
        try:
            code = self._result(sent, dfut)
        finally:
            self.console.update(running=-1, done=1, failed=int(code != 0))
        return code

    def _submit(self, sent: _Sent) -> Any:
        """Submit a run once a slot is free, to the workers that read
        this gage's archives; None when cancelled."""
        self._slots.acquire()
        try:
            with self._lock:
                if self._cancelled:
                    self._slots.release()
                    return None
            self._check_connected()
            sent.attempts += 1
            again = f"-{sent.attempts}" if sent.attempts > 1 else ""
            dfut = self.client.submit(
                dask_task.run_task,
                sent.data,
                sent.digest,
                sent.run.id,
                self.token,
                self.topic,
                quiet=sent.quiet,
                key=f"gage-run-{sent.run.id}-{self.token[:8]}{again}",
                pure=False,
                workers=self._workers(sent.run),
                allow_other_workers=False,
            )
        except BaseException:
            self._slots.release()
            raise
        dfut.add_done_callback(self._task_done)
        with self._lock:
            self._dfuts[sent.run.id] = dfut
        return dfut

    def _task_done(self, dfut: Any) -> None:
        # A task that failed keeps its slot until its run's thread knows
        # why: a worker that refused it is retired before the slot takes
        # the next run.
        if dfut.status != "error":
            self._slots.release()

    def _release_failed(self, dfut: Any) -> None:
        # The slot of a failed task (see _task_done); once.
        if dfut.status == "error":
            self._slots.release()

    def _result(self, sent: _Sent, dfut: Any) -> int:
        while True:
            result = self._wait(sent.run, dfut)
            if isinstance(result, dict):
                return self._accept(sent.run, result)
            if result is not None:
                return result
            dfut = self._submit(sent)
            if dfut is None:
                return 130

    def _wait(self, run: Run, dfut: Any) -> dict[str, Any] | int | None:
        """The result of a run's task, the exit code when it has none, or
        None when it is to be sent again (its worker was retired)."""
        try:
            return dfut.result()
        except concurrent.futures.CancelledError as e:
            if getattr(e, "reason", None) == _CONNECTION_LOST:
                raise self._lose() from None
            self._check_connected()
            return 130
        except dask_task.IncompatibleWorker as e:
            try:
                self._retire(run, *e.args)
            finally:
                self._release_failed(dfut)
            return None
        except Exception as e:
            # KilledWorker (workers died running it too often) and the like.
            self._release_failed(dfut)
            msg = f"run {run.name} did not complete on the cluster: {_reason(e)}"
            run_meta.runner_log(run).info(msg)
            self._warn(msg)
            return 1

    # -- workers of another gage

    def _retire(self, run: Run, error: str, worker: str, host: str) -> None:
        """A worker that reads another archive format is given no more
        runs; DaskEngineError when no worker is left."""
        where = f"{worker} (host {host})"
        note = f"Refused by Dask worker {where}: {error}"
        with self._lock:
            new = worker not in self._retired
            self._retired[worker] = error
            self._notes.setdefault(run.id, []).append(note)
        run_meta.runner_log(run).info(note)
        if not self._workers(run):
            raise DaskEngineError(
                f"no Dask worker can start run {run.name}: worker {where} "
                f"refused it: {error}; the run stays staged",
                run=run.id,
            )
        if new:
            self._warn(f"Dask worker {where} is given no more runs: {error}")

    def _workers(self, run: Run) -> list[str] | None:
        """The workers a run may go to: all (None) until one is retired."""
        if not self._retired:
            return None
        try:
            known = self.client.scheduler_info()["workers"]
        except Exception:
            raise self._lose() from None
        return sorted(w for w in known if w not in self._retired)

    def _accept(self, run: Run, result: dict[str, Any]) -> int:
        with self._lock:
            if run.id in self._accepted:
                return run_meta.read_exit_code(run) or 0
            self._accepted.add(run.id)
            self._tails.pop(run.id, None)
        where = f"{result.get('host')} ({result.get('worker')})"
        if result["status"] == "cancelled":
            return 130
        if result["status"] == "refused":
            msg = f"run {run.name} refused by Dask worker {where}: {result['error']}"
            run_meta.runner_log(run).info(msg)
            self._warn(msg)
            return 1
        self._wait_lines(run.id, result.get("attempt"), result.get("lines", 0))
        worker = {
            "engine": "dask",
            "host": result.get("host"),
            "worker": result.get("worker"),
            "scheduler": self.address,
        }
        with self._lock:
            notes = self._notes.pop(run.id, [])
        deleted = result.get("deleted") or []
        place_result(run, result["archive"], deleted, worker, notes)
        code = run_meta.read_exit_code(run)
        return code if code is not None else 1

    # -- output

    def _on_event(self, event: Any) -> None:
        _time, msg = event
        run_id = msg.get("run")
        attempt = msg.get("attempt")
        name = self._names.get(run_id, run_id[:8] if run_id else "?")
        with self._lock:
            if self._attempts.get(run_id) != attempt:
                again = run_id in self._attempts
                self._attempts[run_id] = attempt
                self._lines[run_id] = 0
                self._tails[run_id] = dask_lost.Tail(_time, msg)
            else:
                again = False
            tail = self._tails.get(run_id)
            if tail is not None and "line" in msg:
                tail.add(_time, msg.get("stream") or 0, msg["line"])
            quiet = self._runs.get(run_id, (None, True))[1]
        if again and not quiet:
            self.console.line(
                sys.stderr,
                name,
                f"gage: started again on {msg.get('host')} ({msg.get('worker')}): "
                "the worker that ran it was lost",
            )
        if "line" in msg:
            dest = sys.stderr if msg.get("stream") == 1 else sys.stdout
            self.console.line(dest, name, msg["line"])
            with self._lock:
                self._lines[run_id] = self._lines.get(run_id, 0) + 1
                self._lock.notify_all()

    def _wait_lines(self, run_id: str, attempt: str | None, count: int) -> None:
        """Wait (a little) for the output lines still on their way."""
        with self._lock:
            self._lock.wait_for(
                lambda: (
                    self._attempts.get(run_id) == attempt
                    and self._lines.get(run_id, 0) >= count
                ),
                timeout=_LINES_WAIT if count else 0,
            )

    def _warn(self, msg: str) -> None:
        self.console.line(sys.stderr, "gage", msg)

    # -- a lost scheduler

    def _check_connected(self) -> None:
        """Raise the lost scheduler's error when the client lost it."""
        if self._lost is not None or self.client.status in (
            "connecting",
            "closing",
            "closed",
        ):
            raise self._lose()

    def _lose(self) -> DaskEngineError:
        """The error of a lost scheduler, the same for every run; made
        once, after the records of the runs in flight say what is known."""
        with self._lock:
            if self._lost is None:
                self._log_filter.lost = True
                self._lost = self._lost_error()
            return self._lost

    def _lost_error(self) -> DaskEngineError:
        abandoned: list[str] = []
        staged: list[str] = []
        for run_id, (run, _quiet) in self._runs.items():
            dfut = self._dfuts.get(run_id)
            if run_id in self._accepted or (
                dfut is not None and dfut.status == "finished"
            ):
                continue  # its record is home, or on its way
            self._accepted.add(run_id)
            tail = self._tails.pop(run_id, None)
            if tail is None:
                staged.append(run.name)
            else:
                dask_lost.abandon(run, tail, self.address)
                abandoned.append(run.name)
        return DaskEngineError(dask_lost.message(self.address, abandoned, staged))


class _Sent:
    """A run as sent to the cluster (again, to another worker)."""

    def __init__(self, run: Run, data: bytes, quiet: bool) -> None:
        self.run = run
        self.data = data
        self.digest = run_archive.archive_digest(data)
        self.quiet = quiet
        self.attempts = 0


def _pack(run: Run) -> bytes:
    return run_archive.pack_run(run)


def _reason(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if type(e).__name__ == "KilledWorker":
        return (
            "the workers that ran it died too many times "
            "(distributed.scheduler.allowed-failures)"
        )
    return text


# ---------------------------------------------------------------------------
# Connect


def _connect(
    jobs: int, scheduler: str | None, scheduler_file: str | None, timeout: float
) -> tuple[Any, Any]:
    """A connected client, and the local cluster it uses (or None)."""
    if scheduler and scheduler_file:
        raise DaskEngineError("give a scheduler address or a scheduler file, not both")
    cluster = None
    if scheduler_file:
        if not os.path.isfile(scheduler_file):
            raise DaskEngineError(
                f"Dask scheduler file {scheduler_file} does not exist: start a "
                f"scheduler with 'dask scheduler --scheduler-file {scheduler_file}' "
                "or give the right file; nothing was staged",
                path=scheduler_file,
            )
        where = f"in {scheduler_file}"
    elif scheduler:
        where = f"at {scheduler}"
    else:
        from . import dask_local

        cluster = dask_local.start_cluster(jobs)
        scheduler_file = cluster.scheduler_file
        where = "of the local cluster"
    try:
        client = _client(scheduler, scheduler_file, timeout)
        if cluster is not None:
            client.wait_for_workers(jobs, timeout=dask_local.START_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as e:
        if cluster is not None:
            cluster.close()
        raise DaskEngineError(
            f"cannot reach the Dask scheduler {where} within {timeout:g}s "
            f"({_reason(e).splitlines()[0]}): start it, or fix --scheduler, "
            "--scheduler-file, $scheduler in gage.toml or GAGE_SCHEDULER; "
            "nothing was staged"
        ) from None
    return client, cluster


def _client(scheduler: str | None, scheduler_file: str | None, timeout: float) -> Any:
    from distributed import Client

    if scheduler_file:
        return Client(scheduler_file=scheduler_file, timeout=timeout)
    return Client(scheduler, timeout=timeout)
