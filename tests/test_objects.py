"""The object cache: each byte read once, placement, fallback, tamper."""

from __future__ import annotations

import errno
import io
import os
import stat
import time

import pytest

from gage._internal.lifecycle import run_deps
from gage._internal.lifecycle.run_start import start_run
from gage._internal.lifecycle.run_verify import verify_run
from gage._internal.run_util import init_run_meta, make_run, stage_run
from gage._internal.store import hash_cache, objects
from gage._internal.store.run_meta import read_deps, read_files_log, read_manifest
from gage._internal.types import DependencyError, OpCmd, OpDef, OpRef
from gage._internal.util import console, file_util

_SIZE = hash_cache.MIN_SIZE * 2


def _project(tmp_path, size=_SIZE):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "train.py").write_text("print('ok')\n")
    big = project / "data" / "big.bin"
    big.write_bytes(os.urandom(size))
    (project / "data" / "small.txt").write_text("small\n")
    # An hour old, as a project's files usually are: younger than a
    # second, the digest cache would not record them, and whether train.py
    # became an object on its second staging would depend on the speed of
    # the machine.
    old = time.time() - 3600
    for p in (big, project / "data" / "small.txt", project / "train.py"):
        os.utime(p, (old, old))
    return project


_OPDEF = OpDef(
    "t",
    {"sourcecode": "*.py", "depends": {"type": "project-files", "files": "data"}},
)


def _stage(tmp_path, project, opdef=_OPDEF, runs="runs"):
    run = make_run(str(tmp_path / runs))
    init_run_meta(
        run, OpRef("test", "t"), opdef, OpCmd(["python", "train.py"], {}), {}, {}
    )
    stage_run(run, str(project))
    return run


@pytest.fixture
def reads(monkeypatch):
    """Paths read for hashing, by either the plain hasher or the cache."""
    seen: list[str] = []
    real = file_util.sha256_file
    monkeypatch.setattr(file_util, "sha256_file", lambda p: seen.append(p) or real(p))
    copy_hashing = objects._copy_hashing
    monkeypatch.setattr(
        objects,
        "_copy_hashing",
        lambda src, *a: seen.append(src) or copy_hashing(src, *a),
    )
    return seen


@pytest.fixture(autouse=True)
def _fresh_fallbacks(monkeypatch):
    monkeypatch.setattr(objects, "_no_link", set())
    monkeypatch.setattr(objects, "_no_reflink", set())


def _big_reads(seen):
    return [p for p in seen if os.path.basename(p) == "big.bin"]


def _placed(run):
    return {e.path: e.placed for e in read_files_log(run) if e.type == "d"}


def test_new_file_read_once_then_never(tmp_path, reads):
    project = _project(tmp_path)
    run1 = _stage(tmp_path, project)
    # One pass: copied into the cache while hashed.
    assert len(_big_reads(reads)) == 1
    reads.clear()
    run2 = _stage(tmp_path, project)
    assert _big_reads(reads) == []
    assert start_run(run2, quiet=True) == 0
    # Start verified by stat; finalize hashed nothing it did not generate.
    assert _big_reads(reads) == []
    a = os.path.join(run1.run_dir, "data", "big.bin")
    b = os.path.join(run2.run_dir, "data", "big.bin")
    assert os.path.samefile(a, b)
    assert _placed(run2)["data/big.bin"] == "hardlink"
    [dep] = read_deps(run2)
    assert {f["placed"] for f in dep["files"]} == {"hardlink"}


def test_project_file_never_linked_or_chmodded(tmp_path):
    project = _project(tmp_path)
    big = project / "data" / "big.bin"
    before = os.stat(big)
    _stage(tmp_path, project)
    _stage(tmp_path, project)
    after = os.stat(big)
    assert after.st_nlink == 1
    assert file_util.stat_key(before) == file_util.stat_key(after)
    assert stat.S_IMODE(after.st_mode) == stat.S_IMODE(before.st_mode)


def test_fallback_copy_same_result(tmp_path, monkeypatch):
    project = _project(tmp_path)
    linked = _stage(tmp_path, project, runs="a")

    def no_link(*_a, **_kw):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(objects, "_no_link", set())
    monkeypatch.setattr(os, "link", no_link)
    copied = _stage(tmp_path, project, runs="b")
    assert set(_placed(copied).values()) == {"copy"}
    assert read_manifest(copied) == read_manifest(linked)
    path = os.path.join(copied.run_dir, "data", "big.bin")
    assert os.stat(path).st_nlink == 1
    assert not os.stat(path).st_mode & 0o222
    assert verify_run(copied) == []
    assert start_run(copied, quiet=True) == 0


def test_cross_device_runs_home(tmp_path):
    shm = "/dev/shm"
    if not os.path.isdir(shm) or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another device")
    import tempfile

    project = _project(tmp_path)
    home = tempfile.mkdtemp(dir=shm, prefix="gage-test-")
    try:
        run = make_run(home)
        init_run_meta(
            run, OpRef("t", "t"), _OPDEF, OpCmd(["python", "train.py"], {}), {}, {}
        )
        stage_run(run, str(project))
        assert verify_run(run) == []
        assert read_manifest(run) == read_manifest(_stage(tmp_path, project))
    finally:
        import shutil

        shutil.rmtree(home)


def test_changed_object_replaced_from_project(tmp_path, reads):
    project = _project(tmp_path)
    run1 = _stage(tmp_path, project)
    placed = os.path.join(run1.run_dir, "data", "big.bin")
    os.chmod(placed, 0o644)
    with open(placed, "r+b") as f:
        f.write(b"tampered")
    os.chmod(placed, 0o444)
    reads.clear()
    run2 = _stage(tmp_path, project)
    assert verify_run(run2) == []
    assert not os.path.samefile(placed, os.path.join(run2.run_dir, "data", "big.bin"))
    assert [str(d) for d in verify_run(run1)] == ["changed data/big.bin"]
    # The changed object was read (to find it changed), then the project.
    assert len(_big_reads(reads)) == 2


def test_object_rehashed_when_stat_changed_but_content_same(tmp_path, reads):
    project = _project(tmp_path)
    run1 = _stage(tmp_path, project)
    placed = os.path.join(run1.run_dir, "data", "big.bin")
    os.chmod(placed, 0o644)  # changes ctime; content is the same
    reads.clear()
    run2 = _stage(tmp_path, project)
    # The object, verified; not the project's file.
    assert _big_reads(reads) == []
    assert len([p for p in reads if os.sep + ".objects" + os.sep in p]) == 1
    assert os.path.samefile(placed, os.path.join(run2.run_dir, "data", "big.bin"))
    assert not os.stat(placed).st_mode & 0o222


def test_source_changed_while_read(tmp_path, monkeypatch):
    project = _project(tmp_path)
    copy_hashing = objects._copy_hashing

    def changing(src, *a):
        digest = copy_hashing(src, *a)
        with open(src, "ab") as f:
            f.write(b"more")
        return digest

    monkeypatch.setattr(objects, "_copy_hashing", changing)
    with pytest.raises(DependencyError, match="changed while the run was staged"):
        _stage(tmp_path, project)
    assert os.listdir(tmp_path / "runs" / ".objects" / "tmp") == []


def test_verify_reads_relocated_runs(tmp_path, reads):
    project = _project(tmp_path)
    run = _stage(tmp_path, project)
    reads.clear()
    assert verify_run(run) == []
    assert _big_reads(reads) == []
    assert verify_run(run, full=True) == []
    assert len(_big_reads(reads)) == 1


def test_prune_keeps_used_objects(tmp_path):
    from gage._internal.home.runs import delete_run

    project = _project(tmp_path)
    run1 = _stage(tmp_path, project)
    run2 = _stage(tmp_path, project)
    home = run1.runs_home
    # The two data files, and train.py (adopted at its second staging).
    assert objects.cache_info(home).objects == 3
    assert objects.prune(home) == []
    delete_run(run1)
    assert objects.prune(home) == []
    assert verify_run(run2) == []
    delete_run(run2)
    preview = objects.prune(home, preview=True)
    assert sorted(n for _d, n in preview) == [6, 12, _SIZE]
    assert objects.cache_info(home).objects == 3
    assert len(objects.prune(home)) == 3
    assert objects.cache_info(home).objects == 0


def test_link_dep_is_symlink_to_project(tmp_path):
    project = _project(tmp_path)
    opdef = OpDef(
        "t",
        {
            "sourcecode": "*.py",
            "depends": {"type": "project-files", "files": "data", "link": True},
        },
    )
    run = _stage(tmp_path, project, opdef)
    path = os.path.join(run.run_dir, "data", "big.bin")
    assert os.path.islink(path)
    assert os.readlink(path) == str(project / "data" / "big.bin")
    assert set(_placed(run).values()) == {"symlink"}
    assert not os.path.exists(tmp_path / "runs" / ".objects" / "sha256")


def test_progress_only_when_enabled_and_slow(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    p = console.Progress("Staging", enabled=False, delay=0)
    p.add(1024 * 1024, 1)
    p.done()
    assert err.getvalue() == ""
    p = console.Progress("Staging", enabled=True, delay=60)
    p.add(1024 * 1024, 1)
    p.done()
    assert err.getvalue() == ""
    p = console.Progress("Staging", enabled=True, delay=0)
    p.add(3 * 1024 * 1024, 2)
    p.done()
    out = err.getvalue()
    # Drawn, then redrawn in place (erased first) when done.
    assert out.startswith("Staging: 3.0 MiB, 2 files, ") and out.endswith("/s\n")
    assert "\r\033[KStaging: 3.0 MiB, 2 files, " in out
    # Not a terminal: none.
    assert not console.terminal_progress("Staging").enabled
    assert not console.terminal_progress("Staging", quiet=True).enabled


def test_pins_checked_before_placing(tmp_path):
    project = _project(tmp_path)
    opdef = OpDef(
        "t",
        {
            "sourcecode": "*.py",
            "depends": {
                "type": "project-files",
                "files": "data/big.bin",
                "sha256": "0" * 64,
            },
        },
    )
    with pytest.raises(DependencyError, match="sha256 mismatch"):
        _stage(tmp_path, project, opdef)
    [run_dir] = [
        d
        for d in os.listdir(tmp_path / "runs")
        if not d.startswith(".") and not d.endswith(".meta")
    ]
    assert not os.path.exists(tmp_path / "runs" / run_dir / "data")
    assert run_deps  # the module under test
