"""One lineage per run (lifecycle/run_lineage): which upstream run each
run-files dependency uses when an op depends on runs of several ops."""

from __future__ import annotations

import pytest

from gage._internal.home import runs
from gage._internal.lifecycle import run_deps, run_lineage, stage_op
from gage._internal.lifecycle.run_start import start_run
from gage._internal.project import gagefile
from gage._internal.types import DependencyError

GAGE_TOML = """
[prepare]
exec = "python -c 'open(\\"split.txt\\", \\"w\\").write(\\"s\\")'"
config = "prepare.py#seed"

[train]
exec = "python -c 'open(\\"model.txt\\", \\"w\\").write(\\"m\\")'"
depends = { type = "run-files", run-select = "prepare", files = "split.txt" }

[featurize]
exec = "python -c 'open(\\"feat.txt\\", \\"w\\").write(\\"f\\")'"
depends = { type = "run-files", run-select = "prepare", files = "split.txt" }

[evaluate]
exec = "python -c pass"
depends = [
  { type = "run-files", run-select = "train", files = "model.txt" },
  { type = "run-files", run-select = "featurize", files = "feat.txt" },
  { type = "run-files", run-select = "prepare", files = "split.txt" },
]
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "gage.toml").write_text(GAGE_TOML)
    (tmp_path / "p" / "prepare.py").write_text("seed = 1\n")
    gf = gagefile.read_gagefile(str(tmp_path / "p" / "gage.toml"))
    return gf, str(tmp_path / "runs")


def _run(project, op, upstream=None, **config):
    gf, home = project
    opdef = gf.get_opdef(op)
    if opdef.get_config():
        config = {"seed": 1, **config}
    run = stage_op.stage_op(gf, home, opdef, config, upstream=upstream).run
    start_run(run, quiet=True)
    assert runs.run_status(run) == "completed"
    return run


def _chosen(project, op, pins=None):
    gf, home = project
    found = run_lineage.choose(home, gf.get_opdef(op), pins)
    return {k: (c.run.id, c.why) for k, c in found.items()}


def test_lineage_is_followed_and_agreeing_runs_preferred(project):
    p1 = _run(project, "prepare")
    t1 = _run(project, "train")
    f1 = _run(project, "featurize")
    p2 = _run(project, "prepare", seed=2)
    f2 = _run(project, "featurize", upstream={"prepare": p2})
    # The latest train run used p1: prepare follows it, and featurize is
    # the newest run that used p1 (f1), not the newest run (f2).
    assert _chosen(project, "evaluate") == {
        "train": (t1.id, "latest"),
        "prepare": (p1.id, "lineage"),
        "featurize": (f1.id, "latest"),
    }
    gf, home = project
    why = run_lineage.choose(home, gf.get_opdef("evaluate"))["featurize"].describe()
    assert why == (
        f"latest of this lineage: newer featurize run {f2.name} ({f2.id[:8]}) "
        "used other upstream runs"
    )
    # Pinning p2 makes featurize f2; train has no run on p2: refused.
    with pytest.raises(run_lineage.LineageError) as e:
        run_lineage.choose(home, gf.get_opdef("evaluate"), {"prepare": p2})
    msg = str(e.value)
    assert "\n" not in msg
    assert t1.name in msg and p1.name in msg and p2.name in msg
    assert f2.id  # staged on p2 as pinned
    # A train run on p2 makes the pin consistent.
    t2 = _run(project, "train", upstream={"prepare": p2})
    assert _chosen(project, "evaluate", {"prepare": p2}) == {
        "prepare": (p2.id, "pinned"),
        "train": (t2.id, "latest"),
        "featurize": (f2.id, "latest"),
    }


def test_staging_uses_the_lineage_and_refuses_disagreement(project):
    gf, home = project
    p1 = _run(project, "prepare")
    t1 = _run(project, "train")
    _run(project, "featurize")
    p2 = _run(project, "prepare", seed=2)
    ev = _run(project, "evaluate")
    used = {d["source"]["op"]: d["source"]["id"] for d in _deps(ev)}
    assert used["prepare"] == p1.id and used["train"] == t1.id
    # Disagreeing pins: nothing is staged (no run is left behind).
    before = {r.id for r in runs.list_runs(home)}
    with pytest.raises(DependencyError):
        _run(project, "evaluate", upstream={"prepare": p2, "train": t1})
    assert {r.id for r in runs.list_runs(home)} == before


def test_pins_are_checked(project):
    gf, home = project
    p1 = _run(project, "prepare")
    t1 = _run(project, "train")
    opdef = gf.get_opdef("evaluate")
    assert run_lineage.pin_runs(home, opdef, [f"prepare={p1.id[:8]}"]) == {
        "prepare": p1
    }
    for word, msg in [
        ("prepare", "is not OP=RUN"),
        ("nope=1", "has no run-files dependency on 'nope'"),
        (f"prepare={t1.name}", "is a run of 'train', not of 'prepare'"),
        ("prepare=ffffffff", "--upstream prepare=ffffffff"),
    ]:
        with pytest.raises(DependencyError, match=msg):
            run_lineage.pin_runs(home, opdef, [word])


def test_preview_says_why(project):
    gf, home = project
    _run(project, "prepare")
    _run(project, "train")
    _run(project, "featurize")
    deps = run_deps.preview_dependencies(home, gf.project_dir, gf.get_opdef("evaluate"))
    assert [d.why.split(":")[0] for d in deps] == [
        "latest",
        "latest",
        "followed lineage",
    ]


def _deps(run):
    from gage._internal.store import run_meta

    return run_meta.read_deps(run)


@pytest.mark.parametrize(
    "select, unknown",
    [
        ("prepare", False),  # an op of the file
        ("prepar", True),  # a misspelt op
        ("0123abcd", False),  # a run id prefix
        ("bakire-tovusa", False),  # a run name
        ("bakire", False),  # a run name prefix
        ("Prepare", True),
    ],
)
def test_run_select_names_an_op_or_a_run(select, unknown):
    from gage._internal.project import graph
    from gage._internal.types import OpDef

    opdefs = {
        "prepare": OpDef("prepare", {"exec": "true"}),
        "train": OpDef(
            "train",
            {"exec": "true", "depends": {"type": "run-files", "run-select": select}},
        ),
    }
    assert graph.unknown_selects(opdefs) == ([("train", select)] if unknown else [])
