"""Tamper matrix: every kind of change to a staged run is refused at start.

Kinds: edit, delete, add, chmod, symlink swap (a link to a file with the
same content), for run dir files and for each sealed meta file
(`run_meta.SEALED_META` and the seal itself). For each, `gage run
--start` exits 1 with one line naming the path and runs nothing, and
`gage check` exits 1 and reports it.

One run is staged once; each case works on its own copy of the run
(run dir and meta dir moved together, as a relocated run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from gage._internal.cli import main as cli
from gage._internal.home import runs
from gage._internal.store import run_meta
from gage._internal.store.run_meta import SEALED_META

_GAGE_TOML = """
[train]
exec = "python train.py"
config = "train.py#lr"
depends = { type = "project-files", files = "data.txt" }

[plain]
exec = "python train.py"
sourcecode = "train.py"
"""

_TRAIN = """
lr = 0.1
open("ran.txt", "w").write("ran\\n")
print("lr", lr)
"""

_EXEC_FILES = ("run.sh",)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """{op: staged run} for `train` (config, deps) and `plain` (neither)."""
    base = tmp_path_factory.mktemp("tamper")
    project = base / "project"
    project.mkdir()
    (project / "gage.toml").write_text(_GAGE_TOML)
    (project / "train.py").write_text(_TRAIN)
    (project / "data.txt").write_text("1 2 3\n")
    (project / "run.sh").write_text("echo hi\n")
    os.chmod(project / "run.sh", 0o755)
    home = str(base / "runs")
    cwd = os.getcwd()
    os.chdir(project)
    try:
        result = {}
        for op in ("train", "plain"):
            assert cli.main(["run", op, "--stage", "-y", "--runs-dir", home]) == 0
            result[op] = runs.select_run(home, op)
    finally:
        os.chdir(cwd)
    return result


def _copy(run, dest_home) -> str:
    os.makedirs(dest_home, exist_ok=True)
    dest = os.path.join(dest_home, run.id)
    shutil.copytree(run.run_dir, dest, symlinks=True)
    shutil.copytree(run.meta_dir, dest + run_meta.META_SUFFIX, symlinks=True)
    return dest


def _writable(path):
    os.chmod(os.path.dirname(path), 0o755)
    if os.path.exists(path) and not os.path.islink(path):
        os.chmod(path, 0o644)


def _edit(path):
    _writable(path)
    with open(path, "ab") as f:
        f.write(b" ")
    os.chmod(path, 0o444)


def _replace(path, text):
    _writable(path)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o444)


def _delete(path):
    _writable(path)
    os.remove(path)


def _add(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.chmod(os.path.dirname(path), 0o755)
    with open(path, "w") as f:
        f.write("{}\n" if path.endswith(".json") else "added\n")
    os.chmod(path, 0o444)


def _chmod(path):
    os.chmod(path, 0o644)


def _chmod_exec(path):
    os.chmod(path, 0o555)


def _symlink_swap(path):
    """Replace a file by a link to an identical copy: same content."""
    copy = path + ".orig-elsewhere"
    _writable(path)
    shutil.copy2(path, copy)
    os.rename(copy, copy + "-moved")
    os.remove(path)
    os.symlink(os.path.basename(copy) + "-moved", path)


_KINDS = {
    "edit": _edit,
    "delete": _delete,
    "chmod": _chmod,
    "symlink": _symlink_swap,
}

_META_CASES = [
    ("train", name, kind)
    for name in SEALED_META + ("seal",)
    for kind in _KINDS
    if name != "git.diff"  # only a run staged from a dirty git tree has one
] + [
    # Sealed meta files a run did not have, added after staging.
    ("plain", "config.json", "add"),
    ("plain", "deps.json", "add"),
    ("plain", "git.diff", "add"),
    ("train", "environment.json", "add"),
    # Files only a start writes, planted in a run not started.
    ("train", "summary.json", "add"),
    ("train", "exit_code", "add"),
    ("train", "proc/signal", "add"),
    ("train", "output/40_run", "add"),
]

_RUN_CASES = [
    ("train", "train.py", "edit"),
    ("train", "data.txt", "edit"),
    ("train", "train.py", "delete"),
    ("train", "extra.py", "add"),
    ("train", "train.py", "chmod"),
    ("train", "data.txt", "chmod"),
    ("train", "train.py", "exec"),
    ("train", "run.sh", "chmod"),
    ("train", "train.py", "symlink"),
    ("train", "data.txt", "symlink"),
]


def _apply(kind, path):
    if kind == "add":
        _add(path)
    elif kind == "exec":
        _chmod_exec(path)
    else:
        _KINDS[kind](path)


def _start_and_check(run_dir, capsys):
    capsys.readouterr()
    start = cli.main(["run", "--start", run_dir, "-q"])
    start_err = capsys.readouterr().err
    check = cli.main(["check", run_dir])
    check_out = capsys.readouterr().out
    return start, start_err, check, check_out


def _assert_refused(run_dir, what, capsys):
    start, err, check, out = _start_and_check(run_dir, capsys)
    assert start == 1, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gage: "), err
    assert what in lines[0], err
    assert check == 1, out
    assert what in out, out
    run = runs.load_run(run_dir)
    assert runs.run_status(run) == "staged"
    assert not os.path.exists(os.path.join(run_dir, "ran.txt"))


@pytest.mark.parametrize("op,name,kind", _META_CASES)
def test_meta_tamper_refused(staged, tmp_path, capsys, op, name, kind):
    run_dir = _copy(staged[op], str(tmp_path / "runs"))
    meta = run_dir + run_meta.META_SUFFIX
    _apply(kind, os.path.join(meta, name))
    if kind == "delete" and name in ("id", "name"):
        # Without its identity the dir is not a run at all: a selection
        # error (exit 2), one line, for start and check alike.
        start, err, check, _out = _start_and_check(run_dir, capsys)
        assert (start, check) == (2, 2)
        assert len(err.splitlines()) == 1 and "has no readable 'id'" in err
        return
    _assert_refused(run_dir, f"meta {name}", capsys)


@pytest.mark.parametrize("op,path,kind", _RUN_CASES)
def test_run_dir_tamper_refused(staged, tmp_path, capsys, op, path, kind):
    run_dir = _copy(staged[op], str(tmp_path / "runs"))
    _apply(kind, os.path.join(run_dir, path))
    _assert_refused(run_dir, path, capsys)


def test_untampered_copy_starts(staged, tmp_path, capsys):
    """The matrix's baseline: an unchanged copy passes check and runs."""
    run_dir = _copy(staged["train"], str(tmp_path / "runs"))
    start, err, check, out = _start_and_check(run_dir, capsys)
    assert start == 0, err
    assert check == 0, out
    assert os.path.exists(os.path.join(run_dir, "ran.txt"))


def test_injected_command_is_not_run(staged, tmp_path):
    """The reported defect, end to end through the `gage` command: an
    edited proc/cmd used to run on --start with check passing."""
    run_dir = _copy(staged["train"], str(tmp_path / "runs"))
    marker = tmp_path / "injected"
    cmd = os.path.join(run_dir + run_meta.META_SUFFIX, "proc", "cmd")
    _replace(cmd, f'["sh", "-c", "touch {marker}"]\n')
    gage = [sys.executable, "-m", "gage"]
    p = subprocess.run(
        gage + ["run", "--start", run_dir],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1, p.stderr
    [line] = p.stderr.splitlines()
    run = staged["train"]
    assert line.startswith(
        f"gage: Run {run.name} ({run.id}) differs from its manifest: "
        "changed meta proc/cmd; stage a new run"
    ), line
    assert not marker.exists()
    p = subprocess.run(
        gage + ["check", run_dir], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 1
    assert "  changed meta proc/cmd" in p.stdout.splitlines()


def test_generated_entries_follow_the_sealed_manifest(staged, tmp_path, capsys):
    """A finished run's manifest lists generated files after its sealed
    bytes; they check, and a staged entry changed after the run does not."""
    run_dir = _copy(staged["train"], str(tmp_path / "runs"))
    assert cli.main(["run", "--start", run_dir, "-q"]) == 0
    manifest = os.path.join(run_dir + run_meta.META_SUFFIX, "manifest")
    assert not os.stat(manifest).st_mode & 0o222
    with open(manifest) as f:
        lines = f.read().splitlines()
    assert lines[-1].startswith("g ") and lines[-1].endswith(" ran.txt")
    capsys.readouterr()
    assert cli.main(["check", run_dir]) == 0
    # A forged "generated" line for a staged file is a change of the manifest.
    _replace(manifest, "\n".join(lines + [lines[0].replace("s ", "s ", 1)]) + "\n")
    assert cli.main(["check", run_dir]) == 1
    assert "changed meta manifest" in capsys.readouterr().out
