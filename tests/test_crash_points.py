"""Crash points: kill -9 a real `gage run` at each phase.

Each case starts `gage run train -y` as a process, waits until it is at
the phase (a pause point, `faults.fault_point`, or a hook or command that
announces itself and sleeps: never timing luck), kills it with SIGKILL,
then checks that:

- `gage runs --json` lists only runs with a documented status, and the
  status expected at that phase;
- `gage check` agrees with it (a run that was never staged has nothing
  to check; a staged one checks clean);
- a new run of the same op completes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gage._internal.home.runs import RUN_STATUSES

_GAGE_TOML = """
[train]
exec.run = "python train.py"
exec.stage-runtime = "python pause.py hook"
exec.finalize = "python pause.py finalize-hook"
depends = { type = "project-files", files = "data.txt" }
"""

_PAUSE_PY = """
import os, sys, time
if os.environ.get("PAUSE_AT") == sys.argv[1]:
    open(os.environ["PAUSE_MARKER"], "w").write("paused\\n")
    time.sleep(60)
"""

_TRAIN_PY = """
import os, time
open("model.txt", "w").write("weights\\n")
if os.environ.get("PAUSE_AT") == "running":
    open(os.environ["PAUSE_MARKER"], "w").write("paused\\n")
    time.sleep(60)
print("trained")
"""

_TIMEOUT = 60


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text(_GAGE_TOML)
    (project / "pause.py").write_text(_PAUSE_PY)
    (project / "train.py").write_text(_TRAIN_PY)
    (project / "data.txt").write_text("1 2 3\n")
    return project


def _env(project, **extra):
    env = dict(os.environ)
    for name in ("PAUSE_AT", "GAGE_TEST_PAUSE", "GAGE_TEST_PAUSE_FILE"):
        env.pop(name, None)
    env["GAGE_RUNS"] = str(project.parent / "runs")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    env.update(extra)
    return env


def _gage(project, *args, **env):
    p = subprocess.run(
        [sys.executable, "-m", "gage", *args],
        cwd=project,
        env=_env(project, **env),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
    )
    return p.returncode, p.stdout, p.stderr


def _kill_at(project, args, marker, **env):
    """Start `gage ARGS`, wait for `marker`, kill -9 the gage process."""
    p = subprocess.Popen(
        [sys.executable, "-m", "gage", *args],
        cwd=project,
        env=_env(project, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + _TIMEOUT
        while not marker.exists():
            if p.poll() is not None:
                raise AssertionError(f"gage ended before the pause: {p.stderr.read()}")
            assert time.monotonic() < deadline, "pause point not reached"
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        assert p.wait(timeout=_TIMEOUT) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()


def _runs(project):
    code, out, err = _gage(project, "runs", "--json")
    assert code == 0, err
    records = json.loads(out)
    for r in records:
        assert r["status"] in RUN_STATUSES
    return records


def _check(project, run_id):
    code, out, err = _gage(project, "check", run_id)
    return code, out + err


def _assert_new_run_works(project):
    code, out, err = _gage(project, "run", "train", "-y")
    assert code == 0, err
    assert "trained" in out
    assert _runs(project)[0]["status"] == "completed"


# Pause point env -> (expected status, phase reached staging's end?)
_STAGING_POINTS = {
    "staging": {"GAGE_TEST_PAUSE": "staging"},
    "hooks": {"PAUSE_AT": "hook"},
    "deps": {"GAGE_TEST_PAUSE": "deps"},
    "sealing": {"GAGE_TEST_PAUSE": "sealing"},
}


@pytest.mark.parametrize("point", sorted(_STAGING_POINTS))
def test_kill_while_staging(project, tmp_path, point):
    marker = tmp_path / "paused"
    env = dict(_STAGING_POINTS[point])
    env["PAUSE_MARKER"] = env["GAGE_TEST_PAUSE_FILE"] = str(marker)
    _kill_at(project, ["run", "train", "-y"], marker, **env)
    [run] = _runs(project)
    # Its stager is dead: the run will never be staged.
    assert run["status"] == "abandoned"
    code, out = _check(project, run["id"])
    assert code == 1 and "is not staged" in out, out
    _assert_new_run_works(project)
    # The abandoned run stays abandoned; it cannot be started.
    records = {r["id"]: r["status"] for r in _runs(project)}
    assert records[run["id"]] == "abandoned"
    code, _out, err = _gage(project, "run", "--start", run["id"])
    assert code == 1 and "is not staged" in err, err


@pytest.mark.parametrize(
    "point,env",
    [
        ("running", {"PAUSE_AT": "running"}),
        ("finalize-hook", {"PAUSE_AT": "finalize-hook"}),
        ("finalize", {"GAGE_TEST_PAUSE": "finalize"}),
    ],
)
def test_kill_while_running_or_finalizing(project, tmp_path, point, env):
    marker = tmp_path / "paused"
    env = dict(env, PAUSE_MARKER=str(marker), GAGE_TEST_PAUSE_FILE=str(marker))
    _kill_at(project, ["run", "train", "-y"], marker, **env)
    [run] = _runs(project)
    assert run["status"] == "abandoned"
    assert run["started"] and not run["stopped"]
    code, out = _check(project, run["id"])
    if point == "finalize":
        # Generated files were added to the manifest before the kill.
        assert code == 0, out
    else:
        # The run's file is not in the manifest: check names it.
        assert code == 1 and "added model.txt" in out, out
    _assert_new_run_works(project)


def test_kill_during_needed_delete(project, tmp_path):
    code, _out, err = _gage(project, "run", "train", "-y")
    assert code == 0, err
    [done] = _runs(project)
    marker = tmp_path / "paused"
    _kill_at(
        project,
        ["run", "train", "-y", "--needed"],
        marker,
        GAGE_TEST_PAUSE="delete",
        GAGE_TEST_PAUSE_FILE=str(marker),
    )
    # The run being deleted is not listed at all, never as staged.
    assert [r["id"] for r in _runs(project)] == [done["id"]]
    runs_dir = project.parent / "runs"
    trash = runs_dir / ".trash"
    assert trash.exists() and os.listdir(trash)
    code, out = _check(project, done["id"])
    assert code == 0, out
    # --needed still finds the completed run; the next gage cleans the
    # trash, and the run dir left in the runs home with it.
    code, out, err = _gage(project, "run", "train", "-y", "--needed")
    assert code == 0 and "Run not needed" in out, err
    assert not os.listdir(trash)
    assert sorted(os.listdir(runs_dir)) == sorted(
        [".trash", done["id"], done["id"] + ".meta"]
        + [n for n in os.listdir(runs_dir) if n.startswith((".gage", ".objects"))]
    )
    _assert_new_run_works(project)
