"""Source files through the object cache: a file seen before is neither
read to select it nor copied, but placed by hardlink; tamper of a shared
file is caught and never placed again (issue 10)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from gage._internal.lifecycle.run_start import start_run
from gage._internal.lifecycle.run_verify import verify_run
from gage._internal.project import file_select
from gage._internal.run_util import init_run_meta, make_run, stage_run
from gage._internal.store import hash_cache, objects
from gage._internal.store.run_meta import object_path, read_files_log, read_manifest
from gage._internal.types import OpCmd, OpDef, OpRef
from gage._internal.util import file_util

_OPDEF = OpDef("t", {})


def _project(tmp_path):
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "train.py").write_text("print('ok')\n")
    (project / "pkg" / "util.py").write_text("X = 1\n")
    (project / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(project / "run.sh", 0o755)
    _age(project)
    return project


def _age(project):
    # Older than the digest cache's racy window.
    old = time.time() - 3600
    for dirpath, _dirs, files in os.walk(project):
        for name in files:
            os.utime(os.path.join(dirpath, name), (old, old))


def _stage(tmp_path, project, opdef=_OPDEF):
    run = make_run(str(tmp_path / "runs"))
    init_run_meta(run, OpRef("test", "t"), opdef, OpCmd(["true"], {}), {}, {})
    stage_run(run, str(project))
    return run


def _placed(run):
    return {e.path: e.placed for e in read_files_log(run) if e.type == "s"}


def _ino(path):
    return os.stat(path).st_ino


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    # Each test starts as a new process would: nothing remembered.
    monkeypatch.setattr(hash_cache, "_memo", {})
    monkeypatch.setattr(objects, "_no_link", set())


@pytest.fixture
def reads(monkeypatch):
    """Source paths opened to check their type or hash them."""
    seen: list[str] = []
    head = file_select._read_head
    monkeypatch.setattr(
        file_select, "_read_head", lambda p, *a: seen.append(p) or head(p, *a)
    )
    sha = file_util.sha256_file
    monkeypatch.setattr(file_util, "sha256_file", lambda p: seen.append(p) or sha(p))
    return seen


def test_third_run_places_sources_by_hardlink(tmp_path):
    project = _project(tmp_path)
    first = _stage(tmp_path, project)
    second = _stage(tmp_path, project)
    third = _stage(tmp_path, project)
    assert _placed(first) == {"pkg/util.py": None, "run.sh": None, "train.py": None}
    # On second sight the run's copy becomes the object: no data copied.
    home = str(tmp_path / "runs")
    digests = {e.path: e.sha256 for e in read_manifest(second)}
    for path in ("train.py", "pkg/util.py"):
        obj = object_path(home, digests[path])
        assert _ino(obj) == _ino(os.path.join(second.run_dir, path))
        assert _ino(obj) == _ino(os.path.join(third.run_dir, path))
        assert _ino(obj) != _ino(os.path.join(first.run_dir, path))
    assert _placed(third) == {
        "pkg/util.py": "hardlink",
        "run.sh": "hardlink",
        "train.py": "hardlink",
    }
    # The project's files are never linked or chmodded.
    for name in ("train.py", "pkg/util.py"):
        st = os.stat(project / name)
        assert st.st_nlink == 1 and st.st_mode & 0o200
    for run in (first, second, third):
        assert verify_run(run) == []


def test_repeat_reads_no_source_file(tmp_path, reads, monkeypatch):
    project = _project(tmp_path)
    _stage(tmp_path, project)
    _stage(tmp_path, project)
    reads.clear()
    run = _stage(tmp_path, project)
    assert [p for p in reads if str(project) in p] == []
    # A start in another process: the digest cache, not the files.
    monkeypatch.setattr(hash_cache, "_memo", {})
    reads.clear()
    start_run(run, quiet=True)
    assert [p for p in reads if p.startswith(run.run_dir)] == []


def test_first_run_reads_each_source_once(tmp_path, reads):
    # Staged and started in one process (`gage run`): the copies' digests
    # come from the bytes copied, before and after they are made
    # read-only; neither finalizing nor the start's check reads them.
    project = _project(tmp_path)
    run = _stage(tmp_path, project)
    assert sorted(p for p in reads if str(project) in p) == sorted(
        str(project / name) for name in ("pkg/util.py", "run.sh", "train.py")
    )
    assert start_run(run, quiet=True) == 0
    assert [p for p in reads if p.startswith(run.run_dir)] == []
    assert verify_run(run) == []


def test_executable_keeps_its_mode(tmp_path):
    project = _project(tmp_path)
    for _ in range(3):
        run = _stage(tmp_path, project)
    mode = stat.S_IMODE(os.stat(os.path.join(run.run_dir, "run.sh")).st_mode)
    assert mode == 0o555
    mode = stat.S_IMODE(os.stat(os.path.join(run.run_dir, "train.py")).st_mode)
    assert mode == 0o444


def test_tampered_source_object_never_placed_again(tmp_path):
    project = _project(tmp_path)
    _stage(tmp_path, project)
    second = _stage(tmp_path, project)
    third = _stage(tmp_path, project)
    shared = os.path.join(third.run_dir, "train.py")
    os.chmod(shared, 0o644)
    with open(shared, "w") as f:
        f.write("print('tampered')\n")
    # Every run that shares the inode reports it; the project is intact.
    for run in (second, third):
        assert [d.path for d in verify_run(run)] == ["train.py"]
    assert (project / "train.py").read_text() == "print('ok')\n"
    fourth = _stage(tmp_path, project)
    placed = os.path.join(fourth.run_dir, "train.py")
    with open(placed) as f:
        assert f.read() == "print('ok')\n"
    assert _ino(placed) != _ino(shared)
    assert verify_run(fourth) == []
    # The object is the project's content again, for the runs after.
    fifth = _stage(tmp_path, project)
    assert _placed(fifth)["train.py"] == "hardlink"
    assert verify_run(fifth) == []


def test_changed_project_file_is_copied(tmp_path):
    project = _project(tmp_path)
    for _ in range(3):
        _stage(tmp_path, project)
    (project / "train.py").write_text("print('changed')\n")
    _age(project)
    run = _stage(tmp_path, project)
    assert _placed(run)["train.py"] is None
    with open(os.path.join(run.run_dir, "train.py")) as f:
        assert f.read() == "print('changed')\n"
    assert verify_run(run) == []


def test_op_with_staging_hooks_gets_copies(tmp_path):
    project = _project(tmp_path)
    opdef = OpDef("t", {"exec": {"stage-runtime": "true"}})
    for _ in range(3):
        run = _stage(tmp_path, project, opdef)
    assert set(_placed(run).values()) == {None}
    assert os.stat(os.path.join(run.run_dir, "train.py")).st_nlink == 1


def test_object_gone_before_its_link_falls_back_for_that_file(tmp_path, monkeypatch):
    project = _project(tmp_path)
    _stage(tmp_path, project)
    _stage(tmp_path, project)
    real_link = os.link
    calls = []

    def link(src, dest, **kw):
        calls.append(dest)
        if len(calls) == 1:  # pruned by another process meanwhile
            raise FileNotFoundError(2, "No such file or directory", src)
        return real_link(src, dest, **kw)

    monkeypatch.setattr(os, "link", link)
    run = _stage(tmp_path, project)
    placed = _placed(run)
    assert sorted(placed.values(), key=str) == [None, "hardlink", "hardlink"]
    assert objects._no_link == set()
    assert verify_run(run) == []
