"""The slurm engine on a real Slurm cluster: munged, slurmctld and slurmd
from the OS packages (scripts/os-deps/slurm.sh), one node `localhost`,
started once for this module in a temp dir (gage/_internal/test_slurm.py) and
stopped at its end. gage reaches it through SLURM_CONF.

The time limit is real: a run with `--slurm-time 1` (a minute, Slurm's
least) is started by the first cluster test and checked by the last one,
so its minute passes while the other tests run (OverTimeLimit=0,
KillWait=2 in slurm.conf; slurmctld checks limits every 30 s).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from gage._internal import test_slurm as slurm_cluster

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_GAGE_TOML = """\
["$slurm"]
time = "10"

[train]
exec = "python train.py"
config = "train.py#lr"
summary = "summary.json"
slurm = { cpus = 1 }

[fail]
exec = "python fail.py"

[sleep]
exec = "python sleep.py"
config = "sleep.py#secs"
"""

_TRAIN = """\
import json, socket
lr = 0.1
print(f"training lr={lr}", flush=True)
print("on", socket.gethostname())
json.dump({"loss": lr * 2}, open("summary.json", "w"))
"""

_FAIL = """\
import sys
print("about to fail", flush=True)
sys.exit(3)
"""

_SLEEP = """\
import time
secs = 60
print("sleeping", flush=True)
time.sleep(secs)
print("woke")
"""


def _project(path) -> str:
    d = str(path)
    os.makedirs(d, exist_ok=True)
    for name, text in (
        ("gage.toml", _GAGE_TOML),
        ("train.py", _TRAIN),
        ("fail.py", _FAIL),
        ("sleep.py", _SLEEP),
    ):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return d


def _gage_env(cluster=None, **extra: str) -> dict[str, str]:
    env = dict(cluster.env if cluster else os.environ)
    env.update(GAGE_SLURM_POLL="0.3", **extra)
    env.pop("GAGE_ENGINE", None)
    env.pop("GAGE_RUNS", None)
    return env


def _gage(cwd: str, *args: str, env=None, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "gage", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _runs(cwd: str, env) -> list[dict]:
    p = _gage(cwd, "runs", "--all", "--json", env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _meta(cwd: str, run: dict, name: str) -> str:
    with open(os.path.join(run["run_dir"] + ".meta", name)) as f:
        return f.read()


def _our_jobs(cluster) -> list[str]:
    out = cluster.run("squeue", "-h", "-o", "%i %T").stdout
    return [line for line in out.splitlines() if line.strip()]


# ---------------------------------------------------------------------------
# Without a cluster


def test_no_slurm_one_line_nothing_staged(tmp_path):
    d = _project(tmp_path / "p")
    env = _gage_env(PATH=os.path.dirname(sys.executable))
    p = _gage(d, "run", "train", "--engine", "slurm", "-y", env=env)
    assert p.returncode == 1, p
    assert len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith("gage: Slurm is not available here (sbatch"), p.stderr
    assert not os.path.exists(os.path.join(d, ".gage", "runs")) or not os.listdir(
        os.path.join(d, ".gage", "runs")
    )


def test_settings_checked_at_load(tmp_path):
    d = _project(tmp_path / "p")
    with open(os.path.join(d, "gage.toml"), "a") as f:
        f.write('\n[bad]\nexec = "true"\nslurm = { time = "soon" }\n')
    p = _gage(d, "run", "train", "--preview", env=_gage_env())
    assert p.returncode == 2
    assert p.stderr.startswith("gage: gage.toml:19: op 'bad': 'slurm' 'time' must"), (
        p.stderr
    )
    d2 = _project(tmp_path / "p2")
    with open(os.path.join(d2, "gage.toml"), "w") as f:
        f.write('["$slurm"]\ncpus = 0\n[t]\nexec = "true"\n')
    p = _gage(d2, "run", "--preview", env=_gage_env())
    assert p.returncode == 2
    assert "'$slurm' 'cpus' must be a whole number of CPUs above 0" in p.stderr


def test_command_line_settings_checked(tmp_path):
    d = _project(tmp_path / "p")
    env = _gage_env()
    p = _gage(
        d, "run", "train", "--engine", "slurm", "--slurm", "gpus=2", "-y", env=env
    )
    assert p.returncode == 2
    assert p.stderr == (
        "gage: --slurm: unknown Slurm setting 'gpus' (known: partition, time, "
        "cpus, mem, gres, account, qos, args, setup)\n"
    )
    p = _gage(d, "run", "train", "--slurm-time", "5", "-y", env=env)
    assert p.returncode == 2
    assert p.stderr == (
        "gage: --slurm options apply to --engine slurm (the engine is local)\n"
    )


def test_preview_shows_job_script(tmp_path):
    d = _project(tmp_path / "p")
    p = _gage(
        d,
        "run",
        "train",
        "--engine",
        "slurm",
        "--preview",
        "--slurm-time",
        "0:30:00",
        "--slurm",
        "mem=2G",
        "--slurm",
        "args=--constraint=fast",
        env=_gage_env(),
    )
    assert p.returncode == 0, p.stderr
    home = os.path.join(d, ".gage", "runs")
    assert (
        f"Slurm job: sbatch --parsable --job-name=gage-RUN_NAME "
        f"--output={home}/RUN_ID.meta/slurm.out --open-mode=append "
        f"--chdir={home}/RUN_ID --constraint=fast <<SCRIPT\n"
        "  #!/bin/bash\n"
        "  #SBATCH --time=0:30:00\n"
        "  #SBATCH --cpus-per-task=1\n"
        "  #SBATCH --mem=2G\n"
        "  # gage run RUN_NAME (RUN_ID)\n"
        f"  exec {sys.executable} -m gage._internal.engines.child "
        f"{home}/RUN_ID --quiet --once\n"
        "SCRIPT\n"
    ) in p.stdout, p.stdout
    assert "Nothing staged (preview)." in p.stdout


def test_once_leaves_a_started_run_alone(tmp_path):
    """What a requeued job does: the run is not started again."""
    d = _project(tmp_path / "p")
    env = _gage_env()
    p = _gage(d, "run", "train", "-y", env=env)
    assert p.returncode == 0, p.stderr
    [run] = _runs(d, env)
    args = [sys.executable, "-m", "gage._internal.engines.child", run["run_dir"]]
    p = subprocess.run(args + ["--quiet", "--once"], capture_output=True, text=True)
    assert p.returncode == 0
    assert p.stderr == (
        f"gage: run {run['name']} was started before (a requeued job?): a run "
        "starts once, so it is not started again\n"
    )
    p = subprocess.run(args + ["--quiet"], capture_output=True, text=True)
    assert p.returncode == 1 and "has already been started" in p.stderr


# ---------------------------------------------------------------------------
# On a real cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = slurm_cluster.unavailable()
    if why:
        pytest.skip(why)
    c = slurm_cluster.start(str(tmp_path_factory.mktemp("slurm")))
    try:
        yield c
    finally:
        for line in _our_jobs(c):
            c.run("scancel", line.split()[0], check=False)
        c.stop()


@pytest.fixture(autouse=True)
def _cancel_left_jobs(request, tmp_path):
    """A cluster test that fails leaves no job behind to hold the node's
    CPUs for the tests after it: its runs' jobs are cancelled."""
    yield
    if "cluster" not in request.fixturenames:
        return
    cluster = request.getfixturevalue("cluster")
    jobs = []
    for root, _dirs, files in os.walk(tmp_path):
        if "slurm.json" in files:
            with open(os.path.join(root, "slurm.json")) as f:
                jobs.append(str(json.load(f)["job_id"]))
    if jobs:
        cluster.run("scancel", *jobs, check=False)


@pytest.fixture(scope="module")
def timed_out(cluster, tmp_path_factory):
    """A run whose job has a 1 minute time limit, started now, checked
    by the last test of this module."""
    d = _project(tmp_path_factory.mktemp("timelimit"))
    args = [sys.executable, "-m", "gage", "run", "sleep", "secs=600", "-y"]
    args += ["--engine", "slurm", "--slurm-time", "1"]
    p = subprocess.Popen(
        args,
        cwd=d,
        env=_gage_env(cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield d, p
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_batch_of_three_runs_as_jobs(cluster, timed_out, tmp_path):
    d = _project(tmp_path / "p")
    env = _gage_env(cluster)
    p = _gage(
        d,
        "run",
        "train",
        "lr=[0.1,0.2,0.3]",
        "--engine",
        "slurm",
        "-j",
        "3",
        "-y",
        env=env,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    runs = _runs(d, env)
    assert [r["status"] for r in runs] == ["completed"] * 3
    jobs = set()
    for r in runs:
        lr = r["config"]["lr"]
        assert f"{r['name']}| training lr={lr}\n" in p.stdout
        job = json.loads(_meta(d, r, "slurm.json"))
        jobs.add(job["job_id"])
        assert r["summary"]["loss"] == pytest.approx(lr * 2)
    assert len(jobs) == 3
    # gage show names the job; the record is whole (gage check).
    p = _gage(d, "show", runs[0]["name"], env=env)
    assert (
        f"Slurm:    job {json.loads(_meta(d, runs[0], 'slurm.json'))['job_id']}\n"
        in p.stdout
    )
    for r in runs:
        p = _gage(d, "check", r["name"], env=env)
        assert p.returncode == 0, p.stdout + p.stderr


def test_failing_run(cluster, tmp_path):
    d = _project(tmp_path / "p")
    env = _gage_env(cluster)
    p = _gage(d, "run", "fail", "--engine", "slurm", "-y", env=env)
    [run] = _runs(d, env)
    assert p.returncode == 3, p.stdout + p.stderr
    assert f"{run['name']}| about to fail\n" in p.stdout
    assert p.stderr.endswith(
        f"gage: run {run['name']} failed with exit code 3 (status error)\n"
    ), p.stderr
    assert run["status"] == "error"
    job = json.loads(_meta(d, run, "slurm.json"))
    assert job["state"] == "FAILED" and job["exit_code"] == "3:0"


def _wait_status(d, env, want: dict[str, int], timeout=60.0, proc=None) -> list[dict]:
    """The runs once their statuses count `want`; fails when `timeout`
    runs out or `proc` (the gage that makes them) ends first."""
    deadline = time.monotonic() + timeout
    while True:
        runs = _runs(d, env)
        counts = {s: sum(r["status"] == s for r in runs) for s in want}
        if counts == want:
            return runs
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"gage ended ({proc.returncode}): {out}{err}")
        if time.monotonic() > deadline:
            seen = sorted(r["status"] for r in runs)
            raise AssertionError(f"runs {seen} after {timeout} s, waiting for {want}")
        time.sleep(0.2)


def _idle_cpus(cluster, timeout=120.0) -> int:
    """The node's idle CPUs once no job but the time limit test's (one
    CPU, for a minute) holds any: at least `cluster.cpus - 1`."""
    deadline = time.monotonic() + timeout
    while True:
        out = cluster.run("sinfo", "-h", "-o", "%C").stdout.strip()
        idle = int(out.split("/")[1])
        if idle >= cluster.cpus - 1:
            return idle
        if time.monotonic() > deadline:
            raise AssertionError(f"CPUs still allocated after {timeout} s: {out}")
        time.sleep(0.5)


def test_ctrl_c_cancels_queued_and_running_jobs(cluster, tmp_path):
    d = _project(tmp_path / "p")
    env = _gage_env(cluster)
    # Each job asks for every idle CPU (all, or all but the time limit
    # test's one): one runs, the others wait in the queue, whatever ran
    # before this test and in whatever order.
    cpus = _idle_cpus(cluster)
    args = [sys.executable, "-m", "gage", "run", "sleep", "secs=[101,102,103]"]
    args += ["--engine", "slurm", "-j", "3", "-y", "--slurm", f"cpus={cpus}"]
    p = subprocess.Popen(
        args, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        runs = _wait_status(d, env, {"running": 1, "queued": 2}, proc=p)
        assert sorted(r["status"] for r in runs) == ["queued", "queued", "running"]
        running = [r for r in runs if r["status"] == "running"][0]
        deadline = time.monotonic() + 30
        while "sleeping" not in _read_output(running) and time.monotonic() < deadline:
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, out + err
    # The batch then says how to go on (start or remove what it left).
    assert "gage: interrupted: runs in flight were terminated\n" in err, err
    after = {r["name"]: r["status"] for r in _runs(d, env)}
    assert after[running["name"]] == "terminated"
    assert sorted(after.values()) == ["staged", "staged", "terminated"]
    names = {r["name"] for r in runs}
    out = cluster.run("squeue", "-h", "-o", "%j").stdout.split()
    assert not names & {n.removeprefix("gage-") for n in out}


def _read_output(run: dict) -> str:
    try:
        with open(os.path.join(run["run_dir"] + ".meta", "output", "40_run")) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_detach_then_runs(cluster, tmp_path):
    d = _project(tmp_path / "p")
    env = _gage_env(cluster)
    t0 = time.monotonic()
    args = ["run", "sleep", "secs=[2,3]", "--engine", "slurm", "--detach", "-y"]
    p = _gage(d, *args, "-j", "1", "--slurm", f"cpus={cluster.cpus // 2}", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert time.monotonic() - t0 < 10
    runs = _runs(d, env)
    for r in runs:
        job = json.loads(_meta(d, r, "slurm.json"))["job_id"]
        assert f"Queued sleep as {r['name']} ({r['id']}): Slurm job {job}\n" in p.stdout
    # -j 1: the second job waits for the first (afterany).
    assert sorted(r["status"] for r in runs) in (
        ["queued", "queued"],
        ["queued", "running"],
    )
    runs = _wait_status(d, env, {"running": 1, "queued": 1})
    assert sorted(r["status"] for r in runs) == ["queued", "running"]
    p = _gage(d, "runs", env=env)
    assert " running " in p.stdout and " queued " in p.stdout
    runs = _wait_status(d, env, {"completed": 2})
    assert [r["status"] for r in runs] == ["completed", "completed"]


def test_killed_job_ends_its_run_abandoned(cluster, tmp_path):
    """A job whose runner dies at once (SIGKILL, as on a node that
    fails): the run cannot complete its record; gage says so with
    Slurm's state, and the run is never shown running again."""
    d = _project(tmp_path / "p")
    env = _gage_env(cluster)
    args = [sys.executable, "-m", "gage", "run", "sleep", "secs=100", "-y"]
    args += ["--engine", "slurm"]
    p = subprocess.Popen(
        args, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        [run] = _wait_status(d, env, {"running": 1}, proc=p)
        job = json.loads(_meta(d, run, "slurm.json"))["job_id"]
        runner = int(_meta(d, run, "proc/lock").split()[0])
        os.kill(runner, signal.SIGKILL)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, out + err
    [run] = _runs(d, env)
    assert run["status"] == "abandoned"
    rec = json.loads(_meta(d, run, "slurm.json"))
    assert rec["state"] in slurm_cluster_final_states()
    assert (
        f"gage: run {run['name']}: Slurm job {job} ended {rec['state']}" in err
        and "before the run could complete its record (status abandoned)" in err
    ), err


def slurm_cluster_final_states():
    from gage._internal.util import slurm_cmd

    return slurm_cmd.FINAL_STATES


def test_requeued_job_does_not_start_its_run_again(cluster, tmp_path):
    d = _project(tmp_path / "p")
    env = _gage_env(cluster)
    args = [sys.executable, "-m", "gage", "run", "sleep", "secs=100", "-y"]
    p = subprocess.Popen(
        args + ["--engine", "slurm"],
        cwd=d,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        [run] = _wait_status(d, env, {"running": 1}, proc=p)
        job = json.loads(_meta(d, run, "slurm.json"))["job_id"]
        started = _meta(d, run, "started")
        cluster.run("scontrol", "requeue", job)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143, out + err  # SIGTERM: the run completed its record
    # Slurm holds a requeued job back a while: let it start now.
    cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = cluster.run("squeue", "-h", "-t", "all", "-j", job, "-o", "%T").stdout
        if state.strip() == "COMPLETED":
            break
        time.sleep(0.2)
    assert state.strip() == "COMPLETED"
    [after] = _runs(d, env)
    assert after["status"] == "terminated"
    assert _meta(d, run, "started") == started
    assert "was started before (a requeued job?)" in _meta(d, run, "slurm.out")


def test_repro_example_pipeline(cluster, tmp_path):
    d = str(tmp_path / "pipeline")
    shutil.copytree(os.path.join(_ROOT, "examples", "pipeline"), d)
    shutil.rmtree(os.path.join(d, ".gage"), ignore_errors=True)
    env = _gage_env(cluster)
    p = _gage(d, "repro", "--engine", "slurm", "-j", "2", env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    runs = _runs(d, env)
    assert sorted(r["op"] for r in runs) == ["evaluate", "prepare", "train"]
    assert {r["status"] for r in runs} == {"completed"}
    for r in runs:
        assert json.loads(_meta(d, r, "slurm.json"))["job_id"]
    p = _gage(d, "repro", "--dry", env=env)
    assert p.returncode == 0
    assert "up to date" in p.stdout


def test_readme_dask_jobqueue_recipe(cluster, tmp_path, monkeypatch):
    """README's "Slurm through dask-jobqueue" recipe, as written there
    (two jobs instead of eight), on the test cluster."""
    try:
        from dask_jobqueue import SLURMCluster
        from distributed import Client
    except ImportError as e:
        pytest.skip(f"{e}: pip install -e '.[dev,dask]' (dask-jobqueue, distributed)")
    d = _project(tmp_path / "p")
    for k, v in cluster.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(d)
    jq = SLURMCluster(cores=1, processes=1, memory="4GB", walltime="02:00:00")
    try:
        jq.scale(jobs=2)
        client = Client(jq)
        client.write_scheduler_file("sched.json")
        client.wait_for_workers(2, timeout=60)
        env = _gage_env(cluster)
        args = ["run", "train", "lr=[0.4,0.5]", "--engine", "dask"]
        p = _gage(d, *args, "--scheduler-file", "sched.json", "-j", "2", "-y", env=env)
        assert p.returncode == 0, p.stdout + p.stderr
        runs = _runs(d, env)
        assert [r["status"] for r in runs] == ["completed", "completed"]
        for r in runs:
            worker = json.loads(_meta(d, r, "worker.json"))
            assert worker["engine"] == "dask"
        client.close()
    finally:
        jq.close()


def test_time_limit_ends_run_terminated(cluster, timed_out):
    """Last: the run started by the first cluster test had a minute."""
    d, p = timed_out
    out, err = p.communicate(timeout=150)
    assert p.returncode == 143, out + err
    env = _gage_env(cluster)
    [run] = _runs(d, env)
    assert run["status"] == "terminated"
    rec = json.loads(_meta(d, run, "slurm.json"))
    assert rec["state"] == "TIMEOUT" and rec["reason"] == "TimeLimit"
    assert (
        f"gage: run {run['name']}: Slurm job {rec['job_id']} ended TIMEOUT (TimeLimit)\n"
        in err
    )
    assert "DUE TO TIME LIMIT" in _meta(d, run, "slurm.out")
    p = _gage(d, "show", env=env)
    assert f"Slurm:    job {rec['job_id']} (TIMEOUT: TimeLimit)\n" in p.stdout
