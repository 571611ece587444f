"""op_inputs: inputs computed before staging equal those staging records."""

from __future__ import annotations

import os

from gage._internal import run_util
from gage._internal.lifecycle import op_inputs
from gage._internal.project import gagefile
from gage._internal.store import run_meta

GAGE_TOML = """
[prep]
exec = "python -c 'open(\\"out.txt\\", \\"w\\").write(\\"x\\")'"
depends = { type = "project-files", files = "data.txt" }

[train]
exec = "python train.py"
config = "train.py#lr"
sourcecode = ["*.py", "conf.json"]
depends = [
  { type = "run-files", run-select = "prep", files = "out.txt" },
  { type = "project-files", files = "conf.json" },
]

[hooked]
exec = { run = "true", stage-runtime = "true" }
"""


def _project(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    (project / "gage.toml").write_text(GAGE_TOML)
    (project / "train.py").write_text("lr = 0.1\nprint(lr)\n")
    (project / "data.txt").write_text("1 2 3\n")
    (project / "conf.json").write_text("{}\n")
    return str(project), str(tmp_path / "runs")


def _stage(gf, home, name, config=None, upstream=None):
    opdef = gf.get_opdef(name)
    run = run_util.make_run(home)
    run_util.init_run_meta(
        run, gagefile.op_ref(gf, opdef), opdef, gagefile.op_cmd(opdef), config or {}, {}
    )
    run_util.stage_run(run, gf.project_dir, upstream=upstream)
    return run


def _done(run):
    run_util.start_run(run, quiet=True)
    return run


def test_predicted_equals_staged(tmp_path):
    project, home = _project(tmp_path)
    gf = gagefile.read_gagefile(os.path.join(project, "gage.toml"))
    prep = _done(_stage(gf, home, "prep"))
    for config in ({"lr": 0.1}, {"lr": 0.5}):
        predicted = op_inputs.op_inputs(home, project, gf.get_opdef("train"), config)
        assert predicted is not None
        run = _stage(gf, home, "train", config)
        assert op_inputs.read_inputs(run) == predicted
        assert run_meta.read_input_key(run) == predicted.key
    # conf.json is both source code and a dependency: the dependency wins.
    assert "conf.json" not in predicted.sources
    assert predicted.deps[0]["source"] == f"run:{prep.id}"


def test_find_run_and_changes(tmp_path):
    project, home = _project(tmp_path)
    gf = gagefile.read_gagefile(os.path.join(project, "gage.toml"))
    prep = _done(_stage(gf, home, "prep"))
    train = gf.get_opdef("train")
    inputs = op_inputs.op_inputs(home, project, train, {"lr": 0.1})
    assert op_inputs.find_run(home, inputs) is None
    done = _done(_stage(gf, home, "train", {"lr": 0.1}))
    assert op_inputs.find_run(home, inputs) == done

    # A new upstream run, even with the same output, is another input.
    prep2 = _done(_stage(gf, home, "prep"))
    changed = op_inputs.op_inputs(home, project, train, {"lr": 0.2})
    assert op_inputs.find_run(home, changed) is None
    assert op_inputs.describe_changes(inputs, changed) == [
        "config lr: 0.1 -> 0.2",
        "source train.py: changed (config applied)",
        f"upstream prep: run {prep.name} -> {prep2.name}",
    ]
    # The exact upstream run can be named.
    pinned = op_inputs.op_inputs(
        home, project, train, {"lr": 0.1}, upstream={"prep": prep}
    )
    assert pinned == inputs
    # A data change.
    with open(os.path.join(project, "conf.json"), "w") as f:
        f.write('{"a": 1}\n')
    data = op_inputs.op_inputs(home, project, train, {"lr": 0.1}, {"prep": prep})
    assert op_inputs.describe_changes(inputs, data) == ["dependency conf.json: changed"]
    closest = op_inputs.closest_run(home, data)
    assert closest is not None and closest[0] == done


def test_hooks_not_predicted(tmp_path):
    project, home = _project(tmp_path)
    gf = gagefile.read_gagefile(os.path.join(project, "gage.toml"))
    assert op_inputs.op_inputs(home, project, gf.get_opdef("hooked"), {}) is None


def test_explicit_upstream_run_is_used_and_recorded(tmp_path):
    """repro passes the upstream run by id: a newer completed run of the
    upstream op (made by another process meanwhile) is not used."""
    project, home = _project(tmp_path)
    gf = gagefile.read_gagefile(os.path.join(project, "gage.toml"))
    mine = _done(_stage(gf, home, "prep"))
    _done(_stage(gf, home, "prep"))  # newer, "latest"
    run = _stage(gf, home, "train", {"lr": 0.1}, upstream={"prep": mine})
    assert run_meta.read_deps(run)[0]["source"]["id"] == mine.id
    assert op_inputs.read_inputs(run).deps[0]["source"] == f"run:{mine.id}"
