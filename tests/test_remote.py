"""Push and pull through a directory remote, between two runs homes (two
machines), with `gage` in its own process: what moves, what a remote
holds, what is refused, and what a killed push or pull leaves behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import uuid

import pytest
from remote_util import machine, remote_objects, sha256, temp_files

from gage._internal.types import META_SUFFIX


def _config(remote: str, **extra) -> str:
    text = f'"$remote" = "team"\n["$remotes".team]\nurl = "{remote}"\n'
    return text + "".join(f"{k} = {v}\n" for k, v in extra.items())


@pytest.fixture
def two(tmp_path):
    remote = str(tmp_path / "remote")
    cfg = _config(remote, jobs=1)
    return machine(tmp_path, "a", cfg), machine(tmp_path, "b", cfg), remote


def _make_runs(m, **env):
    m.gage("run", "prep", "-y", "-q", **env)
    m.gage("run", "train", "lr=0.2", "-y", "-q", **env)
    return {r["op"]: r for r in m.runs()}


def _home_runs(home: str) -> list[str]:
    if not os.path.isdir(home):
        return []
    return sorted(n for n in os.listdir(home) if not n.startswith("."))


def _assert_whole(remote: str) -> None:
    """Every object is named by its sha256, and every listed run has all
    its objects."""
    objects = remote_objects(remote)
    for digest, path in objects.items():
        assert sha256(path) == digest, path
    runs = os.path.join(remote, "runs")
    for name in os.listdir(runs) if os.path.isdir(runs) else []:
        with open(os.path.join(remote, "runs", name)) as f:
            entry = json.load(f)
        assert entry["meta"] in objects
        for _path, digest, _size, _mode in entry["files"]:
            assert digest in objects, (name, _path)


def test_push_pull_round_trip(two):
    a, b, remote = two
    runs_a = _make_runs(a)
    plan = a.gage_json("push", "-y")
    assert [r["action"] for r in plan["runs"]] == ["push", "push"]
    assert plan["objects"] == len(remote_objects(remote)) > 0
    _assert_whole(remote)
    assert temp_files(remote) == []
    # A second push sends nothing.
    again = a.gage_json("push", "-y")
    assert {r["action"] for r in again["runs"]} == {"up to date"}
    assert again["objects"] == 0
    # Listing a remote pulls nothing.
    listed = b.gage_json("runs", "--remote", "team")
    assert {r["id"] for r in listed} == {r["id"] for r in runs_a.values()}
    assert b.runs() == []
    pulled = b.gage_json("pull", "-y")
    assert [r["action"] for r in pulled["runs"]] == ["pull", "pull"]
    runs_b = {r["op"]: r for r in b.runs()}
    for op, r in runs_a.items():
        for key in ("id", "name", "status", "config", "summary", "started"):
            assert runs_b[op][key] == r[key], key
        b.gage("check", r["id"])
    # Identity and provenance are kept; show says where a run came from.
    train = b.gage_json("show", runs_a["train"]["id"])
    assert train["deps"][0]["source"]["id"] == runs_a["prep"]["id"]
    assert train["remote"]["remote"] == "team"
    assert train["remote"]["url"] == remote
    text = b.gage("show", runs_a["train"]["id"]).stdout
    assert f"Remote:   pulled from 'team' ({remote})" in text
    # A pulled run is an upstream run like any other.
    b.gage("run", "train", "lr=0.3", "-y", "-q")
    new = b.runs()[0]
    assert (
        b.gage_json("show", new["id"])["deps"][0]["source"]["id"]
        == runs_a["prep"]["id"]
    )
    assert "lr" in b.gage("compare").stdout
    # Pulling again moves nothing; pushing a pulled run sends nothing.
    assert b.gage_json("pull", "-y")["objects"] == 0
    assert b.gage_json("push", "-y", runs_a["train"]["id"])["runs"][0]["action"] == (
        "up to date"
    )


def test_dry_run_and_text(two):
    a, b, remote = two
    _make_runs(a)
    out = a.gage("push", "--dry-run").stdout
    assert "2 runs, " in out and "Nothing pushed (dry run)." in out
    assert not os.path.exists(os.path.join(remote, "runs"))
    out = a.gage("push", "-y").stdout
    assert out.splitlines()[-1].startswith("Pushed 2 runs (")
    out = b.gage("pull", "--dry-run", "-r", "team").stdout
    assert "Nothing pulled (dry run)." in out and _home_runs(b.home) == []
    out = b.gage("pull", "-y", "train").stdout
    assert "Pulled 1 run (" in out
    assert [r["op"] for r in b.runs()] == ["train"]


def _entry(remote: str, run_id: str) -> dict:
    with open(os.path.join(remote, "runs", run_id + ".json")) as f:
        return json.load(f)


def _object(remote: str, digest: str) -> str:
    return os.path.join(remote, "objects", "sha256", digest[:2], digest[2:])


def _assert_nothing_pulled(b) -> None:
    assert b.runs() == []
    assert _home_runs(b.home) == []
    pull_dir = os.path.join(b.home, ".gage-pull")
    assert not os.path.exists(pull_dir) or os.listdir(pull_dir) == []


def test_tampered_object_refused(two):
    a, b, remote = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    entry = _entry(remote, runs_a["prep"]["id"])
    [digest] = [f[1] for f in entry["files"] if f[0] == "data.bin"]
    path = _object(remote, digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(b"tampered")
    p = b.gage("pull", "-y", check=False)
    assert p.returncode == 1, p.stderr
    [line] = p.stderr.splitlines()
    assert line.startswith("gage: remote 'team'") and "(data.bin)" in line
    assert "does not match its sha256" in line and "refused" in line
    _assert_nothing_pulled(b)
    assert not os.path.exists(
        os.path.join(b.home, ".objects", "sha256", digest[:2], digest[2:])
    )


def test_missing_object_refused(two):
    a, b, remote = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    entry = _entry(remote, runs_a["train"]["id"])
    [digest] = [f[1] for f in entry["files"] if f[0] == "model.txt"]
    os.unlink(_object(remote, digest))
    p = b.gage("pull", "-y", runs_a["train"]["id"], check=False)
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert "(model.txt)" in line and "is missing" in line, line
    _assert_nothing_pulled(b)


def _put_object(remote: str, data: bytes) -> str:
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    path = _object(remote, digest)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return digest


def _rewrite_entry(remote: str, entry: dict) -> None:
    path = os.path.join(remote, "runs", entry["id"] + ".json")
    with open(path, "w") as f:
        json.dump(entry, f)


def test_changed_sealed_meta_refused(two):
    a, b, remote = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    entry = _entry(remote, runs_a["train"]["id"])
    with open(_object(remote, entry["meta"]), "rb") as f:
        src = tarfile.open(fileobj=io.BytesIO(f.read()))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as dest:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isreg() else None
            if m.name.endswith(".meta/proc/cmd"):
                data = data.replace(b"train.py", b"evil.py")
                m.size = len(data)
            dest.addfile(m, io.BytesIO(data) if data is not None else None)
    entry["meta"] = _put_object(remote, buf.getvalue())
    _rewrite_entry(remote, entry)
    p = b.gage("pull", "-y", check=False)
    assert p.returncode == 1
    [line] = p.stderr.splitlines()
    assert f"run {entry['name']} ({entry['id']}) on remote 'team'" in line
    assert "does not verify: changed meta proc/cmd" in line, line
    # The run that verifies came; the other did not.
    assert [r["op"] for r in b.runs()] == ["prep"]
    assert _home_runs(b.home) == [
        runs_a["prep"]["id"],
        runs_a["prep"]["id"] + META_SUFFIX,
    ]


def test_file_not_in_manifest_refused(two):
    a, b, remote = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    entry = _entry(remote, runs_a["train"]["id"])
    digest = _put_object(remote, b"not the model\n")
    entry["files"] = [
        [p, digest if p == "model.txt" else d, s, m] for p, d, s, m in entry["files"]
    ]
    _rewrite_entry(remote, entry)
    p = b.gage("pull", "-y", runs_a["train"]["id"], check=False)
    assert p.returncode == 1
    assert "does not verify: changed model.txt" in p.stderr, p.stderr
    _assert_nothing_pulled(b)


def test_entry_path_outside_run_dir_refused(two):
    a, b, remote = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    entry = _entry(remote, runs_a["train"]["id"])
    entry["files"][0][0] = "../../escape.txt"
    _rewrite_entry(remote, entry)
    p = b.gage("pull", "-y", runs_a["train"]["id"], check=False)
    assert p.returncode == 1 and "is not valid: bad path" in p.stderr, p.stderr
    assert b.runs() == []


def _kill_at(m, point: str, tmp_path, *args: str) -> None:
    marker = str(tmp_path / f"paused-{uuid.uuid4().hex}")
    proc = m.popen(*args, GAGE_TEST_PAUSE=point, GAGE_TEST_PAUSE_FILE=marker)
    deadline = time.monotonic() + 60
    while not os.path.exists(marker):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never paused"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


def test_interrupted_push_resumes(two, tmp_path):
    a, b, remote = two
    _make_runs(a)
    total = a.gage_json("push", "--dry-run")["objects"]
    _kill_at(a, "remote-push", tmp_path, "push", "-y")
    # Killed after an object (other threads may have sent more): no run
    # is listed, what is there under an object's name is whole.
    sent = len(remote_objects(remote))
    assert sent >= 1
    assert not os.path.exists(os.path.join(remote, "runs"))
    assert b.gage_json("runs", "--remote", "team") == []
    _assert_whole(remote)
    again = a.gage_json("push", "-y")
    assert again["objects"] == total - sent
    _assert_whole(remote)
    assert len(b.gage_json("runs", "--remote", "team")) == 2


def test_interrupted_pull_resumes(two, tmp_path):
    a, b, remote = two
    _make_runs(a)
    total = a.gage_json("push", "-y")["objects"]
    _kill_at(b, "remote-pull", tmp_path, "pull", "-y")
    assert b.runs() == [] and _home_runs(b.home) == []
    # Objects that arrived whole are kept (at least the one killed after).
    cache = os.path.join(b.home, ".objects", "sha256")
    have = sum(len(os.listdir(os.path.join(cache, d))) for d in os.listdir(cache))
    assert have >= 1
    again = b.gage_json("pull", "-y")
    assert again["objects"] == total - have
    for r in b.runs():
        b.gage("check", r["id"])


def test_pulled_object_is_written_in_its_run(two, tmp_path):
    """An object a pulled run's file links is written in the run being
    put together (in .gage-pull) and linked into the object cache from
    there: one file made per object. The meta objects are in the cache
    already here, so the first object that lands is a run's file."""
    a, b, remote = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    for r in runs_a.values():
        meta = _entry(remote, r["id"])["meta"]
        dest = os.path.join(b.home, ".objects", "sha256", meta[:2], meta[2:])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy(_object(remote, meta), dest)
    _kill_at(b, "remote-pull", tmp_path, "pull", "-y")
    cache = os.path.join(b.home, ".objects", "sha256")
    metas = {_entry(remote, r["id"])["meta"] for r in runs_a.values()}
    [landed] = [
        os.path.join(cache, d, n)
        for d in os.listdir(cache)
        for n in os.listdir(os.path.join(cache, d))
        if d + n not in metas
    ]
    st = os.stat(landed)
    assert st.st_nlink == 2 and st.st_mode & 0o777 == 0o444
    pulling = os.path.join(b.home, ".gage-pull")
    [(run_dir, name)] = [
        (d, n)
        for d, _dirs, names in os.walk(pulling)
        for n in names
        if os.stat(os.path.join(d, n)).st_ino == st.st_ino
    ]
    # .gage-pull/<work>/<run id>/...: a file of a run's run dir
    parts = os.path.relpath(os.path.join(run_dir, name), pulling).split(os.sep)
    assert parts[1] in {r["id"] for r in runs_a.values()} and len(parts) > 2
    b.gage("pull", "-y")
    for r in b.runs():
        b.gage("check", r["id"])


def test_killed_between_renames(two, tmp_path):
    a, b, remote = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    first = min(r["id"] for r in runs_a.values())
    _kill_at(b, "remote-pull-move", tmp_path, "pull", "-y")
    # The run dir is in, its meta dir is not: the run is not listed.
    assert _home_runs(b.home) == [first]
    assert b.runs() == []
    b.gage("pull", "-y")
    assert len(b.runs()) == 2
    b.gage("check", first)


def test_two_concurrent_pushers(tmp_path):
    remote = str(tmp_path / "remote")
    cfg = _config(remote, jobs=4)
    a = machine(tmp_path, "a", cfg)
    _make_runs(a, N_SMALL="300")
    # Machine c has the same runs (a copy of a's runs home) and one of its own.
    c = machine(tmp_path, "c", cfg, project=a.project)
    shutil.copytree(a.home, c.home, symlinks=True)
    c.gage("run", "train", "lr=0.7", "-y", "-q")
    procs = [m.popen("push", "-y", "--json") for m in (a, c)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    _assert_whole(remote)
    b = machine(tmp_path, "b", cfg)
    b.gage("pull", "-y")
    assert len(b.runs()) == 3
    for r in b.runs():
        b.gage("check", r["id"])


def test_pull_into_home_on_another_device(two):
    a, _b, remote = two
    if (
        not os.path.isdir("/dev/shm")
        or os.stat("/dev/shm").st_dev == os.stat(remote.rsplit("/", 1)[0]).st_dev
    ):
        pytest.skip("no second device (/dev/shm) here")
    home = f"/dev/shm/gage-test-{uuid.uuid4().hex}"
    try:
        runs_a = _make_runs(a)
        a.gage("push", "-y")
        b = machine(os.path.dirname(a.config) + "-b2", "b", _config(remote), home=home)
        b.gage("pull", "-y")
        objects = {os.stat(p).st_ino for p in remote_objects(remote).values()}
        run_dir = os.path.join(home, runs_a["prep"]["id"])
        for root, _dirs, files in os.walk(run_dir):
            for name in files:
                st = os.lstat(os.path.join(root, name))
                assert not os.path.islink(os.path.join(root, name))
                assert st.st_dev == os.stat(home).st_dev and st.st_ino not in objects
        for r in b.runs():
            b.gage("check", r["id"])
    finally:
        subprocess.run(["chmod", "-R", "u+w", home], check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_needed_pulls_from_remote(two):
    a, b, remote = two
    runs_a = _make_runs(a)
    a.gage("push", "-y")
    out = b.gage("run", "prep", "--needed", "--remote", "team", "-y").stdout
    assert out.startswith(f"Run not needed: pulled {runs_a['prep']['name']} ")
    assert "from remote 'team'" in out
    out = b.gage("run", "train", "lr=0.2", "--needed", "--remote", "team", "-y").stdout
    assert f"pulled {runs_a['train']['name']}" in out
    assert {r["id"] for r in b.runs()} == {r["id"] for r in runs_a.values()}
    # Other inputs: nothing to pull, the run runs.
    out = b.gage("run", "train", "lr=0.5", "--needed", "--remote", "team", "-y").stdout
    assert "not needed" not in out and len(b.runs()) == 3


def test_remote_config_errors(tmp_path):
    m = machine(tmp_path, "a")
    with open(os.path.join(m.project, "gage.toml"), "a") as f:
        f.write('\n["$remotes".team]\nurl = "/tmp/x"\nendpoint = "http://x"\n')
    p = m.gage("runs", "--remote", "team", check=False)
    assert p.returncode == 2
    assert p.stderr.splitlines() == [
        "gage: gage.toml:12: remote 'team': unknown key 'endpoint' (known keys: "
        "url, endpoint-url, region, profile, key-file, known-hosts, timeout, jobs)"
    ]
    m2 = machine(tmp_path, "b", '["$remotes".x]\nurl = "s3://b"\nkey-file = "k"\n')
    p = m2.gage("push", "--remote", "x", check=False)
    assert p.returncode == 2
    assert (
        p.stderr
        == f"gage: {m2.config}:3: remote 'x': 'key-file' applies to ssh:// urls only\n"
    )
    m2 = machine(tmp_path, "c", '["$remotes".x]\nurl = "s3://b"\n')
    p = m2.gage("push", "--remote", "nope", check=False)
    assert p.returncode == 2 and "no remote named 'nope'" in p.stderr
    assert "(remotes: x)" in p.stderr
    p = m2.gage("push", check=False)
    assert p.returncode == 2 and "no remote given: use --remote NAME" in p.stderr
    # run --remote names a remote even when nothing is to be fetched.
    p = m2.gage("run", "prep", "--remote", "nope", "-y", check=False)
    assert p.returncode == 2 and "no remote named 'nope'" in p.stderr
    assert m2.runs() == []


def test_remote_dir_parent_missing(tmp_path):
    m = machine(tmp_path, "a", '["$remotes".t]\nurl = "/nonexistent/dir/remote"\n')
    p = m.gage("runs", "--remote", "t", check=False)
    assert p.returncode == 1
    assert p.stderr == (
        "gage: remote 't': /nonexistent/dir is not a directory: create it or fix the url\n"
    )


def _entry(remote: str, run_id: str) -> dict:
    with open(os.path.join(remote, "runs", run_id + ".json")) as f:
        return json.load(f)


def test_repro_pulls_instead_of_running(two):
    a, b, remote = two
    a.gage("repro", "-q")
    runs_a = {r["op"]: r for r in a.runs()}
    a.gage("push", "-y")
    # --dry consults the remote: prep would be pulled, and train is
    # decided with the run prep would pull as its upstream (its meta and
    # file names read from the remote); nothing moves.
    out = b.gage("repro", "--dry", "--remote", "team").stdout
    prep, train = runs_a["prep"], runs_a["train"]
    assert out.splitlines() == [
        f"prep: pull from team (run {prep['name']} ({prep['id']}))",
        f"train: pull from team (run {train['name']} ({train['id']}))",
        "Nothing run (--dry).",
    ]
    out = b.gage("repro", "--dry", "--remote", "team", "train.lr=0.9").stdout
    lines = out.splitlines()
    assert lines[1:] == [
        "train: would run",
        "  no completed run of train",
        "Nothing run (--dry).",
    ]
    assert b.runs() == [] and os.listdir(os.path.join(b.home, ".gage-pull")) == []
    # Where prep's run cannot be read before it is pulled (its meta object
    # is gone from the remote), the line says so.
    meta = remote_objects(remote)[_entry(remote, prep["id"])["meta"]]
    os.rename(meta, meta + ".away")
    out = b.gage("repro", "--dry", "--remote", "team").stdout
    line = out.splitlines()[1]
    assert line.startswith(
        "train: pull from team or run (upstream prep is pulled first, and its run "
        "cannot be read before ("
    ), line
    assert "is missing" in line and line.endswith("; decided then)")
    os.rename(meta + ".away", meta)
    assert b.runs() == []
    out = b.gage("repro", "--dry").stdout
    assert "prep: would run" in out
    out = b.gage("repro", "--remote", "team").stdout
    assert f"prep pulled from remote 'team': run {runs_a['prep']['name']}" in out
    assert f"train pulled from remote 'team': run {runs_a['train']['name']}" in out
    assert {r["id"] for r in b.runs()} == {r["id"] for r in runs_a.values()}
    out = b.gage("repro", "--dry").stdout
    assert "prep: up to date" in out and "train: up to date" in out
    # With prep here, the remote's train is found by --dry too; a config
    # no run on the remote has would run.
    a.gage("run", "train", "lr=0.3", "-y", "-q")
    a.gage("push", "-y")
    out = b.gage("repro", "--dry", "--remote", "team", "train.lr=0.3").stdout
    assert out.splitlines()[1].startswith("train: pull from team (run ")
    out = b.gage("repro", "--dry", "--remote", "team", "train.lr=0.4").stdout
    assert out.splitlines()[1].startswith("train: would run")


def test_push_removes_temps_a_killed_push_left(two, tmp_path):
    # A killed push leaves files under temp names beside the objects. The
    # next push from this host removes those whose process has ended, in
    # the dirs it lists; a live process's and another host's stay.
    a, _b, remote = two
    with open(os.path.join(a.project, "many.py"), "w") as f:
        f.write("for i in range(40):\n    open(f'out{i}.txt', 'w').write(str(i))\n")
    with open(os.path.join(a.project, "gage.toml"), "a") as f:
        f.write('\n[many]\nexec = "python many.py"\n')
    a.gage("run", "many", "-y", "-q")
    fans = {sha256(os.path.join(a.project, "many.py"))[:2]}
    fans |= {_sha256_bytes(str(i).encode())[:2] for i in range(40)}
    ended = subprocess.Popen(["true"])
    ended.wait()
    host = socket.gethostname()
    dead = f".tmp-{host}-{ended.pid}-1-0"
    live = f".tmp-{host}-{os.getpid()}-1-0"
    other = f".tmp-another-host-{ended.pid}-1-0"
    for fan in fans:
        d = os.path.join(remote, "objects", "sha256", fan)
        os.makedirs(d)
        for name in (dead, live, other):
            with open(os.path.join(d, name), "w") as f:
                f.write("partial")
    assert a.gage_json("push", "-y")["objects"] > 16  # the listing path
    left = {os.path.basename(p) for p in temp_files(remote)}
    assert left == {live, other}
    assert len(temp_files(remote)) == 2 * len(fans)
    _assert_whole(remote)


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_object_dir_made_again_when_it_went(tmp_path):
    # A process that pulls more than once (the library API) remembers the
    # object dirs it made; one removed since (a cache prune) is made again.
    from gage._internal.remote import download

    home = str(tmp_path / "home")
    for i in range(2):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"same prefix")
        digest = "ab" + hashlib.sha256(f"{i}".encode()).hexdigest()[2:]
        download._make_object(home, str(path), digest, keep=True)
        obj = os.path.join(home, ".objects", "sha256", "ab", digest[2:])
        assert os.path.samefile(obj, path)
        shutil.rmtree(os.path.join(home, ".objects"))
