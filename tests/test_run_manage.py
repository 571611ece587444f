"""Compare, diff and delete runs as a library (run_compare, run_diff,
run_delete), on runs made from meta alone."""

from __future__ import annotations

import os

import pytest

from gage._internal.history import run_compare, run_delete, run_diff
from gage._internal.home import runs
from gage._internal.run_util import init_run_meta, make_run
from gage._internal.store import run_meta, run_records
from gage._internal.store.run_meta import ManifestEntry
from gage._internal.types import GageError, OpCmd, OpDef, OpRef
from gage._internal.util import run_exec

SHA_A = "a" * 64
SHA_B = "b" * 64


def _run(
    home,
    op="train",
    config=None,
    summary=None,
    manifest=(),
    status="completed",
    deps=(),
):
    run = make_run(str(home))
    init_run_meta(
        run, OpRef("p", op), OpDef(op, {}), OpCmd(["x"], {}), config or {}, {}
    )
    run_meta.write_manifest(run, [ManifestEntry(*e) for e in manifest])
    if deps:
        run_meta.write_deps(
            run,
            [
                {
                    "spec": {"type": "run-files", "run-select": u.name},
                    "source": {
                        "type": "run",
                        "id": u.id,
                        "name": u.name,
                        "op": runs.op_name(u),
                    },
                    "files": [],
                }
                for u in deps
            ],
        )
    if status == "pending":
        return run
    run_meta.write_timestamp(run, "staged")
    if status == "staged":
        return run
    run_meta.write_timestamp(run, "started")
    if status == "running":
        pid = os.getpid()
        run_records.write_proc_lock(run, pid, run_exec.proc_start_time(pid))
        return run
    run_meta.write_timestamp(run, "stopped")
    run_meta.write_exit_code(run, 0 if status == "completed" else 1)
    if summary:
        run_meta.write_summary(run, summary)
    return run


# ---------------------------------------------------------------------------
# compare


def test_compare_columns_sort_top_only_changed(tmp_path):
    a = _run(tmp_path, config={"lr": 0.1, "epochs": 5}, summary={"loss": 0.5})
    b = _run(tmp_path, config={"lr": 0.2, "epochs": 5}, summary={"loss": 0.2})
    c = _run(tmp_path, config={"lr": 0.3, "epochs": 5}, status="staged")
    table = run_compare.compare([c, b, a])
    assert [col.name for col in table.columns] == [
        "op",
        "status",
        "config.epochs",
        "config.lr",
        "summary.loss",
    ]
    assert [r.values[-1] for r in table.rows] == [None, 0.2, 0.5]
    # descending: values first, largest first; no value last either way
    for sort, order in ((["-loss"], [a, b, c]), (["loss"], [b, a, c])):
        table = run_compare.compare([c, b, a], ["lr"], sort)
        assert [r.run for r in table.rows] == order
    table = run_compare.compare([c, b, a], ["lr", "loss"], ["loss"], top=1)
    assert [r.run for r in table.rows] == [b]
    table = run_compare.compare([c, b, a], only_changed=True)
    assert [col.name for col in table.columns] == [
        "status",
        "config.lr",
        "summary.loss",
    ]


def test_compare_plain_names_resolve_config_first(tmp_path):
    a = _run(tmp_path, config={"x": 1}, summary={"x": 2, "val": {"loss": 3}})
    table = run_compare.compare([a], ["x", "summary.x", "val.loss", "status"])
    assert [c.name for c in table.columns] == [
        "config.x",
        "summary.x",
        "summary.val.loss",
        "status",
    ]
    assert table.labels() == ["config.x", "summary.x", "val.loss", "status"]
    assert table.rows[0].values == (1, 2, 3, "completed")
    with pytest.raises(run_compare.CompareError, match="no run has a column 'y'") as e:
        run_compare.compare([a], ["y"])
    assert e.value.key == "y"


def test_only_changed_tells_1_from_1_0(tmp_path):
    a = _run(tmp_path, config={"x": 1})
    b = _run(tmp_path, config={"x": 1.0})
    table = run_compare.compare([a, b], ["x"], only_changed=True)
    assert [c.name for c in table.columns] == ["config.x"]


def test_sort_mixed_values():
    items = [None, "b", 2, 1.5, "a", True]
    assert run_compare.sort_rows(items, lambda v: v) == [True, 1.5, 2, "a", "b", None]


# ---------------------------------------------------------------------------
# diff


def test_diff_sections(tmp_path):
    up1 = _run(tmp_path, op="prepare")
    up2 = _run(tmp_path, op="prepare")
    a = _run(
        tmp_path,
        config={"lr": 0.1},
        summary={"loss": 1},
        manifest=[
            ("s", SHA_A, "train.py"),
            ("d", SHA_A, "data.csv"),
            ("g", SHA_A, "model"),
        ],
        deps=[up1],
    )
    b = _run(
        tmp_path,
        config={"lr": 0.2, "new": 1},
        summary={"loss": 1},
        manifest=[
            ("s", SHA_A, "train.py"),
            ("d", SHA_B, "data.csv"),
            ("g", SHA_B, "extra"),
        ],
        deps=[up2],
    )
    diff = run_diff.diff_runs(a, b)
    assert [(c.key, c.kind) for c in diff.config] == [
        ("lr", "changed"),
        ("new", "added"),
    ]
    assert [(c.key, c.old["id"], c.new["id"]) for c in diff.upstream] == [
        (up1.name, up1.id, up2.id)
    ]
    assert [(c.key, c.kind) for c in diff.deps] == [("data.csv", "changed")]
    assert diff.sources == ()
    assert [(c.key, c.kind) for c in diff.generated] == [
        ("extra", "added"),
        ("model", "removed"),
    ]
    assert diff.summary == ()
    assert run_diff.diff_runs(a, a).same()


def test_file_diff_text_and_binary(tmp_path):
    a = _run(tmp_path)
    b = _run(tmp_path)
    with open(os.path.join(a.run_dir, "t.txt"), "w") as f:
        f.write("one\ntwo\n")
    with open(os.path.join(b.run_dir, "t.txt"), "w") as f:
        f.write("one\n2\n")
    with open(os.path.join(b.run_dir, "bin"), "wb") as f:
        f.write(b"\0\1")
    text = run_diff.file_diff(a, b, "t.txt")
    assert text is not None and "-two\n+2\n" in text
    assert run_diff.file_diff(a, b, "bin") is None


# ---------------------------------------------------------------------------
# delete


def test_delete_refuses_running_and_upstream_of_staged(tmp_path):
    home = str(tmp_path)
    up = _run(tmp_path, op="prepare")
    staged = _run(tmp_path, deps=[up], status="staged")
    running = _run(tmp_path, status="running")
    done = _run(tmp_path)
    plan = run_delete.plan_delete(home, [up, running, done])
    assert [r for r, _s in plan.delete] == [done]
    reasons = {r.run.id: r.reason for r in plan.refused}
    assert reasons[running.id] == "it is running (stop it first)"
    assert f"staged run {staged.name} (train) depends on it" in reasons[up.id]
    # --force deletes an upstream run, never a running one
    plan = run_delete.plan_delete(home, [up, running], force=True)
    assert [r for r, _s in plan.delete] == [up]
    # deleting the dependent too frees the upstream run
    plan = run_delete.plan_delete(home, [up, staged])
    assert {r.id for r, _s in plan.delete} == {up.id, staged.id}
    assert run_delete.delete_runs(plan) == 2
    assert {r.id for r in runs.list_runs(home)} == {running.id, done.id}
    assert not os.path.exists(up.run_dir) and not os.path.exists(up.meta_dir)


def test_select_runs_needs_a_selection(tmp_path):
    with pytest.raises(GageError, match="name the runs to delete"):
        run_delete.select_runs(str(tmp_path))
    a = _run(tmp_path, status="error")
    _run(tmp_path)
    assert run_delete.select_runs(str(tmp_path), statuses=["error"]) == [a]


def test_label_round_trip(tmp_path):
    run = _run(tmp_path)
    assert run_meta.read_label(run) is None
    run_meta.write_label(run, "best")
    assert runs.run_record(run)["label"] == "best"
    run_meta.write_label(run, None)
    assert run_meta.read_label(run) is None


def test_public_api(tmp_path):
    import gage

    a = _run(tmp_path, config={"lr": 0.1}, summary={"loss": 2})
    b = _run(tmp_path, config={"lr": 0.2}, summary={"loss": 1})
    table = gage.compare([a, b], ["lr", "loss"], ["loss"])
    assert [r.run for r in table.rows] == [b, a]
    assert [c.key for c in gage.diff_runs(a, b).config] == ["lr"]
    assert gage.why_run(str(tmp_path), b).match == a
    plan = gage.plan_delete(str(tmp_path), [a])
    assert gage.delete_runs(plan) == 1
