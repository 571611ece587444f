"""Ctrl-C at a terminal: SIGINT to the whole foreground process group.

`gage run` passes the signal to its run, the run ends `terminated`, gage
says "interrupted" and exits 130 (128 + SIGINT) as shells expect.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

BIN = os.path.dirname(sys.executable)

SLEEPER = """
import time
print("ready", flush=True)
time.sleep(30)
"""


def test_ctrl_c_ends_run_terminated_exit_130(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text('[sleep]\nexec = "python sleep.py"\n')
    (project / "sleep.py").write_text(SLEEPER)
    runs_dir = tmp_path / "runs"
    env = {
        **os.environ,
        "GAGE_RUNS": str(runs_dir),
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    }
    p = subprocess.Popen(
        [os.path.join(BIN, "gage"), "run", "sleep", "-y"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a shell job
    )
    try:
        assert p.stdout
        header = p.stdout.readline()
        assert header.startswith("Running sleep as "), header
        assert p.stdout.readline() == "ready\n"
        os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C does
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, (out, err)
    assert "interrupted" in err
    assert "exit code -2" not in err
    shown = subprocess.run(
        [os.path.join(BIN, "gage"), "show", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    record = json.loads(shown.stdout)
    assert record["status"] == "terminated"
    assert header.strip().endswith(f"as {record['name']} ({record['id']})")
    # `gage show` gives the exit code the CLI gave, not the raw -2.
    text = subprocess.run(
        [os.path.join(BIN, "gage"), "show"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "Exit:     130\n" in text, text


def test_interrupted_batch_says_how_to_go_on(tmp_path):
    """Ctrl-C in a batch: the trial in flight ends terminated, the rest
    stay staged, and gage names the command that starts them and the
    one that removes what is left."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text(
        '[sleep]\nexec = "python sleep.py"\nconfig = "sleep.py"\n'
    )
    (project / "sleep.py").write_text("n = 1\n" + SLEEPER)
    env = {
        **os.environ,
        "GAGE_RUNS": str(tmp_path / "runs"),
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    }
    gage = os.path.join(BIN, "gage")
    p = subprocess.Popen(
        [gage, "run", "sleep", "n=[1,2,3]", "-y"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert p.stdout
        while p.stdout.readline() != "ready\n":
            pass
        os.killpg(p.pid, signal.SIGINT)
        _out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, err
    listed = subprocess.run(
        [gage, "runs", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    by_status: dict[str, list[str]] = {}
    for r in json.loads(listed.stdout):
        by_status.setdefault(r["status"], []).append(r["name"])
    assert len(by_status["terminated"]) == 1 and len(by_status["staged"]) == 2
    staged = sorted(by_status["staged"])
    lines = err.splitlines()
    start = [line for line in lines if "gage run --start" in line]
    assert len(start) == 1, err
    assert start[0].startswith("gage: to go on, start the 2 staged trials: ")
    assert sorted(start[0].split("--start ", 1)[1].split()) == staged
    rm = [line for line in lines if "gage runs rm" in line]
    assert len(rm) == 1 and by_status["terminated"][0] in rm[0], err
    # The removal it names works as written (with -y: no terminal here).
    cmd = rm[0].split(": ", 2)[2].split()
    assert cmd[:3] == ["gage", "runs", "rm"], rm
    done = subprocess.run(
        [gage, *cmd[1:], "-y", "-q"], cwd=project, env=env, timeout=30
    )
    assert done.returncode == 0
    left = subprocess.run(
        [gage, "runs", "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(left.stdout) == []


def test_interrupt_while_starting_a_run_by_index(tmp_path):
    """`--start 1` selects the run `gage runs` lists first; SIGTERM ends
    it `terminated` with exit 143 (128 + SIGTERM)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text('[sleep]\nexec = "python sleep.py"\n')
    (project / "sleep.py").write_text(SLEEPER)
    env = {
        **os.environ,
        "GAGE_RUNS": str(tmp_path / "runs"),
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    }
    gage = os.path.join(BIN, "gage")
    subprocess.run(
        [gage, "run", "sleep", "--stage"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        timeout=30,
    )
    p = subprocess.Popen(
        [gage, "run", "--start", "1", "-y"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert p.stdout
        assert p.stdout.readline().startswith("Running sleep as ")
        assert p.stdout.readline() == "ready\n"
        time.sleep(0.1)
        os.killpg(p.pid, signal.SIGTERM)
        _out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 143, err
    assert "terminated" in err
