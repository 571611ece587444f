"""Unit and property tests for gage.toml parsing (see topics/gagefile.md)."""

from __future__ import annotations

import os
import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gage._internal.project import gagefile, op_exec
from gage._internal.types import GagefileError, OpDef

words = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1),
    min_size=1,
    max_size=6,
)


@given(words)
def test_exec_string_splits_like_shell(args):
    line = shlex.join(["cmd"] + args)
    assert op_exec.split_exec(line) == (["cmd"] + args, {})


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True),
        st.text(alphabet="abc 1=", max_size=5),
        max_size=3,
    )
)
def test_exec_env_prefix(env):
    line = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " python x.py"
    assert op_exec.split_exec(line) == (["python", "x.py"], env)


def test_exec_list_unchanged():
    assert op_exec.split_exec(["A=1", "x"]) == (["A=1", "x"], {})


def test_op_cmd_merges_env():
    opdef = OpDef(
        "t", {"exec": "A=1 python t.py", "env": {"B": 2, "C": True, "A": "0"}}
    )
    cmd = gagefile.op_cmd(opdef)
    assert cmd.args == ["python", "t.py"]
    assert cmd.env == {"A": "1", "B": "2", "C": "true"}


def test_op_cmd_from_phase_table():
    opdef = OpDef("t", {"exec": {"stage-runtime": "x", "run": ["python", "t.py"]}})
    assert gagefile.op_cmd(opdef).args == ["python", "t.py"]


def test_find_in_parent(tmp_path):
    (tmp_path / "gage.toml").write_text("[a]\nexec = 'x'\n")
    sub = tmp_path / "b" / "c"
    sub.mkdir(parents=True)
    assert gagefile.find_gagefile(str(sub)) == str(tmp_path / "gage.toml")
    gf = gagefile.load_gagefile(str(sub))
    assert gf.project_dir == str(tmp_path)
    assert gf.default_opdef().name == "a"


def test_runs_dir_relative_to_file(tmp_path):
    (tmp_path / "gage.toml").write_text('"$runs-dir" = "r"\n[a]\nexec = "x"\n')
    gf = gagefile.read_gagefile(str(tmp_path / "gage.toml"))
    assert gf.runs_dir == os.path.join(str(tmp_path), "r")


def test_op_ref_uses_project_dir_name(tmp_path):
    (tmp_path / "gage.toml").write_text('[a]\nexec = "x"\nversion = 2\n')
    gf = gagefile.read_gagefile(str(tmp_path / "gage.toml"))
    ref = gagefile.op_ref(gf, gf.get_opdef("a"))
    assert (ref.op_ns, ref.op_name, ref.op_version) == (tmp_path.name, "a", "2")


@pytest.mark.parametrize(
    "toml, line",
    [
        ('[a]\nexec = "x"\n\n[b]\nexec = "y"\nnope = 1\n', 6),
        ('[a]\nexec = "x"\n[a.depends]\ntype = "x"\n', 3),
        ("a.exec = 1\n", 1),
        ('[a]\nexec = "x"\ndepends = [\n  { type = "url" },\n]\n', 3),
    ],
)
def test_error_lines(tmp_path, toml, line):
    (tmp_path / "gage.toml").write_text(toml)
    with pytest.raises(GagefileError) as e:
        gagefile.read_gagefile(str(tmp_path / "gage.toml"))
    assert f"gage.toml:{line}:" in str(e.value)
