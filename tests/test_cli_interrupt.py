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
