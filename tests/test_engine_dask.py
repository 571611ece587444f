"""The dask engine on a real cluster: a `dask scheduler` and two `dask
worker` processes on 127.0.0.1, each worker with a scratch dir of its
own, shared by the tests of this module (started once, ended by pid).

The client's staged copy of each run is moved away once it is packed and
put back only when its result comes home, so a worker that read the
client's paths instead of the bytes it was sent would fail.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass

import pytest

from gage._internal.cli import main as cli
from gage._internal.engines import dask_task, engine_dask, run_archive
from gage._internal.home import runs
from gage._internal.lifecycle.run_verify import verify_run
from gage._internal.store import run_meta, run_records

_START_TIMEOUT = 30.0

_OP = """\
import os, sys, time
secs = 0.5
fail = 0
print("ready", flush=True)
print("gage env:", sorted(k for k in os.environ if k.startswith("GAGE_")))
time.sleep(secs)
with open(os.path.join("out", "result.txt"), "w") as f:
    f.write("trial done\\n")
print("--- summary ---")
print('{"loss": 0.25}')
sys.exit(fail)
"""


@dataclass
class Cluster:
    dir: str
    scheduler_file: str
    procs: list
    client: object = None

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from distributed import Client

    dir = str(tmp_path_factory.mktemp("dask-cluster"))
    scheduler_file = os.path.join(dir, "scheduler.json")
    c = Cluster(dir, scheduler_file, [])
    try:
        c.procs.append(
            _spawn(
                dir,
                "scheduler",
                "dask_scheduler",
                ["--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                scheduler_file,
            )
        )
        _wait_for(lambda: os.path.exists(scheduler_file), "scheduler file")
        for i in (1, 2):
            scratch = os.path.join(dir, f"worker-{i}")
            os.mkdir(scratch)
            args = ["--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1"]
            args += ["--no-nanny", "--no-dashboard", "--local-directory", scratch]
            args += ["--name", f"worker-{i}"]
            c.procs.append(
                _spawn(dir, f"worker-{i}", "dask_worker", args, scheduler_file)
            )
        c.client = Client(scheduler_file=scheduler_file, timeout=10)
        c.client.wait_for_workers(2, timeout=_START_TIMEOUT)
        yield c
    finally:
        if c.client is not None:
            c.client.close()
        for p in c.procs:
            _kill(p)


def _spawn(dir, name, cli_name, args, scheduler_file):
    # A worker whose own settings name the dask engine: a run started
    # there must still start there (not on another engine).
    env = dict(os.environ, GAGE_ENGINE="dask", GAGE_SCHEDULER="tcp://127.0.0.1:9")
    with open(os.path.join(dir, f"{name}.log"), "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"distributed.cli.{cli_name}", *args]
            + ["--scheduler-file", scheduler_file],
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
            p.kill()
            p.wait(5)


def _wait_for(cond, what, timeout=_START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# A project, staged runs, the client's copy hidden while they run


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "gage.toml").write_text(
        '[trial]\nexec = "python trial.py"\nconfig = "trial.py"\n'
    )
    (tmp_path / "trial.py").write_text(_OP)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("kept\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GAGE_RUNS", raising=False)
    monkeypatch.delenv("GAGE_ENGINE", raising=False)
    monkeypatch.delenv("GAGE_SCHEDULER", raising=False)
    return tmp_path


@pytest.fixture
def hidden(tmp_path_factory, monkeypatch):
    """Move each run's staged copy away once it is packed; put it back
    only for its result. Records the runs whose copy was hidden."""
    stash = str(tmp_path_factory.mktemp("stash"))
    seen: list[str] = []
    pack, place = engine_dask._pack, engine_dask.place_result

    def pack_and_hide(run):
        data = pack(run)
        os.rename(run.run_dir, os.path.join(stash, run.id))
        os.rename(run.meta_dir, os.path.join(stash, run.id + ".meta"))
        seen.append(run.id)
        return data

    def put_back_and_place(run, *args):
        os.rename(os.path.join(stash, run.id), run.run_dir)
        os.rename(os.path.join(stash, run.id + ".meta"), run.meta_dir)
        return place(run, *args)

    monkeypatch.setattr(engine_dask, "_pack", pack_and_hide)
    monkeypatch.setattr(engine_dask, "place_result", put_back_and_place)
    return seen


def _stage(*assigns: str):
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        assert cli.main(["run", "trial", *assigns, "--stage", "-y"]) == 0
    return runs.load_run(out.getvalue().splitlines()[-1])


def _gage(*args: str) -> tuple[int, str]:
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(list(args))
    return code, out.getvalue()


def _assert_returned(run, code=0, status="completed"):
    assert runs.run_status(run) == status
    assert run_meta.read_exit_code(run) == code
    assert verify_run(run) == []
    assert _gage("check", run.run_dir)[0] == 0
    output, index = run_meta.output_paths(run, "run")
    lines = open(output).read().splitlines()
    assert lines.count("ready") == 1
    assert len(open(index).read().splitlines()) == len(lines)
    manifest = {e.path: e.type for e in run_meta.read_manifest(run)}
    assert manifest["trial.py"] == "s"
    worker = run_records.read_worker(run)
    assert worker and worker["engine"] == "dask" and worker["host"]
    return worker


# ---------------------------------------------------------------------------
# Runs on the cluster


def test_batch_runs_on_both_workers(cluster, project, hidden, capsys):
    # The cluster is the module's: a test before this one (a killed
    # worker, an interrupted run) may have left its own scratch.
    scratch = [os.path.join(cluster.dir, f"worker-{i}") for i in (1, 2)]
    before = {d: _gage_names(d) for d in scratch}
    code = cli.main(
        ["run", "trial", "secs=[0.5,0.6,0.7,0.8]", "-y"]
        + ["--engine", "dask", "--scheduler-file", cluster.scheduler_file]
        + ["--jobs", "4"]
    )
    assert code == 0
    trials = runs.list_runs(str(project / ".gage" / "runs"))
    assert len(trials) == 4
    assert len({run_meta.read_batch(r) for r in trials}) == 1
    assert sorted(run_meta.read_config(r)["secs"] for r in trials) == [
        0.5,
        0.6,
        0.7,
        0.8,
    ]
    assert sorted(hidden) == sorted(r.id for r in trials)
    workers = set()
    for run in trials:
        worker = _assert_returned(run)
        workers.add(worker["worker"])
        assert worker["scheduler"] == cluster.client.scheduler.address
        assert run_meta.read_summary(run) == {"loss": 0.25}
        manifest = {e.path: e.type for e in run_meta.read_manifest(run)}
        assert manifest["out/result.txt"] == "g"
        assert (project / ".gage" / "runs" / run.id / "out" / "result.txt").exists()
        events = {e.path: e.event for e in run_meta.read_files_log(run)}
        assert events["out/result.txt"] == "a"
    assert workers == set(cluster.worker_pids())
    out = capsys.readouterr().out
    for run in trials:
        assert f"{run.name}| ready" in out
        # The workers' GAGE_ENGINE and GAGE_SCHEDULER do not reach a run.
        assert f"{run.name}| gage env: []" in out
    # Nothing of these runs is left in the workers' scratch dirs.
    for d in scratch:
        assert _gage_names(d) <= before[d]


def _gage_names(root):
    return {n for n in _walk_names(root) if n.startswith("gage-")}


def _walk_names(root):
    for _dirpath, dirnames, filenames in os.walk(root):
        yield from dirnames
        yield from filenames


def test_start_staged_runs(cluster, project, hidden):
    staged = [_stage("secs=0.1"), _stage("secs=0.2")]
    code = cli.main(
        ["run", "--start", *[r.id for r in staged], "--jobs", "2"]
        + ["--engine", "dask", "--scheduler-file", cluster.scheduler_file]
    )
    assert code == 0
    assert sorted(hidden) == sorted(r.id for r in staged)
    for run in staged:
        _assert_returned(run)
    # Each worker that ran a run keeps one warm starter, which starts the
    # next runs too (a fork each, not a new Python).
    starters = _starters(cluster)
    assert starters and all(len(pids) == 1 for pids in starters.values())
    again = [_stage("secs=0.1"), _stage("secs=0.1")]
    code = cli.main(
        ["run", "--start", *[r.id for r in again], "--jobs", "2"]
        + ["--engine", "dask", "--scheduler-file", cluster.scheduler_file]
    )
    assert code == 0
    for run in again:
        _assert_returned(run)
    after = _starters(cluster)
    assert all(after.get(w) == pids for w, pids in starters.items())


def _starters(cluster) -> dict[int, list[int]]:
    """The starter processes of each worker (by worker pid), from /proc."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc")
    found: dict[int, list[int]] = {}
    workers = set(cluster.worker_pids().values())
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = open(f"/proc/{name}/stat").read()
            cmdline = open(f"/proc/{name}/cmdline", "rb").read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid in workers and b"gage._internal.engines.dask_starter" in cmdline:
            found.setdefault(ppid, []).append(int(name))
    return found


def test_new_run_on_cluster_env_scheduler(cluster, project, monkeypatch, capsys):
    monkeypatch.setenv("GAGE_ENGINE", "dask")
    monkeypatch.setenv("GAGE_SCHEDULER_FILE", cluster.scheduler_file)
    assert cli.main(["run", "trial", "secs=0.1", "-y"]) == 0
    run = runs.select_run(str(project / ".gage" / "runs"))
    _assert_returned(run)
    code, out = _gage("show", run.id)
    assert "Worker:   " in out and "dask" in out


def test_failing_op_returns_error(cluster, project, hidden, capsys):
    run = _stage("secs=0.1", "fail=3")
    code = cli.main(
        ["run", "--start", run.id, "--engine", "dask"]
        + ["--scheduler-file", cluster.scheduler_file]
    )
    assert code == 3
    _assert_returned(run, code=3, status="error")
    assert "failed with exit code 3 (status error)" in capsys.readouterr().err


def test_tampered_archive_is_refused(cluster, project, monkeypatch, capsys):
    run = _stage("secs=0.1")
    data = engine_dask._pack(run)
    # Bytes changed on their way: the digest no longer matches.
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    result = cluster.client.submit(
        dask_task.run_task,
        bytes(bad),
        run_archive.archive_digest(data),
        run.id,
        "t",
        None,
    ).result(timeout=30)
    assert result["status"] == "refused"
    assert "does not match its digest" in result["error"]
    # A staged file changed and the digest made again: gage's own start
    # verification refuses it on the worker; nothing runs.
    tampered = _replace_member(data, f"{run.id}/trial.py", b"print('pwned')\n")
    monkeypatch.setattr(engine_dask, "_pack", lambda run: tampered)
    code = cli.main(
        ["run", "--start", run.id, "--engine", "dask"]
        + ["--scheduler-file", cluster.scheduler_file]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"run {run.name} refused by Dask worker" in err
    assert "differs from its manifest" in err and "trial.py" in err
    assert runs.run_status(run) == "staged"
    assert (
        "refused by Dask worker"
        in open(run_meta.run_meta_path(run, "log", "runner")).read()
    )
    # Sealed meta changed (the command it would run): refused too.
    cmd = f"{run.id}.meta/proc/cmd"
    tampered = _replace_member(data, cmd, b'["python", "-c", "print(1)"]\n')
    result = cluster.client.submit(
        dask_task.run_task,
        tampered,
        run_archive.archive_digest(tampered),
        run.id,
        "t",
        None,
    ).result(timeout=30)
    assert result["status"] == "refused", result
    assert "proc/cmd" in result["error"]
    # A member outside the run is refused before anything is extracted.
    evil = _add_member(data, "../evil.txt", b"x")
    result = cluster.client.submit(
        dask_task.run_task, evil, run_archive.archive_digest(evil), run.id, "t", None
    ).result(timeout=30)
    assert result["status"] == "refused" and "../evil.txt" in result["error"]


def _replace_member(data: bytes, name: str, content: bytes) -> bytes:
    src = tarfile.open(fileobj=io.BytesIO(data))
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers=src.pax_headers
    ) as dst:
        for m in src.getmembers():
            if m.name == name:
                m.size = len(content)
                dst.addfile(m, io.BytesIO(content))
            else:
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    return buf.getvalue()


def _add_member(data: bytes, name: str, content: bytes) -> bytes:
    src = tarfile.open(fileobj=io.BytesIO(data))
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers=src.pax_headers
    ) as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isreg() else None)
        info = tarfile.TarInfo(name)
        info.size = len(content)
        dst.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_unreachable_scheduler_stages_nothing(project, monkeypatch, capsys):
    monkeypatch.setenv("GAGE_DASK_CONNECT_TIMEOUT", "1")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    code = cli.main(
        [
            "run",
            "trial",
            "-y",
            "--engine",
            "dask",
            "--scheduler",
            f"tcp://127.0.0.1:{port}",
        ]
    )
    assert code == 1
    assert time.monotonic() - t0 < 15
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        f"gage: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    )
    assert "nothing was staged" in err[0]
    assert runs.list_runs(str(project / ".gage" / "runs")) == []


def test_ctrl_c_terminates_runs_on_cluster(cluster, project):
    run = _stage("secs=30")
    p = subprocess.Popen(
        [sys.executable, "-m", "gage", "run", "--start", run.id, "--engine", "dask"]
        + ["--scheduler-file", cluster.scheduler_file],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = []
        for line in p.stdout:
            out.append(line)
            if line.strip().endswith("| ready"):
                p.send_signal(signal.SIGINT)
                break
        rest, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, "".join(out) + rest
    assert "interrupted" in rest
    assert runs.run_status(run) == "terminated"
    assert run_records.read_worker(run)["engine"] == "dask"
    assert verify_run(run) == []


def test_killed_worker_run_completes_once(cluster, project, hidden):
    """Last in this module: it ends one of the two workers."""
    run = _stage("secs=3")
    engine = engine_dask.make_engine(1, scheduler_file=cluster.scheduler_file)
    try:
        fut = engine.submit(run)
        key = f"gage-run-{run.id}-{engine.token[:8]}"
        _wait_for(lambda: engine._lines.get(run.id, 0) >= 2, "the run's output")
        processing = cluster.client.processing()
        (first,) = [w for w, keys in processing.items() if key in keys]
        os.kill(cluster.worker_pids()[first], signal.SIGKILL)
        assert fut.result(timeout=60) == 0
    finally:
        engine.close()
    worker = _assert_returned(run)
    assert worker["worker"] != first
    log = open(run_meta.run_meta_path(run, "log", "runner")).read()
    assert log.count("Starting run") == 1
    assert log.count("record brought home") == 1
