"""Engines: where staged runs start.

Staging always happens here, in the gage process, in dependency order;
an engine only starts runs that are staged. Every engine implements
`Engine`:

- `submit(run, quiet=False)` starts a staged run (now, or when a slot
  is free) and returns a future that resolves to the run's exit code
  once its record (meta dir, status, output, manifest) is complete in
  its runs home. A run that cannot start resolves to a non-zero code.
- `cancel()` ends every run in flight (they end `terminated`) and drops
  the runs not started yet (they stay `staged`).
- `close()` waits for runs in flight and frees the engine.

`get_engine(name, jobs, **options)` makes one: `local` (this module),
`dask` (`engine_dask.make_engine(jobs, **options)`) or `slurm`
(`engine_slurm.make_engine`), each imported only then.

The local engine starts up to `jobs` runs at once, each as its own
`gage run --start RUN_DIR` process in its own process group (session),
so a Ctrl-C in the terminal reaches gage once: gage then cancels, which
sends SIGTERM to each run's process; the run's runner passes it to the
command and completes the record (`terminated`). A run's process dies
with gage (PR_SET_PDEATHSIG on Linux), so no run is left behind.

With more than one job, each line a run writes is printed with the run's
name in front (`name| line`), whole lines only, and on a terminal an
overall progress line is kept at the bottom of stderr. With one job, a
run's output goes straight to gage's stdout and stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol

from ..project import gagefile
from ..types import GageError, Run
from ..util import console, run_exec

if TYPE_CHECKING:
    import concurrent.futures

__all__ = [
    "ENGINES",
    "Engine",
    "LocalEngine",
    "engine_settings",
    "get_engine",
]

ENGINES = gagefile.ENGINES

_TERM_WAIT = 10.0


class Engine(Protocol):
    def submit(
        self, run: Run, *, quiet: bool = False
    ) -> concurrent.futures.Future[int]: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


def get_engine(name: str, jobs: int, **options: Any) -> Engine:
    """An engine by name: `local`, `dask` (the optional extra) or `slurm`."""
    if jobs < 1:
        raise GageError(f"--jobs must be 1 or more, got {jobs}")
    if name == "local":
        return LocalEngine(jobs, **options)
    if name == "dask":
        try:
            from . import engine_dask
        except ImportError as e:
            raise GageError(
                f"the dask engine is not available ({e}): install gage's dask "
                "extra (in a clone of gage: pip install -e '.[dask]')"
            ) from None
        return engine_dask.make_engine(jobs, **options)
    if name == "slurm":
        from . import engine_slurm

        return engine_slurm.make_engine(jobs, **options)
    raise GageError(f"unknown engine '{name}' (known engines: {', '.join(ENGINES)})")


def engine_settings(
    engine: str | None = None,
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    gf: gagefile.Gagefile | None = None,
    slurm: dict[str, Any] | None = None,
    detach: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The engine name and options for a command: from the command line
    (`--engine`, `--scheduler`, `--scheduler-file`), else the environment
    (`GAGE_ENGINE`, `GAGE_SCHEDULER`, `GAGE_SCHEDULER_FILE`), else
    gage.toml (`$engine`, `$scheduler`, `$scheduler-file`), else `local`.
    A scheduler comes whole from the first of these that names one.
    `slurm` (the command line's Slurm settings) and `detach` apply to
    the slurm engine only; its settings are `$slurm`, then these."""
    env = os.environ
    name = engine or env.get("GAGE_ENGINE") or (gf.engine if gf else None) or "local"
    if name not in ENGINES:
        source = "--engine" if engine else "GAGE_ENGINE"
        raise GageError(
            f"unknown engine '{name}' in {source} (known engines: "
            f"{', '.join(ENGINES)})",
            key=source,
        )
    pairs = [
        (scheduler, scheduler_file),
        (env.get("GAGE_SCHEDULER"), env.get("GAGE_SCHEDULER_FILE")),
        (gf.scheduler, gf.scheduler_file) if gf else (None, None),
    ]
    address, file = next((p for p in pairs if p[0] or p[1]), (None, None))
    if name != "slurm" and (slurm or detach):
        what = "--detach" if detach else "--slurm options"
        raise GageError(f"{what} apply to --engine slurm (the engine is {name})")
    if name != "dask":
        if scheduler or scheduler_file:
            raise GageError(
                "--scheduler and --scheduler-file apply to --engine dask "
                f"(the engine is {name})"
            )
        if name == "slurm":
            project = gf.slurm if gf else None
            return name, {"project": project, "cli": slurm, "detach": detach}
        return name, {}
    if address and file:
        raise GageError(
            f"give a Dask scheduler address ({address}) or a scheduler file "
            f"({file}), not both"
        )
    return name, {"scheduler": address, "scheduler_file": file}


# ---------------------------------------------------------------------------
# Local engine


class LocalEngine:
    """Up to `jobs` runs at once on this machine, each in its own process
    group. `prefix`: print each output line with the run's name (default:
    when jobs > 1). `progress`: the progress line (default: when jobs > 1
    and stderr is a terminal)."""

    def __init__(
        self, jobs: int, prefix: bool | None = None, progress: bool | None = None
    ) -> None:
        self.jobs = jobs
        self.prefix = jobs > 1 if prefix is None else prefix
        show = jobs > 1 and console.isatty(sys.stderr) if progress is None else progress
        self.console = console.RunsConsole(show)
        # Imported here: `gage run` of one run in its own process needs
        # no pool (engine_settings is all it uses of this module).
        import concurrent.futures

        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=jobs, thread_name_prefix="gage-run"
        )
        self._lock = threading.Lock()
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._futures: list[concurrent.futures.Future[int]] = []
        self._cancelled = False

    def submit(
        self, run: Run, *, quiet: bool = False
    ) -> concurrent.futures.Future[int]:
        # A run may write to the same stdout/stderr: what gage printed
        # before must come first.
        sys.stdout.flush()
        sys.stderr.flush()
        self.console.update(queued=1)
        fut = self._pool.submit(self._run, run, quiet)
        self._futures.append(fut)
        return fut

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            procs = list(self._procs.values())
        for fut in self._futures:
            fut.cancel()
        for p in procs:
            run_exec.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(_TERM_WAIT)
            except subprocess.TimeoutExpired:
                run_exec.killpg(p.pid, signal.SIGKILL)
        import concurrent.futures

        concurrent.futures.wait(self._futures, timeout=_TERM_WAIT)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.console.clear()

    # -- one run

    def _run(self, run: Run, quiet: bool) -> int:
        with self._lock:
            if self._cancelled:
                return 130
            try:
                p = self._spawn(run, quiet)
            except OSError as e:
                self.console.update(queued=-1, done=1, failed=1)
                self.console.error(f"cannot start run {run.name}: {e}")
                return 1
            self._procs[p.pid] = p
        self.console.update(queued=-1, running=1)
        try:
            pumps = self._pumps(run, p)
            code = p.wait()
            for t in pumps:
                t.join()
        finally:
            with self._lock:
                self._procs.pop(p.pid, None)
        result = run_exit_code(run, code)
        self.console.update(running=-1, done=1, failed=int(result != 0))
        return result

    def _spawn(self, run: Run, quiet: bool) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "gage._internal.engines.child", run.run_dir] + (
            ["--quiet"] if quiet else []
        )
        pipe = subprocess.PIPE if self.prefix else None
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=pipe,
            stderr=pipe,
            start_new_session=True,
        )

    def _pumps(self, run: Run, p: subprocess.Popen[bytes]) -> list[threading.Thread]:
        if not self.prefix:
            return []
        threads = []
        for src, dest in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
            t = threading.Thread(
                target=self.console.pump, args=(src, dest, run.name), daemon=True
            )
            t.start()
            threads.append(t)
        return threads


def run_exit_code(run: Run, proc_code: int) -> int:
    """The run's exit code from its record, else the process's code (a
    run that could not start)."""
    from ..store import run_meta

    code = run_meta.read_exit_code(run)
    if code is not None:
        return code
    return proc_code if proc_code != 0 else 1
