"""Pipelines and batches: parallel jobs, and the cost of an up-to-date repro.

Measured in one run on this machine, as whole `gage` processes:

- `python -c pass` (the floor: interpreter start-up)
- a 4-op diamond (a -> b, a -> c, b + c -> d) of ops that sleep 1 s:
  `gage repro --jobs 1` and `gage repro --jobs 2` from no runs (b and c
  run at once with 2 jobs: the floor is 3 s instead of 4 s)
- a 2x2 batch of the same op (`gage run b x=[1,2] y=[1,2]`), `--jobs 1`
  and `--jobs 2`
- `gage repro` when nothing is stale (all 4 ops up to date) against one
  `gage run a --needed` that is not needed (target: under 1.5x)

The timed runs repeat ROUNDS times (medians); the no-op commands more.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from gage._internal.test import delete_temp_dir

ROUNDS = 3
FAST_ROUNDS = 11
UP_TO_DATE_RATIO = 1.5
SLEEP = 1.0

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")

GAGE_TOML = """
[a]
exec = "python op.py"
config = "op.py#x,y"

[b]
exec = "python op.py"
config = "op.py#x,y"
depends = {{ type = "run-files", run-select = "a", files = "out.txt" }}

[c]
exec = "python op.py"
config = "op.py#x,y"
depends = {{ type = "run-files", run-select = "a", files = "out.txt" }}

[d]
exec = "python op.py"
config = "op.py#x,y"
depends = [
  {{ type = "run-files", run-select = "b", files = "out.txt", target-path = "b" }},
  {{ type = "run-files", run-select = "c", files = "out.txt", target-path = "c" }},
]
"""

OP_PY = f"""
import time
x = 1
y = 1
time.sleep({SLEEP})
open("out.txt", "w").write(f"{{x}} {{y}}")
"""


def main() -> int:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    project = tempfile.mkdtemp(prefix="gage-bench-pipeline-")
    runs = tempfile.mkdtemp(prefix="gage-bench-pipeline-runs-")
    env["GAGE_RUNS"] = runs
    try:
        with open(os.path.join(project, "gage.toml"), "w") as f:
            f.write(GAGE_TOML.format())
        with open(os.path.join(project, "op.py"), "w") as f:
            f.write(OP_PY)
        timed = {
            "repro --jobs 1": [GAGE, "repro", "-q", "--jobs", "1"],
            "repro --jobs 2": [GAGE, "repro", "-q", "--jobs", "2"],
            "batch 2x2 --jobs 1": [GAGE, "run", "b", "x=[1,2]", "y=[1,2]", "-y", "-q"],
            "batch 2x2 --jobs 2": [
                GAGE,
                "run",
                "b",
                "x=[1,2]",
                "y=[1,2]",
                "-y",
                "-q",
                "--jobs",
                "2",
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in timed}
        for _ in range(ROUNDS):
            for name, cmd in timed.items():
                _clear(runs)
                if name.startswith("batch"):  # b needs a run of a
                    _run([GAGE, "run", "a", "-y", "-q"], project, env)
                times[name].append(_time(cmd, project, env))
        # Up to date: every op has a run with its current inputs.
        _clear(runs)
        _run([GAGE, "repro", "-q", "--jobs", "2"], project, env)
        fast = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "run a --needed": [GAGE, "run", "a", "--needed", "-y", "-q"],
            "repro (up to date)": [GAGE, "repro", "-q"],
        }
        for cmd in fast.values():  # warm up
            _run(cmd, project, env)
        for name in fast:
            times[name] = []
        for _ in range(FAST_ROUNDS):
            for name, cmd in fast.items():
                times[name].append(_time(cmd, project, env))
    finally:
        shutil.rmtree(project, ignore_errors=True)
        delete_temp_dir(runs)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:20} median {med[name]:7.3f} s   best {min(t):7.3f} s")
    speedup = med["repro --jobs 1"] / med["repro --jobs 2"]
    print(
        f"diamond of 4 x {SLEEP:.0f} s ops: --jobs 2 is {speedup:.2f}x faster than "
        f"--jobs 1 (ideal 4/3 = 1.33x)"
    )
    bspeed = med["batch 2x2 --jobs 1"] / med["batch 2x2 --jobs 2"]
    print(f"2x2 batch: --jobs 2 is {bspeed:.2f}x faster than --jobs 1 (ideal 2x)")
    ratio = med["repro (up to date)"] / med["run a --needed"]
    ok = ratio < UP_TO_DATE_RATIO
    print(
        f"repro with nothing stale: {ratio:.2f}x one not-needed gage run --needed "
        f"({med['repro (up to date)'] / med['python -c pass']:.1f}x python -c pass; "
        f"target < {UP_TO_DATE_RATIO}x) {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


def _clear(runs: str) -> None:
    for name in os.listdir(runs):
        path = os.path.join(runs, name)
        if os.path.isdir(path):
            delete_temp_dir(path)
        else:
            os.unlink(path)


def _run(cmd: list[str], cwd: str, env: dict[str, str]) -> None:
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def _time(cmd: list[str], cwd: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    _run(cmd, cwd, env)
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
