"""Property tests: patching a config value, then reading it back, gives
the value, and the rest of the file is unchanged (config_py,
config_json, config_toml, config_yaml).

Each format is also checked with an independent reader: Python's own
evaluation, `json`, `tomllib` and PyYAML's `safe_load`.
"""

from __future__ import annotations

import ast
import json
import sys

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gage._internal.config import config_json, config_py, config_toml, config_yaml
from gage._internal.config.apply import same_value
from gage._internal.types import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# ---------------------------------------------------------------------------
# Values

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
ints = st.integers()
i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, text)
toml_scalars = st.one_of(st.booleans(), i64, floats, text)


def _nested(base):
    return st.recursive(
        base,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(text, children, max_size=4),
        ),
        max_leaves=8,
    )


values = st.one_of(scalars, st.tuples(scalars, scalars), _nested(scalars))
# In JSON, TOML and YAML a mapping is walked into, so a key's value is
# a scalar or a list (lists may hold mappings).
leaf_values = st.one_of(
    scalars, st.tuples(scalars, scalars), st.lists(_nested(scalars), max_size=4)
)
toml_values = st.one_of(toml_scalars, st.lists(_nested(toml_scalars), max_size=4))


def _as_json(val):
    """`val` as it reads back from a format without tuples."""
    if isinstance(val, (list, tuple)):
        return [_as_json(x) for x in val]
    if isinstance(val, dict):
        return {k: _as_json(v) for k, v in val.items()}
    return val


def _check_same(got, expected):
    assert same_value(got, expected), (got, expected)


# ---------------------------------------------------------------------------
# Python

PY_BEFORE = '"""Doc."""\nimport os  # a comment\nlr  =  0.1\nx = '
PY_AFTER = "  # x's comment\nname = 'mnist'\nprint(x)\n"


@given(old=values, new=values)
@settings(max_examples=300, deadline=None)
def test_python_round_trip(old, new):
    src = config_py.patch(PY_BEFORE + "None" + PY_AFTER, {"x": old})
    patched = config_py.patch(src, {"x": new})
    assert patched.startswith(PY_BEFORE)
    assert patched.endswith(PY_AFTER)
    read = config_py.read(patched)
    _check_same(read["x"], new)
    _check_same(read["lr"], 0.1)
    value_src = patched[len(PY_BEFORE) : len(patched) - len(PY_AFTER)]
    _check_same(ast.literal_eval(value_src), new)


@given(new=text)
@settings(max_examples=200, deadline=None)
def test_python_string_keeps_double_quotes(new):
    patched = config_py.patch('s = "old"\n', {"s": new})
    assert patched.startswith('s = "')
    _check_same(config_py.read(patched)["s"], new)


# ---------------------------------------------------------------------------
# JSON

JSON_BEFORE = '{\n  "lr" :  0.1,\n  "model": {"depth": 2,\n    "x":  '
JSON_AFTER = '  ,"name": "mnist"},\n  "tail": [1,2]\n}'


@given(old=leaf_values, new=leaf_values)
@settings(max_examples=300, deadline=None)
def test_json_round_trip(old, new):
    src = config_json.patch(JSON_BEFORE + "null" + JSON_AFTER, {"model.x": old})
    patched = config_json.patch(src, {"model.x": new})
    assert patched.startswith(JSON_BEFORE)
    assert patched.endswith(JSON_AFTER)
    read = config_json.read(patched)
    _check_same(read["model.x"], _as_json(new))
    _check_same(read["model.depth"], 2)
    _check_same(json.loads(patched)["model"]["x"], _as_json(new))


# ---------------------------------------------------------------------------
# TOML

TOML_BEFORE = "# Config\nlr = 0.1  # lr\n\n[model]\ndepth   =   2\nx = "
TOML_AFTER = "   # x's comment\nname = 'mnist'\n\n[data]\npath = \"a.csv\"\n"


@given(old=toml_values, new=toml_values)
@settings(max_examples=300, deadline=None)
def test_toml_round_trip(old, new):
    src = config_toml.patch(TOML_BEFORE + "0" + TOML_AFTER, {"model.x": old})
    patched = config_toml.patch(src, {"model.x": new})
    assert patched.startswith(TOML_BEFORE)
    assert patched.endswith(TOML_AFTER)
    read = config_toml.read(patched)
    expected = _as_json(new)
    _check_same(read["model.x"], expected)
    _check_same(tomllib.loads(patched)["model"]["x"], expected)
    _check_same(read["model.depth"], 2)
    _check_same(read["data.path"], "a.csv")


@given(new=text)
@settings(max_examples=200, deadline=None)
def test_toml_literal_string(new):
    patched = config_toml.patch("s = 'old'  # c\n", {"s": new})
    assert patched.endswith("  # c\n")
    _check_same(tomllib.loads(patched)["s"], new)


# ---------------------------------------------------------------------------
# YAML

YAML_BEFORE = "# Config\nlr: 0.1   # lr\nmodel:\n  depth:   2\n  x: "
YAML_AFTER = "   # x's comment\n  name: 'mnist'\ndata:\n  path: a.csv\n"


@given(old=leaf_values, new=leaf_values)
@settings(max_examples=300, deadline=None)
def test_yaml_round_trip(old, new):
    src = config_yaml.patch(YAML_BEFORE + "0" + YAML_AFTER, {"model.x": old})
    patched = config_yaml.patch(src, {"model.x": new})
    assert patched.startswith(YAML_BEFORE)
    assert patched.endswith(YAML_AFTER)
    read = config_yaml.read(patched)
    expected = _as_json(new)
    _check_same(read["model.x"], expected)
    _check_same(yaml.safe_load(patched)["model"]["x"], expected)
    _check_same(read["model.depth"], 2)


@pytest.mark.parametrize("style", ["plain", "'single'", '"double"', "|\n    block\n"])
@given(new=text)
@settings(max_examples=100, deadline=None)
def test_yaml_string_styles(style, new):
    src = f"a: 1\ns: {style}\nz: 2  # end\n"
    patched = config_yaml.patch(src, {"s": new})
    assert patched.startswith("a: 1\ns: ")
    assert patched.endswith("\nz: 2  # end\n")
    _check_same(yaml.safe_load(patched)["s"], new)


YAML_SEQ_BEFORE = "a: 1\nlayers:   # sizes\n"
YAML_SEQ_AFTER = "\n# after\nz: 2\n"


@pytest.mark.parametrize("indent", ["", "  "])
@given(old=st.lists(scalars, min_size=1), new=st.lists(leaf_values))
@settings(max_examples=100, deadline=None)
def test_yaml_block_sequence(indent, old, new):
    items = "\n".join(f"{indent}- {config_yaml._format(x, None, True)}" for x in old)
    src = YAML_SEQ_BEFORE + items + YAML_SEQ_AFTER
    _check_same(config_yaml.read(src)["layers"], old)
    patched = config_yaml.patch(src, {"layers": new})
    assert patched.startswith("a: 1\nlayers:")
    assert "   # sizes" in patched
    assert patched.endswith(YAML_SEQ_AFTER)
    _check_same(config_yaml.read(patched)["layers"], _as_json(new))


@pytest.mark.parametrize("text", ["...", "./...", "..", "...x"])
def test_yaml_dots_round_trip(text):
    # '...' alone is YAML's document end marker: written plain it would
    # not read back (hypothesis found it as a mapping key).
    src = "a: 1\nlayers:\n  - 1\n"
    patched = config_yaml.patch(src, {"layers": [{text: text}], "a": text})
    assert yaml.safe_load(patched) == {"a": text, "layers": [{text: text}]}


@given(val=floats)
def test_yaml_floats_read_as_floats(val):
    text = config_yaml.format_float(val)
    _check_same(yaml.safe_load(text), val)


# ---------------------------------------------------------------------------
# JSON errors are gage's own, the same on every Python version (3.13's
# parser names a trailing comma where 3.11's expects a key after it)


@pytest.mark.parametrize(
    "text, msg",
    [
        ('{"lr": 0.1,}', "line 1, column 11): a comma with nothing after it"),
        ('{\n  "lr": 0.1,\n}\n', "line 2, column 12): a comma with nothing after it"),
        ("[1, 2, ]", "line 1, column 6): a comma with nothing after it"),
        ('{"a" 1}', "line 1, column 6): expected ':' after a key"),
        ('{"a": }', "line 1, column 7): expected a value"),
        ('{"a": 1 "b": 2}', "line 1, column 9): expected ',' between items"),
        ("{a: 1}", "line 1, column 2): expected a key in double quotes"),
        ('{"a": 1} x', "line 1, column 10): text after the end of the JSON document"),
        ('{"a": "x', "line 1, column 7): a string is not closed"),
    ],
)
def test_json_errors_are_gages_own(text, msg):
    with pytest.raises(ConfigError) as e:
        config_json.read(text)
    assert str(e.value) == f"invalid JSON ({msg}" + (
        " (remove it)" if "comma" in msg else ""
    )
