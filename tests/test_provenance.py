"""Provenance: git state at staging, the environment at start.

Real git repos (made here with the git on PATH), real interpreters and
real `gage` processes; a fake `git` only where git itself cannot be
made slow on purpose (the time budget).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from gage._internal import run_util
from gage._internal.home import runs as runs_mod
from gage._internal.project import gagefile, provenance_spec
from gage._internal.store import run_meta, run_records
from gage._internal.types import GagefileError, OpCmd, OpDef, OpRef
from gage._internal.util import git_state, python_env

GAGE = os.path.join(os.path.dirname(sys.executable), "gage")

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not on PATH")

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "T",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "T",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(cwd, *args: str) -> str:
    env = dict(os.environ, HOME=str(cwd), **_GIT_ENV)
    p = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return p.stdout.strip()


def _repo(path, files: dict[str, str] | None = None, commit: bool = True):
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    for name, text in (files or {"train.py": "print('hi')\n"}).items():
        (path / name).write_text(text)
    if commit:
        _git(path, "add", ".")
        _git(path, "commit", "-q", "-m", "first")
    return path


def _gage(cwd, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = dict(os.environ, **(env or {}))
    return subprocess.run(
        [GAGE, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=120
    )


def _project(path, toml: str, files: dict[str, str]):
    path.mkdir(parents=True, exist_ok=True)
    (path / "gage.toml").write_text(toml)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def _latest(runs_dir):
    return runs_mod.list_runs(str(runs_dir))[-1]


# ---------------------------------------------------------------------------
# git_state


def test_outside_git(tmp_path):
    state = git_state.git_state(str(tmp_path))
    assert state.status == "not-a-repo"
    assert state.commit is None and state.dirty is None


def test_no_git_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    state = git_state.git_state(str(tmp_path))
    assert state.status == "no-git"
    assert "not found" in (state.note or "")


@needs_git
def test_repo_without_commits(tmp_path):
    repo = _repo(tmp_path / "r", commit=False)
    state = git_state.git_state(str(repo))
    assert state.status == "ok"
    assert state.commit is None
    assert state.branch == "main"
    assert state.dirty is False
    # A file added to the index is a change from nothing.
    _git(repo, "add", "train.py")
    state = git_state.git_state(str(repo))
    assert state.dirty is True
    assert b"+print('hi')" in state.diff


@needs_git
def test_detached_head(tmp_path):
    repo = _repo(tmp_path / "r")
    head = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "--detach")
    state = git_state.git_state(str(repo))
    assert state.status == "ok"
    assert state.commit == head
    assert state.branch is None
    assert state.dirty is False


@needs_git
def test_subdir_and_remote_credentials(tmp_path):
    repo = _repo(tmp_path / "r", {"a.txt": "a\n"})
    (repo / "sub").mkdir()
    _git(repo, "remote", "add", "upstream", "https://u:tok@example.com/x/y.git")
    _git(repo, "remote", "add", "origin", "https://bob:pw@git.example.com:8443/r.git")
    state = git_state.git_state(str(repo / "sub"))
    assert state.path == "sub"
    assert state.remote == "https://git.example.com:8443/r.git"
    assert "pw" not in json.dumps(state.data())


@needs_git
def test_repo_of_another_user(tmp_path):
    if os.getuid() != 0:
        pytest.skip("making a repo another user owns needs root")
    repo = _repo(tmp_path / "r")
    nobody = __import__("pwd").getpwnam("nobody").pw_uid
    for root, dirs, files in os.walk(repo):
        for name in dirs + files + ["."]:
            os.lchown(os.path.join(root, name), nobody, -1)
    state = git_state.git_state(str(repo))
    assert state.status == "error"
    assert "dubious ownership" in (state.note or "")


def test_strip_credentials():
    strip = git_state.strip_credentials
    assert strip("https://user:secret@host/x.git") == "https://host/x.git"
    assert strip("ssh://git@host:22/x.git") == "ssh://host:22/x.git"
    assert strip("git@github.com:o/r.git") == "git@github.com:o/r.git"
    assert strip("/srv/repos/r.git") == "/srv/repos/r.git"


@needs_git
def test_diff_bounded_digest_of_all(tmp_path):
    repo = _repo(tmp_path / "r", {"big.txt": "x\n" * 10})
    (repo / "big.txt").write_text("".join(f"line {i}\n" for i in range(20000)))
    state = git_state.git_state(str(repo), diff_limit=1000)
    full = subprocess.run(
        ["git", "diff", "--no-ext-diff", "--binary", "HEAD", "--"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    assert state.dirty is True
    assert len(state.diff) == 1000
    assert state.diff == full[:1000]
    assert state.diff_size == len(full)
    assert state.diff_sha256 == hashlib.sha256(full).hexdigest()
    assert state.data()["diff"] == {
        "sha256": state.diff_sha256,
        "size": len(full),
        "kept": 1000,
    }


@needs_git
def test_never_writes_the_index(tmp_path):
    repo = _repo(tmp_path / "r")
    index = repo / ".git" / "index"
    before = index.stat().st_mtime_ns
    time.sleep(0.05)
    (repo / "train.py").write_text("print('changed')\n")
    os.utime(repo / "train.py")
    assert git_state.git_state(str(repo)).dirty is True
    assert index.stat().st_mtime_ns == before
    assert not (repo / ".git" / "index.lock").exists()


def test_time_budget(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "git"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    t0 = time.monotonic()
    state = git_state.git_state(str(tmp_path), budget=0.5)
    assert time.monotonic() - t0 < 5
    assert state.status == "error"
    assert "longer than 0.5 s" in (state.note or "")


@needs_git
def test_huge_untracked_tree(tmp_path):
    """Untracked files are never walked: 20,000 of them cost nothing."""
    repo = _repo(tmp_path / "r")
    for d in range(40):
        sub = repo / "data" / f"d{d}"
        sub.mkdir(parents=True)
        for f in range(500):
            (sub / f"f{f}.txt").write_bytes(b"")
    state = git_state.git_state(str(repo))
    assert state.status == "ok", state.note
    assert state.dirty is False
    assert state.seconds < git_state.BUDGET


# ---------------------------------------------------------------------------
# The run's interpreter


def test_command_python(tmp_path):
    exe = os.path.realpath(sys.executable)
    link = tmp_path / "python3"
    link.symlink_to(exe)
    env = {"PATH": str(tmp_path)}
    assert python_env.command_python(["python3", "x.py"], env) == (str(link), True)
    sh = shutil.which("sh")
    assert (
        python_env.command_python(["sh", "x"], {"PATH": os.path.dirname(sh)})[1]
        is False
    )
    assert python_env.command_python(["nope-nope"], env) == (None, False)
    assert python_env.command_python([], env) == (None, False)


def test_python_facts_sees_the_runs_path(tmp_path):
    pkgs = tmp_path / "pkgs"
    (pkgs / "Fake_Pkg-1.2.3.dist-info").mkdir(parents=True)
    egg = pkgs / "old.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: old\nVersion: 0.9\n\n")
    env = dict(os.environ, PYTHONPATH=str(pkgs))
    facts = python_env.python_facts(sys.executable, env, str(tmp_path))
    assert facts["version"] == "%d.%d.%d" % sys.version_info[:3]
    assert facts["packages"]["fake-pkg"] == "1.2.3"
    assert facts["packages"]["old"] == "0.9"
    assert list(tmp_path.iterdir()) == [pkgs]  # nothing written in cwd


def test_python_facts_cached_until_a_path_changes(tmp_path):
    log = tmp_path / "calls"
    wrapper = tmp_path / "bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho x >> {log}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    pkgs = tmp_path / "pkgs"
    (pkgs / "zzgagepkg-1.26.4.dist-info").mkdir(parents=True)
    old = time.time() - 60
    os.utime(pkgs, (old, old))
    env = dict(os.environ, PYTHONPATH=str(pkgs))
    (tmp_path / "home").mkdir()
    cache = str(tmp_path / "home" / "pythons.json")
    cwd = tmp_path / "run"
    cwd.mkdir()

    def facts():
        return python_env.python_facts(str(wrapper), env, str(cwd), cache)

    def calls():
        return len(log.read_text().splitlines())

    assert facts()["packages"]["zzgagepkg"] == "1.26.4"
    assert facts()["packages"]["zzgagepkg"] == "1.26.4"
    assert calls() == 1  # the second answer came from the cache
    os.rename(pkgs / "zzgagepkg-1.26.4.dist-info", pkgs / "zzgagepkg-2.1.0.dist-info")
    os.utime(pkgs, (old + 1, old + 1))
    assert facts()["packages"]["zzgagepkg"] == "2.1.0"
    assert calls() == 2
    # The run dir is scanned each time, and comes first (sys.path[0]).
    (cwd / "zzgagepkg-3.0.dist-info").mkdir()
    assert facts()["packages"]["zzgagepkg"] == "3.0"
    assert calls() == 2
    # Another PYTHONPATH is another key.
    env["PYTHONPATH"] = str(tmp_path)
    assert (
        "zzgagepkg"
        not in python_env.python_facts(str(wrapper), env, str(tmp_path), cache)[
            "packages"
        ]
    )
    assert calls() == 3


def test_python_cache_makes_no_dir(tmp_path):
    cache = tmp_path / "home" / ".gage-index" / "pythons.json"
    python_env.python_facts(sys.executable, dict(os.environ), str(tmp_path), str(cache))
    assert not (tmp_path / "home").exists()


def test_python_facts_failure_is_a_note(tmp_path):
    bad = tmp_path / "python"
    bad.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    bad.chmod(0o755)
    facts = python_env.python_facts(str(bad), dict(os.environ), str(tmp_path))
    assert facts == {"note": f"{bad} could not list its packages: broken"}


# ---------------------------------------------------------------------------
# Runs


def _run(tmp_path, args, opdata=None, env=None, project=None):
    project = project or tmp_path / "project"
    project.mkdir(exist_ok=True)
    if not (project / "hello.sh").exists():
        (project / "hello.sh").write_text("echo hi\n")
    run = run_util.make_run(str(tmp_path / "runs"))
    run_util.init_run_meta(
        run, OpRef("t", "op"), OpDef("op", opdata or {}), OpCmd(args, env or {}), {}, {}
    )
    run_util.stage_run(run, str(project))
    return run


def test_command_not_python(tmp_path):
    run = _run(tmp_path, ["sh", "hello.sh"], env={"CUDA_VISIBLE_DEVICES": "1"})
    assert run_util.start_run(run, quiet=True) == 0
    envd = run_records.read_environment(run)
    assert envd["python"] is None
    assert envd["command"] == {"program": shutil.which("sh"), "python": False}
    assert envd["notes"] == ["command sh is not Python: no interpreter facts"]
    assert envd["host"]["cpus"] == os.cpu_count()
    assert envd["env"] == {"CUDA_VISIBLE_DEVICES": "1"}
    assert run_records.read_git(run)["status"] == "not-a-repo"


def test_command_not_found_still_records(tmp_path):
    run = _run(tmp_path, ["no-such-program-24"])
    with pytest.raises(Exception):
        run_util.start_run(run, quiet=True)
    envd = run_records.read_environment(run)
    assert envd["command"] == {"program": "no-such-program-24", "python": False}
    assert envd["notes"] == ["command no-such-program-24 not found on the run's PATH"]


def test_env_list_and_python_of_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    opdata = {"provenance": {"env": ["OMP_NUM_THREADS", "UNSET_24"]}}
    run = _run(tmp_path, [sys.executable, "-c", "pass"], opdata)
    assert run_util.start_run(run, quiet=True) == 0
    envd = run_records.read_environment(run)
    assert envd["env"] == {"OMP_NUM_THREADS": "3", "UNSET_24": None}
    assert envd["python"]["executable"] == sys.executable
    assert "gage-runs" in envd["python"]["packages"]


def test_provenance_false_adds_nothing(tmp_path):
    run = _run(tmp_path, ["sh", "hello.sh"], {"provenance": False})
    run_util.start_run(run, quiet=True)
    assert run_records.read_git(run) is None
    assert run_records.read_environment(run) is None


def test_user_config_turns_it_off(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text("[provenance]\nenabled = false\n")
    monkeypatch.setenv("GAGE_CONFIG", str(config))
    run = _run(tmp_path, ["sh", "hello.sh"])
    run_util.start_run(run, quiet=True)
    assert run_records.read_git(run) is None
    assert run_records.read_environment(run) is None
    # The op's own setting wins.
    run = _run(tmp_path, ["sh", "hello.sh"], {"provenance": True})
    run_util.start_run(run, quiet=True)
    assert run_records.read_environment(run) is not None


def test_user_config_broken_after_staging(tmp_path, monkeypatch):
    """At start, a user config that went bad is a warning; the op's own
    setting still holds."""
    run = _run(tmp_path, ["sh", "hello.sh"], {"provenance": False})
    config = tmp_path / "config.toml"
    config.write_text("[provenance\n")
    monkeypatch.setenv("GAGE_CONFIG", str(config))
    assert run_util.start_run(run, quiet=True) == 0
    assert run_records.read_environment(run) is None
    with open(run_meta.run_meta_path(run, "log", "runner")) as f:
        assert "cannot read the user config" in f.read()


def test_bad_user_config(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text("[provenance]\nenv = ['GITHUB_TOKEN']\n")
    monkeypatch.setenv("GAGE_CONFIG", str(config))
    with pytest.raises(provenance_spec.UserConfigError) as e:
        provenance_spec.op_settings(OpDef("op", {}))
    assert str(config) in str(e.value) and "secret" in str(e.value)
    config.write_text("[provenance\n")
    with pytest.raises(provenance_spec.UserConfigError, match="cannot read"):
        provenance_spec.op_settings(OpDef("op", {}))


@pytest.mark.parametrize(
    "value, msg",
    [
        ("'yes'", "must be true, false or a table"),
        ("{ colour = 1 }", "unknown key 'colour'"),
        ("{ env = 'X' }", "'env' must be a list"),
        ("{ env = ['DB_PASSWORD'] }", "looks like a secret"),
        ("{ strict-env = 1 }", "'strict-env' must be true or false"),
    ],
)
def test_gagefile_validates_provenance(tmp_path, value, msg):
    (tmp_path / "gage.toml").write_text(f'[op]\nexec = "x"\nprovenance = {value}\n')
    with pytest.raises(GagefileError, match=msg) as e:
        gagefile.read_gagefile(str(tmp_path / "gage.toml"))
    assert "gage.toml:3" in str(e.value)


def test_inputs_key_does_not_change(tmp_path):
    on = _run(tmp_path, ["sh", "hello.sh"])
    off = _run(tmp_path, ["sh", "hello.sh"], {"provenance": False})
    strict = _run(tmp_path, ["sh", "hello.sh"], {"provenance": {"strict-env": True}})
    keys = {run_meta.read_input_key(r) for r in (on, off, strict)}
    assert len(keys) == 1


@needs_git
def test_git_sealed_and_checked(tmp_path):
    project = _repo(tmp_path / "project", {"hello.sh": "echo hi\n"})
    (project / "hello.sh").write_text("echo changed\n")
    run = _run(tmp_path, ["sh", "hello.sh"], project=project)
    git = run_records.read_git(run)
    assert git["dirty"] is True and git["branch"] == "main"
    assert run_records.read_git_diff(run).startswith(b"diff --git a/hello.sh")
    assert run_util.verify_run(run) == []
    path = run_meta.meta_file_path(run, "git.json")
    os.chmod(path, 0o644)
    with open(path, "w") as f:
        json.dump(dict(git, dirty=False), f)
    os.chmod(path, 0o444)
    assert [str(d) for d in run_util.verify_run(run)] == ["changed meta git.json"]


def test_planted_environment_refused(tmp_path):
    run = _run(tmp_path, ["sh", "hello.sh"])
    run_records.write_environment(run, {"python": None})
    with pytest.raises(Exception, match="environment.json"):
        run_util.start_run(run, quiet=True)


# ---------------------------------------------------------------------------
# The CLI


@needs_git
def test_cli_detached_head_show_and_compare(tmp_path):
    project = _repo(tmp_path / "p", {"gage.toml": '[hi]\nexec = "sh hi.sh"\n'})
    (project / "hi.sh").write_text("echo hi\n")
    _git(project, "add", ".")
    _git(project, "commit", "-q", "-m", "two")
    _git(project, "checkout", "-q", "--detach")
    env = {"GAGE_RUNS": str(tmp_path / "runs")}
    p = _gage(project, "run", "-y", "-q", env=env)
    assert p.returncode == 0, p.stderr
    p = _gage(project, "show", env=env)
    commit = _git(project, "rev-parse", "HEAD")
    assert f"  git:     {commit[:8]} (detached HEAD), clean\n" in p.stdout
    assert "  python:  command sh is not Python" in p.stdout
    p = _gage(project, "compare", "--cols", "git.commit,git.branch", "--json", env=env)
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout)[0]
    assert row["git.commit"] == commit and row["git.branch"] is None
    p = _gage(project, "compare", "--cols", "pkg.numpy", env=env)
    assert p.returncode == 2
    assert "no run recorded package 'numpy'" in p.stderr


def test_cli_bad_user_config_stages_nothing(tmp_path):
    project = _project(tmp_path / "p", '[hi]\nexec = "sh hi.sh"\n', {"hi.sh": ""})
    config = tmp_path / "config.toml"
    config.write_text("[provenance]\nenabled = 'no'\n")
    runs_dir = tmp_path / "runs"
    env = {"GAGE_RUNS": str(runs_dir), "GAGE_CONFIG": str(config)}
    p = _gage(project, "run", "-y", env=env)
    assert p.returncode == 2
    assert p.stderr == (
        f"gage: {config}: [provenance] 'enabled' must be true or false, "
        "got string 'no'\n"
    )
    assert not runs_dir.exists() or runs_mod.list_runs(str(runs_dir)) == []


def test_cli_strict_env_needs_needed(tmp_path):
    project = _project(tmp_path / "p", '[hi]\nexec = "sh hi.sh"\n', {"hi.sh": ""})
    p = _gage(project, "run", "-y", "--strict-env", env={"GAGE_RUNS": str(tmp_path)})
    assert p.returncode == 2
    assert "--strict-env applies to --needed" in p.stderr


def test_repro_strict_env_op(tmp_path):
    toml = '[t]\nexec = "python t.py"\nprovenance = { strict-env = true }\n'
    project = _project(tmp_path / "p", toml, {"t.py": "print('t')\n"})
    pkgs = tmp_path / "pkgs"
    (pkgs / "numpy-1.0.dist-info").mkdir(parents=True)
    env = {"GAGE_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(pkgs)}
    assert _gage(project, "run", "-y", "-q", env=env).returncode == 0
    p = _gage(project, "repro", "--dry", env=env)
    assert "up to date" in p.stdout, p.stdout + p.stderr
    os.rename(pkgs / "numpy-1.0.dist-info", pkgs / "numpy-2.0.dist-info")
    p = _gage(project, "repro", "--dry", env=env)
    assert "the Python or packages differ (strict-env)" in p.stdout, p.stdout
    p = _gage(project, "run", "-y", "--needed", env=env)
    assert p.stdout.startswith("Running t as"), p.stdout
