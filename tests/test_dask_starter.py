"""The warm run starter of the dask engine, without Dask: a fork per run
that leads its own session, its output on the worker's pipes, its exit
status reported, and its runs ended when the worker goes away."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time

import pytest

from gage._internal.cli import main as cli
from gage._internal.engines import dask_starter
from gage._internal.home import runs
from gage._internal.util import run_exec

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork")

_OP = """\
import os, signal, sys, time
secs = 0.0
fail = 0
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", os.getpid(), flush=True)
time.sleep(secs)
sys.exit(fail)
"""


@pytest.fixture
def stage(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text(
        '[op]\nexec = "python op.py"\nconfig = "op.py"\n'
    )
    (project / "op.py").write_text(_OP)
    home = str(tmp_path / "runs")
    monkeypatch.chdir(project)

    def stage(*assigns: str):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            args = ["run", "op", *assigns, "--stage", "-y", "--runs-dir", home]
            assert cli.main(args) == 0
        return runs.load_run(os.path.join(home, out.getvalue().split()[-1]))

    yield stage
    if dask_starter._starter is not None:
        dask_starter._close(dask_starter._starter)
        dask_starter._starter = None


def test_run_in_own_session_with_exit_code(stage):
    run = stage("secs=0.3", "fail=3")
    child = dask_starter.start_run_child(run.run_dir, run.runs_home)
    assert os.getsid(child.pid) == child.pid
    out = child.stdout.read().decode()
    err = child.stderr.read().decode()
    assert child.wait() == 3
    assert "ready" in out
    assert "failed with exit code 3" in err
    assert runs.run_status(run) == "error"
    # The next run is a fork of the same starter.
    proc = dask_starter._starter.proc
    run2 = stage("secs=0")
    child2 = dask_starter.start_run_child(run2.run_dir, run2.runs_home)
    child2.stdout.read()
    child2.stderr.read()
    assert child2.wait() == 0
    assert dask_starter._starter.proc is proc
    assert runs.run_status(run2) == "completed"


def test_worker_gone_ends_its_runs(stage):
    run = stage("secs=30")
    child = dask_starter.start_run_child(run.run_dir, run.runs_home)
    assert child.stdout.readline().startswith(b"Running op as ")
    word, pid = child.stdout.readline().split()
    assert word == b"ready"
    # What the starter sees when its worker dies: its socket closes.
    t0 = time.monotonic()
    dask_starter._starter.sock.close()
    child.stdout.read()
    child.stderr.read()
    assert child.wait() is None  # the starter ended first: no status
    # Nobody is left to bring the record home (the scheduler starts the
    # run again elsewhere): the run ends at once, SIGTERM ignored or not,
    # not in 30 s nor after a grace period (issue 19, item 11).
    while run_exec.pid_alive(int(pid)) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert not run_exec.pid_alive(int(pid))
    assert time.monotonic() - t0 < 5
    assert runs.run_status(run) == "abandoned"
    dask_starter._starter.proc.wait(5)
