"""Hardening II (issue 19, item 10): runs that will not die.

A run that ignores SIGTERM/SIGINT gets SIGKILL (its whole process group)
on a second signal or after a grace period, and its record says so; when
gage itself is SIGKILLed, the run's process group ends too; SIGHUP is
handled like SIGTERM; a signal that arrives once `started` is written
but before the command runs is the run's (passed on, recorded).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from wait_util import wait_for

GAGE = [sys.executable, "-m", "gage"]

STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
open(sys.argv[1], "w").write(str(os.getpid()))
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "stubborn.py").write_text(STUBBORN)
    pids = tmp_path / "pids"
    pids.mkdir()
    (proj / "gage.toml").write_text(
        textwrap.dedent(
            f"""
            [stubborn]
            exec = "python stubborn.py {pids}/leader"

            [family]
            exec = "sh -c 'python stubborn.py {pids}/grandchild & wait'"

            [sleepy]
            exec = "python -c 'import time; print(\\"ready\\", flush=True); time.sleep(120)'"
            """
        )
    )
    return proj


def start(proj, op: str, env=None) -> subprocess.Popen:
    full = dict(os.environ, GAGE_RUNS=str(proj.parent / "runs"), NO_COLOR="1")
    full.update(env or {})
    return subprocess.Popen(
        GAGE + ["run", op, "-y"],
        cwd=proj,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_ready(p: subprocess.Popen) -> None:
    assert p.stdout
    for _ in range(5):
        line = p.stdout.readline()
        if line == "ready\n":
            return
    raise AssertionError(f"no ready line: {p.communicate(timeout=5)}")


def meta_dir(proj) -> str:
    home = proj.parent / "runs"
    [meta] = [n for n in os.listdir(home) if n.endswith(".meta")]
    return str(home / meta)


def read(path) -> str:
    with open(path) as f:
        return f.read()


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_second_ctrl_c_kills(project):
    p = start(project, "stubborn")
    wait_ready(p)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 20
    assert "Traceback" not in err
    assert p.returncode == 130, err
    meta = meta_dir(project)
    assert os.path.exists(os.path.join(meta, "stopped"))
    assert "SIGKILL" in read(os.path.join(meta, "log", "runner"))
    assert read(os.path.join(meta, "exit_code")).strip() == "-9"


def test_grace_period_kills(project):
    p = start(project, "stubborn", env={"GAGE_KILL_GRACE": "1"})
    wait_ready(p)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    _out, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 20
    assert p.returncode == 143, err
    meta = meta_dir(project)
    assert os.path.exists(os.path.join(meta, "stopped"))
    assert "SIGKILL" in read(os.path.join(meta, "log", "runner"))


def test_gage_killed_ends_the_run_group(project, tmp_path):
    p = start(project, "family")
    pid_file = tmp_path / "pids" / "grandchild"
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), "grandchild")
    grandchild = int(pid_file.read_text())
    p.kill()
    p.communicate(timeout=30)
    wait_for(lambda: pid_gone(grandchild), "the run's group to end", timeout=15)


def test_sighup_like_sigterm(project):
    p = start(project, "sleepy")
    wait_ready(p)
    p.send_signal(signal.SIGHUP)
    _out, err = p.communicate(timeout=30)
    assert p.returncode == 129, err
    meta = meta_dir(project)
    assert os.path.exists(os.path.join(meta, "stopped"))
    assert read(os.path.join(meta, "proc", "signal")).strip() == "SIGHUP"


def test_signal_just_after_started_is_the_runs(project, tmp_path):
    marker = tmp_path / "paused"
    env = {
        "GAGE_TEST_PAUSE": "started",
        "GAGE_TEST_PAUSE_FILE": str(marker),
        "GAGE_TEST_PAUSE_SECONDS": "2",
    }
    p = start(project, "sleepy", env=env)
    wait_for(marker.exists, "pause after started")
    p.send_signal(signal.SIGTERM)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    meta = meta_dir(project)
    assert os.path.exists(os.path.join(meta, "stopped")), err
    assert read(os.path.join(meta, "proc", "signal")).strip() == "SIGTERM"
