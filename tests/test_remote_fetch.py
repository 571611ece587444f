"""Pinned project files fetched from a directory remote: a fresh clone of
a project (no data) stages a run whose `project-files` dependency is
pinned by sha256, with the bytes from the remote's objects, verified on
arrival, kept in the runs home's object cache, never in the project."""

from __future__ import annotations

import json
import os

import pytest
from remote_util import (
    check_fetched,
    fresh_clone,
    machine,
    pin_data,
    remote_objects,
    sha256,
)


def _config(remote: str, default: bool = True) -> str:
    text = '"$remote" = "team"\n' if default else ""
    return text + f'["$remotes".team]\nurl = "{remote}"\n'


@pytest.fixture
def pushed(tmp_path):
    """Machine a ran prep with data.bin pinned and pushed it."""
    remote = str(tmp_path / "remote")
    a = machine(tmp_path, "a", _config(remote))
    digest = pin_data(a.project)
    a.gage("run", "prep", "-y", "-q")
    a.gage("push", "-y")
    assert digest in remote_objects(remote)
    return a, digest, remote


def test_fetch_with_remote(pushed, tmp_path):
    a, digest, remote = pushed
    b = fresh_clone(tmp_path, "b", a, _config(remote, default=False))
    check_fetched(b, digest, "team")
    [run] = b.runs()
    with open(os.path.join(run["run_dir"] + ".meta", "log", "runner")) as f:
        log = f.read()
    assert "placed from the object cache by their sha256 pin: data.bin" in log
    # Fetched once: a second run places it from the object cache.
    out = b.gage("run", "prep", "-y", "--remote", "team").stdout
    assert "Fetched" not in out and len(b.runs()) == 2


def test_missing_without_remote(pushed, tmp_path):
    a, digest, remote = pushed
    b = fresh_clone(tmp_path, "b", a, _config(remote, default=False))
    p = b.gage("run", "prep", "-y", check=False)
    assert p.returncode != 0
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert (
        lines[0].startswith("gage: dependency 'data.bin' of op 'prep'")
        or "data.bin" in lines[0]
    )
    assert f"file 'data.bin' not found in project ({b.project})" in lines[0]
    assert f"pinned by sha256 ({digest[:12]})" in lines[0]
    assert "--remote NAME" in lines[0]
    assert b.runs() == []
    # An unpinned missing file: the error as it was, no word of a remote.
    with open(os.path.join(b.project, "gage.toml")) as f:
        text = f.read()
    with open(os.path.join(b.project, "gage.toml"), "w") as f:
        f.write(text.replace(f', sha256 = "{digest}"', ""))
    p = b.gage("run", "prep", "-y", check=False)
    assert p.returncode != 0 and "--remote" not in p.stderr
    assert "file 'data.bin' not found in project" in p.stderr


def test_default_remote_repro(pushed, tmp_path):
    """With "$remote" set, `gage repro` fetches too (and runs prep: no
    --remote, so no run is pulled)."""
    a, digest, remote = pushed
    b = fresh_clone(tmp_path, "b", a, _config(remote))
    out = b.gage("repro", "prep").stdout
    assert f"Fetched data.bin (sha256 {digest[:12]}) from remote 'team'" in out
    [run] = b.runs()
    assert run["status"] == "completed" and run["id"] != a.runs()[0]["id"]
    assert not os.path.exists(os.path.join(b.project, "data.bin"))


def test_tampered_object_refused(pushed, tmp_path):
    a, digest, remote = pushed
    path = remote_objects(remote)[digest]
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"X")
    b = fresh_clone(tmp_path, "b", a, _config(remote, default=False))
    p = b.gage("run", "prep", "-y", "--remote", "team", check=False)
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert f"the object for 'data.bin' (sha256 {digest[:12]}" in line
    assert "does not match its sha256" in line and "refused" in line
    assert b.runs() == []
    assert not os.path.exists(
        os.path.join(b.home, ".objects", "sha256", digest[:2], digest[2:])
    )


def test_object_missing_on_remote(pushed, tmp_path):
    a, digest, remote = pushed
    os.unlink(remote_objects(remote)[digest])
    b = fresh_clone(tmp_path, "b", a, _config(remote, default=False))
    p = b.gage("run", "prep", "-y", "--remote", "team", check=False)
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert f"'data.bin' (sha256 {digest[:12]}, pinned by" in line
    assert "is not on the remote" in line
    assert b.runs() == []


def test_needed_remote_pulls_without_fetching(pushed, tmp_path):
    """--needed --remote: the inputs key uses the pin, so the run on the
    remote is found and pulled; the data is not fetched on its own."""
    a, digest, remote = pushed
    b = fresh_clone(tmp_path, "b", a, _config(remote, default=False))
    out = b.gage("run", "prep", "--needed", "--remote", "team", "-y").stdout
    assert "Run not needed: pulled" in out and "Fetched" not in out
    assert [r["id"] for r in b.runs()] == [r["id"] for r in a.runs()]
    info = json.loads(b.gage("runs", "--json").stdout)
    assert info[0]["status"] == "completed"


def _add_sweep(m, digest: str) -> None:
    """An op `sweep` with config `x` and data.bin pinned (never pushed:
    no run of it is on the remote)."""
    with open(os.path.join(m.project, "sweep.py"), "w") as f:
        f.write("x = 1\nprint('x', x, len(open('data.bin', 'rb').read()))\n")
    with open(os.path.join(m.project, "gage.toml"), "a") as f:
        f.write(
            '\n[sweep]\nexec = "python sweep.py"\nconfig = "sweep.py#x"\n'
            f'depends = {{ type = "project-files", files = "data.bin", sha256 = "{digest}" }}\n'
        )


def _check_sweep_runs(m, digest: str, n: int) -> None:
    runs = [r for r in m.runs() if r["op"] == "sweep"]
    assert len(runs) == n and {r["status"] for r in runs} == {"completed"}
    for r in runs:
        assert sha256(os.path.join(r["run_dir"], "data.bin")) == digest
    assert not os.path.exists(os.path.join(m.project, "data.bin"))


def test_batch_fetches_once(pushed, tmp_path):
    """A batch whose op pins a file missing from the project fetches it
    from --remote once, before any trial is staged; every trial has it."""
    a, digest, remote = pushed
    b = fresh_clone(tmp_path, "b", a, _config(remote, default=False))
    _add_sweep(b, digest)
    p = b.gage("run", "sweep", "x=[1,2,3]", "-y", "--remote", "team")
    assert p.stdout.count(f"Fetched data.bin (sha256 {digest[:12]})") == 1, p.stdout
    _check_sweep_runs(b, digest, 3)


def test_batch_file_default_remote(pushed, tmp_path):
    """A batch file with "$remote" set fetches too; without any remote
    the batch stages nothing and says what is missing."""
    a, digest, remote = pushed
    b = fresh_clone(tmp_path, "b", a, _config(remote, default=False))
    _add_sweep(b, digest)
    batch = os.path.join(b.project, "trials.json")
    with open(batch, "w") as f:
        json.dump([{"x": 4}, {"x": 5}], f)
    p = b.gage("run", "sweep", "-y", "--batch-file", batch, check=False)
    assert p.returncode != 0 and "--remote NAME" in p.stderr
    assert b.runs() == []
    with open(b.config, "w") as f:
        f.write(_config(remote))
    out = b.gage("run", "sweep", "-y", "--batch-file", batch).stdout
    assert out.count("Fetched data.bin") == 1, out
    _check_sweep_runs(b, digest, 2)


def test_repro_remote_fetches(pushed, tmp_path):
    """`gage repro OP --remote NAME` (no "$remote") for an op with no run
    on the remote fetches the pinned file and runs the op."""
    a, digest, remote = pushed
    b = fresh_clone(tmp_path, "b", a, _config(remote, default=False))
    _add_sweep(b, digest)
    out = b.gage("repro", "sweep", "--remote", "team").stdout
    assert f"Fetched data.bin (sha256 {digest[:12]}) from remote 'team'" in out
    _check_sweep_runs(b, digest, 1)
