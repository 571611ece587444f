"""What recording provenance costs a run.

Compares, in one run on this machine, whole `gage run` processes of the
same op in the same project (a git repo of 200 tracked files, one of
them changed, so there is a diff to record), interleaved so that load
changes hit all alike:

- `python -c pass` (the floor: interpreter start-up)
- `gage run` with `provenance = false` (nothing recorded)
- `gage run` with provenance on (git state at staging, the run's Python
  asked for its packages at start, host facts), in a runs home in use
  (its index dir exists, so what the Python said is cached there)
- the same in a fresh runs home of its own, where nothing is cached (the
  Python is asked every time)

Target: provenance adds under 50 ms to the median run. The op's command
is `python -c pass`, the worst case: the interpreter query runs while
the command starts, and a command that ends at once leaves it nothing
to hide behind.

Exits 1 when the target is missed.
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
TARGET = 0.050

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")

_TOML = """
[on]
exec = ["python", "-c", "pass"]
sourcecode = "*.py"

[off]
exec = ["python", "-c", "pass"]
sourcecode = "*.py"
provenance = false
"""


def main() -> int:
    if shutil.which("git") is None:
        print("git not on PATH: nothing to measure")
        return 0
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    project = tempfile.mkdtemp(prefix="gage-bench-prov-")
    runs = tempfile.mkdtemp(prefix="gage-bench-prov-runs-")
    fresh = tempfile.mkdtemp(prefix="gage-bench-prov-fresh-")
    env["GAGE_RUNS"] = runs
    try:
        _make_project(project, env)
        subprocess.run([GAGE, "runs"], cwd=project, env=env, stdout=subprocess.DEVNULL)
        cmds = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "gage run (off)": [GAGE, "run", "off", "-y", "-q"],
            "gage run (on)": [GAGE, "run", "on", "-y", "-q"],
            "gage run (on, no cache)": [
                GAGE,
                "run",
                "on",
                "-y",
                "-q",
                "--runs-dir",
                fresh,
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for name, cmd in cmds.items():  # warm up: bytecode, disk cache
            _time(cmd, project, env)
        for _ in range(ROUNDS):
            for name, cmd in cmds.items():
                times[name].append(_time(cmd, project, env))
    finally:
        shutil.rmtree(project, ignore_errors=True)
        delete_temp_dir(runs)
        delete_temp_dir(fresh)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(
            f"{name:24} median {med[name] * 1000:7.1f} ms   best {min(t) * 1000:7.1f} ms"
        )
    off, on = med["gage run (off)"], med["gage run (on)"]
    added = on - off
    ok = added < TARGET
    cold = med["gage run (on, no cache)"]
    print(f"gage run, provenance on / off: {on / off:.2f}x")
    print(
        f"gage run, provenance on, nothing cached / off: {cold / off:.2f}x "
        f"({(cold - off) * 1000:.0f} ms)"
    )
    print(
        f"provenance adds {added * 1000:.0f} ms to a run "
        f"(target < {TARGET * 1000:.0f} ms) {'ok' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


def _make_project(project: str, env: dict[str, str]) -> None:
    with open(os.path.join(project, "gage.toml"), "w") as f:
        f.write(_TOML)
    os.makedirs(os.path.join(project, "pkg"))
    for i in range(200):
        with open(os.path.join(project, "pkg", f"m{i}.py"), "w") as f:
            f.write(f"x = {i}\n")
    git_env = dict(
        env,
        GIT_AUTHOR_NAME="b",
        GIT_AUTHOR_EMAIL="b@example.com",
        GIT_COMMITTER_NAME="b",
        GIT_COMMITTER_EMAIL="b@example.com",
    )
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "bench"]):
        subprocess.run(["git", *args], cwd=project, env=git_env, check=True)
    with open(os.path.join(project, "pkg", "m0.py"), "a") as f:
        f.write("y = 1\n")


def _time(cmd: list[str], cwd: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
