"""A folder dependency of many files: read once, then not at all; one
changed file is the only one read; provenance stays exact."""

from __future__ import annotations

import json
import os
import time

import pytest

from gage._internal.lifecycle import op_inputs, run_deps
from gage._internal.run_util import init_run_meta, make_run, stage_run
from gage._internal.store import hash_cache, run_meta
from gage._internal.store.run_meta import read_deps, read_manifest
from gage._internal.types import DependencyError, OpCmd, OpDef, OpRef
from gage._internal.util import file_util

N = 60


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "project"
    (proj / "data").mkdir(parents=True)
    (proj / "train.py").write_text("pass\n")
    old = time.time() - 3600
    for i in range(N):
        d = proj / "data" / f"d{i % 6}"
        d.mkdir(exist_ok=True)
        f = d / f"f{i:03}.bin"
        f.write_bytes(os.urandom(512 + i))
        os.utime(f, (old, old))
    return str(proj)


def _opdef() -> OpDef:
    return OpDef(
        "train",
        {"sourcecode": "*.py", "depends": {"type": "project-files", "files": "data"}},
    )


def _stage(home: str, project: str):
    run = make_run(home)
    init_run_meta(run, OpRef("t", "train"), _opdef(), OpCmd(["true"]), {}, {})
    stage_run(run, project)
    return run


@pytest.fixture
def opened(monkeypatch):
    """Paths of data files gage opens (every read goes through
    open_regular)."""
    paths: list[str] = []
    real = file_util.open_regular

    def spy(path):
        if os.sep + "data" + os.sep in path and ".objects" not in path:
            paths.append(path)
        return real(path)

    monkeypatch.setattr(file_util, "open_regular", spy)
    return paths


def test_first_repeat_one_changed(project, tmp_path, opened):
    home = str(tmp_path / "runs")
    first = _stage(home, project)
    assert len(opened) == N  # each file read once
    opened.clear()

    second = _stage(home, project)
    assert opened == []  # nothing read

    changed = os.path.join(project, "data", "d3", "f009.bin")
    with open(changed, "wb") as f:
        f.write(b"changed")
    old = time.time() - 3600
    os.utime(changed, (old, old))
    third = _stage(home, project)
    assert opened == [changed]

    for run in (first, second, third):
        _check_provenance(run)
    a = {f["path"]: f["sha256"] for f in read_deps(second)[0]["files"]}
    b = {f["path"]: f["sha256"] for f in read_deps(third)[0]["files"]}
    assert [p for p in a if a[p] != b[p]] == ["data/d3/f009.bin"]


def _check_provenance(run) -> None:
    """Every placed file is known by its sha256, in deps.json and the
    manifest alike, and has that content."""
    deps = read_deps(run)[0]["files"]
    assert len(deps) == N
    manifest = {e.path: e.sha256 for e in read_manifest(run) if e.type == "d"}
    for f in deps:
        path = os.path.join(run.run_dir, f["path"])
        assert file_util.sha256_file(path) == f["sha256"] == manifest[f["path"]]


def test_needed_reads_nothing(project, tmp_path, opened):
    home = str(tmp_path / "runs")
    run = _stage(home, project)
    opened.clear()
    inputs = op_inputs.op_inputs(home, project, _opdef(), {})
    assert inputs is not None
    assert inputs.key == run_meta.read_input_key(run)
    assert opened == []


def test_needed_after_one_change_reads_only_it(project, tmp_path, opened):
    home = str(tmp_path / "runs")
    run = _stage(home, project)
    changed = os.path.join(project, "data", "d2", "f020.bin")
    with open(changed, "wb") as f:
        f.write(b"changed")
    old = time.time() - 3600
    os.utime(changed, (old, old))
    opened.clear()
    inputs = op_inputs.op_inputs(home, project, _opdef(), {})
    assert inputs is not None
    assert inputs.key != run_meta.read_input_key(run)
    assert opened == [changed]


def test_check_op_walk_takes_no_stats(project, tmp_path, monkeypatch):
    """What check_op resolves (and --needed reuses) comes from the
    folder's listing: no stat per file; staging's resolution has them."""
    resolved = run_deps.preview_dependencies(
        str(tmp_path / "runs"), project, _opdef(), stats=False
    )
    assert len(resolved[0].files) == N
    assert all(f.st is None for f in resolved[0].files)
    resolved = run_deps.preview_dependencies(str(tmp_path / "runs"), project, _opdef())
    assert all(f.st is not None for f in resolved[0].files)


def test_deps_json_a_file_per_line(project, tmp_path):
    run = _stage(str(tmp_path / "runs"), project)
    path = run_meta.run_meta_path(run, "deps.json")
    lines = [line for line in open(path) if '"sha256": ' in line]
    assert len(lines) == N
    assert json.loads(lines[0].strip().rstrip(","))["placed"] in (
        "reflink",
        "hardlink",
        "copy",
    )


def test_link_out_of_folder_refused(project, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x")
    os.symlink(outside, os.path.join(project, "data", "d0", "link.bin"))
    with pytest.raises(DependencyError, match="outside"):
        _stage(str(tmp_path / "runs"), project)


def test_link_inside_followed(project, tmp_path):
    target = os.path.join(project, "data", "d1", "f001.bin")
    os.symlink(target, os.path.join(project, "data", "d0", "alias.bin"))
    run = _stage(str(tmp_path / "runs"), project)
    files = {f["path"]: f["sha256"] for f in read_deps(run)[0]["files"]}
    assert files["data/d0/alias.bin"] == files["data/d1/f001.bin"]
