"""The dask engine against local runs: 8 trials of an op that sleeps 1 s.

Measured in one run on this machine, as whole `gage` processes, each a
batch of 8 trials (`gage run sleep i=[1,...,8] -y -q`):

- `--jobs 1` on this machine (the sequential time: the floor is 8 s)
- `--jobs 2` on this machine (floor 4 s)
- `--engine dask --jobs 2` on a cluster of two workers that is already
  up (a `dask scheduler` and two `dask worker` processes on 127.0.0.1,
  started before the clock): staging here, each run packed, sent,
  unpacked, verified and started by gage on a worker, its record brought
  back (floor 4 s)
- `--engine dask --jobs 2` with no scheduler: gage starts a local
  cluster of two workers for the command (its start-up included)

Targets: the two-worker cluster under 0.6x the sequential time, and
gage's overhead per run on it under 0.3 s. Two figures of overhead per
run are printed for each row: `all in`, (wall - floor) / (trials per
worker), which charges the command's fixed costs (Python and Dask
imports, connecting, the batch table) to the runs; and for the cluster
`per run`, the marginal cost of a run: a batch of 2 trials is timed too,
and (T8 - T2 - 3 s) / 3 is what each further run (staged, packed, sent,
verified and started on a worker, its record brought home) costs beyond
its sleep. The overhead target is on the marginal figure.

Exits 1 when a target is missed.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time

import gage
from gage._internal.test import delete_temp_dir, start_dask_cluster

ROUNDS = 3
TRIALS = 8
SLEEP = 1.0
WORKERS = 2
RATIO_TARGET = 0.6
OVERHEAD_TARGET = 0.3

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")

GAGE_TOML = """
[sleep]
exec = "python op.py"
config = "op.py"
"""

OP_PY = f"""
import time
i = 0
time.sleep({SLEEP})
open("out.txt", "w").write(str(i))
"""


def main() -> int:
    # gage's bytecode is compiled first, as an installed gage's is: with
    # PYTHONDONTWRITEBYTECODE set and none written, every gage process,
    # worker and run starter would compile gage again, and the figures
    # would measure the compiler.
    compileall.compile_dir(os.path.dirname(gage.__file__), quiet=1)
    # Every row's runs find the same `python` first: the cluster's
    # workers (and so their runs) inherit this process's environment.
    # (They did not: runs on the cluster started the op through a slower
    # `python` further down PATH, a pyenv shim here, 70 ms more per run.)
    os.environ["PATH"] = BIN + os.pathsep + os.environ.get("PATH", "")
    env = dict(os.environ)
    for name in ("GAGE_ENGINE", "GAGE_SCHEDULER", "GAGE_SCHEDULER_FILE"):
        env.pop(name, None)
    project = tempfile.mkdtemp(prefix="gage-bench-dask-")
    runs = tempfile.mkdtemp(prefix="gage-bench-dask-runs-")
    env["GAGE_RUNS"] = runs
    trials = ",".join(str(i) for i in range(1, TRIALS + 1))
    batch = ["run", "sleep", f"i=[{trials}]", "-y", "-q"]
    cluster = None
    try:
        with open(os.path.join(project, "gage.toml"), "w") as f:
            f.write(GAGE_TOML)
        with open(os.path.join(project, "op.py"), "w") as f:
            f.write(OP_PY)
        seq = _time(batch + ["--jobs", "1"], project, env)
        local2 = _time(batch + ["--jobs", "2"], project, env)
        cluster = start_dask_cluster(WORKERS)
        sched = ["--engine", "dask", "--scheduler-file", cluster.scheduler_file]
        dask2 = _time(batch + ["--jobs", "2"] + sched, project, env)
        two = ["run", "sleep", "i=[1,2]", "-y", "-q", "--jobs", "2"]
        dask_two = _time(two + sched, project, env)
        fresh = _time(batch + ["--jobs", "2", "--engine", "dask"], project, env)
    finally:
        if cluster is not None:
            cluster.close()
        delete_temp_dir(project)
        delete_temp_dir(runs)
    per_worker = TRIALS / WORKERS
    floor2 = per_worker * SLEEP
    rows = [
        ("local --jobs 1", seq, TRIALS * SLEEP, TRIALS),
        ("local --jobs 2", local2, floor2, per_worker),
        ("dask, 2-worker cluster up", dask2, floor2, per_worker),
        ("dask, local cluster started", fresh, floor2, per_worker),
    ]
    print(f"{TRIALS} trials of an op that sleeps {SLEEP:g} s (median of {ROUNDS})")
    print(f"{'':30} {'wall':>8} {'floor':>7} {'x seq':>7} {'all in/run':>11}")
    for name, wall, floor, n in rows:
        over = (wall - floor) / n
        print(f"{name:30} {wall:7.2f}s {floor:6.1f}s {wall / seq:6.2f}x {over:10.3f}s")
    extra = per_worker - 1  # rounds of 2 runs beyond the 2-trial batch
    overhead = (dask2 - dask_two - extra * SLEEP) / extra
    print(
        f"dask cluster, 2 trials: {dask_two:.2f}s; marginal cost of a run "
        f"beyond its sleep: {overhead:.3f}s"
    )
    ratio = dask2 / seq
    ok_ratio = ratio < RATIO_TARGET
    ok_over = overhead < OVERHEAD_TARGET
    print(
        f"dask cluster: {ratio:.2f}x the sequential time "
        f"(target < {RATIO_TARGET}x) {'ok' if ok_ratio else 'MISSED'}"
    )
    print(
        f"dask cluster: {overhead:.3f} s of gage overhead per run "
        f"(target < {OVERHEAD_TARGET} s) {'ok' if ok_over else 'MISSED'}"
    )
    return 0 if ok_ratio and ok_over else 1


def _time(args: list[str], cwd: str, env: dict[str, str]) -> float:
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        p = subprocess.run(
            [GAGE, *args], cwd=cwd, env=env, capture_output=True, text=True
        )
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise SystemExit(f"gage {' '.join(args)} failed:\n{p.stdout}{p.stderr}")
    return statistics.median(times)


if __name__ == "__main__":
    sys.exit(main())
