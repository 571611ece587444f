"""`gage runs rm` as a user meets it: asks on a terminal (y deletes,
anything else keeps), and never deletes a run that is running."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from pty_util import run_in_pty

GAGE = os.path.join(os.path.dirname(sys.executable), "gage")


@pytest.fixture
def project(tmp_path):
    (tmp_path / "gage.toml").write_text(
        '[quick]\nexec = "python -c pass"\n\n[wait]\nexec = "python wait.py"\n'
    )
    (tmp_path / "wait.py").write_text(
        "import os, time\n"
        "open('started', 'w').close()\n"
        "for _ in range(300):\n"
        "    if os.path.exists(os.environ['STOP_FILE']):\n"
        "        break\n"
        "    time.sleep(0.1)\n"
    )
    return tmp_path


def _env(project, **extra):
    return {**os.environ, "GAGE_RUNS": str(project / "runs"), **extra}


def _gage(project, *args, **kw):
    return subprocess.run(
        [GAGE, *args],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


def _count(project) -> int:
    return len([n for n in os.listdir(project / "runs") if n.endswith(".meta")])


@pytest.mark.parametrize(
    "answer, code, left", [(b"n\n", 1, 1), (b"\n", 1, 1), (b"y\n", 0, 0)]
)
def test_rm_asks_on_a_terminal(project, answer, code, left):
    assert _gage(project, "run", "quick", "-y", "-q").returncode == 0
    rc, out = _pty([GAGE, "runs", "rm", "1"], project, answer, _env(project))
    assert "Deleting 1 run:" in out
    assert "Delete 1 run? (y/N)" in out
    assert rc == code
    assert _count(project) == left


def _pty(args, cwd, answer: bytes, env) -> tuple[int, str]:
    code, out = run_in_pty(args, cwd=cwd, env=env, prompt=b"(y/N)", answer=answer)
    return code, out.replace("\r\n", "\n")


def test_rm_never_deletes_a_running_run(project, tmp_path_factory):
    stop = tmp_path_factory.mktemp("stop") / "stop"
    p = subprocess.Popen(
        [GAGE, "run", "wait", "-y", "-q"],
        cwd=project,
        env=_env(project, STOP_FILE=str(stop)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            out = _gage(project, "runs", "-s", "running").stdout
            if "wait" in out:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run did not start")
        for args in (["rm", "1", "-y"], ["rm", "--op", "wait", "-y", "--force"]):
            r = _gage(project, "runs", *args)
            assert r.returncode == 1, r
            assert "it is running (stop it first)" in r.stderr
            assert _count(project) == 1
        r = _gage(project, "runs", "purge", "--status", "running", "-y")
        assert r.returncode == 1 and _count(project) == 1
    finally:
        stop.touch()
        p.wait(timeout=60)
    assert p.returncode == 0
    r = _gage(project, "runs", "rm", "1", "-y")
    assert r.returncode == 0, r
    assert _count(project) == 0
