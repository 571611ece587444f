"""Dependencies and stage hooks: containment, copies, links, hash reuse."""

from __future__ import annotations

import os
import stat
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gage._internal.lifecycle import run_deps
from gage._internal.project import dep_spec, op_exec
from gage._internal.run_util import init_run_meta, make_run, stage_run
from gage._internal.store import hash_cache, objects
from gage._internal.store.run_meta import read_deps, read_manifest
from gage._internal.types import DependencyError, OpCmd, OpDef, OpRef
from gage._internal.util import file_util

# ---------------------------------------------------------------------------
# Paths never leave their root

_part = st.sampled_from(["a", "b", "..", ".", "c.txt", "*", "d e"])


def _spec(**kw):
    return {"type": "project-files", "files": "f", **kw}


@given(st.lists(_part, min_size=1, max_size=6))
def test_relpath_with_dotdot_refused(parts):
    path = "/".join(parts)
    if ".." in parts:
        with pytest.raises(DependencyError, match="'..'"):
            dep_spec.check_dependency(_spec(files=path))
    else:
        dep_spec.check_dependency(_spec(files=path))
        joined = os.path.normpath(os.path.join("/root", path))
        assert joined == "/root" or joined.startswith("/root/")


@given(st.lists(_part, min_size=1, max_size=4))
def test_absolute_refused(parts):
    with pytest.raises(DependencyError, match="absolute"):
        dep_spec.check_dependency(_spec(**{"target-path": "/" + "/".join(parts)}))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["x", "y", "..", "."]), min_size=1, max_size=4))
def test_target_path_stays_in_run_dir(parts):
    spec = _spec(**{"target-path": "/".join(parts)})
    try:
        dep_spec.check_dependency(spec)
    except DependencyError:
        assert ".." in parts
        return
    target = run_deps._target_path(spec)
    placed = os.path.normpath(os.path.join("/run", run_deps._join(target, "f")))
    assert placed.startswith("/run/")


# ---------------------------------------------------------------------------
# Staging


def _stage(tmp_path, opdef, project):
    home = str(tmp_path / "runs")
    run = make_run(home)
    init_run_meta(run, OpRef("t", opdef.name), opdef, OpCmd(["true"]), {}, {})
    stage_run(run, str(project))
    return run


def _project(tmp_path, size=10):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    data = project / "data" / "big.bin"
    data.write_bytes(b"z" * size)
    old = time.time() - 10
    os.utime(data, (old, old))
    (project / "train.py").write_text("print(1)\n")
    return project


def test_copy_is_not_a_hardlink(tmp_path):
    project = _project(tmp_path)
    opdef = OpDef("t", {"depends": {"type": "project-files", "files": "data/big.bin"}})
    run = _stage(tmp_path, opdef, project)
    src = os.stat(project / "data" / "big.bin")
    dest = os.lstat(os.path.join(run.run_dir, "data", "big.bin"))
    assert src.st_ino != dest.st_ino
    assert src.st_nlink == 1
    assert stat.S_IMODE(src.st_mode) & stat.S_IWUSR
    assert not stat.S_IMODE(dest.st_mode) & 0o222


def test_link_never_chmods_project_file(tmp_path):
    project = _project(tmp_path)
    mode = stat.S_IMODE(os.stat(project / "data" / "big.bin").st_mode)
    opdef = OpDef(
        "t", {"depends": {"type": "project-files", "files": "data", "link": True}}
    )
    run = _stage(tmp_path, opdef, project)
    assert os.path.islink(os.path.join(run.run_dir, "data", "big.bin"))
    assert stat.S_IMODE(os.stat(project / "data" / "big.bin").st_mode) == mode
    [entry] = [e for e in read_manifest(run) if e.type == "d"]
    assert entry.sha256 == file_util.sha256_file(str(project / "data" / "big.bin"))


def test_second_linked_staging_does_not_hash(tmp_path, monkeypatch):
    project = _project(tmp_path, size=hash_cache.MIN_SIZE * 2)
    opdef = OpDef(
        "t",
        {
            "sourcecode": "*.py",
            "depends": {"type": "project-files", "files": "data/big.bin", "link": True},
        },
    )
    _stage(tmp_path, opdef, project)
    hashed: list[str] = []
    real = file_util.sha256_file
    monkeypatch.setattr(file_util, "sha256_file", lambda p: hashed.append(p) or real(p))
    run = _stage(tmp_path, opdef, project)
    # Neither the linked file (digest cache) nor train.py (hashed from the
    # bytes it was copied from) is read again.
    assert hashed == []
    [dep] = read_deps(run)
    assert dep["files"][0]["sha256"] == real(str(project / "data" / "big.bin"))


def test_copied_big_file_hashed_once(tmp_path, monkeypatch):
    project = _project(tmp_path, size=hash_cache.MIN_SIZE * 2)
    opdef = OpDef(
        "t",
        {"sourcecode": "*.py", "depends": {"type": "project-files", "files": "data"}},
    )
    hashed: list[str] = []
    real = file_util.sha256_file
    monkeypatch.setattr(file_util, "sha256_file", lambda p: hashed.append(p) or real(p))
    copy_hashing = objects._copy_hashing
    monkeypatch.setattr(
        objects,
        "_copy_hashing",
        lambda src, *a: hashed.append(src) or copy_hashing(src, *a),
    )
    run = _stage(tmp_path, opdef, project)
    # The source once, copied into the object cache while it is hashed;
    # the placed file's digest comes from that pass, and train.py's from
    # the bytes it was copied from.
    assert sorted(os.path.basename(p) for p in hashed) == ["big.bin"]
    [entry] = [e for e in read_manifest(run) if e.type == "d"]
    assert entry.sha256 == real(os.path.join(run.run_dir, "data", "big.bin"))


def test_two_deps_same_target_refused(tmp_path):
    project = _project(tmp_path)
    dep = {"type": "project-files", "files": "data/big.bin"}
    opdef = OpDef("t", {"sourcecode": "*.py", "depends": [dep, dep]})
    with pytest.raises(DependencyError, match="also placed by"):
        _stage(tmp_path, opdef, project)


def test_symlinked_dir_inside_root_followed(tmp_path):
    project = _project(tmp_path)
    os.symlink("data", project / "alias")
    opdef = OpDef(
        "t",
        {"sourcecode": "*.py", "depends": {"type": "project-files", "files": "alias"}},
    )
    [dep] = run_deps.preview_dependencies(str(tmp_path / "runs"), str(project), opdef)
    assert [f.path for f in dep.files] == ["alias/big.bin"]


def test_symlink_loop_terminates(tmp_path):
    project = _project(tmp_path)
    os.symlink("..", project / "data" / "up")
    opdef = OpDef(
        "t",
        {"sourcecode": "*.py", "depends": {"type": "project-files", "files": "data"}},
    )
    [dep] = run_deps.preview_dependencies(str(tmp_path / "runs"), str(project), opdef)
    assert "data/big.bin" in [f.path for f in dep.files]


# ---------------------------------------------------------------------------
# Hooks


def test_hook_cmd():
    assert op_exec.split_exec("A=1 B='x y' sh -c 'echo hi'") == (
        ["sh", "-c", "echo hi"],
        {"A": "1", "B": "x y"},
    )
    assert op_exec.split_exec(["A=1", "x"]) == (["A=1", "x"], {})


def test_hook_env(tmp_path):
    project = _project(tmp_path)
    opdef = OpDef(
        "t",
        {
            "sourcecode": "*.py",
            "env": {"OPVAR": "op"},
            "exec": {
                "stage-runtime": "X=1 sh -c 'echo $RUN_ID $X $OPVAR $PROJECT_DIR > env.txt'"
            },
        },
    )
    run = _stage(tmp_path, opdef, project)
    text = open(os.path.join(run.run_dir, "env.txt")).read().split()
    assert text == [run.id, "1", "op", str(project)]
    assert ("r", "env.txt") in [(e.type, e.path) for e in read_manifest(run)]


def test_hook_deleting_staged_file(tmp_path):
    project = _project(tmp_path)
    opdef = OpDef(
        "t", {"sourcecode": "*.py", "exec": {"stage-sourcecode": "rm train.py"}}
    )
    run = _stage(tmp_path, opdef, project)
    assert read_manifest(run) == []
