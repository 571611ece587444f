"""Start a staged run and complete its record.

A staged run starts from its run dir and meta dir alone: nothing here
reads the project, and nothing written to meta holds an absolute path,
so a staged run can be moved (run dir and meta dir together) and
started where it lands.

    start_run: lock -> verify -> exec -> finalize_run
"""

from __future__ import annotations

import contextlib
import errno
import os
import shlex
import signal
import threading
import time
from typing import Any, Callable, Iterator

from ..faults import fault_point
from ..home.runs import run_exit as run_exit
from ..home.runs import run_status
from ..project.op_exec import op_cmd
from ..store import pins, run_meta, run_records
from ..store.run_meta import (
    FileEvent,
    ManifestEntry,
    append_files_log,
    read_opdef,
    runner_log,
    write_timestamp,
)
from ..types import OpDef, Run, RunError, RunLockedError, VerifyError
from ..util import file_lock, file_util, gc_pause, run_exec
from ..util.console import terminal_progress
from . import provenance
from .run_stage import check_run_dirs
from .run_summary import read_run_summary
from .run_verify import digest_cache, file_digest, verify_files
from .scalars_capture import start_capture

__all__ = ["finalize_run", "run_exit", "start_run"]

_LOCK_PID_WAIT = 2.0


def start_run(
    run: Run,
    quiet: bool = False,
    verify: bool = True,
    on_start: Callable[[], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> int:
    """Run a staged run's command in its run dir and finalize it.

    Returns the command's exit code (negative for a signal). Refuses a
    run that is not staged, is running or has run (RunError), one that
    another process holds (RunLockedError) and, unless `verify` is false,
    one whose staged files differ from its manifest (VerifyError).
    `on_start` is called once the run is verified, just before its
    command starts (the CLI names the run then); `warn` with a line when
    the run's output was cut (a full disk).
    """
    fault_point("starting")
    check_run_dirs(run, RunError)
    try:
        lock = file_lock.try_lock(run_meta.lock_path(run))
    except file_lock.Locked:
        raise RunLockedError(_locked_msg(run)) from None
    except PermissionError:
        raise RunError(
            f"Cannot lock run {run.name} ({run.id}): permission denied "
            f"for {run_meta.lock_path(run)}; the meta dir must be writable"
        ) from None
    try:
        return _start_locked(run, quiet, verify, on_start, warn)
    finally:
        file_lock.unlock(lock)


def _locked_msg(run: Run) -> str:
    # The holder writes proc/lock right after it takes the lock.
    deadline = time.monotonic() + _LOCK_PID_WAIT
    proc_lock = run_records.read_proc_lock(run)
    while proc_lock is None and time.monotonic() < deadline:
        time.sleep(0.02)
        proc_lock = run_records.read_proc_lock(run)
    pid = str(proc_lock.pid) if proc_lock else "unknown"
    return (
        f"Run {run.name} ({run.id}) is held by another process (pid {pid}): "
        "it is being started or is running; wait for it or stop that process"
    )


def _start_locked(
    run: Run,
    quiet: bool,
    verify: bool,
    on_start: Callable[[], None] | None,
    warn: Callable[[str], None] | None,
) -> int:
    log = runner_log(run)
    _claim(run)
    deferred: list[int] = []
    # Space to complete the record if the run fills the disk.
    file_util.reserve_space(run_records.reserve_path(run), _RESERVE)
    try:
        before = _verified_files(run, log, quiet) if verify else None
        args = run_meta.read_proc_cmd(run)
        env = _run_env(run)
        if on_start:
            on_start()
        # Read while the command starts, written before finalize; begun
        # before `started` so that nothing lies between it and the
        # command's signal handling.
        environment = provenance.begin_environment(run, args, env)
        captures: list[Any] = []
        try:
            # Scalars are read once the process runs: signals are passed
            # to it by then.
            exit_code = _exec(
                run,
                args,
                env,
                quiet,
                warn,
                on_start=lambda _p: captures.append(
                    start_capture(run, read_opdef(run), log)
                ),
            )
        except run_exec.ExecError as e:
            log.info(str(e))
            environment.finish()
            _free_reserve(run)
            with _signals_deferred(run, deferred):
                finalize_run(run, 127, quiet=quiet, _before=before)
            raise RunError(
                f"{e} (run {run.name}): check the command in "
                f"{run_meta.run_meta_path(run, 'proc', 'cmd')} and PATH"
            ) from None
        log.info(f"Run process exited with code {exit_code}")
        _free_reserve(run)
        with _signals_deferred(run, deferred):
            for capture in captures:
                if capture:
                    capture.stop()
            environment.finish()
            finalize_run(run, exit_code, quiet=quiet, _before=before)
        return exit_code
    finally:
        _free_reserve(run)
        run_records.delete_proc_lock(run)
        _raise_deferred(deferred)


def _claim(run: Run) -> None:
    """Refuse a run that is not staged, else write `proc/lock` (first: a
    process refused the lock reads the pid there)."""
    status = run_status(run)
    if status not in ("staged", "queued"):  # queued: its Slurm job starts it
        raise RunError(_not_startable_msg(run, status))
    pid = os.getpid()
    run_records.write_proc_lock(run, pid, run_exec.proc_start_time(pid))


def _verified_files(run: Run, log: Any, quiet: bool) -> dict[str, tuple[int, int]]:
    """Verify a run before it starts; its files' (size, mtime). Verified
    files match the manifest: only files the run touches need hashing
    again at the end (unverified ones may not: all are hashed then)."""
    with gc_pause.paused():  # a run of many files: see gc_pause
        stats = file_util.snapshot_stats(run.run_dir)
        before = {p: (st.st_size, st.st_mtime_ns) for p, st in stats.items()}
        _verify_for_start(run, log, before, quiet, stats)
    return before


def _exec(
    run: Run,
    args: list[str],
    env: dict[str, str],
    quiet: bool,
    warn: Callable[[str], None] | None,
    on_start: Callable[[Any], None] | None = None,
) -> int:
    """Write `started` and run the command (`on_start(process)` once it
    runs). From `started` on, a signal
    is the run's: one that arrives before exec_proc forwards them is
    held and passed on as soon as the command runs."""
    early: list[int] = []
    with _signals_held(early):
        write_timestamp(run, "started")
        pins.unpin_run(run.runs_home, run.id)  # running now: rm leaves it
        runner_log(run).info(f"Starting run {run.id}: {shlex.join(args)}")
        fault_point("started")
        output, _index = run_meta.output_paths(run, "run")
        return run_exec.exec_proc(
            args,
            run.run_dir,
            env,
            output,
            quiet=quiet,
            on_start=on_start,
            on_signal=lambda sig: _on_signal(run, sig),
            on_cut=lambda msg: _on_cut(run, msg, warn),
            early_signals=early,
        )


@contextlib.contextmanager
def _signals_held(held: list[int]) -> Iterator[None]:
    """Collect SIGINT/SIGTERM/SIGHUP in `held` until exec_proc installs
    its own handlers (it restores these after); then the originals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {
        sig: signal.signal(sig, lambda sig, _frame: held.append(sig))
        for sig in run_exec.FORWARDED
    }
    try:
        yield
    finally:
        for sig, prev in saved.items():
            signal.signal(sig, prev)


@contextlib.contextmanager
def _signals_deferred(run: Run, deferred: list[int]) -> Iterator[None]:
    """Hold SIGINT/SIGTERM while the record of a run is completed.

    The run's process has ended; a signal now would leave the record
    half written. It is raised again once the record is complete.
    """

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(sig: int, _frame: Any) -> None:
        deferred.append(sig)
        name = signal.Signals(sig).name
        runner_log(run).info(f"Received {name}: completing the run record first")

    saved = {sig: signal.signal(sig, handler) for sig in run_exec.FORWARDED}
    try:
        yield
    finally:
        for sig, prev in saved.items():
            signal.signal(sig, prev)


def _raise_deferred(deferred: list[int]) -> None:

    if deferred:
        signal.raise_signal(deferred[0])


def _not_startable_msg(run: Run, status: str) -> str:
    what = f"Run {run.name} ({run.id})"
    if status == "pending":
        return f"{what} is not staged: stage it before starting it"
    if run_meta.read_timestamp(run, "started") is None:
        return (
            f"{what} is not staged: its staging was abandoned (the process "
            "that staged it ended first); stage a new run"
        )
    if status == "running":
        lock = run_records.read_proc_lock(run)
        pid = lock.pid if lock else "unknown"
        return f"{what} is already running (pid {pid})"
    return (
        f"{what} has already been started (status {status}): "
        "a run starts once; stage a new run"
    )


def _verify_for_start(
    run: Run,
    log: Any,
    files: dict[str, tuple[int, int]],
    quiet: bool,
    stats: dict[str, os.stat_result],
) -> None:
    # Files whose stat is what staging recorded are not read again.
    progress = terminal_progress("Verifying", quiet)
    try:
        with digest_cache(run) as cache:
            diffs = verify_files(run, files, cache, progress, stats)
    finally:
        progress.done()
    if not diffs:
        return
    listing = ", ".join(str(d) for d in diffs)
    log.info("Refused to start: staged files differ from the manifest\n" + listing)
    raise VerifyError(
        f"Run {run.name} ({run.id}) differs from its manifest: {listing}; "
        "stage a new run, or start it without verifying to run it as it is "
        f"(gage run --start {run.name} --no-verify)"
    )


def _run_env(run: Run) -> dict[str, str]:
    env = dict(os.environ)
    env.update(run_meta.read_proc_env(run))
    env["RUN_ID"] = run.id
    env["RUN_DIR"] = run.run_dir
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


_RESERVE = 256 * 1024


def _free_reserve(run: Run) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(run_records.reserve_path(run))


def _on_cut(run: Run, msg: str, warn: Callable[[str], None] | None) -> None:
    runner_log(run).info(f"Run {msg}")
    if warn:
        warn(f"run {run.name}: {msg}")


def _on_signal(run: Run, sig: int) -> None:

    name = signal.Signals(sig).name
    if run_records.read_proc_signal(run) is None:
        run_records.write_proc_signal(run, name)
    if sig == signal.SIGKILL:
        runner_log(run).info(
            "The run did not end on the signal it was passed (a second "
            "signal, or the grace period ended): sending SIGKILL to its "
            "process group"
        )
    else:
        runner_log(run).info(f"Received {name}: passing it to the run process")


# Finalize


def finalize_run(
    run: Run,
    exit_code: int,
    quiet: bool = True,
    _before: dict[str, tuple[int, int]] | None = None,
) -> None:
    """Complete the record of a run whose process ended with `exit_code`.

    Runs the op's `finalize` hook if it has one, records generated (g),
    modified (m) and deleted (d) files in `log/files`, adds generated
    files to the manifest, reads the run's summary into meta, then writes
    `exit_code` and `stopped`.
    """
    log = runner_log(run)
    opdef = read_opdef(run)
    try:
        if opdef.get_exec().get("finalize") is not None:
            _run_finalize_hook(run, opdef, exit_code, quiet, log)
        with gc_pause.paused():
            _log_run_files(run, _before)
        read_run_summary(run, opdef, log)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A full disk: the record says so, and the run still ends.
        log.info(f"Run record incomplete (files, summary): {e}")
    fault_point("finalize")
    for phase in ("run", "finalize"):
        for path in run_meta.output_paths(run, phase):
            if os.path.exists(path):
                file_util.make_readonly(path)
    run_meta.write_exit_code(run, exit_code)
    write_timestamp(run, "stopped")
    log.info(f"Run stopped with exit code {exit_code} ({run_status(run)})")


def _run_finalize_hook(
    run: Run, opdef: OpDef, exit_code: int, quiet: bool, log: Any
) -> None:
    cmd = op_cmd(opdef, "finalize")
    args = cmd.args
    env = _run_env(run)
    env.update(cmd.env)
    env["RUN_EXIT_CODE"] = str(exit_code)
    output, _index = run_meta.output_paths(run, "finalize")
    log.info(f"Running finalize hook: {shlex.join(args)}")
    try:
        code = run_exec.exec_proc(args, run.run_dir, env, output, quiet=quiet)
    except run_exec.ExecError as e:
        log.info(f"finalize hook could not start: {e}")
        return
    log.info(f"finalize hook exited with code {code}")


def _log_run_files(run: Run, before: dict[str, tuple[int, int]] | None) -> None:
    """Log what the run did to the run dir; extend the manifest."""
    manifest = {e.path: e for e in run_meta.read_manifest(run)}
    after = file_util.snapshot_dir(run.run_dir)
    events: list[FileEvent] = []
    generated: list[ManifestEntry] = []
    for path in sorted(after):
        mtime = after[path][1]
        full = f"{run.run_dir}/{path}"
        staged = manifest.get(path)
        if staged is None:
            events.append(FileEvent("a", "g", mtime, path))
            generated.append(ManifestEntry("g", file_digest(full), path))
        elif before is None or before.get(path) != after[path]:
            if file_digest(full) != staged.sha256:
                events.append(FileEvent("m", staged.type, mtime, path))
    for path in sorted(set(manifest) - set(after)):
        events.append(FileEvent("d", manifest[path].type, 0, path))
    append_files_log(run, events)
    if generated:
        run_meta.append_manifest(run, generated)
