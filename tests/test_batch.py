"""batch.py: values, grids, random trials and batch files."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gage._internal.pipeline import batch
from gage._internal.types import ConfigError, GageError


def test_batch_value_by_default_type():
    assert batch.is_batch_value("[1,2]", 0.1)
    assert batch.is_batch_value(" [a, b] ", "x")
    assert not batch.is_batch_value("[1,2]", [1])
    assert not batch.is_batch_value("[1,2]", (1,))
    assert not batch.is_batch_value("0.1", 0.1)


def test_parse_axis():
    assert batch.parse_axis("lr", "[0.1, 0.01]", 0.1) == [0.1, 0.01]
    assert batch.parse_axis("e", "[10:30:10]", 1) == [10, 20, 30]
    assert batch.parse_axis("e", "[0:1:0.25]", 0.5) == [0, 0.25, 0.5, 0.75, 1.0]
    r = batch.parse_axis("lr", "[1e-4:1e-1]", 0.1)
    assert r == batch.Range(1e-4, 1e-1, False) and r.log
    assert not batch.parse_axis("lr", "[0.1:0.9]", 0.1).log
    assert not batch.parse_axis("x", "[-1:100]", 0.1).log
    assert batch.parse_axis("n", "[1:5]", 3).integer
    assert not batch.parse_axis("n", "[1:5]", 3.0).integer
    for bad in ("[]", "[5:1]", "[a:b]", "[1:2:0]"):
        with pytest.raises(ConfigError):
            batch.parse_axis("x", bad, 1)


small_lists = st.lists(st.integers(), min_size=1, max_size=4)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from("abcd"), small_lists, max_size=4))
def test_grid_is_every_combination(axes):
    trials = batch.make_trials(axes)
    assert len(trials) == math.prod(len(v) for v in axes.values())
    assert all(set(t) == set(axes) for t in trials)
    for key, values in axes.items():  # every value of every key is used
        assert {t[key] for t in trials} == set(values)
    if axes:
        last = list(axes)[-1]
        # the last key varies fastest
        assert [t[last] for t in trials[: len(axes[last])]] == axes[last]
    capped = batch.make_trials(axes, max_trials=2)
    assert capped == trials[:2]


@settings(max_examples=50, deadline=None)
@given(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
    st.floats(min_value=0, max_value=1e3, allow_nan=False),
    st.integers(min_value=0, max_value=2**32),
)
def test_random_draws_stay_in_range(low, span, seed):
    r = batch.Range(low, low + span)
    trials = batch.make_trials({"x": r, "y": ["a", "b"]}, random_n=20, seed=seed)
    assert len(trials) == 20
    for t in trials:
        assert low - 1e-9 <= t["x"] <= low + span + 1e-9
        assert t["y"] in ("a", "b")
    again = batch.make_trials({"x": r, "y": ["a", "b"]}, random_n=20, seed=seed)
    assert again == trials


def test_log_uniform_and_integer_draws():
    trials = batch.make_trials({"lr": batch.Range(1e-4, 1e-1)}, random_n=2000, seed=0)
    low = sum(t["lr"] < 1e-3 for t in trials)
    high = sum(t["lr"] >= 1e-2 for t in trials)
    assert 500 < low < 850 and 500 < high < 850  # a third each, not 1% and 90%
    ints = batch.make_trials({"n": batch.Range(1, 3, True)}, random_n=300, seed=0)
    assert {t["n"] for t in ints} == {1, 2, 3}


def test_range_in_grid_is_an_error():
    with pytest.raises(GageError, match="use --random N"):
        batch.make_trials({"lr": batch.Range(0, 1)})


def test_file_trials_times_grid(tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("lr,epochs\n0.5,3\n\n0.7,\n")
    json_path = tmp_path / "t.json"
    json_path.write_text('{"lr": 0.9}')
    files = batch.read_batch_file(str(csv_path)) + batch.read_batch_file(str(json_path))
    assert files == [{"lr": "0.5", "epochs": "3"}, {"lr": "0.7"}, {"lr": 0.9}]
    trials = batch.make_trials({"e": [1, 2]}, files)
    assert len(trials) == 6 and trials[0] == {"lr": "0.5", "epochs": "3", "e": 1}


@pytest.mark.parametrize(
    "name, text, msg",
    [
        ("t.csv", "", "is empty"),
        ("t.csv", "a,b\n1,2,3\n", "line 2: 3 values for 2 names"),
        ("t.json", "[1]", "list of objects"),
        ("t.json", "{", "invalid JSON"),
        ("t.yaml", "a: 1", "use a .csv file"),
    ],
)
def test_bad_batch_files(tmp_path, name, text, msg):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(GageError, match=msg) as e:
        batch.read_batch_file(str(path))
    assert e.value.path == str(path)


def test_demo_uses_repro(tmp_path):
    """`make demo` (examples/pipeline/run-demo.sh) runs and uses gage repro."""
    demo = os.path.join(os.path.dirname(__file__), "..", "examples", "pipeline")
    env = {
        **os.environ,
        "GAGE_RUNS": str(tmp_path),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
    }
    p = subprocess.run(
        ["bash", "run-demo.sh"],
        cwd=demo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "$ gage repro\n" in p.stdout
    assert "evaluate is up to date" in p.stdout
    assert "config lr: 0.05 -> 0.1" in p.stdout
    assert not os.path.exists(os.path.join(demo, ".gage"))
