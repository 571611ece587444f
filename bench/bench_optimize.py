"""`gage run --optimize`: searches of the Branin function, 40 trials.

Compares, in one run on this machine, whole `gage` processes:

- `gage run branin` (one plain run, the floor a trial is measured on;
  median of a few)
- `gage run branin x=[-5.0:10.0] y=[0.0:15.0] --optimize S --minimize
  loss --max-trials 40 --seed 1 --jobs J` for S in tpe and random, J in
  1 and 4: wall time and the best value found (Branin's minimum is
  0.398)

and prints gage's overhead per trial: a search's time per trial with
`--jobs 1` less a plain run's (target: under 0.1 s; the sampler's ask
and tell, the staging and the engine are in it). Exits 1 when the
target is missed. Needs the tune extra.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from gage._internal.test import delete_temp_dir

TRIALS = 40
PLAIN_ROUNDS = 5
OVERHEAD = 0.1

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")

_OP = """\
import math
x = 2.5
y = 7.5
b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
f = (y - b * x ** 2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10
print(f"step 1: loss={f:.6f}")
"""


def main() -> int:
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    project = tempfile.mkdtemp(prefix="gage-bench-opt-")
    runs = tempfile.mkdtemp(prefix="gage-bench-opt-runs-")
    env["GAGE_RUNS"] = runs
    try:
        with open(os.path.join(project, "gage.toml"), "w") as f:
            f.write('[branin]\nexec = "python branin.py"\nconfig = "branin.py"\n')
        with open(os.path.join(project, "branin.py"), "w") as f:
            f.write(_OP)
        return _bench(project, env)
    finally:
        delete_temp_dir(project)
        delete_temp_dir(runs)


def _bench(project: str, env: dict[str, str]) -> int:
    plain_cmd = [GAGE, "run", "branin", "-y", "-q"]
    _time(plain_cmd, project, env)  # warm up: bytecode, disk cache
    plain = statistics.median(
        _time(plain_cmd, project, env)[0] for _ in range(PLAIN_ROUNDS)
    )
    print(f"plain gage run: {plain:.3f} s (median of {PLAIN_ROUNDS})")
    print(f"\n{'sampler':8} {'jobs':>4} {'wall s':>8} {'s/trial':>8} {'best':>9}")
    results = {}
    for jobs in (1, 4):
        for sampler in ("tpe", "random"):
            cmd = [
                GAGE, "run", "branin", "x=[-5.0:10.0]", "y=[0.0:15.0]",
                "--optimize", sampler, "--minimize", "loss",
                "--max-trials", str(TRIALS), "--seed", "1",
                "--jobs", str(jobs), "-y", "-q",
            ]  # fmt: skip
            wall, out = _time(cmd, project, env)
            best = _best(out)
            results[(sampler, jobs)] = (wall, best)
            print(
                f"{sampler:8} {jobs:>4} {wall:>8.2f} {wall / TRIALS:>8.3f} {best:>9.4f}"
            )
    return _report(plain, results)


def _report(plain: float, results: dict) -> int:
    over = min(results[(s, 1)][0] for s in ("tpe", "random")) / TRIALS - plain
    print(
        f"\njobs 4 / jobs 1 wall time: tpe "
        f"{results[('tpe', 4)][0] / results[('tpe', 1)][0]:.2f}x, random "
        f"{results[('random', 4)][0] / results[('random', 1)][0]:.2f}x"
    )
    for jobs in (1, 4):
        t, r = results[("tpe", jobs)][1], results[("random", jobs)][1]
        print(f"best after {TRIALS} trials, jobs {jobs}: tpe {t:.4f}, random {r:.4f}")
    print(
        f"overhead per trial (jobs 1, less a plain run): {over:+.3f} s "
        f"(target < {OVERHEAD} s): {'ok' if over < OVERHEAD else 'MISSED'}"
    )
    return 0 if over < OVERHEAD else 1


def _best(out: str) -> float:
    m = re.search(r"^Best: trial \d+ \S+ loss=(\S+)$", out, re.MULTILINE)
    if not m:
        raise SystemExit(f"no best in the search's output:\n{out}")
    return float(m.group(1))


def _time(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout}{p.stderr}")
    return dt, p.stdout


if __name__ == "__main__":
    sys.exit(main())
