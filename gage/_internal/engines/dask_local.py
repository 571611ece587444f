"""A local Dask cluster for the dask engine when no scheduler is given.

A `dask scheduler` and N `dask worker` processes on 127.0.0.1, each in a
session of its own: a Ctrl-C in the terminal reaches gage alone, which
then cancels its runs through the cluster (their records come home
`terminated`) before it ends the cluster. Each process is ended by its
pid in `close`, and dies with gage (PR_SET_PDEATHSIG on Linux). The
scheduler file and the workers' scratch dirs are in a temp dir that
`close` removes.

Processes rather than `distributed.LocalCluster`: its worker processes
are made by multiprocessing, which imports the `__main__` of the program
that made them again and shares its terminal's process group.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from ..types import RunError
from ..util import run_exec

__all__ = ["LocalCluster", "start_cluster"]

START_TIMEOUT = 30.0
SHUTDOWN_WAIT = 5.0
"""Seconds a local cluster told to shut down has to end by itself."""
_STOP_WAIT = 5.0


@dataclass
class LocalCluster:
    """A local Dask cluster: its dir, scheduler file and processes."""

    dir: str
    scheduler_file: str
    procs: list[subprocess.Popen[bytes]]

    def close(self, wait: float = 0.0) -> None:
        """End every process by its pid (SIGTERM, then SIGKILL), remove dir.

        `wait`: seconds to let the processes end by themselves first,
        when the scheduler was told to shut down: a worker that gets
        SIGTERM while it closes can hang until it is killed.
        """
        deadline = time.monotonic() + wait
        for p in self.procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            if p.poll() is None:
                run_exec.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_WAIT
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                run_exec.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_cluster(workers: int, timeout: float = START_TIMEOUT) -> LocalCluster:
    """Start a scheduler and `workers` worker processes (one thread each)
    on 127.0.0.1; the cluster once its scheduler file is written."""
    dir = tempfile.mkdtemp(prefix="gage-dask-")
    scheduler_file = os.path.join(dir, "scheduler.json")
    cluster = LocalCluster(dir, scheduler_file, [])
    try:
        cluster.procs.append(
            _spawn(
                "dask_scheduler",
                ["--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                scheduler_file,
                dir,
            )
        )
        for i in range(workers):
            scratch = os.path.join(dir, f"worker-{i + 1}")
            os.mkdir(scratch)
            args = ["--host", "127.0.0.1", "--nthreads", "1", "--no-nanny"]
            args += ["--no-dashboard", "--local-directory", scratch]
            args += ["--name", f"local-{i + 1}"]
            cluster.procs.append(_spawn("dask_worker", args, scheduler_file, dir))
        _wait_for_file(cluster, timeout)
    except BaseException:
        cluster.close()
        raise
    return cluster


def _spawn(
    cli: str, args: list[str], scheduler_file: str, dir: str
) -> subprocess.Popen[bytes]:
    log = open(os.path.join(dir, f"{cli}-{len(os.listdir(dir))}.log"), "wb")
    with log:
        return subprocess.Popen(
            [sys.executable, "-m", f"distributed.cli.{cli}", *args]
            + ["--scheduler-file", scheduler_file],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=run_exec.die_with_parent(),
        )


def _wait_for_file(cluster: LocalCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(cluster.scheduler_file):
        if cluster.procs[0].poll() is not None or time.monotonic() > deadline:
            raise RunError(
                "cannot start a local Dask cluster: the scheduler did not start "
                f"within {timeout:g}s (is 'distributed' installed? "
                "install gage's dask extra: in a clone of gage, "
                "pip install -e '.[dask]')"
            )
        time.sleep(0.05)
