"""Push and pull through an SSH remote: a real OpenSSH sshd on 127.0.0.1
(started and stopped by the `sshd` fixture, with throwaway keys), reached
through fsspec's sshfs (asyncssh). Errors a user meets are one line."""

from __future__ import annotations

import json
import os
import time

import pytest
from remote_servers import free_port, sshd  # noqa: F401
from remote_util import (
    check_fetched,
    fresh_clone,
    machine,
    pin_data,
    remote_objects,
    sha256,
    temp_files,
)


@pytest.fixture
def two(sshd, tmp_path):  # noqa: F811
    remote = str(tmp_path / "remote")
    cfg = '"$remote" = "box"\n' + sshd.table("box", remote)
    return machine(tmp_path, "a", cfg), machine(tmp_path, "b", cfg), remote


def _make_runs(m, **env):
    m.gage("run", "prep", "-y", "-q", **env)
    m.gage("run", "train", "lr=0.2", "-y", "-q", **env)
    return {r["op"]: r for r in m.runs()}


def test_ssh_round_trip(two):
    a, b, remote = two
    runs_a = _make_runs(a, N_SMALL="50")
    plan = a.gage_json("push", "-y")
    assert [r["action"] for r in plan["runs"]] == ["push", "push"]
    objects = remote_objects(remote)
    assert plan["objects"] == len(objects) > 50
    for digest, path in objects.items():
        assert sha256(path) == digest
    assert temp_files(remote) == []
    t0 = time.monotonic()
    again = a.gage_json("push", "-y")
    assert again["objects"] == 0 and {r["action"] for r in again["runs"]} == {
        "up to date"
    }
    assert time.monotonic() - t0 < 10
    listed = b.gage_json("runs", "--remote", "box")
    assert {r["id"] for r in listed} == {r["id"] for r in runs_a.values()}
    b.gage("pull", "-y")
    for r in b.runs():
        assert r["id"] in {x["id"] for x in runs_a.values()}
        b.gage("check", r["id"])
    show = b.gage_json("show", runs_a["train"]["id"])
    assert show["remote"]["url"].startswith("ssh://")


def test_ssh_tampered_object_refused(two):
    a, b, remote = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    with open(os.path.join(remote, "runs", runs_a["prep"]["id"] + ".json")) as f:
        entry = json.load(f)
    [digest] = [f[1] for f in entry["files"] if f[0] == "data.bin"]
    path = os.path.join(remote, "objects", "sha256", digest[:2], digest[2:])
    os.chmod(path, 0o644)
    with open(path, "ab") as f:
        f.write(b"!")
    p = b.gage("pull", "-y", runs_a["prep"]["id"], check=False)
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert "remote 'box'" in line and "(data.bin)" in line
    assert "does not match its sha256" in line
    assert b.runs() == []


def test_ssh_concurrent_pushers(sshd, tmp_path):  # noqa: F811
    import shutil

    remote = str(tmp_path / "remote")
    cfg = sshd.table("box", remote, jobs=4)
    a = machine(tmp_path, "a", cfg)
    _make_runs(a, N_SMALL="100")
    c = machine(tmp_path, "c", cfg, project=a.project)
    shutil.copytree(a.home, c.home, symlinks=True)
    procs = [m.popen("push", "-y", "--remote", "box") for m in (a, c)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    for digest, path in remote_objects(remote).items():
        assert sha256(path) == digest
    b = machine(tmp_path, "b", cfg)
    b.gage("pull", "-y", "--remote", "box")
    assert len(b.runs()) == 2


def _one_line_error(m, *args: str) -> str:
    t0 = time.monotonic()
    p = m.gage(*args, check=False)
    assert time.monotonic() - t0 < 30, "did not give up in time"
    assert p.returncode == 1, (p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gage: "), p.stderr
    return lines[0]


def test_ssh_unreachable(sshd, tmp_path):  # noqa: F811
    port = free_port()  # nothing listens there
    cfg = f'["$remotes".gone]\nurl = "ssh://127.0.0.1:{port}/x"\ntimeout = 5\n'
    m = machine(tmp_path, "a", cfg)
    line = _one_line_error(m, "runs", "--remote", "gone")
    assert line.startswith(
        f"gage: remote 'gone' (ssh://127.0.0.1:{port}/x): cannot reach"
    )


def test_ssh_bad_credentials(sshd, tmp_path):  # noqa: F811
    import subprocess

    key = str(tmp_path / "other_key")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True
    )
    cfg = sshd.table("box", str(tmp_path / "r")).replace(sshd.key, key)
    m = machine(tmp_path, "a", cfg + "timeout = 10\n")
    line = _one_line_error(m, "runs", "--remote", "box")
    assert "authentication failed at " in line, line


def test_ssh_unknown_host_key(sshd, tmp_path):  # noqa: F811
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cfg = sshd.table("box", str(tmp_path / "r")).replace(sshd.known_hosts, str(empty))
    m = machine(tmp_path, "a", cfg)
    line = _one_line_error(m, "runs", "--remote", "box")
    assert "host key" in line and "is not known" in line, line


def test_ssh_fetch_pinned_file(sshd, tmp_path):  # noqa: F811
    """A fresh clone (no data) stages prep with its pinned data.bin from
    the SSH remote's objects."""
    remote = str(tmp_path / "remote")
    cfg = sshd.table("box", remote)
    a = machine(tmp_path, "a", cfg)
    digest = pin_data(a.project)
    a.gage("run", "prep", "-y", "-q")
    a.gage("push", "-y", "--remote", "box")
    b = fresh_clone(tmp_path, "b", a, cfg)
    check_fetched(b, digest, "box")


def test_ssh_missing_small_object(two):
    """A small object read in the batch (`sftp.cat_all`) that the remote
    lacks is named in one line; nothing of its run comes."""
    a, b, remote = two
    runs_a = _make_runs(a, N_SMALL="40")
    a.gage("push", "-y")
    with open(os.path.join(remote, "runs", runs_a["prep"]["id"] + ".json")) as f:
        entry = json.load(f)
    path, digest = next((f[0], f[1]) for f in entry["files"] if f[2] < 1024)
    os.unlink(remote_objects(remote)[digest])
    p = b.gage("pull", "-y", runs_a["prep"]["id"], check=False)
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert f"object {digest[:12]} ({path}) of run" in line and "is missing" in line
    assert b.runs() == []


def test_ssh_interrupted_push_resumes(two, tmp_path):
    """A push killed after an object (all in one batch: `sftp.put_all`)
    lists no run; the next push sends only what is missing."""
    import signal
    import uuid

    a, b, remote = two
    _make_runs(a, N_SMALL="40")
    total = a.gage_json("push", "--dry-run")["objects"]
    marker = str(tmp_path / f"paused-{uuid.uuid4().hex}")
    proc = a.popen(
        "push", "-y", GAGE_TEST_PAUSE="remote-push", GAGE_TEST_PAUSE_FILE=marker
    )
    deadline = time.monotonic() + 60
    while not os.path.exists(marker):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never paused"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    sent = len(remote_objects(remote))
    assert 1 <= sent < total
    assert not os.path.exists(os.path.join(remote, "runs"))
    for digest, path in remote_objects(remote).items():
        assert sha256(path) == digest
    again = a.gage_json("push", "-y")
    assert again["objects"] == total - sent
    b.gage("pull", "-y")
    assert len(b.runs()) == 2
