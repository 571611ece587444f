"""Archive and restore with real runs: runs leave the listing and come
back intact (sealed meta verifies, hardlinks kept, index right), what a
live run needs stays, and a mover killed half way is finished later."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

_GAGE_TOML = """
[prepare]
exec = "python prepare.py"
depends = { type = "project-files", files = "data.bin" }

[train]
exec = "python train.py"
depends = { type = "run-files", run-select = "prepare", files = "out.txt" }

[wait]
exec = "python wait.py"
"""

_PREPARE = "open('out.txt', 'w').write(open('data.bin').read()[:10])\n"
_TRAIN = "print(open('out.txt').read())\n"
_WAIT = """
import os, time
open(os.environ["MARKER"], "w").write("started\\n")
deadline = time.monotonic() + 60
while not os.path.exists(os.environ["RELEASE"]) and time.monotonic() < deadline:
    time.sleep(0.02)
"""

_TIMEOUT = 60


@pytest.fixture
def project(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text(_GAGE_TOML)
    (project / "prepare.py").write_text(_PREPARE)
    (project / "train.py").write_text(_TRAIN)
    (project / "wait.py").write_text(_WAIT)
    (project / "data.bin").write_text("0123456789" * 1000)
    return project


def _env(project, **extra):
    env = dict(os.environ)
    for name in ("GAGE_TEST_PAUSE", "GAGE_TEST_PAUSE_FILE"):
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


def _ok(project, *args):
    code, out, err = _gage(project, *args)
    assert code == 0, (args, out, err)
    return out


def _ids(project, *args):
    return [r["id"] for r in json.loads(_ok(project, "runs", "--json", *args))]


def _inodes(run_dir):
    found = {}
    for root, _dirs, files in os.walk(run_dir):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            rel = os.path.relpath(os.path.join(root, name), run_dir)
            found[rel] = (st.st_ino, st.st_nlink, st.st_mode)
    return found


def test_archive_and_restore_intact(project):
    _ok(project, "run", "prepare", "-y", "-q")
    _ok(project, "run", "train", "-y", "-q")
    home = str(project.parent / "runs")
    prepare = json.loads(_ok(project, "select", "prepare", "--json"))[0]
    before = _inodes(prepare["run_dir"])
    assert before["data.bin"][1] >= 2  # placed by hardlink from the object cache
    assert _ids(project) == [_ids(project)[0], prepare["id"]]

    out = _ok(project, "archive", "prepare", "train", "--name", "old", "-y")
    assert "Archived 2 runs" in out
    assert _ids(project) == []
    archive = os.path.join(home, ".archive", "old")
    assert sorted(_ids(project, "--archive", "old")) == sorted(
        os.path.basename(p) for p in os.listdir(archive) if len(p) == 32
    )
    moved = os.path.join(archive, prepare["id"])
    assert _inodes(moved) == before  # a rename: same files, same links
    _ok(project, "cache", "prune")  # archived runs still use their objects
    assert _inodes(moved) == before
    _ok(project, "check", moved)  # sealed meta and files verify in the archive

    # Restore one by its # in the archive listing, then the rest.
    out = _ok(project, "restore", "prepare", "--archive", "old", "-y")
    assert "Restored 1 run" in out
    assert _ids(project) == [prepare["id"]]
    assert _inodes(prepare["run_dir"]) == before
    assert "files match the manifest" in _ok(project, "check", prepare["id"])
    _ok(project, "restore", "--archive", "old", "-y")
    assert len(_ids(project)) == 2 and _ids(project, "--archive", "old") == []
    # The index agrees with meta (rebuilt from scratch).
    from gage._internal.home import runs_index

    kept = [e.id for e in runs_index.entries(home)]
    runs_index.rebuild(home)
    assert [e.id for e in runs_index.entries(home)] == kept


def test_live_runs_stay(project, tmp_path):
    _ok(project, "run", "prepare", "-y", "-q")
    _ok(project, "run", "train", "--stage")
    code, out, err = _gage(project, "archive", "prepare", "-y")
    assert code == 1
    assert "not archiving run" in err and "depends on it" in err
    assert "archive it too" in err
    assert len(_ids(project)) == 2
    # With the staged run that needs it, both go.
    _ok(project, "archive", "prepare", "train", "-y")
    assert _ids(project) == []
    _ok(project, "restore", "--archive", "default", "-y")

    marker, release = tmp_path / "started", tmp_path / "release"
    p = subprocess.Popen(
        [sys.executable, "-m", "gage", "run", "wait", "-y", "-q"],
        cwd=project,
        env=_env(project, MARKER=str(marker), RELEASE=str(release)),
    )
    try:
        deadline = time.monotonic() + _TIMEOUT
        while not marker.exists():
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        code, out, err = _gage(project, "archive", "wait", "-y")
        assert code == 1 and "it is running (stop it first)" in err
        assert "Archived" not in out
    finally:
        release.write_text("")
        assert p.wait(timeout=_TIMEOUT) == 0
    assert len(_ids(project)) == 3


def test_killed_mover_is_finished(project, tmp_path):
    _ok(project, "run", "prepare", "-y", "-q")
    _ok(project, "run", "prepare", "-y", "-q")
    first, second = _ids(project)
    marker = tmp_path / "paused"
    p = subprocess.Popen(
        [sys.executable, "-m", "gage", "archive", first, "-y"],
        cwd=project,
        env=_env(project, GAGE_TEST_PAUSE="archive", GAGE_TEST_PAUSE_FILE=str(marker)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + _TIMEOUT
        while not marker.exists():
            assert p.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        assert p.wait(timeout=_TIMEOUT) == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # Half moved: the run is in neither listing's way (no run dir
    # without meta is listed), and the next move finishes it.
    assert _ids(project) == [second]
    _ok(project, "archive", second, "-y")
    home = project.parent / "runs"
    assert not (home / first).exists()
    _ok(project, "check", str(home / ".archive" / "default" / first))
    assert sorted(_ids(project, "--archive", "default")) == sorted([first, second])


def test_errors(project):
    _ok(project, "run", "prepare", "-y", "-q")
    code, _out, err = _gage(project, "archive", "-y")
    assert code == 2
    assert err == (
        "gage: name the runs to archive: RUN..., --op OP, --status S or "
        "--where EXPR (see 'gage archive --help')\n"
    )
    code, _out, err = _gage(project, "runs", "--archive", "nope")
    assert code == 2 and "no archive 'nope' in" in err and "no archives yet" in err
    code, _out, err = _gage(project, "archive", "1", "--name", "../x", "-y")
    assert code == 2 and "archive name '../x' is not a plain name" in err
    code, _out, err = _gage(project, "archive", "1")  # no terminal to ask on
    assert code == 2 and "without confirmation: use -y" in err
    run_id = _ids(project)[0]
    _ok(project, "archive", "1", "-y")
    # A run dir of the same name in the runs home: the run stays archived.
    os.makedirs(project.parent / "runs" / run_id)
    code, _out, err = _gage(project, "restore", "--archive", "default", "-y")
    assert code == 1 and "not restoring run" in err and "exists" in err
    assert _ids(project, "--archive", "default") == [run_id]


@pytest.mark.parametrize(
    "answer, code, left", [(b"n\n", 1, 1), (b"\n", 1, 1), (b"y\n", 0, 0)]
)
def test_archive_asks_on_a_terminal(project, answer, code, left):
    from pty_util import run_in_pty

    _ok(project, "run", "prepare", "-y", "-q")
    gage = os.path.join(os.path.dirname(sys.executable), "gage")
    rc, out = run_in_pty(
        [gage, "archive", "1"],
        cwd=project,
        env=_env(project),
        prompt=b"Archive 1 run? (y/N)",
        answer=answer,
    )
    assert "Archiving 1 run to archive 'default'" in out
    assert rc == code
    assert len(_ids(project)) == left
    if code:
        assert "cancelled: nothing moved" in out


def test_api_takes_runs(project):
    import gage

    _ok(project, "run", "prepare", "-y", "-q")
    _ok(project, "run", "train", "--stage")
    home = str(project.parent / "runs")
    prepare = gage.select_run(home, "prepare")
    with pytest.raises(gage.GageError, match="cannot archive run .*depends on it"):
        gage.archive_runs(home, [prepare], "api")
    assert len(_ids(project)) == 2
    both = [prepare, gage.select_run(home, "train")]
    assert gage.archive_runs(home, both, "api") == 2
    archive = gage.archive_home(home, "api")
    assert gage.restore_runs(home, [gage.select_run(archive, "prepare")], "api") == 1
    assert _ids(project) == [prepare.id]
