"""Unit tests for runs.py: selection and the --needed comparison."""

from __future__ import annotations

import os

import pytest

from gage._internal.home import runs
from gage._internal.lifecycle import op_inputs
from gage._internal.run_util import init_run_meta, make_run
from gage._internal.store import run_meta
from gage._internal.store.run_meta import ManifestEntry
from gage._internal.types import GageError, OpCmd, OpDef, OpRef

SHA_A = "a" * 64
SHA_B = "b" * 64


def _run(home, op="train", config=None, manifest=(), exit_code=0):
    run = make_run(str(home))
    init_run_meta(
        run, OpRef("p", op), OpDef(op, {}), OpCmd(["x"], {}), config or {}, {}
    )
    run_meta.write_manifest(run, [ManifestEntry(*e) for e in manifest])
    run_meta.write_timestamp(run, "staged")
    if exit_code is not None:
        run_meta.write_timestamp(run, "started")
        run_meta.write_timestamp(run, "stopped")
        run_meta.write_exit_code(run, exit_code)
    return run


def test_select(tmp_path):
    a = _run(tmp_path, op="prepare")
    b = _run(tmp_path, op="train")
    c = _run(tmp_path, op="train")
    assert runs.select_run(str(tmp_path), b.name) == b
    assert runs.select_run(str(tmp_path), b.id) == b
    assert runs.select_run(str(tmp_path), "train") == c  # newest of the op
    assert runs.select_run(str(tmp_path), a.run_dir) == a
    assert runs.select_run(str(tmp_path), a.run_dir + ".meta") == a
    with pytest.raises(GageError, match="no run matching"):
        runs.select_run(str(tmp_path), "zzz")


def test_select_index_and_latest(tmp_path):
    home = str(tmp_path)
    with pytest.raises(GageError, match="no runs in"):
        runs.select_run(home)
    a = _run(tmp_path, op="prepare")
    b = _run(tmp_path, op="train", exit_code=None)
    c = _run(tmp_path, op="train")
    assert runs.select_run(home) == c  # no spec: the latest
    assert [runs.select_run(home, s) for s in ("1", "2", "3", "#2")] == [c, b, a, b]
    with pytest.raises(GageError, match="no run #4 .* 1 to 3"):
        runs.select_run(home, "#4")
    with pytest.raises(GageError, match="no run matching '#0'"):
        runs.select_run(home, "#0")
    assert runs.select_run(home, "2", status="staged") == b
    with pytest.raises(GageError, match="is completed, not staged"):
        runs.select_run(home, "1", status="staged")


def test_short_prefix_selects_one_run(tmp_path):
    made = [_run(tmp_path) for _ in range(30)]
    # Ids start with their random part: 5 hex digits tell 30 runs apart
    # (ids that share 5 leading digits are a 1 in 35,000 chance).
    prefixes = {run.id[:5] for run in made}
    if len(prefixes) == len(made):
        for run in made:
            assert runs.select_run(str(tmp_path), run.id[:5]) == run
    first = made[0].name[0]  # a consonant: names start with one of 14
    shared = [r for r in made if r.name[0] == first or r.id[0] == first]
    if len(shared) > 1:
        with pytest.raises(GageError, match=f"matches {len(shared)} runs"):
            runs.select_run(str(tmp_path), first)


def test_list_order_is_creation_order(tmp_path):
    made = [_run(tmp_path) for _ in range(20)]
    assert runs.list_runs(str(tmp_path)) == made


def test_run_for_dir_moved(tmp_path):
    run = _run(tmp_path / "home")
    dest = tmp_path / "elsewhere"
    dest.mkdir()
    os.rename(run.run_dir, dest / run.id)
    os.rename(run.meta_dir, dest / (run.id + ".meta"))
    moved = runs.load_run(str(dest / run.id))
    assert (moved.id, moved.name, moved.run_dir) == (
        run.id,
        run.name,
        str(dest / run.id),
    )


def test_filter(tmp_path):
    _run(tmp_path, op="prepare")
    failed = _run(tmp_path, exit_code=1)
    staged = _run(tmp_path, exit_code=None)
    all_runs = runs.list_runs(str(tmp_path))
    assert runs.filter_runs(all_runs, status="error") == [failed]
    assert runs.filter_runs(all_runs, op="train", status="staged") == [staged]


def test_find_matching_run(tmp_path):
    manifest = [("s", SHA_A, "train.py"), ("d", SHA_B, "data.csv")]
    done = _run(tmp_path, config={"lr": 0.1}, manifest=manifest + [("g", SHA_B, "out")])
    _run(tmp_path, config={"lr": 0.1}, manifest=manifest, exit_code=1)
    home = str(tmp_path)

    def match(**kw):
        new = _run(tmp_path, exit_code=None, **kw)
        return op_inputs.find_matching_run(new, runs.list_runs(home))

    # Same config and inputs; generated files are not compared.
    assert match(config={"lr": 0.1}, manifest=manifest) == done
    # Order of manifest lines does not matter.
    assert match(config={"lr": 0.1}, manifest=list(reversed(manifest))) == done
    # Any difference in config, source, deps or op makes a run needed.
    assert match(config={"lr": 0.2}, manifest=manifest) is None
    assert (
        match(config={"lr": 0.1}, manifest=[("s", SHA_B, "train.py"), manifest[1]])
        is None
    )
    assert match(config={"lr": 0.1}, manifest=manifest[:1]) is None
    assert match(op="other", config={"lr": 0.1}, manifest=manifest) is None


def test_delete_run_readonly(tmp_path):
    run = _run(tmp_path)
    path = os.path.join(run.run_dir, "f")
    with open(path, "w") as f:
        f.write("x")
    os.chmod(path, 0o444)
    os.chmod(run.run_dir, 0o555)
    runs.delete_run(run)
    assert not os.path.exists(run.run_dir) and not os.path.exists(run.meta_dir)


def test_cli_statuses_match_runs():
    from gage._internal.cli import common

    assert tuple(common.STATUSES) == runs.RUN_STATUSES
