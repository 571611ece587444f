"""Scalars: patterns, the JSON-lines file, bounds, storage, columns and
`gage watch` (Ctrl-C stops watching, not the run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gage._internal.history import run_compare
from gage._internal.lifecycle import scalars, scalars_capture
from gage._internal.lifecycle.scalars_capture import Capture, compile_patterns
from gage._internal.project.gagefile import load_gagefile
from gage._internal.store import run_meta, run_records
from gage._internal.types import GagefileError, Run

BIN = os.path.dirname(sys.executable)


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


def _run(tmp_path) -> Run:
    os.makedirs(tmp_path, exist_ok=True)
    run = Run("a" * 32, str(tmp_path / ("a" * 32)), "test-run")
    os.makedirs(run.run_dir)
    os.makedirs(run.meta_dir)
    return run


def _capture(tmp_path, text: str, patterns=None, jsonl: str | None = None):
    run = _run(tmp_path)
    output = str(run.run_dir + ".out")
    with open(output, "w") as f:
        f.write(text)
    if jsonl is not None:
        with open(os.path.join(run.run_dir, "m.jsonl"), "w") as f:
            f.write(jsonl)
    log = _Log()
    cap = Capture(run, output, patterns, "m.jsonl" if jsonl is not None else None, log)
    cap._pass(final=True)
    return run, log


def test_default_patterns(tmp_path):
    run, _log = _capture(
        tmp_path,
        "loading data: 3 files\n"
        "loss: 2.5\n"
        "loss: 2.0\n"
        "step 10: loss=0.31 acc=0.9\n"
        "Epoch 3/10 - loss: 0.25 - val_acc: 0.8\n"
        "time: 12:30\n"
        "Downloading: 50%\n"
        "lr=0.1\n"
        "x: nan\n"
        "  val/loss : -1.5e-3\n"
        "step: 20\n"
        "loss: 0.2\n",
    )
    got = {k: list(zip(*v)) for k, v in scalars.series(run).items()}
    assert got == {
        "loss": [(0, 2.5), (1, 2.0), (10, 0.31), (3, 0.25), (20, 0.2)],
        "acc": [(10, 0.9)],
        "val_acc": [(3, 0.8)],
        "x": [(3, pytest.approx(float("nan"), nan_ok=True))],
        "val/loss": [(3, -0.0015)],
    }
    aggs = scalars.aggregates(run)
    assert aggs["loss.min"] == 0.2 and aggs["loss.step"] == 20
    assert aggs["loss.max"] == 2.5 and aggs["loss.first"] == 2.5
    assert aggs["loss.last"] == 0.2 and aggs["loss.count"] == 5
    assert "x.min" not in aggs  # NaN is recorded, never a min or max
    assert scalars.last_values(run)["acc"] == 0.9


def test_custom_patterns(tmp_path):
    patterns = compile_patterns(
        [r"^it (?P<step>\d+)", r"train_loss=(?P<loss>\S+)", r"acc (?P<acc>\S+)%"]
    )
    run, _log = _capture(
        tmp_path,
        "it 5\ntrain_loss=0.5, acc 90%\nloss: 7\nit 6 train_loss=0.4\nacc x%\n",
        patterns,
    )
    got = {k: list(zip(*v)) for k, v in scalars.series(run).items()}
    assert got == {"loss": [(5, 0.5), (6, 0.4)], "acc": [(5, 90.0)]}


def test_patterns_off(tmp_path):
    assert compile_patterns(False) == []
    assert compile_patterns(None) is None
    with pytest.raises(ValueError, match="no named group"):
        compile_patterns("loss=(\\S+)")


def test_jsonl_file(tmp_path):
    run, log = _capture(
        tmp_path,
        "",
        patterns=[],
        jsonl='{"step": 1, "loss": 0.5, "note": "x", "ok": true}\n'
        "not json\n"
        '{"loss": 0.4}\n'
        "[1, 2]\n"
        '{"step": 3, "loss": 0.3, "acc": 1}\n'
        '{"step": 4, "loss"',  # still being written: read at the end, bad
    )
    got = {k: list(zip(*v)) for k, v in scalars.series(run).items()}
    assert got == {"loss": [(1, 0.5), (1, 0.4), (3, 0.3)], "acc": [(3, 1.0)]}
    cap_log = [line for line in log.lines if "scalars-file" in line]
    assert cap_log == []  # reported by stop(), not _pass
    assert run_records.read_scalar_keys(run) == ["loss", "acc"]


def test_tail_waits_for_whole_lines(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"loss: 1\nloss: ")
    tail = scalars_capture._Tail(str(path))
    assert list(tail.read(False)) == [b"loss: 1\n"]
    with open(path, "ab") as f:
        f.write(b"2\n")
    assert list(tail.read(False)) == [b"loss: 2\n"]
    assert list(tail.read(False)) == []


def test_long_line_skipped_bounded(tmp_path):
    big = "loss: 1" + " " * (scalars_capture.MAX_LINE * 3)
    text = f"loss: 1\n{big}\nloss: 2\n"
    for patterns in (None, compile_patterns("(?P<loss>[0-9]+)")):
        run, _log = _capture(tmp_path / str(patterns is None), text, patterns)
        assert scalars.series(run) == {"loss": ([0, 1], [1.0, 2.0])}


def test_tail_partial_line_bounded(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"loss: 1\n" + b"x" * (scalars_capture.MAX_LINE * 3))
    tail = scalars_capture._Tail(str(path))
    assert b"".join(tail.read(False)) == b"loss: 1\n"
    assert tail.carry == b"" and tail.skipping
    with open(path, "ab") as f:
        f.write(b"x\nloss: 2\n")
    assert b"".join(tail.read(True)) == b"loss: 2\n"


def test_recorder_bounds(tmp_path, monkeypatch):
    run = _run(tmp_path)
    monkeypatch.setattr(scalars, "MAX_KEYS", 3)
    monkeypatch.setattr(scalars, "MAX_POINTS", 10)
    rec = scalars.Recorder(run)
    for i in range(5):
        rec.add(f"k{i}", None, 1.0)
    for i in range(20):
        rec.add("k0", i, float(i))
    rec.flush()
    assert run_records.read_scalar_keys(run) == ["k0", "k1", "k2"]
    assert rec.points == 10 and rec.dropped == 2 + 13
    points, _end = run_records.read_scalar_points(run)
    assert len(points) == 10


def test_partial_record_left_for_next_read(tmp_path):
    run = _run(tmp_path)
    run_records.append_scalar_points(run, [(0, 1, 1.0), (0, 2, 2.0)])
    with open(run_meta.run_meta_path(run, "scalars", "points"), "ab") as f:
        f.write(b"\x00" * 7)
    points, end = run_records.read_scalar_points(run)
    assert points == [(0, 1, 1.0), (0, 2, 2.0)] and end == 40
    assert run_records.sample_scalar_points(run, 1) == [(0, 1, 1.0)]


def test_sampled_series(tmp_path):
    run = _run(tmp_path)
    rec = scalars.Recorder(run)
    for i in range(10_000):
        rec.add("loss", i, 1 / (i + 1))
    rec.flush()
    steps, vals = scalars.series(run, max_points=100)["loss"]
    assert len(steps) == 100 and steps[0] == 0 and steps[1] == 100


@pytest.mark.parametrize(
    "table, msg",
    [
        ("output-scalars = 'loss=(\\\\S+)'", "has no named group"),
        ("output-scalars = '(?P<x>'", "is not a valid regex"),
        ("output-scalars = 3", "a regular expression, a list of them, or false"),
        ("output-scalars = true", "a regular expression, a list of them, or false"),
        ("scalars-file = '/tmp/m.jsonl'", "must be a path inside the run dir"),
        ("scalars-file = '../m.jsonl'", "must be a path inside the run dir"),
        ("scalars-file = 1", "must be a file name"),
    ],
)
def test_gagefile_checks(tmp_path, table, msg):
    (tmp_path / "gage.toml").write_text(f'[train]\nexec = "python t.py"\n{table}\n')
    with pytest.raises(GagefileError, match=msg) as e:
        load_gagefile(str(tmp_path))
    assert "gage.toml:3: op 'train':" in str(e.value)


def test_gagefile_accepts(tmp_path):
    (tmp_path / "gage.toml").write_text(
        '[a]\nexec = "x"\noutput-scalars = false\n'
        '[b]\nexec = "x"\noutput-scalars = ["l=(?P<loss>\\\\S+)"]\n'
        'scalars-file = "logs/m.jsonl"\n'
    )
    load_gagefile(str(tmp_path))


def _project(tmp_path, script: str, toml_extra: str = "") -> tuple[str, dict]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "gage.toml").write_text(
        f'[train]\nexec = "python train.py"\n{toml_extra}'
    )
    (project / "train.py").write_text(script)
    env = {
        **os.environ,
        "GAGE_RUNS": str(tmp_path / "runs"),
        "PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
    }
    return str(project), env


def test_compare_columns_and_summary(tmp_path):
    project, env = _project(
        tmp_path,
        "import json\nlr = 0.1\n"
        "for i in range(5):\n    print(f'step {i}: loss={(i - 2) ** 2 + lr}')\n"
        "json.dump({'loss': 42}, open('summary.json', 'w'))\n",
        'config = "train.py#lr"\n',
    )
    for lr in ("0.1", "0.5"):
        subprocess.run(
            ["gage", "run", "train", f"lr={lr}", "-y", "-q"],
            cwd=project,
            env=env,
            check=True,
        )
    p = subprocess.run(
        [
            "gage",
            "compare",
            "--cols",
            "lr,loss.min,loss.step,loss",
            "--sort",
            "-loss.min",
            "--json",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(p.stdout)
    assert [(r["config.lr"], r["loss.min"], r["loss.step"]) for r in rows] == [
        (0.5, 0.5, 2),
        (0.1, 0.1, 2),
    ]
    # The summary: the last values, then what the run reports.
    assert [r["summary.loss"] for r in rows] == [42, 42]
    with pytest.raises(run_compare.CompareError, match="no run has a column"):
        run_compare.parse_cols(["loss.mn"], [{"loss.min": 1}])


def test_watch_ctrl_c_stops_watching_not_the_run(tmp_path):
    project, env = _project(
        tmp_path,
        "import time\n"
        "for i in range(200):\n"
        "    print(f'step {i}: loss={1 / (i + 1)}', flush=True)\n"
        "    time.sleep(0.05)\n",
    )
    runner = subprocess.Popen(
        ["gage", "run", "train", "-y", "-q"],
        cwd=project,
        env=env,
        start_new_session=True,
    )
    watch = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            p = subprocess.run(
                ["gage", "runs", "--json"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
            )
            recs = json.loads(p.stdout or "[]")
            if recs and recs[0]["status"] == "running":
                break
            time.sleep(0.2)
        watch = subprocess.Popen(
            ["gage", "watch"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert watch.stdout
        seen = [watch.stdout.readline() for _ in range(3)]
        assert seen[0].startswith("step 0: loss=1.0"), seen
        os.killpg(watch.pid, signal.SIGINT)  # Ctrl-C in the watch's terminal
        out, err = watch.communicate(timeout=20)
        assert watch.returncode == 0, err
        assert "Stopped watching; run " in err and "goes on" in err
        assert runner.poll() is None  # the run goes on
        assert runner.wait(timeout=60) == 0
        p = subprocess.run(
            ["gage", "watch"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        # A watch of an ended run: its output, its scalars, how it ended.
        assert p.returncode == 0
        assert p.stdout.startswith("step 0: loss=1.0\n")
        assert p.stdout.endswith("step 199: loss=0.005\n-- step 199: loss=0.005\n")
        assert p.stderr.endswith(" ended: completed\n")
    finally:
        for proc in (runner, watch):
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_sparse_and_dense_blocks_agree(tmp_path):
    """Few candidate lines (found by bytes.find) or many (one regex
    search over the block): the same scalars."""
    lines = [
        "Epoch 3/10",
        "loss: 0.5",
        "STEP 7 acc=0.25",
        "  val/loss : -1.5e-3",
        "x" * 200 + ": 1",
        "word: 2",
    ]
    filler = ["y" * 99] * 100
    sparse = "\n".join(line for ln in lines for line in [*filler, ln]) + "\n"
    dense = "\n".join(lines) + "\n"
    got = []
    for name, text in (("sparse", sparse), ("dense", dense)):
        run, _log = _capture(tmp_path / name, text)
        got.append({k: list(zip(*v)) for k, v in scalars.series(run).items()})
    assert (
        got[0]
        == got[1]
        == {
            "loss": [(3, 0.5)],
            "acc": [(7, 0.25)],
            "val/loss": [(7, -0.0015)],
            "x" * 200: [(7, 1.0)],
            "word": [(7, 2.0)],
        }
    )
