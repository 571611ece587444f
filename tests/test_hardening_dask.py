"""Hardening of the dask engine (issue 19, items 11-13) on real clusters:
a `dask scheduler` and `dask worker` processes on 127.0.0.1, a cluster
of its own for each test (each test kills part of it), ended by pid.

- 11: a worker SIGKILLed mid-run takes its copy of the run with it (the
  run's whole process group), while the scheduler starts the run again
  on another worker: never two copies at once;
- 12: a scheduler killed mid-batch is one `gage:` line, exit 1; the runs
  that started end `abandoned` (their record, as far as it came home),
  the others stay `staged`;
- 13: a worker that reads another archive format refuses the run naming
  both formats and is given no more runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pytest

from gage._internal.cli import main as cli
from gage._internal.engines import engine_dask
from gage._internal.home import runs
from gage._internal.store import run_meta, run_records

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="process groups, /proc"
)

_START_TIMEOUT = 30.0

# Writes its pid to MARKS/<pid> and a line every 0.1 s; ignores SIGTERM
# and starts a grandchild that does the same (both must die with the
# worker that runs them).
_OP = """\
import os, signal, subprocess, sys, time
secs = 0.5
marks = ""
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if marks:
    open(os.path.join(marks, str(os.getpid())), "w").close()
    code = (
        "import os, signal, time\\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
        f"open(os.path.join({marks!r}, 'g' + str(os.getpid())), 'w').close()\\n"
        f"time.sleep({secs})\\n"
    )
    subprocess.Popen([sys.executable, "-c", code])
print("ready", flush=True)
end = time.monotonic() + secs
while time.monotonic() < end:
    print("tick", flush=True)
    time.sleep(0.1)
print("done", flush=True)
"""


@dataclass
class Cluster:
    dir: str
    scheduler_file: str
    scheduler: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start_worker(
        self, name: str, nanny: bool = False, preload: str | None = None
    ) -> None:
        scratch = os.path.join(self.dir, name)
        os.mkdir(scratch)
        args = ["--host", "127.0.0.1", "--nthreads", "1"]
        args += [] if nanny else ["--no-nanny"]
        args += ["--preload", preload] if preload else []
        args += ["--no-dashboard", "--local-directory", scratch, "--name", name]
        self.workers[name] = _spawn(self, name, "dask_worker", args)

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(scheduler_file=self.scheduler_file, timeout=10) as client:
            client.wait_for_workers(n, timeout=_START_TIMEOUT)

    def close(self) -> None:
        for p in [*self.workers.values(), self.scheduler]:
            if p is not None:
                _kill(p)


def _spawn(c: Cluster, name, cli_name, args, env=None):
    with open(os.path.join(c.dir, f"{name}.log"), "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"distributed.cli.{cli_name}", *args]
            + ["--scheduler-file", c.scheduler_file],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )


def _kill(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def _wait_for(cond, what, timeout=_START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def cluster(tmp_path_factory):
    dir = str(tmp_path_factory.mktemp("dask-cluster"))
    c = Cluster(dir, os.path.join(dir, "scheduler.json"))
    try:
        c.scheduler = _spawn(
            c,
            "scheduler",
            "dask_scheduler",
            ["--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
        )
        _wait_for(lambda: os.path.exists(c.scheduler_file), "scheduler file")
        yield c
    finally:
        c.close()


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "gage.toml").write_text(
        '[op]\nexec = "python op.py"\nconfig = "op.py"\n'
    )
    (tmp_path / "op.py").write_text(_OP)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.chdir(tmp_path)
    for name in ("GAGE_RUNS", "GAGE_ENGINE", "GAGE_SCHEDULER", "GAGE_SCHEDULER_FILE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _stage(*assigns: str):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["run", "op", *assigns, "--stage", "-y"]) == 0
    return runs.load_run(out.getvalue().splitlines()[-1])


def _marks(project) -> dict[str, list[int]]:
    """Pids of the runs' copies (`run`) and their grandchildren (`grand`)."""
    names = os.listdir(project / "marks")
    return {
        "run": sorted(int(n) for n in names if n.isdigit()),
        "grand": sorted(int(n[1:]) for n in names if n.startswith("g")),
    }


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def _starters(worker: int) -> list[int]:
    """The run starters a worker process started (from /proc)."""
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError):
            continue
        if ppid == worker and b"engines.dask_starter" in cmdline:
            found.append(int(name))
    assert found, "no run starter"
    return found


# ---------------------------------------------------------------------------
# Item 11: a run dies with its worker


@pytest.mark.parametrize(
    "nanny, starter", [(False, False), (True, False), (False, True)]
)
def test_run_dies_with_its_killed_worker(cluster, project, nanny, starter):
    """The worker alone, under a nanny or not, or the worker and its run
    starter at once (a tree killed together)."""
    cluster.start_worker("w1", nanny=nanny)
    cluster.start_worker("w2", nanny=nanny)
    cluster.wait_for_workers(2)
    marks = str(project / "marks")
    run = _stage("secs=6", f"marks={marks}")
    engine = engine_dask.make_engine(1, scheduler_file=cluster.scheduler_file)
    try:
        fut = engine.submit(run)
        _wait_for(lambda: engine._lines.get(run.id, 0) >= 3, "the run's output")
        _wait_for(lambda: _marks(project)["grand"], "the run's grandchild")
        first = _marks(project)
        assert len(first["run"]) == 1 and len(first["grand"]) == 1
        key = f"gage-run-{run.id}-{engine.token[:8]}"
        (addr,) = [w for w, k in engine.client.processing().items() if key in k]
        pid = engine.client.run(os.getpid)[addr]
        doomed = [pid, *(_starters(pid) if starter else [])]
        for p in doomed:
            os.kill(p, signal.SIGKILL)
        # The orphaned copy and what it started end at once (they
        # ignore SIGTERM), well before the 6 s they would run.
        orphans = first["run"] + first["grand"]
        _wait_for(lambda: not any(_alive(p) for p in orphans), "the orphans", 3.0)
        assert fut.result(timeout=60) == 0
    finally:
        engine.close()
    assert runs.run_status(run) == "completed"
    assert len(_marks(project)["run"]) == 2


# ---------------------------------------------------------------------------
# Item 12: the scheduler killed mid-batch


def test_scheduler_killed_mid_batch(cluster, project):
    cluster.start_worker("w1")
    cluster.start_worker("w2")
    cluster.wait_for_workers(2)
    marks = str(project / "marks")
    p = subprocess.Popen(
        [sys.executable, "-m", "gage", "run", "op", "secs=[20,21,22,23]"]
        + [f"marks={marks}", "-y", "--jobs", "2", "--engine", "dask"]
        + ["--scheduler-file", cluster.scheduler_file],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, GAGE_DASK_RECONNECT="3"),
    )
    try:
        ready = 0
        out = []
        for line in p.stdout:
            out.append(line)
            ready += line.rstrip().endswith("| ready")
            if ready == 2:
                break
        os.kill(cluster.scheduler.pid, signal.SIGKILL)
        rest, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out.append(rest)
    assert p.returncode == 1, "".join(out) + err
    lines = err.splitlines()
    gage_lines = [line for line in lines if "|" not in line]
    assert len(gage_lines) == 1, err
    assert gage_lines[0].startswith("gage: "), err
    assert "scheduler" in gage_lines[0]
    trials = runs.list_runs(str(project / ".gage" / "runs"))
    assert len(trials) == 4
    status = sorted(runs.run_status(r) for r in trials)
    assert status[2:] == ["staged", "staged"], status
    assert set(status[:2]) <= {"abandoned", "terminated"}, status
    assert "lost the Dask scheduler" in gage_lines[0]
    for run in trials:
        if runs.run_status(run) == "staged":
            assert run.name in gage_lines[0].split("still staged")[1]
            continue
        # What came back is in the record: where it ran, its output.
        assert "ready" in run_meta.read_output_tail(run, lines=1000)
        log = open(run_meta.run_meta_path(run, "log", "runner")).read()
        assert "was lost while it ran" in log
        assert run_records.read_worker(run)["engine"] == "dask"
    for run in trials:
        done = subprocess.run(
            [sys.executable, "-m", "gage", "check", run.id],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------
# Item 13: a worker of another gage

# A worker preload: this worker's gage is an older one, which reads
# archive format 1 only (the module is gage's own, patched in the real
# worker process before it takes a task).
_OLD_GAGE = """\
import gage
from gage._internal.engines import run_archive

gage.__version__ = "0.0.1"
run_archive.FORMAT = 1
"""


@pytest.fixture
def old_gage(tmp_path):
    path = tmp_path / "old_gage.py"
    path.write_text(_OLD_GAGE)
    return str(path)


def _batch(cluster, n: int, jobs: int) -> subprocess.CompletedProcess:
    secs = ",".join(f"0.{i}" for i in range(1, n + 1))
    return subprocess.run(
        [sys.executable, "-m", "gage", "run", "op", f"secs=[{secs}]", "-y"]
        + ["--jobs", str(jobs), "--engine", "dask"]
        + ["--scheduler-file", cluster.scheduler_file],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _refusals(run) -> int:
    log = open(run_meta.run_meta_path(run, "log", "runner")).read()
    return log.count("Refused by Dask worker")


def test_worker_of_another_gage_gets_no_more_runs(cluster, project, old_gage):
    cluster.start_worker("old", preload=old_gage)
    cluster.start_worker("new")
    cluster.wait_for_workers(2)
    from distributed import Client

    with Client(scheduler_file=cluster.scheduler_file, timeout=10) as client:
        names = {i["name"]: a for a, i in client.scheduler_info()["workers"].items()}
    done = _batch(cluster, 6, 2)
    assert done.returncode == 0, done.stdout + done.stderr
    trials = runs.list_runs(str(project / ".gage" / "runs"))
    assert len(trials) == 6
    for run in trials:
        assert runs.run_status(run) == "completed"
        assert run_records.read_worker(run)["worker"] == names["new"]
    # The old worker refused what it was given before its first refusal
    # came back (at most a run per slot), then nothing more.
    refused = sum(_refusals(r) for r in trials)
    assert 1 <= refused <= 2, done.stderr
    notes = [line for line in done.stderr.splitlines() if "no more runs" in line]
    assert len(notes) == 1, done.stderr
    assert names["old"] in notes[0]
    assert "archive format 2 (gage " in notes[0]
    assert "this worker reads format 1 (gage 0.0.1)" in notes[0]
    assert "changed on its way" not in done.stderr


def test_no_worker_of_this_gage(cluster, project, old_gage):
    cluster.start_worker("old", preload=old_gage)
    cluster.wait_for_workers(1)
    done = _batch(cluster, 3, 2)
    assert done.returncode == 1, done.stdout + done.stderr
    err = done.stderr.splitlines()
    assert len(err) == 1, done.stderr
    assert err[0].startswith("gage: no Dask worker can start run ")
    assert "archive format 2 (gage " in err[0]
    assert "this worker reads format 1 (gage 0.0.1)" in err[0]
    trials = runs.list_runs(str(project / ".gage" / "runs"))
    assert [runs.run_status(r) for r in trials] == ["staged"] * 3
