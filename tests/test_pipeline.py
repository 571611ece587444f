"""The op graph (pipeline.py) and the local engine (engine.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from pty_util import run_in_pty
from wait_util import wait_for

from gage._internal import run_util
from gage._internal.engines import engine
from gage._internal.home import runs
from gage._internal.project import gagefile
from gage._internal.project import graph as pipeline
from gage._internal.store import run_meta, run_records
from gage._internal.types import GageError, GagefileError, OpDef


def _opdefs(**deps):
    return {
        name: OpDef(
            name,
            {
                "exec": "true",
                "depends": [{"type": "run-files", "run-select": u} for u in ups],
            },
        )
        for name, ups in deps.items()
    }


def test_graph_order_up_down():
    g = pipeline.op_graph(
        _opdefs(d=["b", "c"], b=["a"], c=["a"], a=[], x=["some-run-id"])
    )
    assert g == {"d": ["b", "c"], "b": ["a"], "c": ["a"], "a": [], "x": []}
    assert pipeline.order(g) == ["a", "b", "c", "d", "x"]
    assert pipeline.upstream(g, ["b"]) == {"a", "b"}
    assert pipeline.downstream(g, ["b"]) == {"b", "d"}
    assert pipeline.find_cycle(g) is None


def test_cycles():
    assert pipeline.find_cycle(pipeline.op_graph(_opdefs(a=["a"]))) == ["a", "a"]
    cycle = pipeline.find_cycle(pipeline.op_graph(_opdefs(a=["b"], b=["c"], c=["a"])))
    assert cycle == ["a", "b", "c", "a"]


def test_cycle_is_a_load_error(tmp_path):
    path = tmp_path / "gage.toml"
    path.write_text(
        '[a]\nexec = "true"\n'
        'depends = { type = "run-files", run-select = "b" }\n'
        '[b]\nexec = "true"\n'
        'depends = { type = "run-files", run-select = "a" }\n'
    )
    with pytest.raises(GagefileError, match=r"cycle: a -> b -> a"):
        gagefile.read_gagefile(str(path))


def _stage(tmp_path, code: str):
    project = tmp_path / "p"
    project.mkdir(exist_ok=True)
    (project / "gage.toml").write_text(f"[op]\nexec = {json.dumps(code)}\n")
    gf = gagefile.read_gagefile(str(project / "gage.toml"))
    opdef = gf.get_opdef("op")
    run = run_util.make_run(str(tmp_path / "runs"))
    run_util.init_run_meta(
        run, gagefile.op_ref(gf, opdef), opdef, gagefile.op_cmd(opdef), {}, {}
    )
    run_util.stage_run(run, str(project))
    return run


def _barrier(tmp_path, n: int) -> str:
    """Python code that checks in at a barrier dir, then waits until N
    runs have (up to 60 s, then exits 1 saying so): N runs that do not
    run at once cannot all get past it, however fast or loaded the
    machine is. Later runs pass at once."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    return (
        "import os, sys, time\n"
        f"barrier, n = {str(barrier)!r}, {n}\n"
        "open(os.path.join(barrier, str(os.getpid())), 'w').close()\n"
        "deadline = time.monotonic() + 60\n"
        "while len(os.listdir(barrier)) < n:\n"
        "    if time.monotonic() > deadline:\n"
        "        sys.exit(f'barrier: waited 60 s for {n} runs at once')\n"
        "    time.sleep(0.01)\n"
    )


def _barrier_cmd(tmp_path, n: int) -> str:
    script = tmp_path / "together.py"
    script.write_text(_barrier(tmp_path, n) + "print('hi')\n")
    return f"python {script}"


def test_local_engine_parallel_and_exit_codes(tmp_path, capfd):
    together = _barrier_cmd(tmp_path, 2)
    a, b = _stage(tmp_path, together), _stage(tmp_path, together)
    fail = _stage(tmp_path, "python -c 'raise SystemExit(3)'")
    e = engine.get_engine("local", 2)
    futs = [e.submit(r, quiet=False) for r in (a, b)]
    assert [f.result(timeout=120) for f in futs] == [0, 0]
    # Two at once: both passed the barrier, and so each started before
    # the other stopped (recorded times, not wall time).
    started = [run_meta.read_timestamp(r, "started") for r in (a, b)]
    stopped = [run_meta.read_timestamp(r, "stopped") for r in (a, b)]
    assert started[0] < stopped[1] and started[1] < stopped[0]
    assert e.submit(fail, quiet=True).result(timeout=120) == 3
    e.close()
    assert [runs.run_status(r) for r in (a, b, fail)] == [
        "completed",
        "completed",
        "error",
    ]
    out = capfd.readouterr().out
    assert f"{a.name}| hi" in out and f"{b.name}| hi" in out


def _slow(tmp_path) -> tuple[str, str]:
    """Python code that says it runs (a file in the dir returned), then
    sleeps 30 s. Status `running` is written just before the command
    starts, when a signal would still end the runner unrecorded: a test
    that signals runs waits for their commands."""
    here = tmp_path / "commands-running"
    here.mkdir()
    code = (
        "import os, time\n"
        f"open(os.path.join({str(here)!r}, str(os.getpid())), 'w').close()\n"
        "time.sleep(30)\n"
    )
    return code, str(here)


def test_local_engine_cancel(tmp_path):
    code, here = _slow(tmp_path)
    (tmp_path / "slow.py").write_text(code)
    slow = f"python {tmp_path / 'slow.py'}"
    staged = [_stage(tmp_path, slow) for _ in range(3)]
    e = engine.get_engine("local", 2)
    futs = [e.submit(r, quiet=True) for r in staged]
    wait_for(
        lambda: len(os.listdir(here)) == 2,
        "the commands of the first two of three runs to run (--jobs 2)",
    )
    assert [runs.run_status(r) for r in staged[:2]] == ["running"] * 2
    # Never more than two at once: the third is still waiting.
    assert runs.run_status(staged[2]) == "staged"
    e.cancel()
    e.close()
    assert [runs.run_status(r) for r in staged] == [
        "terminated",
        "terminated",
        "staged",
    ]
    assert futs[2].cancelled()
    # Ended by the cancel, not by running their 30 s (recorded times).
    for r in staged[:2]:
        assert run_records.read_proc_signal(r) == "SIGTERM"
        took = run_meta.read_timestamp(r, "stopped") - run_meta.read_timestamp(
            r, "started"
        )
        assert took < 30_000_000, took


def test_unknown_engine():
    with pytest.raises(GageError, match="unknown engine 'x'"):
        engine.get_engine("x", 1)
    with pytest.raises(GageError, match="--jobs"):
        engine.get_engine("local", 0)


@pytest.mark.parametrize(
    "args",
    [["repro", "--jobs", "2", "-q"], ["run", "a", "x=[1,2]", "--jobs", "2", "-y"]],
)
def test_ctrl_c_ends_runs_terminated(tmp_path, args):
    project = tmp_path / "p"
    project.mkdir()
    code, here = _slow(tmp_path)
    (project / "gage.toml").write_text(
        '[a]\nexec = "python a.py"\nconfig = "a.py#x"\n'
        f'[b]\nexec = "python {tmp_path / "slow.py"}"\n'
    )
    (tmp_path / "slow.py").write_text(code)
    (project / "a.py").write_text("x = 0\n" + code)
    env = {**os.environ, "GAGE_RUNS": str(tmp_path / "runs")}
    p = subprocess.Popen(
        [sys.executable, "-m", "gage", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    home = str(tmp_path / "runs")

    def two_running():
        if p.poll() is not None:
            raise AssertionError(f"gage exited {p.returncode}: {p.communicate()}")
        return len(os.listdir(here)) == 2

    wait_for(two_running, "the commands of two runs to run")
    listed = runs.list_runs(home)
    assert [runs.run_status(r) for r in listed] == ["running"] * 2
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 130, (out, err)
    assert "interrupted" in err
    assert [runs.run_status(r) for r in runs.list_runs(home)] == [
        "terminated",
        "terminated",
    ]


def test_progress_line_on_a_terminal(tmp_path):
    """On a terminal, --jobs N keeps a progress line; piped output has none."""

    project = tmp_path / "p"
    project.mkdir()
    (project / "gage.toml").write_text('[a]\nexec = "python a.py"\nconfig = "a.py#x"\n')
    # The first two runs wait for each other: the line must show both
    # running and the third waiting.
    (project / "a.py").write_text("x = 0\n" + _barrier(tmp_path, 2) + "print(x)\n")
    env = {**os.environ, "GAGE_RUNS": str(tmp_path / "runs")}
    args = [sys.executable, "-m", "gage", "run", "a", "x=[1,2,3]", "--jobs", "2", "-y"]
    code, text = run_in_pty(args, cwd=project, env=env, timeout=60)
    assert code == 0
    assert "[0 done, 2 running, 1 waiting]" in text
    assert "\r\x1b[K" in text  # the line is redrawn in place
    piped = subprocess.run(args, cwd=project, env=env, capture_output=True, text=True)
    assert piped.returncode == 0
    assert "running" not in piped.stdout + piped.stderr
