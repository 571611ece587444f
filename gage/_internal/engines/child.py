"""A staged run in a process of its own: the entry point engines start.

    python -m gage._internal.engines.child RUN_DIR [--quiet] [--once]

does what `gage run --start RUN_DIR -y` does (the CLI calls the same
library functions): start the run here, name it, print one `gage:` line
when it fails, and exit with the code `run_start.run_exit` gives. On
Linux the process ends when its parent does (PR_SET_PDEATHSIG), so a
run never outlives the gage that started it.

`--once` (a Slurm job, which Slurm may requeue): a run that was started
before is left as it is, with one line, and the exit code is 0.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["main", "print_starting", "start"]


def main(argv: list[str], parent_death: int = signal.SIGTERM) -> int:
    """Start the staged run at argv[0] (`--quiet`: no name, no output).

    `parent_death`: the signal this process gets when its parent ends
    (SIGTERM: the run is ended and its record completed; SIGKILL, from a
    Dask worker's starter: nobody is left to read the record, and the
    runner's watchdog ends the run's process group at once).
    """
    _die_with_parent(parent_death)
    return start(argv[0], quiet="--quiet" in argv[1:], once="--once" in argv[1:])


def start(run_dir: str, quiet: bool = False, once: bool = False) -> int:
    from ..home import runs
    from ..lifecycle import run_start
    from ..store import run_meta
    from ..types import GageError, RunError
    from ..util import console

    console.gage_lines()
    try:
        run = runs.select_run(os.path.dirname(os.path.abspath(run_dir)), run_dir)
        if once and run_meta.has_timestamp(run, "started"):
            print(
                f"gage: run {run.name} was started before (a requeued job?): "
                "a run starts once, so it is not started again",
                file=sys.stderr,
            )
            return 0
        run_start.start_run(
            run,
            quiet=quiet,
            on_start=None if quiet else lambda: print_starting(run),
            warn=console.warn_line,
        )
    except GageError as e:
        print(f"gage: {e}", file=sys.stderr)
        return 1 if isinstance(e, RunError) else 2
    except KeyboardInterrupt:
        print("gage: interrupted", file=sys.stderr)
        return 130
    code, msg = run_start.run_exit(run)
    if msg:
        print(f"gage: {msg}", file=sys.stderr)
    return code


def print_starting(run) -> None:
    """`Running OP as NAME (ID)`: the line that names a run as it starts."""
    from ..home import runs

    op = runs.op_name(run) or "run"
    print(f"Running {op} as {run.name} ({run.id})", flush=True)


def _die_with_parent(sig: int) -> None:
    from ..util import run_exec

    set_pdeathsig = run_exec.die_with_parent(sig)
    if set_pdeathsig:
        set_pdeathsig()
    if os.getppid() == 1:  # the parent ended before the call
        os.kill(os.getpid(), sig)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
