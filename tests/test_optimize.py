"""pipeline/optimize.py and `gage run --optimize`: the samplers on a
known function, and real searches of a tiny op (each trial a gage run)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from gage._internal.pipeline import batch, optimize

pytest.importorskip("optuna", reason="the tune extra (pip install 'gage-runs[tune]')")

_QUAD = """\
import math, random
x = 0.0
lr = 0.01
act = "relu"
steps = 3
fail = 99.0
rng = random.Random(int(x * 1000))
if x > fail:
    raise SystemExit("x is too big")
target = (x - 1.5) ** 2 + (math.log10(lr) + 3) ** 2 + (0.0 if act == "tanh" else 0.5)
for step in range(1, steps + 1):
    print(f"step {step}: loss={target + 1.0 / step + 0.01 * rng.random():.6f}")
"""


def _branin(x: float, y: float) -> float:
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (y - b * x**2 + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s


def _best(sampler: str, seed: int, n: int) -> float:
    axes = {"x": batch.Range(-5.0, 10.0), "y": batch.Range(0.0, 15.0)}
    spec = optimize.Spec(sampler, "f", seed=seed)
    study, dists = optimize.new_study(spec, axes)
    for _ in range(n):
        t = study.ask(dists)
        study.tell(t, _branin(t.params["x"], t.params["y"]))
    return study.best_value


def test_tpe_beats_random_on_branin():
    # Fixed seeds: the draws, and so the outcome, are the same every run.
    seeds = range(5)
    tpe = [_best("tpe", s, 30) for s in seeds]
    rnd = [_best("random", s, 30) for s in seeds]
    assert sum(tpe) < sum(rnd)
    assert sum(a < b for a, b in zip(tpe, rnd)) >= 4
    assert min(tpe) < 1.0  # the minimum is 0.398


def test_seed_repeats_draws():
    assert _best("tpe", 7, 12) == _best("tpe", 7, 12)
    assert _best("cmaes", 7, 12) == _best("cmaes", 7, 12)
    assert _best("tpe", 7, 12) != _best("tpe", 8, 12)


def test_space():
    optuna = pytest.importorskip("optuna")
    axes = {
        "lr": batch.parse_axis("lr", "[1e-5:1e-1:log]", 0.01),
        "layers": batch.parse_axis("layers", "[1:8]", 2),
        "act": batch.parse_axis("act", "[relu,tanh]", "relu"),
        "w": batch.parse_axis("w", "[0.5:2.0:log]", 1.0),
    }
    _study, d = optimize.new_study(optimize.Spec("random", "loss"), axes)
    assert d["lr"] == optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)
    assert d["layers"] == optuna.distributions.IntDistribution(1, 8)
    assert d["act"] == optuna.distributions.CategoricalDistribution(["relu", "tanh"])
    assert d["w"].log  # :log whatever the ends
    with pytest.raises(batch.ConfigError):
        batch.parse_axis("w", "[0:2:log]", 1.0)
    with pytest.raises(optimize.GageError, match="known: tpe, gp, cmaes, random"):
        optimize.new_study(optimize.Spec("bayes", "loss"), axes)
    with pytest.raises(optimize.GageError, match="needs a range or list"):
        optimize.new_study(optimize.Spec("tpe", "loss"), {})


# ---------------------------------------------------------------------------
# Real searches


@pytest.fixture
def project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "gage.toml").write_text(
        '[quad]\nexec = "python quad.py"\nconfig = "quad.py"\n'
    )
    (proj / "quad.py").write_text(_QUAD)
    return proj, str(tmp_path / "runs")


def _gage(project, *args, code=0):
    proj, runs = project
    env = {**os.environ, "GAGE_RUNS": runs}
    p = subprocess.run(
        [sys.executable, "-m", "gage", *args],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == code, p.stdout + p.stderr
    return p.stdout, p.stderr


def _batch_runs(project, batch_id):
    out, _ = _gage(project, "compare", "--batch", batch_id, "--json")
    return json.loads(out)


def test_search_resume_failed_and_needed(project):
    space = ["x=[-3.0:3.0]", "act=[relu,tanh]", "fail=0.0"]
    out, _ = _gage(
        project, "run", "quad", *space, "--optimize", "tpe", "--minimize",
        "loss.min", "--max-trials", "3", "--jobs", "2", "--seed", "3", "-y", "-q",
    )  # fmt: skip
    first = out.splitlines()[0]
    assert first.endswith("search of 3 trials of quad (tpe, minimize loss.min)")
    batch_id = first.split()[1].rstrip(":")
    assert "Best: trial" in out
    assert len(_batch_runs(project, batch_id)) == 3
    # More trials continue the study; failures are told as failed.
    out, _ = _gage(
        project, "run", "quad", *space, "--optimize", "random", "--minimize",
        "loss.min", "--max-trials", "8", "--batch", batch_id, "--seed", "1",
        "-y", "-q",
    )  # fmt: skip
    assert "Resuming from 3 trials of the batch" in out
    recs = _batch_runs(project, batch_id)
    assert len(recs) == 8
    # x > 0 fails: the seeds fix the draws, some of which fail.
    statuses = {r["status"] for r in recs}
    assert statuses == {"completed", "error"}, statuses
    assert " error: loss.min=-" in out and "Best: trial" in out
    # --needed: an existing trial's inputs are its result.
    out, _ = _gage(
        project, "run", "quad", "x=[0.5]", "act=[tanh]", "--optimize", "tpe",
        "--minimize", "loss", "--max-trials", "1", "--needed", "-y", "-q",
    )  # fmt: skip
    out2, _ = _gage(
        project, "run", "quad", "x=[0.5]", "act=[tanh]", "--optimize", "tpe",
        "--minimize", "loss", "--max-trials", "1", "--needed", "-y", "-q",
    )  # fmt: skip
    assert " not needed: loss=" in out2 and " completed: loss=" in out


def test_bad_input(project):
    for args, msg in (
        (["--optimize", "bayes", "--minimize", "loss"], "unknown sampler 'bayes'"),
        (["--optimize", "tpe"], "--optimize needs --minimize COL"),
        (["--optimize", "tpe", "--minimize", "loss", "--random", "3"], "--random"),
        (["--optimize", "tpe", "--minimize", "loss", "--batch", "nope"], "no finished"),
    ):
        _out, err = _gage(project, "run", "quad", "x=[0.0:1.0]", *args, "-y", code=2)
        assert err.startswith("gage: ") and msg in err, err
    _out, err = _gage(
        project, "run", "quad", "x=[0.0:1.0]", "--optimize", "tpe",
        "--minimize", "nosuch", "--max-trials", "1", "-y", "-q", code=1,
    )  # fmt: skip
    assert "reported nosuch" in err


_SLOW = """\
import time
x = 0.0
steps = 6
pause = 0.25
for step in range(1, steps + 1):
    print(f"step {step}: loss={(x - 1.5) ** 2 + 1.0 / step:.6f}", flush=True)
    time.sleep(pause)
"""


def test_prune_runs_fewer_steps_same_best(project):
    proj, _runs = project
    (proj / "gage.toml").write_text(
        '[slow]\nexec = "python slow.py"\nconfig = "slow.py"\n'
    )
    (proj / "slow.py").write_text(_SLOW)
    # random: the same draws with and without pruning (they do not
    # depend on results); every trial's loss is its offset + 1/step, so
    # the best is never worse than the median at a step: never pruned.
    found = {}
    for prune in ([], ["--prune", "median"]):
        out, _ = _gage(
            project, "run", "slow", "x=[-3.0:3.0]", "--optimize", "random",
            "--minimize", "loss.min", "--max-trials", "6", "--seed", "4",
            *prune, "-y", "-q",
        )  # fmt: skip
        batch_id = out.split()[1].rstrip(":")
        recs = _batch_runs(project, batch_id)
        steps = sum(len(_series(project, r["id"])) for r in recs)
        best = min(r["summary.loss"] for r in recs if r["status"] == "completed")
        found[bool(prune)] = (steps, best, {r["status"] for r in recs})
    assert found[False][0] == 36 and found[False][2] == {"completed"}
    assert found[True][0] < 36 and "pruned" in found[True][2], found
    assert found[True][1] == found[False][1]


def _series(project, run_id):
    from gage._internal.home import runs
    from gage._internal.lifecycle import scalars

    run = runs.select_run(project[1], run_id)
    return scalars.series(run).get("loss", ([], []))[0]


_SLEEPER = """\
import time
x = 0.0
pause = 30.0
print("ready", flush=True)
time.sleep(pause)
print(f"step 1: loss={x * x}")
"""


def test_ctrl_c_ends_trials_and_leaves_search_resumable(project):
    import signal

    proj, runs = project
    (proj / "gage.toml").write_text(
        '[sleep]\nexec = "python sleep.py"\nconfig = "sleep.py"\n'
    )
    (proj / "sleep.py").write_text(_SLEEPER)
    args = ["x=[-1.0:1.0]", "--optimize", "tpe", "--minimize", "loss", "-y"]
    p = subprocess.Popen(
        [sys.executable, "-m", "gage", "run", "sleep", *args, "--jobs", "2"],
        cwd=proj,
        env={**os.environ, "GAGE_RUNS": runs},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a shell job
    )
    try:
        assert p.stdout
        batch_id = p.stdout.readline().split()[1].rstrip(":")
        ready = 0
        while ready < 2:  # both trials in flight
            line = p.stdout.readline()
            assert line, "gage ended before its trials started"
            ready += line.endswith("| ready\n")
        os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C does
        _out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, err
    assert f"resume with --batch {batch_id}" in err
    recs = _batch_runs(project, batch_id)
    assert [r["status"] for r in recs] == ["terminated", "terminated"]
    out, _ = _gage(
        project, "run", "sleep", *args, "pause=0.0", "--max-trials", "3",
        "--batch", batch_id, "-q",
    )  # fmt: skip
    assert "Resuming from 2 trials of the batch" in out
    assert "Trial 3 " in out and "Best: trial 3 " in out
