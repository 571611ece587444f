"""The slurm engine against plain sbatch: what gage costs per run.

On a single-node Slurm cluster started for the bench (gage/_internal/test_slurm:
munged, slurmctld, slurmd from the OS packages; root only), one op that
prints a line, run N times one after the other, timed as whole processes
in one bench run:

- floor `sbatch --wait`: N times `sbatch --wait --wrap 'python op.py'`
  in a copy of the project (the plain way to run the same command as a
  job and wait for it)
- floor `sbatch + squeue`: N times `sbatch --parsable` then `squeue`
  every 50 ms until the job is COMPLETED (the quickest a script around
  Slurm's commands can see a job end)
- gage: `gage run op i=[1..N] --engine slurm --jobs 1 -y -q`: a batch of
  N trials, each staged here, submitted as a job that verifies and
  starts its run on the node, its end seen from its record

Prints the time per run of each and gage's overhead per run against
each floor, (T_gage - T_floor) / N. Target: under 0.2 s per run against
`sbatch --wait`. Exits 1 when it is missed, 0 with a line when no
cluster can run here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

from gage._internal import test_slurm as slurm_cluster

RUNS = 6
TARGET = 0.2

GAGE = os.path.join(os.path.dirname(sys.executable), "gage")

GAGE_TOML = """
[op]
exec = "python op.py"
config = "op.py"
"""

OP_PY = """
i = 0
print(f"run {i}")
"""


def main() -> int:
    why = slurm_cluster.unavailable()
    if why:
        print(f"bench_slurm: skipped: {why}")
        return 0
    tmp = tempfile.mkdtemp(prefix="gage-bench-slurm-")
    cluster = slurm_cluster.start(os.path.join(tmp, "cluster"))
    try:
        return _bench(cluster, tmp)
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(cluster, tmp: str) -> int:
    project = os.path.join(tmp, "project")
    os.makedirs(project)
    for name, text in (("gage.toml", GAGE_TOML), ("op.py", OP_PY)):
        with open(os.path.join(project, name), "w") as f:
            f.write(text)
    plain = os.path.join(tmp, "plain")
    shutil.copytree(project, plain)
    env = cluster.env
    _sbatch_wait(plain, env, 1)  # the first job of a cluster is slow
    t_wait = _sbatch_wait(plain, env, RUNS)
    t_poll = _sbatch_poll(plain, env, RUNS)
    t_gage = _gage(project, env, RUNS)
    rows = [
        ("sbatch --wait", t_wait),
        ("sbatch + squeue 50 ms", t_poll),
        ("gage --engine slurm", t_gage),
    ]
    print(f"{RUNS} runs of one command, one after the other, on Slurm:")
    for name, t in rows:
        print(f"  {name:24} {t:6.2f} s  {t / RUNS:5.2f} s/run")
    over_wait = (t_gage - t_wait) / RUNS
    over_poll = (t_gage - t_poll) / RUNS
    print(f"gage / sbatch --wait:        {t_gage / t_wait:.2f}x")
    print(f"gage / sbatch + squeue:      {t_gage / t_poll:.2f}x")
    print(f"gage overhead per run vs sbatch --wait:  {over_wait:+.2f} s")
    print(f"gage overhead per run vs sbatch + squeue: {over_poll:+.2f} s")
    ok = over_wait < TARGET
    print(f"target (< {TARGET} s/run vs sbatch --wait): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def _sbatch_wait(cwd: str, env, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run(
            ["sbatch", "--wait", "-Q", "--output=/dev/null", "--wrap", "python op.py"],
            cwd=cwd,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return time.perf_counter() - t0


def _sbatch_poll(cwd: str, env, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        out = subprocess.run(
            ["sbatch", "--parsable", "--output=/dev/null", "--wrap", "python op.py"],
            cwd=cwd,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        job = out.strip().split(";")[0]
        while True:
            state = subprocess.run(
                ["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"],
                env=env,
                capture_output=True,
                text=True,
            ).stdout.strip()
            if state == "COMPLETED":
                break
            time.sleep(0.05)
    return time.perf_counter() - t0


def _gage(cwd: str, env, n: int) -> float:
    values = ",".join(str(i) for i in range(1, n + 1))
    t0 = time.perf_counter()
    subprocess.run(
        [
            GAGE,
            "run",
            "op",
            f"i=[{values}]",
            "--engine",
            "slurm",
            "-j",
            "1",
            "-y",
            "-q",
        ],
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
