"""Start-up cost of the `gage` command.

Compares, in one run on this machine:

- `python -c pass` (the floor: interpreter start-up)
- `gage --help` (target: under 2x `python -c pass`; the CLI imports the
  library lazily, so help needs only argparse)
- `gage run noop -y -q` of an op whose command is `python -c pass`
  (target: under 0.3 s more than `python -c pass` itself: staging,
  meta, starting, finalizing)

Each command runs several times; the median and best are shown and the
median is compared with the targets. Bytecode caches are allowed (as in
an installed package): the first, uncounted, runs write them.

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

ROUNDS = 15
HELP_RATIO = 2.0
RUN_OVERHEAD = 0.3

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")


def main() -> int:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    project = tempfile.mkdtemp(prefix="gage-bench-cli-")
    runs = tempfile.mkdtemp(prefix="gage-bench-cli-runs-")
    env["GAGE_RUNS"] = runs
    try:
        with open(os.path.join(project, "gage.toml"), "w") as f:
            f.write('[noop]\nexec = ["python", "-c", "pass"]\n')
        cmds = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "gage --help": [GAGE, "--help"],
            "gage run noop": [GAGE, "run", "noop", "-y", "-q"],
        }
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for name, cmd in cmds.items():  # warm up: bytecode caches, disk cache
            _time(cmd, project, env)
        for _ in range(ROUNDS):  # interleave so load changes hit all alike
            for name, cmd in cmds.items():
                times[name].append(_time(cmd, project, env))
    finally:
        shutil.rmtree(project, ignore_errors=True)
        delete_temp_dir(runs)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(
            f"{name:16} median {med[name] * 1000:7.1f} ms   best {min(t) * 1000:7.1f} ms"
        )
    base = med["python -c pass"]
    ratio = med["gage --help"] / base
    overhead = med["gage run noop"] - base
    ok_help = ratio < HELP_RATIO
    ok_run = overhead < RUN_OVERHEAD
    print(
        f"gage --help: {ratio:.2f}x python -c pass "
        f"(target < {HELP_RATIO}x) {'ok' if ok_help else 'MISSED'}"
    )
    print(
        f"gage run of a no-op op: {overhead * 1000:.0f} ms over python -c pass "
        f"(target < {RUN_OVERHEAD * 1000:.0f} ms) {'ok' if ok_run else 'MISSED'}"
    )
    return 0 if ok_help and ok_run else 1


def _time(cmd: list[str], cwd: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    p = subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode()}"
        )
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
