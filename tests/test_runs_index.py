"""The runs index is a cache of meta: rebuilt when missing or broken,
brought up to date when runs come, go or change, shared by concurrent
processes, never the source of truth."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from gage._internal.home import runs, runs_index
from gage._internal.run_util import init_run_meta, make_run
from gage._internal.store import run_meta
from gage._internal.types import OpCmd, OpDef, OpRef, Run


def _run(home, op="train", config=None, exit_code=0, run=None):
    run = run or make_run(str(home))
    init_run_meta(
        run, OpRef("p", op), OpDef(op, {}), OpCmd(["x"], {}), config or {}, {}
    )
    run_meta.write_timestamp(run, "staged")
    if exit_code is not None:
        _finish(run, exit_code)
    return run


def _finish(run, exit_code=0, summary=None):
    run_meta.write_timestamp(run, "started")
    if summary is not None:
        run_meta.write_summary(run, summary)
    run_meta.write_exit_code(run, exit_code)
    run_meta.write_timestamp(run, "stopped")


@pytest.fixture
def settled(monkeypatch):
    """Trust every stat at once (no settle time), as if runs were old."""
    monkeypatch.setattr(runs_index, "SETTLE_NS", 0)


def _ids(home):
    return [r.id for r in runs.list_runs(str(home))]


def test_index_is_in_the_runs_home_and_rebuilt_when_deleted(tmp_path):
    made = [_run(tmp_path).id for _ in range(5)]
    assert _ids(tmp_path) == made
    path = run_meta.runs_index_path(str(tmp_path))
    assert os.path.dirname(os.path.dirname(path)) == str(tmp_path)
    assert os.path.exists(path)
    os.unlink(path)
    assert _ids(tmp_path) == made
    assert os.path.exists(path)


def test_broken_index_is_rebuilt(tmp_path):
    made = [_run(tmp_path).id for _ in range(3)]
    _ids(tmp_path)
    path = run_meta.runs_index_path(str(tmp_path))
    with open(path, "wb") as f:
        f.write(b"this is not a database" * 100)
    assert _ids(tmp_path) == made


def test_no_runs_home_is_no_runs_and_nothing_is_made(tmp_path):
    home = tmp_path / "missing"
    assert runs.list_runs(str(home)) == []
    assert not home.exists()


def test_runs_that_come_and_go_are_seen(tmp_path, settled):
    a, b = _run(tmp_path), _run(tmp_path)
    assert _ids(tmp_path) == [a.id, b.id]
    c = _run(tmp_path)
    assert _ids(tmp_path) == [a.id, b.id, c.id]
    runs.delete_run(b)
    assert _ids(tmp_path) == [a.id, c.id]


def test_an_unfinished_run_is_read_again_when_its_meta_changes(tmp_path, settled):
    run = _run(tmp_path, exit_code=None)
    assert runs.select_run(str(tmp_path), "1") == run
    page, _ = runs.runs_page(str(tmp_path))
    assert page[0][1]["status"] == "staged"
    _finish(run, 0, {"loss": 0.5})
    page, _ = runs.runs_page(str(tmp_path))
    assert page[0][1]["status"] == "completed"
    assert page[0][1]["summary"] == {"loss": 0.5}


def test_a_finished_run_shown_is_checked_against_its_meta(tmp_path, settled):
    run = _run(tmp_path, exit_code=None)
    _finish(run, 0, {"loss": 0.5})
    runs.runs_page(str(tmp_path))  # indexed as final
    os.chmod(run.meta_dir, 0o755)
    os.unlink(run_meta.run_meta_path(run, "summary.json"))
    run_meta.write_summary(run, {"loss": 0.25})  # a new file: the dir changes
    page, _ = runs.runs_page(str(tmp_path), limit=20)
    assert page[0][1]["summary"] == {"loss": 0.25}


def test_invalidate_reads_a_run_again(tmp_path, settled):
    run = _run(tmp_path)
    entry = runs_index.entries(str(tmp_path))[0]
    assert entry.summary == "{}"
    # Changed in place: the meta dir's mtime does not show it.
    path = run_meta.run_meta_path(run, "summary.json")
    with open(path, "w") as f:
        f.write('{"acc": 1}')
    st = os.stat(run.meta_dir)
    os.utime(run.meta_dir, ns=(st.st_atime_ns, st.st_mtime_ns))
    runs_index.invalidate(str(tmp_path), os.path.basename(run.run_dir))
    assert runs_index.entries(str(tmp_path))[0].summary == '{"acc": 1}'


def test_paging_numbers_and_total(tmp_path):
    made = [_run(tmp_path, op="train" if i % 2 else "prep") for i in range(9)]
    page, total = runs.runs_page(str(tmp_path), limit=3)
    assert total == 9
    assert [(n, r["id"]) for n, r in page] == [
        (1, made[8].id),
        (2, made[7].id),
        (3, made[6].id),
    ]
    page, total = runs.runs_page(str(tmp_path), op="train", limit=2)
    assert total == 4
    assert [(n, r["id"]) for n, r in page] == [(2, made[7].id), (4, made[5].id)]
    page, total = runs.runs_page(str(tmp_path), status="staged")
    assert (page, total) == ([], 0)


def test_total_leaves_out_runs_not_listed(tmp_path, settled):
    """The total of all runs (no filter) is counted without a scan of
    every row: runs whose identity is not written yet are left out."""
    made = [_run(tmp_path) for _ in range(4)]
    for _ in range(2):
        os.mkdir(make_run(str(tmp_path)).meta_dir)  # identity not written yet
    assert runs_index.count(str(tmp_path)) == 4
    page, total = runs.runs_page(str(tmp_path), limit=3)
    assert total == 4
    assert [r["id"] for _n, r in page] == [r.id for r in made[:0:-1]]
    assert runs_index.count(str(tmp_path), "op = ?", ("train",)) == 4


def test_old_format_ids_load_and_list_in_creation_order(tmp_path):
    first = _run(tmp_path)
    # An id as older gage made them: time first, then random.
    old_id = f"{time.time_ns() // 1000:014x}{'ab' * 9}"
    old = _run(tmp_path, run=Run(old_id, str(tmp_path / old_id), "lokasi-pemura"))
    os.mkdir(old.run_dir)
    last = _run(tmp_path)
    assert _ids(tmp_path) == [first.id, old_id, last.id]
    assert runs.select_run(str(tmp_path), "lokasi") == old
    assert runs.select_run(str(tmp_path), "2") == old


def test_a_run_being_made_is_listed_once_its_identity_is_written(tmp_path, settled):
    done = _run(tmp_path)
    run = make_run(str(tmp_path))
    os.mkdir(run.meta_dir)  # identity not written yet
    assert _ids(tmp_path) == [done.id]
    _run(tmp_path, run=run)
    assert _ids(tmp_path) == [done.id, run.id]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only dirs")
def test_read_only_runs_home_lists_without_an_index(tmp_path):
    made = [_run(tmp_path).id for _ in range(3)]
    os.chmod(tmp_path, 0o555)
    try:
        assert _ids(tmp_path) == made
        assert not os.path.exists(run_meta.runs_index_path(str(tmp_path)))
    finally:
        os.chmod(tmp_path, 0o755)


WRITER = """
import sys
from gage._internal.store import run_meta
from gage._internal.home import runs
from gage._internal.run_util import init_run_meta, make_run
from gage._internal.types import OpCmd, OpDef, OpRef

home = sys.argv[1]
for i in range(8):
    run = make_run(home)
    init_run_meta(run, OpRef("p", "op"), OpDef("op", {}), OpCmd(["x"], {}), {}, {})
    run_meta.write_timestamp(run, "staged")
    print(run.id, flush=True)
    listed = {r.id for r in runs.list_runs(home)}
    assert run.id in listed, "own run not listed"
"""


def test_concurrent_writers_and_readers(tmp_path):
    """Ten processes make runs and list them at the same time."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    home = tmp_path / "home"
    home.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    made = set()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        made.update(out.split())
    assert len(made) == 80
    assert set(_ids(home)) == made
    os.unlink(run_meta.runs_index_path(str(home)))
    assert set(_ids(home)) == made


def test_a_label_on_a_finished_run_is_seen_at_once(tmp_path, settled):
    run = _run(tmp_path)
    other = _run(tmp_path)
    runs.runs_page(str(tmp_path))  # both indexed as final
    runs.label_run(run, "best so far")
    page, total = runs.runs_page(str(tmp_path), label="best", limit=None)
    assert (total, [r["id"] for _n, r in page]) == (1, [run.id])
    assert page[0][1]["label"] == "best so far"
    runs.label_run(run, None)
    assert runs.runs_page(str(tmp_path), label="best")[1] == 0
    assert [r["label"] for _n, r in runs.runs_page(str(tmp_path))[0]] == [None, None]
    assert other.id in _ids(tmp_path)


@pytest.mark.parametrize("delay, readers", [(0, 8), (0.002, 32)])
def test_first_build_reads_each_run_once(monkeypatch, delay, readers):
    # A sample of rows, read first, tells meta that waits on the disk
    # (more readers keep more reads in flight) from cached meta.
    calls: list[str] = []

    def read_row(home, dir):
        calls.append(dir)
        time.sleep(delay)
        return (dir,)

    monkeypatch.setattr(runs_index, "read_row", read_row)
    dirs = [f"{i:04}" for i in range(400)]
    rows = runs_index._read_rows("home", dirs)
    assert rows == [(d,) for d in dirs]
    assert sorted(calls) == dirs  # each once
    rows = [()] * len(dirs)
    assert runs_index._readers("home", dirs, rows) == readers
