"""Tests for run_config: command-line typing, type conversion, and
applying config to staged files."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gage._internal import run_util
from gage._internal.cli import main as cli
from gage._internal.config import run_config
from gage._internal.config.apply import same_value
from gage._internal.config.assigns import parse_value
from gage._internal.config.run_config import coerce, parse_assigns, resolve_config
from gage._internal.home import runs
from gage._internal.store import run_meta
from gage._internal.types import ConfigError, OpCmd, OpDef, OpRef

floats = st.floats(allow_nan=False, allow_infinity=False)
plain_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20
)

# ---------------------------------------------------------------------------
# parse_value


@given(floats)
def test_float_repr_parses_as_float(val):
    _check(parse_value(repr(val)), val)


@given(st.integers())
def test_int_parses_as_int(val):
    _check(parse_value(str(val)), val)


@given(plain_text)
def test_single_quoted_is_text(val):
    _check(parse_value("'" + val.replace("'", "''") + "'"), val)


@given(plain_text)
def test_double_quoted_is_text(val):
    _check(parse_value(json.dumps(val)), val)


@given(st.lists(st.one_of(st.integers(), floats, st.booleans(), st.none())))
def test_flow_list(val):
    text = "[" + ", ".join(_cli(x) for x in val) + "]"
    _check(parse_value(text), val)


def _cli(val):
    if val is None:
        return "null"
    if isinstance(val, bool):
        return "true" if val else "false"
    return repr(val)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1", 1),
        ("-1", -1),
        ("+1", 1),
        ("007", 7),
        ("1.", 1.0),
        (".5", 0.5),
        ("1e-3", 0.001),
        ("1E3", 1000.0),
        ("-2.5e+2", -250.0),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("no", False),
        ("Off", False),
        ("null", None),
        ("~", None),
        ("tRUE", "tRUE"),
        ("inf", "inf"),
        ("nan", "nan"),
        ("1_000", "1_000"),
        ("0x10", "0x10"),
        ("2024-01-01", "2024-01-01"),
        ("1:30", "1:30"),
        ("a: b", "a: b"),
        ("# x", "# x"),
        ("- x", "- x"),
        ("", ""),
        ("'1'", "1"),
        ('"a\\tb"', "a\tb"),
        ("'it''s'", "it's"),
        ("[]", []),
        ("[1, yes, 1e-3, '2', x y]", [1, True, 0.001, "2", "x y"]),
        ("{a: 1, b: [no]}", {"a": 1, "b": [False]}),
    ],
)
def test_parse_value(text, expected):
    _check(parse_value(text), expected)


@pytest.mark.parametrize(
    "arg, msg",
    [
        ("lr", "Invalid assignment 'lr': expected NAME=VALUE"),
        ("=1", "Invalid assignment '=1'"),
        (" lr=1", "Invalid assignment ' lr=1'"),
        ("l r=1", "Invalid assignment 'l r=1'"),
        ("x=[1", "Invalid value in 'x=[1'"),
        ("x='a", "Invalid value in 'x='a'"),
        ("x={1: a}", "Invalid value in 'x={1: a}': {1: 'a'} is not a config value"),
        ("x=1e400", "Invalid value in 'x=1e400': 1e400 is too large for a float"),
        ("x=[1e400]", "Invalid value in 'x=[1e400]'"),
    ],
)
def test_parse_assigns_errors(arg, msg):
    with pytest.raises(ConfigError) as e:
        parse_assigns([arg])
    assert str(e.value).startswith(msg), str(e.value)


def test_parse_assigns_value_with_equals():
    assert parse_assigns(["expr=a=b", "x=1"]) == {"expr": "a=b", "x": 1}


# ---------------------------------------------------------------------------
# coerce


@pytest.mark.parametrize(
    "val, default, expected",
    [
        (1, 0.5, 1.0),
        (2.0, 1, 2),
        ("3", 1, 3),
        ("1e-3", 0.1, 0.001),
        ("no", True, False),
        (False, True, False),
        (1, "s", "1"),
        (1.5, "s", "1.5"),
        ("1", "s", "1"),
        ([1], (0,), (1,)),
        ((1, 2), [0], [1, 2]),
        ("[1, 2]", [0], [1, 2]),
        ({"a": 1}, {}, {"a": 1}),
        ("anything", None, "anything"),
        (None, None, None),
        ([1, "a"], None, [1, "a"]),
    ],
)
def test_coerce(val, default, expected):
    _check(coerce(val, default, "k", "f.py"), expected)


@pytest.mark.parametrize(
    "val, default, expected",
    [
        (1.5, 1, "an int"),
        (True, 1, "an int"),
        (1, True, "a bool (true or false)"),
        ("maybe", True, "a bool (true or false)"),
        (True, 0.1, "a float"),
        ("x", 0.1, "a float"),
        ([1], 0.1, "a float"),
        (True, "s", "a string"),
        (None, "s", "a string"),
        (None, 1, "an int"),
        ([1], "s", "a string"),
        (1, [1], "a list (e.g. [1, 2])"),
        (1, (1,), "a tuple (e.g. [1, 2])"),
        ([1], {}, "a dict (e.g. {a: 1})"),
    ],
)
def test_coerce_errors(val, default, expected):
    if expected is None:
        assert coerce(val, default, "k", "f.py") is None
        return
    with pytest.raises(ConfigError) as e:
        coerce(val, default, "k", "f.py")
    spelled = repr(val) if isinstance(val, str) else json.dumps(val)
    assert str(e.value) == f"Cannot set 'k' to {spelled} in f.py: expected {expected}"


def test_same_value():
    assert same_value(1, 1)
    assert not same_value(1, 1.0)
    assert not same_value(1, True)
    assert not same_value([1], (1,))
    assert same_value({"a": [1, 2.0]}, {"a": [1, 2.0]})
    assert not same_value({"a": 1, "b": 2}, {"b": 2, "a": 1})


# ---------------------------------------------------------------------------
# Apply


TRAIN_PY = """\
# train
lr = 0.1  # learning rate
epochs = 10
layers = (64, 32)
"""

MODEL_YAML = """\
model:
  dropout: 0.5   # keep
  name: 'mlp'
"""


@pytest.fixture
def project():
    path = tempfile.mkdtemp(prefix="gage-test-")
    with open(os.path.join(path, "train.py"), "w") as f:
        f.write(TRAIN_PY)
    with open(os.path.join(path, "model.yaml"), "w") as f:
        f.write(MODEL_YAML)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def runs_home():
    path = tempfile.mkdtemp(prefix="gage-test-")
    yield path
    for root, dirs, _files in os.walk(path):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    shutil.rmtree(path, ignore_errors=True)


OPDEF = OpDef("train", {"config": ["train.py", "model.yaml"]})


def _stage(project, runs_home, assigns, opdef=OPDEF):
    run = run_util.make_run(runs_home)
    config = resolve_config(project, opdef, assigns)
    run_util.init_run_meta(run, OpRef("t", "train"), opdef, OpCmd([], {}), config, {})
    run_util.stage_run(run, project)
    return run


def _read(*parts):
    with open(os.path.join(*parts), newline="") as f:
        return f.read()


def test_apply_tuple_round_trips_through_json(project, runs_home):
    # config.json stores the tuple as a list; it is written back as a tuple.
    run = _stage(project, runs_home, {"layers": [128, 64], "model.name": "cnn"})
    assert run_meta.read_config(run)["layers"] == [128, 64]
    assert "layers = (128, 64)\n" in _read(run.run_dir, "train.py")
    assert "  name: 'cnn'\n" in _read(run.run_dir, "model.yaml")
    assert _read(project, "train.py") == TRAIN_PY
    assert _read(project, "model.yaml") == MODEL_YAML


def test_apply_defaults_patches_nothing(project, runs_home):
    run = _stage(project, runs_home, {"layers": (64, 32), "lr": 0.1})
    assert _read(run.meta_dir, "log", "patched") == ""
    assert [e.event for e in run_meta.read_files_log(run)] == ["a", "a"]


def test_apply_keeps_mode_and_does_not_write_through_links(project, runs_home):
    # A hard link in the run dir to a project file must not change the
    # project file: patching replaces the file.
    run = run_util.make_run(runs_home)
    config = resolve_config(project, OPDEF, {"epochs": 1})
    run_util.init_run_meta(run, OpRef("t", "train"), OPDEF, OpCmd([], {}), config, {})
    run_util.copy_sourcecode(project, run)
    staged = os.path.join(run.run_dir, "train.py")
    os.unlink(staged)
    os.link(os.path.join(project, "train.py"), staged)
    os.chmod(staged, 0o750)
    run_util.apply_config(run)
    assert "epochs = 1\n" in _read(staged)
    assert _read(project, "train.py") == TRAIN_PY
    assert os.stat(staged).st_mode & 0o777 == 0o750


def test_apply_unknown_key_in_config_json(project, runs_home):
    run = run_util.make_run(runs_home)
    run_util.init_run_meta(
        run, OpRef("t", "train"), OPDEF, OpCmd([], {}), {"momentum": 0.9}, {}
    )
    run_util.copy_sourcecode(project, run)
    with pytest.raises(ConfigError) as e:
        run_util.apply_config(run)
    assert str(e.value) == (
        "Cannot apply config key 'momentum': it is not in the staged source "
        "code of op 'train' (check its sourcecode and config rules)"
    )


def test_apply_diff_without_final_newline(project, runs_home):
    with open(os.path.join(project, "train.py"), "w") as f:
        f.write("lr = 0.1")
    run = _stage(project, runs_home, {"lr": 0.2})
    assert _read(run.meta_dir, "log", "patched") == (
        "--- train.py\n"
        "+++ train.py\n"
        "@@ -1 +1 @@\n"
        "-lr = 0.1\n"
        "\\ No newline at end of file\n"
        "+lr = 0.2\n"
        "\\ No newline at end of file\n"
    )


def test_apply_crlf_kept(project, runs_home):
    with open(os.path.join(project, "train.py"), "w", newline="") as f:
        f.write("lr = 0.1\r\nepochs = 1\r\n")
    run = _stage(project, runs_home, {"lr": 0.2})
    assert _read(run.run_dir, "train.py") == "lr = 0.2\r\nepochs = 1\r\n"


@given(lr=st.floats(allow_nan=False, allow_infinity=False), name=st.text(max_size=10))
@settings(max_examples=25, deadline=None)
def test_apply_property(lr, name):
    project = tempfile.mkdtemp(prefix="gage-test-")
    runs_home = tempfile.mkdtemp(prefix="gage-test-")
    try:
        with open(os.path.join(project, "train.py"), "w") as f:
            f.write(TRAIN_PY)
        with open(os.path.join(project, "model.yaml"), "w") as f:
            f.write(MODEL_YAML)
        run = _stage(project, runs_home, {"lr": lr, "model.name": name})
        staged = run_config.read_project_config(run.run_dir, OPDEF)
        _check(staged["lr"].value, lr)
        _check(staged["model.name"].value, name)
        _check(staged["model.dropout"].value, 0.5)
    finally:
        for path in (project, runs_home):
            for root, dirs, _files in os.walk(path):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o755)
            shutil.rmtree(path, ignore_errors=True)


def _check(got, expected):
    assert same_value(got, expected), (got, expected)


def test_assigns_become_config_one_way(tmp_path, monkeypatch):
    # The API path (resolve_config(parse_assigns(...))) and the CLI give
    # the same config: a string default keeps the text as typed.
    (tmp_path / "t.py").write_text('ver = "1.0"\nlr = 0.1\nn = None\nflag = False\n')
    (tmp_path / "gage.toml").write_text("[t]\nexec = 'true'\nconfig = 't.py'\n")
    opdef = OpDef("t", {"config": "t.py"})
    words = ["ver=1.10", "lr=1e-3", "n=5", "flag=yes"]
    expected = {"ver": "1.10", "lr": 0.001, "n": 5, "flag": True}
    assert resolve_config(str(tmp_path), opdef, parse_assigns(words)) == expected
    quoted = parse_assigns(["ver='x y'", "n='5'"])
    config = resolve_config(str(tmp_path), opdef, quoted)
    assert (config["ver"], config["n"]) == ("x y", "5")
    with pytest.raises(ConfigError, match="lr"):
        resolve_config(str(tmp_path), opdef, parse_assigns(["lr=abc"]))
    # A value replaced after parsing is taken as given.
    replaced = parse_assigns(["ver=1.10"])
    replaced["ver"] = 2.5
    assert resolve_config(str(tmp_path), opdef, replaced)["ver"] == "2.5"
    # The CLI: config.json of a staged run.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAGE_RUNS", str(tmp_path / "runs"))
    assert cli.main(["run", "t", "--stage", "-y", *words]) == 0
    [run] = runs.list_runs(str(tmp_path / "runs"))
    assert run_meta.read_config(run) == expected
    assert 'ver = "1.10"' in _read(run.run_dir, "t.py")


MULTI_JSON = '{\n  "model": {"lr": 0.1, "depth": 3}\n}\n'
MULTI_YAML = "model:\n  lr: 0.1\n  width: 8\n"


@pytest.fixture
def multi(tmp_path, monkeypatch):
    """A project where a.json and b.yaml both define model.lr."""
    (tmp_path / "a.json").write_text(MULTI_JSON)
    (tmp_path / "b.yaml").write_text(MULTI_YAML)
    (tmp_path / "gage.toml").write_text(
        "[train]\nexec = 'true'\nconfig = ['a.json#*', 'b.yaml#*']\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GAGE_RUNS", str(tmp_path / "runs"))
    return tmp_path


def test_key_in_several_files_is_applied_to_each(multi):
    opdef = OpDef("train", {"config": ["a.json#*", "b.yaml#*"]})
    defaults = run_config.read_project_config(str(multi), opdef)
    assert defaults["model.lr"].files == ["a.json", "b.yaml"]
    assert defaults["model.depth"].files == ["a.json"]
    run = _stage(str(multi), str(multi / "runs"), {"model.lr": 0.5}, opdef)
    assert run_meta.read_config(run)["model.lr"] == 0.5
    assert '"lr": 0.5' in _read(run.run_dir, "a.json")
    assert "  lr: 0.5\n" in _read(run.run_dir, "b.yaml")
    assert _read(multi, "b.yaml") == MULTI_YAML
    # Excluding one file's key leaves the other.
    opdef2 = OpDef("train", {"config": ["a.json#*", "b.yaml#*", "-a.json#model.lr"]})
    lr = run_config.read_project_config(str(multi), opdef2)["model.lr"]
    assert (lr.file, lr.files) == ("b.yaml", ["b.yaml"])


def test_key_in_several_files_cli(multi, capsys):
    assert cli.main(["run", "train", "--preview", "model.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "  model.lr: 0.5 (default 0.1) in a.json, b.yaml\n" in out
    assert "  model.depth: 3\n" in out
    assert cli.main(["run", "train", "--stage", "-y", "model.lr=0.5"]) == 0
    [run] = runs.list_runs(str(multi / "runs"))
    assert '"lr": 0.5' in _read(run.run_dir, "a.json")
    assert "  lr: 0.5\n" in _read(run.run_dir, "b.yaml")
    patched = _read(run.meta_dir, "log", "patched")
    assert "+++ a.json" in patched and "+++ b.yaml" in patched
