"""Scalars cost nothing a user would notice. Whole `gage` processes, side
by side in one run on this machine:

- output capture: `gage run loud` prints SIZE_MB MB of 100-byte lines,
  one in 100 a scalar line (`step N: loss=... acc=...`), with the
  default patterns, next to the same op with `output-scalars = false`
  (the floor: no scalars read at all). Target: under 1.3x the floor.
  Then the worst case for the default patterns, `logs`: every line has
  a `:` (a log with timestamps), so every line is matched (reported,
  target under 2x).
- `gage runs` in a home where one run has 1,000,000 points, next to the
  same home before that run had any (its scalars moved away): the
  listing reads no point. Target: under 1.2x (median of ROUNDS).
- `gage compare --cols loss.min --sort loss.min` and `gage show` of that
  run (reads the small aggregate file and, on a terminal only, a
  sample): reported, target under 1 s each.

Exit 1 when a target is missed. `SIZE_MB`, `ROUNDS` scale it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from gage._internal.home import runs as runs_mod
from gage._internal.lifecycle import scalars
from gage._internal.store import run_meta
from gage._internal.test import delete_temp_dir

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")
SIZE_MB = int(os.environ.get("SIZE_MB", "100"))
ROUNDS = int(os.environ.get("ROUNDS", "7"))
CAPTURE_TARGET = 1.3
RUNS_TARGET = 1.2

_LOUD = f"""
import sys
plain = "y" * 99 + "\\n"
out = sys.stdout
for i in range({SIZE_MB} * 100):
    out.write(plain * 99)
    out.write("step %d: loss=%.6f acc=%.4f\\n" % (i, 1 / (i + 1), i / 1e6))
"""

_LOGS = f"""
import sys
line = "12:30:01 INFO worker 3 finished a task in 0.25 s, queue 17 x=1\\n"
out = sys.stdout
for i in range({SIZE_MB} * 160):
    out.write(line * 100)
"""


def main() -> int:
    project = tempfile.mkdtemp(prefix="gage-bench-scalars-")
    home = tempfile.mkdtemp(prefix="gage-bench-scalars-runs-")
    env = dict(os.environ, GAGE_RUNS=home)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    try:
        with open(os.path.join(project, "loud.py"), "w") as f:
            f.write(_LOUD)
        with open(os.path.join(project, "logs.py"), "w") as f:
            f.write(_LOGS)
        with open(os.path.join(project, "gage.toml"), "w") as f:
            f.write(
                '[loud]\nexec = "python loud.py"\n\n'
                '[quiet]\nexec = "python loud.py"\noutput-scalars = false\n\n'
                '[logs]\nexec = "python logs.py"\n\n'
                '[logs-off]\nexec = "python logs.py"\noutput-scalars = false\n'
            )
        ok = _capture(project, env)
        ok = _listing(project, env, home) and ok
        print("ok" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        delete_temp_dir(project)
        delete_temp_dir(home)


def _capture(project: str, env: dict[str, str]) -> bool:
    times: dict[str, list[float]] = {"loud": [], "quiet": []}
    for _ in range(3):
        for op in ("quiet", "loud"):
            times[op].append(_time([GAGE, "run", op, "-y", "-q"], project, env))
    loud, quiet = min(times["loud"]), min(times["quiet"])
    recs = runs_mod.list_runs(env["GAGE_RUNS"])
    points = max(scalars.aggregates(r).get("loss.count", 0) for r in recs)
    ratio = loud / quiet
    print(
        f"gage run, {SIZE_MB} MB output, output-scalars = false  {quiet:6.2f} s\n"
        f"gage run, {SIZE_MB} MB output, default patterns       {loud:6.2f} s"
        f"  ({ratio:.2f}x; {int(points)} loss points)  target < {CAPTURE_TARGET}x"
    )
    dense = {
        op: min(_time([GAGE, "run", op, "-y", "-q"], project, env) for _ in range(3))
        for op in ("logs-off", "logs")
    }
    dense_ratio = dense["logs"] / dense["logs-off"]
    print(
        f"gage run, {SIZE_MB} MB of log lines, scalars off    "
        f"{dense['logs-off']:6.2f} s\n"
        f"gage run, {SIZE_MB} MB of log lines, default        {dense['logs']:6.2f} s"
        f"  ({dense_ratio:.2f}x; every line has ':')  target < 2x"
    )
    return ratio < CAPTURE_TARGET and points == SIZE_MB * 100 and dense_ratio < 2


def _listing(project: str, env: dict[str, str], home: str) -> bool:
    run = runs_mod.list_runs(home)[0]
    shutil.rmtree(run_meta.run_meta_path(run, "scalars"), ignore_errors=True)
    runs_cmd = [GAGE, "runs"]
    before = _median(runs_cmd, project, env)
    rec = scalars.Recorder(run)
    for step in range(1_000_000):
        rec.add("loss", step, 1 / (step + 1))
    rec.flush()
    size = os.path.getsize(run_meta.run_meta_path(run, "scalars", "points")) / 1e6
    after = _median(runs_cmd, project, env)
    compare = _median(
        [GAGE, "compare", "--cols", "loss.min", "--sort", "loss.min"], project, env
    )
    show = _median([GAGE, "show", run.id], project, env)
    ratio = after / before
    print(
        f"gage runs, no scalars                  {before * 1000:7.1f} ms\n"
        f"gage runs, a run with 1,000,000 points {after * 1000:7.1f} ms"
        f"  ({ratio:.2f}x; points file {size:.0f} MB)  target < {RUNS_TARGET}x\n"
        f"gage compare --cols loss.min           {compare * 1000:7.1f} ms\n"
        f"gage show (that run)                   {show * 1000:7.1f} ms"
    )
    return ratio < RUNS_TARGET and compare < 1 and show < 1


def _median(args: list[str], cwd: str, env: dict[str, str]) -> float:
    return statistics.median(_time(args, cwd, env) for _ in range(ROUNDS))


def _time(args: list[str], cwd: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(args, cwd=cwd, env=env, capture_output=True, timeout=900)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args[1:])} failed: {p.stderr.decode()[-500:]}")
    return wall


if __name__ == "__main__":
    sys.exit(main())
