"""A folder dependency of many files: read once, then not at all; one
changed file is the only one read; provenance stays exact."""

from __future__ import annotations

import json
import os
import re
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
    open_regular, or read_sized for a small file)."""
    paths: list[str] = []

    def spy(real):
        def opened(path, *args):
            if os.sep + "data" + os.sep in path and ".objects" not in path:
                paths.append(path)
            return real(path, *args)

        return opened

    for name in ("open_regular", "read_sized"):
        monkeypatch.setattr(file_util, name, spy(getattr(file_util, name)))
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


@pytest.fixture
def queries(monkeypatch):
    """The SELECT statements the digest cache runs (every connection is
    made by hash_cache._connect)."""
    seen: list[str] = []
    real = hash_cache._connect

    def spy(path, again=True):
        db = real(path, again)
        if db is not None:
            db.set_trace_callback(
                lambda sql: (
                    seen.append(sql) if sql.lstrip().startswith("SELECT") else None
                )
            )
        return db

    monkeypatch.setattr(hash_cache, "_connect", spy)
    return seen


def _folder_rows(home: str) -> int:
    import sqlite3

    db = sqlite3.connect(run_meta.hash_cache_path(home))
    try:
        return db.execute("SELECT count(*) FROM folders_v1").fetchone()[0]
    finally:
        db.close()


def test_needed_one_query_for_unchanged_folder(project, tmp_path, queries, opened):
    """Staging stores the folder's record; --needed then decides the
    folder with one query: no per-file digest lookup."""
    home = str(tmp_path / "runs")
    run = _stage(home, project)
    queries.clear()
    opened.clear()
    again = op_inputs.op_inputs(home, project, _opdef(), {})
    assert again is not None and again.key == run_meta.read_input_key(run)
    folder = [q for q in queries if "folders_v1" in q]
    assert len(folder) == 1, queries
    inodes = {
        str(os.stat(os.path.join(d, n)).st_ino)
        for d, _s, names in os.walk(os.path.join(project, "data"))
        for n in names
    }
    per_file = [
        q for q in queries if "digests_v3" in q and inodes & set(re.findall(r"\d+", q))
    ]
    assert per_file == [], per_file  # train.py's row alone is looked up
    assert opened == []
    assert _folder_rows(home) == 1


def test_changed_stat_invalidates_folder_record(project, tmp_path, opened):
    """A file rewritten with the same size and its old mtime restored
    (only ctime tells) misses the folder's record: it alone is read."""
    home = str(tmp_path / "runs")
    run = _stage(home, project)
    assert _folder_rows(home) == 1  # staging stored the record
    changed = os.path.join(project, "data", "d3", "f003.bin")
    st = os.stat(changed)
    with open(changed, "wb") as f:
        f.write(os.urandom(st.st_size))
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))
    opened.clear()
    inputs = op_inputs.op_inputs(home, project, _opdef(), {})
    assert inputs is not None
    assert inputs.key != run_meta.read_input_key(run)
    assert opened == [changed]
    digest = inputs.deps[0]["files"]["data/d3/f003.bin"]
    assert digest == file_util.sha256_file(changed)


def test_folder_record_not_stored_in_racy_window(project, tmp_path):
    """A folder with a file modified within the racy window has no
    record (as a file's row is not stored then)."""
    home = str(tmp_path / "runs")
    fresh = os.path.join(project, "data", "d0", "f000.bin")
    with open(fresh, "ab") as f:
        f.write(b"new")
    _stage(home, project)
    op_inputs.op_inputs(home, project, _opdef(), {})
    assert _folder_rows(home) == 0
    old = time.time() - 3600
    os.utime(fresh, (old, old))
    op_inputs.op_inputs(home, project, _opdef(), {})
    assert _folder_rows(home) == 1


def test_source_walk_skips_folder_placed_whole(project, tmp_path, monkeypatch):
    """A folder a dependency places whole (no link in it) is not walked
    for source code, and the key is the one staging records, even with
    a source-looking file in it; a folder with a link is walked."""
    with open(os.path.join(project, "data", "d1", "util.py"), "w") as f:
        f.write("x = 1\n")
    home = str(tmp_path / "runs")
    run = _stage(home, project)
    resolved = run_deps.preview_dependencies(home, project, _opdef(), stats=False)
    assert resolved[0].folders == ("data",)
    walked: list[str] = []
    real = os.scandir

    def spy(path="."):
        walked.append(os.path.relpath(str(path), project))
        return real(path)

    monkeypatch.setattr(os, "scandir", spy)
    inputs = op_inputs.op_inputs(home, project, _opdef(), {}, resolved=resolved)
    monkeypatch.setattr(os, "scandir", real)
    assert inputs is not None and inputs.key == run_meta.read_input_key(run)
    assert not [p for p in walked if p.startswith("data")], walked
    os.symlink("f001.bin", os.path.join(project, "data", "d1", "alias.bin"))
    resolved = run_deps.preview_dependencies(home, project, _opdef(), stats=False)
    assert resolved[0].folders == ()


def test_source_walk_skips_a_folder_placed_whole(project, tmp_path, monkeypatch):
    """Staging's source walk does not descend a folder a dependency
    places whole at its own path: a source file there would be replaced;
    the run has the dependency's file, recorded as such."""
    with open(os.path.join(project, "data", "d0", "prep.py"), "w") as f:
        f.write("pass\n")
    from gage._internal.project import file_select

    walked: list[str] = []
    real = file_select._entries

    def spy(root, reldir, skipped):
        walked.append(reldir)
        return real(root, reldir, skipped)

    monkeypatch.setattr(file_select, "_entries", spy)
    run = _stage(str(tmp_path / "runs"), project)
    assert not [d for d in walked if d.startswith("data")]
    events = run_meta.read_files_log(run)
    assert [e.type for e in events if e.path == "data/d0/prep.py"] == ["d"]
    entries = {e.path: e.type for e in read_manifest(run)}
    assert entries["data/d0/prep.py"] == "d" and entries["train.py"] == "s"
    assert len(read_deps(run)[0]["files"]) == N + 1
