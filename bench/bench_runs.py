"""`gage runs`, `gage show NAME` and `gage run --needed` with many runs.

Makes a runs home with one real completed run of op `noop` (made by
`gage run`), then N runs of op `train` written directly with run_meta
functions (cheap: no staging, no process), and times whole `gage`
processes against `python -c pass` in the same bench run:

- `gage runs` (the first page: the newest 20 runs)
- `gage show NAME` (a run by name, from the middle of the home)
- `gage run noop --needed -y` (not needed: the `noop` run matches)
- `gage runs --where 'lr >= N/2 and loss < 0.5 and status = completed'`
  (issue 27: config, summary and status, served by the runs index)
- `gage select --where 'lr < 100 or label ~ best'` (prints every match)

Targets (issues 13 and 27): each under 4x `python -c pass` at 10,000 runs, and
growing no faster than linearly beyond (checked at 20,000). Issue 21:
`gage runs`, `gage show NAME` and `gage run --needed` at most 3x at any
size (100,000 runs: `bench_runs.py 100000`), and the one-time build of
the runs index from meta (the first `gage runs` in a home without one,
timed with the index removed) under 30 s at 100,000 runs.

Usage: python bench/bench_runs.py [--home DIR] [N ...]   (default: 10000 20000)

`--home DIR` keeps the runs home (and project) in DIR and reuses the
runs already made there: making 100,000 runs takes minutes (each run is
about 15 meta files, written by run_meta as staging writes them).

Exits 1 when a target is missed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from gage._internal.lifecycle.run_stage import init_run_meta, make_run
from gage._internal.store import run_meta
from gage._internal.test import delete_temp_dir
from gage._internal.types import OpCmd, OpDef, OpRef

ROUNDS = 5
RATIO = 4.0
RATIO_21 = 3.0  # issue 21: runs, show NAME and --needed, any size
RATIO_21_CMDS = ("gage runs", "gage show NAME", "gage run --needed")
BUILD_S = 30.0  # issue 21: the index of 100,000 runs
SETTLE_S = 3.5

BIN = os.path.dirname(sys.executable)
GAGE = os.path.join(BIN, "gage")


def main(argv: list[str]) -> int:
    keep = ""
    if argv[:1] == ["--home"]:
        keep, argv = argv[1], argv[2:]
    sizes = [int(a) for a in argv] or [10_000, 20_000]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    project, home = _dirs(keep)
    env["GAGE_RUNS"] = home
    ok = True
    results = []
    try:
        if not os.path.exists(os.path.join(project, "gage.toml")):
            with open(os.path.join(project, "gage.toml"), "w") as f:
                f.write('[noop]\nexec = ["python", "-c", "pass"]\n')
            _gage(["run", "noop", "-y", "-q"], project, env)
        for size in sizes:
            start = time.perf_counter()
            made = _count_runs(home) - 1  # the noop run
            _make_runs(home, size - made)
            make_s = time.perf_counter() - start
            build_s = _build_index(project, home, env)
            time.sleep(SETTLE_S)  # a home of old runs: no stat too recent to trust
            name = _middle_name(home)
            cmds = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "gage runs": [GAGE, "runs"],
                "gage show NAME": [GAGE, "show", name],
                "gage run --needed": [GAGE, "run", "noop", "--needed", "-y", "-q"],
                "gage runs --where": [
                    GAGE,
                    "runs",
                    "--where",
                    f"lr >= {size // 2} and loss < 0.5 and status = completed",
                ],
                "gage select --where": [
                    GAGE,
                    "select",
                    "--where",
                    "lr < 100 or label ~ best",
                ],
            }
            med = _bench(cmds, project, env)
            results.append((size, med, make_s, build_s))
            ok = _report(size, med, make_s, build_s) and ok
    finally:
        if not keep:
            delete_temp_dir(project)
            delete_temp_dir(home)
    if len(results) > 1:
        ok = _report_growth(results) and ok
    return 0 if ok else 1


def _dirs(keep: str) -> tuple[str, str]:
    """The project and runs home: in `keep` (made once, reused), else
    temp dirs."""
    if not keep:
        return (
            tempfile.mkdtemp(prefix="gage-bench-runs-"),
            tempfile.mkdtemp(prefix="gage-bench-runs-home-"),
        )
    dirs = os.path.join(keep, "project"), os.path.join(keep, "runs")
    for d in dirs:
        os.makedirs(d, exist_ok=True)
    return dirs


def _count_runs(home: str) -> int:
    return sum(1 for n in os.listdir(home) if n.endswith(run_meta.META_SUFFIX))


def _middle_name(home: str) -> str:
    """The name of a run from the middle of the home."""
    metas = sorted(n for n in os.listdir(home) if n.endswith(run_meta.META_SUFFIX))
    return run_meta.read_name(os.path.join(home, metas[len(metas) // 2]))


def _build_index(project: str, home: str, env: dict[str, str]) -> float:
    """The time of a first `gage runs` in a home without an index: the
    index built from the meta of every run."""
    path = run_meta.runs_index_path(home)
    for p in (path, path + "-journal"):
        if os.path.exists(p):
            os.unlink(p)
    return _time([GAGE, "runs"], project, env)


def _make_runs(home: str, n: int) -> list[str]:
    """N completed `train` runs, written with run_meta (no staging)."""
    opdef = OpDef("train", {"exec": "python train.py", "config": "train.py"})
    cmd = OpCmd(["python", "train.py"], {})
    names = []
    for i in range(n):
        run = make_run(home)
        init_run_meta(run, OpRef("bench", "train"), opdef, cmd, {"lr": i}, {})
        for ts in ("staged", "started", "stopped"):
            run_meta.write_timestamp(run, ts)
        run_meta.write_exit_code(run, 0)
        run_meta.write_summary(run, {"loss": 1.0 / (i + 1)})
        names.append(run.name)
    return names


def _bench(
    cmds: dict[str, list[str]], cwd: str, env: dict[str, str]
) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for cmd in cmds.values():  # warm up
        _time(cmd, cwd, env)
    for _ in range(ROUNDS):  # interleaved: load changes hit all alike
        for name, cmd in cmds.items():
            times[name].append(_time(cmd, cwd, env))
    return {name: statistics.median(t) for name, t in times.items()}


def _report(size: int, med: dict[str, float], make_s: float, build_s: float) -> bool:
    base = med["python -c pass"]
    print(f"== {size:,} runs (made in {make_s:.1f} s)")
    ok = build_s < BUILD_S or size > 100_000
    print(
        f"  {'index build':18} {build_s:7.2f} s   "
        f"(target < {BUILD_S:.0f} s at 100,000) {'ok' if ok else 'MISSED'}"
    )
    for name, t in med.items():
        ratio = t / base
        if name == "python -c pass":
            print(f"  {name:18} {t * 1000:7.1f} ms")
            continue
        target = RATIO_21 if name in RATIO_21_CMDS else RATIO
        hit = ratio <= target
        ok = ok and hit
        print(
            f"  {name:18} {t * 1000:7.1f} ms  {ratio:4.2f}x  "
            f"(target <= {target}x) {'ok' if hit else 'MISSED'}"
        )
    return ok


def _report_growth(results: list[tuple[int, dict[str, float], float, float]]) -> bool:
    """Time over the floor must grow no faster than the number of runs."""
    (n0, m0, _, _), (n1, m1, _, _) = results[0], results[-1]
    ok = True
    for name in m0:
        if name == "python -c pass":
            continue
        over0 = m0[name] - m0["python -c pass"]
        over1 = m1[name] - m1["python -c pass"]
        growth = over1 / over0 if over0 > 0 else 1.0
        hit = growth <= (n1 / n0) * 1.25
        ok = ok and hit
        print(
            f"  {name:18} over the floor: {over0 * 1000:.1f} ms at {n0:,}, "
            f"{over1 * 1000:.1f} ms at {n1:,} ({growth:.2f}x for {n1 / n0:.0f}x runs) "
            f"{'ok' if hit else 'MISSED'}"
        )
    return ok


def _gage(args: list[str], cwd: str, env: dict[str, str]) -> None:
    subprocess.run([GAGE] + args, cwd=cwd, env=env, check=True, capture_output=True)


def _time(cmd: list[str], cwd: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode()}"
        )
    return elapsed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
