"""Slurm settings: keys, checks, merge and the sbatch options they make
(project/slurm_settings), and how engine_settings takes them."""

from __future__ import annotations

import pytest

from gage._internal.engines import engine
from gage._internal.project import slurm_settings as ss
from gage._internal.types import GageError


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"partition": "gpu", "time": "1-2:00:00", "cpus": 4, "mem": "4G"},
        {"time": 30, "mem": 2048, "gres": "gpu:a100:2", "account": "lab"},
        {"qos": "short", "args": ["--constraint=a100"], "setup": "module load x"},
        {"args": "--exclusive --constraint a100", "time": "0:30"},
    ],
)
def test_valid(data):
    assert ss.problem(data) is None


@pytest.mark.parametrize(
    "data, key, words",
    [
        ("gpu", None, "must be a table"),
        ({"gpus": 1}, "gpus", "unknown Slurm setting 'gpus'"),
        ({"cpus": 0}, "cpus", "above 0"),
        ({"cpus": True}, "cpus", "whole number"),
        ({"cpus": "4"}, "cpus", "whole number"),
        ({"time": "soon"}, "time", "minutes or [D-]HH:MM[:SS]"),
        ({"time": 0}, "time", "above 0"),
        ({"mem": "lots"}, "mem", "4G or 500M"),
        ({"partition": "a b"}, "partition", "no spaces"),
        ({"partition": ""}, "partition", "non-empty string"),
        ({"args": ["x"]}, "args", "sbatch options"),
        ({"args": ["--output=x"]}, "args", "cannot hold --output"),
        ({"args": "'open"}, "args", "cannot be split"),
        ({"args": 3}, "args", "a list of sbatch arguments"),
    ],
)
def test_problems(data, key, words):
    bad = ss.problem(data)
    assert bad is not None and bad[0] == key and words in bad[1], bad


def test_merge_later_wins_args_add_up():
    merged = ss.merge(
        {"time": "10", "partition": "a", "args": ["--exclusive"]},
        {"cpus": 2, "partition": "b"},
        None,
        {"time": "5", "args": "--constraint=x"},
    )
    assert merged == {
        "time": "5",
        "partition": "b",
        "cpus": 2,
        "args": ["--exclusive", "--constraint=x"],
    }
    assert ss.sbatch_args(merged) == [
        "--partition=b",
        "--time=5",
        "--cpus-per-task=2",
        "--exclusive",
        "--constraint=x",
    ]


def test_from_assigns():
    assert ss.from_assigns(["cpus=2", "time=0:30:00"]) == {"cpus": 2, "time": "0:30:00"}
    with pytest.raises(GageError, match="takes KEY=VALUE"):
        ss.from_assigns(["cpus"])
    with pytest.raises(GageError, match="'mem' must be MB"):
        ss.from_assigns(["mem=much"])


def test_engine_settings():
    name, options = engine.engine_settings("slurm", slurm={"time": "5"}, detach=True)
    assert name == "slurm"
    assert options == {"project": None, "cli": {"time": "5"}, "detach": True}
    with pytest.raises(GageError, match="--detach apply to --engine slurm"):
        engine.engine_settings("local", detach=True)
    with pytest.raises(GageError, match="--slurm options apply to --engine slurm"):
        engine.engine_settings("dask", slurm={"time": "5"})
