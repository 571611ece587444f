"""One dependency validator (dep_spec), used when gage.toml is loaded and
by run_deps for op defs built by hand: the same message both ways, and
`gage run --preview` refuses a bad dependency before any run exists."""

from __future__ import annotations

import os

import pytest

from gage._internal.cli import main as cli
from gage._internal.lifecycle import run_deps
from gage._internal.project import dep_spec, gagefile
from gage._internal.types import DependencyError, GagefileError, OpDef

DIGEST = "0" * 64

# (the dependency as TOML, as a dict, the message)
BAD = [
    (
        '{ type = "project-files" }',
        {"type": "project-files"},
        "project-files needs 'files'",
    ),
    (
        '{ type = "run-files", files = "x" }',
        {"type": "run-files", "files": "x"},
        "run-files needs 'run-select'",
    ),
    (
        '{ type = "run-files", run-select = "" }',
        {"type": "run-files", "run-select": ""},
        "run-files needs 'run-select'",
    ),
    (
        '{ type = "project-files", files = "../secret.txt" }',
        {"type": "project-files", "files": "../secret.txt"},
        "file pattern '../secret.txt' uses '..' and would leave its root",
    ),
    (
        '{ type = "project-files", files = "/etc/passwd" }',
        {"type": "project-files", "files": "/etc/passwd"},
        "file pattern '/etc/passwd' is absolute",
    ),
    (
        '{ type = "project-files", files = [] }',
        {"type": "project-files", "files": []},
        "'files' must be a glob or a list of globs",
    ),
    (
        '{ type = "project-files", files = 1 }',
        {"type": "project-files", "files": 1},
        "'files' must be a glob or a list of globs, got number 1",
    ),
    (
        '{ type = "project-files", files = "a", target-path = "../x" }',
        {"type": "project-files", "files": "a", "target-path": "../x"},
        "target-path '../x' uses '..'",
    ),
    (
        '{ type = "project-files", files = "a", target-path = 1 }',
        {"type": "project-files", "files": "a", "target-path": 1},
        "'target-path' must be a string",
    ),
    (
        '{ type = "project-files", files = "a", link = "yes" }',
        {"type": "project-files", "files": "a", "link": "yes"},
        "'link' must be true or false, got string 'yes'",
    ),
    (
        '{ type = "project-files", files = "a", sha256 = "abc" }',
        {"type": "project-files", "files": "a", "sha256": "abc"},
        "sha256 pin is not a sha256 hex digest",
    ),
    (
        '{ type = "project-files", files = "a", sha256 = { a = 1 } }',
        {"type": "project-files", "files": "a", "sha256": {"a": 1}},
        "sha256 pin for 'a' is not a sha256 hex digest",
    ),
    (
        '{ type = "project-files", files = "a", sha256 = 1 }',
        {"type": "project-files", "files": "a", "sha256": 1},
        "'sha256' must be a digest or a table path -> digest",
    ),
    (
        '{ type = "project-files", files = "a", copy = true }',
        {"type": "project-files", "files": "a", "copy": True},
        "unknown key 'copy' in project-files dependency (known keys: type, "
        "files, target-path, link, sha256)",
    ),
    (
        '{ type = "url", url = "x" }',
        {"type": "url", "url": "x"},
        "unknown dependency type 'url' (known types: project-files, run-files)",
    ),
    (
        '{ files = "a" }',
        {"files": "a"},
        "has no 'type' (one of project-files, run-files)",
    ),
]


@pytest.mark.parametrize("toml, spec, msg", BAD)
def test_gagefile_refuses_bad_dependency(tmp_path, toml, spec, msg):
    path = tmp_path / "gage.toml"
    path.write_text(f"[train]\nexec = 'true'\ndepends = {toml}\n")
    with pytest.raises(GagefileError) as e:
        gagefile.read_gagefile(str(path))
    assert msg in str(e.value)
    assert ":3: op 'train': " in str(e.value)


@pytest.mark.parametrize("toml, spec, msg", BAD)
def test_hand_built_opdef_gets_the_same_message(tmp_path, toml, spec, msg):
    opdef = OpDef("train", {"exec": "true", "depends": [spec]})
    with pytest.raises(DependencyError) as e:
        run_deps.preview_dependencies(str(tmp_path / "runs"), str(tmp_path), opdef)
    assert msg in str(e.value)
    assert str(e.value).startswith("op 'train' depends[0]")
    assert e.value.op == "train"
    # The one validator says the same thing without a location.
    with pytest.raises(DependencyError) as e2:
        dep_spec.check_dependency(spec)
    assert msg in str(e2.value)


def test_hand_built_empty_table_is_refused(tmp_path):
    opdef = OpDef("train", {"exec": "true", "depends": {}})
    with pytest.raises(DependencyError, match="has no 'type'"):
        run_deps.preview_dependencies(str(tmp_path / "runs"), str(tmp_path), opdef)


def test_valid_dependencies_pass():
    for spec in [
        {"type": "project-files", "files": "data/*.csv"},
        {"type": "project-files", "files": ["a", "b/c"], "target-path": "in"},
        {"type": "project-files", "files": "a", "link": True, "sha256": DIGEST},
        {"type": "run-files", "run-select": "prepare"},
        {"type": "run-files", "run-select": "p", "files": "m/**", "sha256": {}},
        {"type": "run-files", "run-select": "p", "sha256": {"m/x": DIGEST}},
    ]:
        dep_spec.check_dependency(spec)


def test_preview_refuses_bad_dependency_before_any_run(tmp_path, monkeypatch, capsys):
    (tmp_path / "gage.toml").write_text(
        "[train]\n"
        "exec = 'true'\n"
        "depends = [\n"
        "  { type = 'project-files', files = 'data.csv' },\n"
        "  { type = 'run-files', run-select = 'prep', target-path = '/abs' },\n"
        "]\n"
        "[prep]\n"
        "exec = 'true'\n"
    )
    (tmp_path / "data.csv").write_text("1\n")
    runs = tmp_path / "runs"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAGE_RUNS", str(runs))
    code = cli.main(["run", "train", "--preview"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("gage: gage.toml:")
    assert "op 'train': target-path '/abs' is absolute" in err
    assert not os.path.exists(runs) or not os.listdir(runs)
