"""The slurm engine: each staged run is a Slurm batch job.

Runs are staged here, in the runs home, which the cluster's nodes share
(a cluster's home or project filesystem). Each staged run is submitted
with `sbatch` as a job whose script ends in

    exec PYTHON -m gage._internal.engines.child RUN_DIR --quiet --once

i.e. `gage run --start RUN_DIR` on a node: the run verifies its files and
sealed meta there, runs, and completes its own record in its meta dir.
What the job itself prints (gage's lines, Slurm's own such as a time
limit) goes to `slurm.out` in the meta dir; the job id to `slurm.json`.

Slurm's own commands do the work (`sbatch --parsable`, `squeue`,
`scancel`, `scontrol`, `sacct` where accounting is on: util/slurm_cmd):
they are on every login node and need no Python package.

While gage waits, each run's output (its `output/40_run`, on the shared
filesystem) is printed as `name| line`. A run is done when its record
says `stopped`; a job that ends without it (Slurm killed it before the
runner could finish: a node failure, a time limit past KillWait) leaves
its run `abandoned`, with Slurm's state and reason in `slurm.json` (a
time limit within KillWait ends the run `terminated`: Slurm sends
SIGTERM first and the runner completes the record). A job Slurm
requeues starts nothing twice: `--once` leaves a started run alone.

Up to `jobs` runs are queued or running at once. `cancel` (Ctrl-C)
scancels every job: running runs end `terminated`, queued ones stay
`staged`. With `detach`, runs are submitted and gage returns: the jobs
are chained (`--dependency=afterany`) so that no more than `jobs` run at
once, and `gage runs` shows them queued/running from Slurm's queue.
"""

from __future__ import annotations

import concurrent.futures
import os
import shlex
import sys
import threading
import time
from typing import Any, Callable

from ..project import slurm_settings
from ..store import run_meta, run_records
from ..types import Run, RunError
from ..util import console, slurm_cmd
from . import engine

__all__ = ["SlurmEngine", "SlurmEngineError", "job_script", "make_engine"]

POLL = 1.0
"""Seconds between two squeue calls (GAGE_SLURM_POLL); a run's end is
seen sooner, from its record on the shared filesystem."""

_TICK = 0.05
_END_WAIT = 15.0
_CANCEL_WAIT = 60.0
_CHILD = "gage._internal.engines.child"


class SlurmEngineError(RunError):
    """Slurm is not here, or a job cannot be submitted."""


def make_engine(
    jobs: int,
    project: dict[str, Any] | None = None,
    cli: dict[str, Any] | None = None,
    detach: bool = False,
    progress: bool | None = None,
) -> SlurmEngine:
    """A slurm engine; refused at once (before anything is staged) when
    Slurm's commands are not on this machine."""
    missing = slurm_cmd.missing()
    if missing:
        raise SlurmEngineError(
            f"Slurm is not available here ({', '.join(missing)} not on PATH): "
            "run gage on a Slurm login node, or use --engine local"
        )
    return SlurmEngine(jobs, project, cli, detach, progress)


def job_script(run: Run, settings: dict[str, Any], python: str = "") -> str:
    """The batch script of a run's job (`#SBATCH` lines for the named
    settings; `args` go on sbatch's command line, see `sbatch_args`)."""
    lines = ["#!/bin/bash"]
    named = [a for a in slurm_settings.sbatch_args(settings) if "=" in a]
    named = [a for a in named if a.split("=", 1)[0] in _NAMED_OPTS]
    lines += [f"#SBATCH {a}" for a in named]
    lines.append(f"# gage run {run.name} ({run.id})")
    setup = settings.get("setup")
    if setup:
        lines.append(setup.rstrip("\n"))
    cmd = [python or sys.executable, "-m", _CHILD, run.run_dir, "--quiet", "--once"]
    lines.append("exec " + shlex.join(cmd))
    return "\n".join(lines) + "\n"


_NAMED_OPTS = (
    "--partition",
    "--time",
    "--cpus-per-task",
    "--mem",
    "--gres",
    "--account",
    "--qos",
)


def sbatch_args(run: Run, settings: dict[str, Any]) -> list[str]:
    """sbatch's command line for a run's job (besides --parsable)."""
    return [
        f"--job-name=gage-{run.name}",
        f"--output={run_records.slurm_output_path(run)}",
        "--open-mode=append",
        f"--chdir={run.run_dir}",
    ] + list(settings.get("args", []))


def run_settings(
    run: Run, project: dict[str, Any] | None, cli: dict[str, Any] | None
) -> dict[str, Any]:
    """A run's Slurm settings: `[$slurm]`, then its op's, then the
    command line's."""
    try:
        op = run_meta.read_opdef(run).data.get("slurm")
    except (OSError, ValueError):
        op = None
    return slurm_settings.merge(project, op if isinstance(op, dict) else None, cli)


class SlurmEngine:
    def __init__(
        self,
        jobs: int,
        project: dict[str, Any] | None = None,
        cli: dict[str, Any] | None = None,
        detach: bool = False,
        progress: bool | None = None,
    ) -> None:
        self.jobs = jobs
        self.project, self.cli, self.detach = project, cli, detach
        self.poll = _poll_interval()
        show = console.isatty(sys.stderr) if progress is None else progress
        self.console = console.RunsConsole(show and not detach)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=jobs, thread_name_prefix="gage-slurm"
        )
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._live: dict[str, Run] = {}
        self._states: dict[str, slurm_cmd.Job] = {}
        self._polled = 0.0
        self._submitted: list[str] = []
        self._futures: list[concurrent.futures.Future[int]] = []
        self._cancelled = False

    def submit(
        self, run: Run, *, quiet: bool = False
    ) -> concurrent.futures.Future[int]:
        """Queue a staged run as a Slurm job; its exit code once its
        record is complete (with `detach`: 0 once it is queued)."""
        sys.stdout.flush()
        if self.detach:
            return self._submit_detached(run, quiet)
        self.console.update(queued=1)
        fut = self._pool.submit(self._run, run, quiet)
        self._futures.append(fut)
        return fut

    def cancel(self) -> None:
        """scancel every job: running runs end `terminated` (Slurm sends
        SIGTERM, the runner completes the record), queued ones stay
        `staged`."""
        with self._lock:
            self._cancelled = True
            ids = list(self._live)
        for fut in self._futures:
            fut.cancel()
        try:
            slurm_cmd.cancel(ids)
        except slurm_cmd.SlurmError as e:
            self.console.error(f"cannot cancel Slurm jobs {' '.join(ids)}: {e}")
        concurrent.futures.wait(self._futures, timeout=_CANCEL_WAIT)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.console.clear()

    # -- submitting

    def _submit_detached(self, run: Run, quiet: bool) -> concurrent.futures.Future[int]:
        fut: concurrent.futures.Future[int] = concurrent.futures.Future()
        after = (
            self._submitted[-self.jobs] if len(self._submitted) >= self.jobs else None
        )
        try:
            job_id = self._sbatch(run, after)
        except slurm_cmd.SlurmError as e:
            self.console.error(f"cannot submit run {run.name}: {e}")
            fut.set_result(1)
            return fut
        self._submitted.append(job_id)
        if not quiet:
            _print_queued(run, job_id)
        fut.set_result(0)
        return fut

    def _sbatch(self, run: Run, after: str | None = None) -> str:
        settings = run_settings(run, self.project, self.cli)
        args = sbatch_args(run, settings)
        if after:
            args.append(f"--dependency=afterany:{after}")
        job_id = slurm_cmd.submit(job_script(run, settings), args)
        run_records.write_slurm(run, {"job_id": job_id})
        return job_id

    # -- one run, waited for

    def _run(self, run: Run, quiet: bool) -> int:
        with self._lock:
            if self._cancelled:
                return 130
        try:
            job_id = self._sbatch(run)
        except slurm_cmd.SlurmError as e:
            self.console.update(queued=-1, done=1, failed=1)
            self.console.error(f"cannot submit run {run.name}: {e}")
            return 1
        with self._lock:
            self._live[job_id] = run
            cancelled = self._cancelled
        if cancelled:  # cancel() ran while sbatch did
            _try(self.console, slurm_cmd.cancel, [job_id])
        if not quiet:
            self.console.line(sys.stdout, run.name, f"queued as Slurm job {job_id}")
        try:
            job = self._wait(run, job_id, quiet)
        finally:
            with self._lock:
                self._live.pop(job_id, None)
        return self._result(run, job, quiet)

    def _wait(self, run: Run, job_id: str, quiet: bool) -> slurm_cmd.Job | None:
        """Wait for the run's record to say `stopped`, or for its job to
        end without it; the job as Slurm last reported it (None when the
        record came first and the run completed)."""
        tail = _Tail(run_meta.output_paths(run, "run")[0])
        show: Callable[[str], None] = lambda line: self.console.line(  # noqa: E731
            sys.stdout, run.name, line
        )
        started = False
        while True:
            if not quiet:
                tail.pump(show)
            if not started and run_meta.has_timestamp(run, "started"):
                started = True
                self.console.update(queued=-1, running=1)
            if run_meta.has_timestamp(run, "stopped"):
                break
            job = self._job(job_id)
            if job and job.state in slurm_cmd.FINAL_STATES:
                break
            time.sleep(_TICK)
        if started:  # the record may show a moment after the job's end
            _wait_for(lambda: run_meta.has_timestamp(run, "stopped"), 2.0)
        if not quiet:
            tail.pump(show, final=True)
        if not started:
            self.console.update(queued=-1, running=1)
        if run_meta.read_exit_code(run) == 0:
            return None
        return self._final(job_id)

    def _job(self, job_id: str) -> slurm_cmd.Job | None:
        """The job as the last squeue (at most `poll` s old) reported it;
        one squeue for all jobs in flight."""
        with self._poll_lock:
            if time.monotonic() - self._polled >= self.poll:
                self._polled = time.monotonic()
                with self._lock:
                    ids = list(self._live)
                try:
                    found = slurm_cmd.queue(ids)
                except slurm_cmd.SlurmError:
                    found = None  # asked again next time
                if found is not None:
                    for i in ids:
                        self._states[i] = found.get(i) or slurm_cmd.job_info(i)
            return self._states.get(job_id)

    def _final(self, job_id: str) -> slurm_cmd.Job:
        """The job once Slurm says it ended (waits a little: the run's
        record can come before the job's end)."""
        deadline = time.monotonic() + _END_WAIT
        job = slurm_cmd.job_info(job_id)
        while job.state not in slurm_cmd.FINAL_STATES and time.monotonic() < deadline:
            time.sleep(min(self.poll, 0.5))
            job = slurm_cmd.job_info(job_id)
        return job

    def _result(self, run: Run, job: slurm_cmd.Job | None, quiet: bool) -> int:
        ended = job is not None and job.state in slurm_cmd.FINAL_STATES
        if job is not None and ended:
            record = {"job_id": job.id, "state": job.state, "reason": job.reason}
            record["exit_code"] = job.exit_code
            _try(
                self.console,
                run_records.write_slurm,
                run,
                {k: v for k, v in record.items() if v},
            )
        code = engine.run_exit_code(run, 1)
        self.console.update(running=-1, done=1, failed=int(code != 0))
        if job is None or not ended or self._cancelled:
            return code
        why = f"{job.state} ({job.reason})" if job.reason else job.state
        if not run_meta.has_timestamp(run, "started"):
            self._not_started(run, job.id, why)
        elif not run_meta.has_timestamp(run, "stopped"):
            self.console.error(
                f"run {run.name}: Slurm job {job.id} ended {why} before "
                "the run could complete its record (status abandoned)"
            )
        elif job.state not in ("COMPLETED", "FAILED"):
            self.console.error(f"run {run.name}: Slurm job {job.id} ended {why}")
        return code

    def _not_started(self, run: Run, job_id: str, why: str) -> None:
        path = run_records.slurm_output_path(run)
        for line in _last_lines(path, 10):
            self.console.line(sys.stderr, run.name, line)
        self.console.error(
            f"run {run.name} did not start: Slurm job {job_id} ended "
            f"{why}; its output is in {path}"
        )


def _print_queued(run: Run, job_id: str) -> None:
    from ..home import runs

    op = runs.op_name(run) or "run"
    print(f"Queued {op} as {run.name} ({run.id}): Slurm job {job_id}", flush=True)


class _Tail:
    """Whole lines added to a file since the last call."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def pump(self, line: Callable[[str], None], final: bool = False) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except (FileNotFoundError, IsADirectoryError):
            return
        self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        for raw in lines:
            line(raw.decode("utf-8", errors="replace"))


def _last_lines(path: str, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-n:]


def _wait_for(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(_TICK)


def _try(out: console.RunsConsole, func: Callable[..., Any], *args: Any) -> None:
    try:
        func(*args)
    except (OSError, slurm_cmd.SlurmError) as e:
        out.error(str(e))


def _poll_interval() -> float:
    text = os.environ.get("GAGE_SLURM_POLL")
    if not text:
        return POLL
    try:
        val = float(text)
    except ValueError:
        val = -1.0
    if not val > 0:
        raise SlurmEngineError(
            f"GAGE_SLURM_POLL must be a number of seconds above 0, got '{text}'"
        )
    return val
