"""Bench: a small full run costs what its work costs (issue 21).

A project of 100 source files and a 1 MiB `project-files` dependency.
Whole processes, interleaved rounds, medians of wall and CPU (user +
sys, children included: on a shared machine the wall time also counts
waiting for a core):

- floor: copy + chmod + sha256 of the same files, a Python process
- `python -c pass` and `gage --help` (start-up)
- `gage run train -y` (a repeat run: the digest cache is warm)
- Guild AI's `guild run train -y` on the same project (when `guild` is
  found in $GUILD_BIN or /tmp/peer-guild/bin)

Targets: gage run <= 0.25 x Guild; `gage --help` <= python -c pass +
10 ms.

Usage: .venv/bin/python bench/bench_small_run.py [ROUNDS]
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")
GAGE_TOML = """
[train]
exec = "python train.py"
sourcecode = ["**/*.py"]
depends = { type = "project-files", files = "data/big.bin" }
"""
GUILD_YML = """
train:
  main: train
  requires:
    - file: data/big.bin
      target-path: data
"""
TRAIN_PY = "import os\nprint(os.path.getsize('data/big.bin'))\n"


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    tmp = tempfile.mkdtemp(prefix="gage-bench-small-")
    try:
        return _bench(tmp, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(tmp: str, rounds: int) -> int:
    project = os.path.join(tmp, "project")
    _make_project(project)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["GAGE_RUNS"] = os.path.join(tmp, "runs")
    env["GUILD_HOME"] = os.path.join(tmp, "guild")
    os.makedirs(env["GUILD_HOME"])
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "gage --help": [GAGE, "--help"],
        "gage run (repeat)": [GAGE, "run", "train", "-y"],
    }
    guild = _guild_bin()
    if guild:
        cmds["guild run"] = [guild, "run", "train", "-y"]
    for cmd in cmds.values():  # first runs: caches warm
        _timed(cmd, project, env)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    floor: list[tuple[float, float]] = []
    for i in range(rounds):
        floor.append(_floor(project, os.path.join(tmp, f"floor{i}")))
        for name, cmd in cmds.items():
            times[name].append(_timed(cmd, project, env))
    med = {name: _median(t) for name, t in times.items()}
    med["floor: copy+chmod+sha256"] = _median(floor)
    _report(med, rounds)
    return 0


def _report(med: dict[str, tuple[float, float]], rounds: int) -> None:
    print(f"100 source files + 1 MiB dependency; medians of {rounds}")
    print(f"{'':28} {'wall s':>7} {'cpu s':>7}")
    for name, (wall, cpu) in med.items():
        print(f"{name:28} {wall:7.3f} {cpu:7.3f}")
    run = med["gage run (repeat)"]
    if "guild run" in med:
        guild = med["guild run"]
        ratio, cpu_ratio = run[0] / guild[0], run[1] / guild[1]
        mark = "ok" if ratio <= 0.25 else "MISSED"
        print(
            f"gage run / guild run: {ratio:.2f} wall, {cpu_ratio:.2f} cpu "
            f"(target <= 0.25) {mark}"
        )
    else:
        print("guild not found: set GUILD_BIN (pip install guildai in a venv)")
    floor = med["floor: copy+chmod+sha256"]
    print(f"gage run / floor: {run[0] / floor[0]:.2f} wall")
    over = (med["gage --help"][0] - med["python -c pass"][0]) * 1000
    mark = "ok" if over <= 10 else "MISSED"
    print(f"gage --help over python -c pass: {over:.1f} ms (target <= 10) {mark}")


def _make_project(project: str) -> None:
    os.makedirs(os.path.join(project, "data"))
    for i in range(99):
        d = os.path.join(project, "src", f"pkg{i // 10}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"mod{i}.py"), "w") as f:
            f.write(f"VALUE = {i}\n")
    for name, text in (
        ("train.py", TRAIN_PY),
        ("gage.toml", GAGE_TOML),
        ("guild.yml", GUILD_YML),
    ):
        with open(os.path.join(project, name), "w") as f:
            f.write(text)
    data = os.path.join(project, "data", "big.bin")
    with open(data, "wb") as f:
        f.write(os.urandom(1024 * 1024))
    old = time.time() - 3600
    for dirpath, _dirs, files in os.walk(project):
        for name in files:
            os.utime(os.path.join(dirpath, name), (old, old))


_FLOOR = """
import hashlib, os, shutil, sys
project, dest = sys.argv[1:]
for dirpath, _dirs, files in os.walk(project):
    rel = os.path.relpath(dirpath, project)
    os.makedirs(os.path.join(dest, rel), exist_ok=True)
    for name in files:
        if name.endswith(".py") or name == "big.bin":
            target = os.path.join(dest, rel, name)
            shutil.copyfile(os.path.join(dirpath, name), target)
            os.chmod(target, 0o444)
            with open(target, "rb") as f:
                hashlib.file_digest(f, "sha256")
"""


def _floor(project: str, dest: str) -> tuple[float, float]:
    """Copy, chmod and sha256 each file: a Python process that does
    only that."""
    return _timed([sys.executable, "-c", _FLOOR, project, dest], project, {})


def _guild_bin() -> str:
    for d in (os.environ.get("GUILD_BIN", ""), "/tmp/peer-guild/bin"):
        path = os.path.join(d, "guild")
        if d and os.access(path, os.X_OK):
            return path
    return ""


def _timed(args: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _median(results: list[tuple[float, float]]) -> tuple[float, float]:
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
    )


if __name__ == "__main__":
    sys.exit(main())
