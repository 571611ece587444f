"""Bench: a whole `gage run` of 5,000 source files beside a `.venv` of
20,000 (issue 21).

The project of bench_staging (5,000 small source files, all selected:
the default rules with max-matches raised; a `.venv` of 20,000 files
that the rules prune) with an op that runs `python -c pass`. Whole
processes, interleaved rounds, medians of wall and CPU (user + sys of
the children):

- floors: `cp -a --parents` of the 5,000 selected files into a new dir,
  and `sha256sum` of the copies
- `gage run train -y` in an empty runs home (first run: every file read,
  copied and hashed)
- `gage run train -y` again in that home (second run: the digest cache
  knows every file; a file seen the second time has its copy made its
  object, so that a file seen once never fills the cache)
- and a third time (repeat run: every file placed from its object by a
  hardlink, nothing read)

Targets: first run <= 1.5 x (cp -a + sha256sum); repeat run <= 1.1 x
cp -a.

Creating files on ext4 here costs 25 us to 800 us each, from one minute
to the next, and cp -a with it: `TMPDIR=/dev/shm` (tmpfs) runs the bench
where file creation is cheap and steady, which shows gage's own cost
per file.

Usage: .venv/bin/python bench/bench_source_run.py [ROUNDS]
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

sys.path.insert(0, os.path.dirname(__file__))

from bench_staging import RULES, SOURCE_FILES, _gen_project, _selected_files  # noqa: E402

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")
FIRST_RATIO = 1.5
REPEAT_RATIO = 1.1


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    work = tempfile.mkdtemp(prefix="gage-bench-source-")
    try:
        return _bench(work, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench(work: str, rounds: int) -> int:
    project = os.path.join(work, "project")
    _gen_project(project, venv=True)
    with open(os.path.join(project, "gage.toml"), "w") as f:
        rules = ", ".join(f'"{r}"' for r in RULES)
        f.write(f'[train]\nexec = "python -c pass"\nsourcecode = [{rules}]\n')
    selected = _selected_files(project)
    assert len(selected) == SOURCE_FILES + 1, len(selected)  # and gage.toml
    listing = os.path.join(work, "files.txt")
    with open(listing, "wb") as f:
        f.write(b"\0".join(p.encode() for p in selected) + b"\0")
    env = {**os.environ, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    times: dict[str, list[tuple[float, float]]] = {
        "cp -a": [],
        "sha256sum": [],
        "gage first run": [],
        "gage second run": [],
        "gage repeat run": [],
    }
    for i in range(rounds + 1):  # the first round warms the page cache
        dest = os.path.join(work, f"copy{i}")
        os.mkdir(dest)
        cp = _timed(f"xargs -0 cp -a --parents -t {dest} < {listing}", project, env)
        sha = _timed(f"xargs -0 sha256sum < {listing} > /dev/null", dest, env)
        home = os.path.join(work, f"runs{i}")
        env["GAGE_RUNS"] = home
        first = _timed(f"{GAGE} run train -y -q", project, env)
        second = _timed(f"{GAGE} run train -y -q", project, env)
        repeat = _timed(f"{GAGE} run train -y -q", project, env)
        if i:
            for name, t in zip(times, (cp, sha, first, second, repeat)):
                times[name].append(t)
    med = {
        name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t))
        for name, t in times.items()
    }
    return _report(med, rounds)


def _timed(script: str, cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU time (children's user + sys) of a shell script."""
    subprocess.run(["sync"], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", script], cwd=cwd, env=env, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _report(med: dict[str, tuple[float, float]], rounds: int) -> int:
    print(
        f"{SOURCE_FILES} source files selected beside a .venv of 20,000; "
        f"medians of {rounds}"
    )
    for name, (wall, cpu) in med.items():
        print(f"  {name:18} {wall:6.2f} s wall  {cpu:6.2f} s cpu")
    ok = True
    for name, floors, target in (
        ("gage first run", ("cp -a", "sha256sum"), FIRST_RATIO),
        ("gage repeat run", ("cp -a",), REPEAT_RATIO),
    ):
        floor_wall = sum(med[f][0] for f in floors)
        floor_cpu = sum(med[f][1] for f in floors)
        r = med[name][0] / floor_wall
        hit = r <= target
        ok = ok and hit
        print(
            f"  {name} / {' + '.join(floors)}: {r:.2f}x wall, "
            f"{med[name][1] / floor_cpu:.2f}x cpu (target <= {target}x) "
            f"{'ok' if hit else 'MISSED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
