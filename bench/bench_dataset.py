"""Bench: a dependency that is a folder of many small files (issue 29).

A project whose op depends on `data/imgs`: N files of 4 KiB in 100
subfolders (default 20,000: 80 MB). Whole processes side by side in one
run, medians, each with its CPU time (user + sys: on a shared machine
the wall time also counts waiting for a core):

- floors: `cp -a` of the folder, `sha256sum` of its files, `cp -al`
  (hardlinks: what placing without reading costs)
- gage: first run (empty runs home), repeat run (nothing changed),
  `gage run --needed` and `gage repro --dry` (nothing changed), a run
  after one file changed
- DVC (when `dvc` is found in $DVC_BIN or /tmp/peer-dvc/bin): `dvc add`
  (first), `dvc status`, `dvc checkout` of the removed folder

Targets: first <= 1.5 x (cp -a + sha256sum); repeat <= 0.5 x cp -a;
--needed and repro --dry < 0.3 s; one changed file: one new object.

Usage: .venv/bin/python bench/bench_dataset.py [FILES] [ROUNDS]
(GAGE_BENCH_PYTHONPATH=DIR benches the gage package under DIR instead,
e.g. an older commit's tree, for before/after figures;
GAGE_BENCH_NO_PEERS=1 leaves DVC out.)
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
exec = "python -c pass"
sourcecode = ["*.py"]
depends = { type = "project-files", files = "data/imgs" }
"""


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    tmp = tempfile.mkdtemp(prefix="gage-bench-dataset-")
    try:
        return _bench(tmp, n, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(tmp: str, n: int, rounds: int) -> int:
    project = os.path.join(tmp, "project")
    _make_project(project, n)
    imgs = os.path.join(project, "data", "imgs")
    rows: dict[str, tuple[float, float]] = {}

    def floor_cp(flags: str) -> tuple[float, float]:
        def one(i: int) -> tuple[float, float]:
            # Hardlinks are made from a copy: a link changes the ctime
            # of the files it links, and gage's digest cache keys on it.
            src = os.path.join(tmp, "linksrc") if "l" in flags else imgs
            dest = os.path.join(tmp, f"cp{i}")
            t = _timed(["cp", flags, src, dest], tmp)
            shutil.rmtree(dest)
            return t

        return _median(rounds, one)

    subprocess.run(["cp", "-a", imgs, os.path.join(tmp, "linksrc")], check=True)
    rows["cp -a (floor)"] = floor_cp("-a")
    rows["cp -al, hardlinks (floor)"] = floor_cp("-al")
    rows["sha256sum (floor)"] = _median(
        rounds, lambda i: _timed(["sh", "-c", _SHA_ALL], project)
    )
    gage_rows(tmp, project, rounds, rows)
    dvc = "" if os.environ.get("GAGE_BENCH_NO_PEERS") else _dvc_bin()
    if dvc:
        dvc_rows(tmp, imgs, dvc, rounds, rows)
    _report(n, rounds, rows, bool(dvc))
    return 0


_SHA_ALL = "find data/imgs -type f -print0 | xargs -0 sha256sum > /dev/null"


def gage_rows(
    tmp: str, project: str, rounds: int, rows: dict[str, tuple[float, float]]
) -> None:
    def first(i: int) -> tuple[float, float]:
        home = os.path.join(tmp, f"runs-first-{i}")
        t = _gage(project, home, "run", "train", "-y")
        shutil.rmtree(home)
        return t

    rows["gage first run"] = _median(rounds, first)
    home = os.path.join(tmp, "runs")
    _gage(project, home, "run", "train", "-y")
    rows["gage repeat run"] = _median(
        rounds, lambda i: _gage(project, home, "run", "train", "-y")
    )
    rows["gage run --needed"] = _median(
        rounds, lambda i: _gage(project, home, "run", "train", "-y", "--needed")
    )
    rows["gage repro --dry"] = _median(
        rounds, lambda i: _gage(project, home, "repro", "--dry")
    )
    before = _objects(home)
    changed = os.path.join(project, "data", "imgs", "d000", "f0000.bin")
    with open(changed, "wb") as f:
        f.write(os.urandom(4096))
    old = time.time() - 3600
    os.utime(changed, (old, old))
    rows["gage run, one file changed"] = _gage(project, home, "run", "train", "-y")
    added = _objects(home) - before
    print(f"one file changed: {added} new object(s) (target 1)")


def dvc_rows(
    tmp: str, imgs: str, dvc: str, rounds: int, rows: dict[str, tuple[float, float]]
) -> None:
    def add(i: int) -> tuple[float, float]:
        repo = os.path.join(tmp, f"dvc{i}")
        _dvc_repo(repo, imgs)
        t = _timed([dvc, "add", "-q", "imgs"], repo)
        if i:
            shutil.rmtree(repo)
        return t

    rows["dvc add (first)"] = _median(rounds, add)
    repo = os.path.join(tmp, "dvc0")
    rows["dvc status"] = _median(rounds, lambda i: _timed([dvc, "status", "-q"], repo))

    def checkout(i: int) -> tuple[float, float]:
        shutil.rmtree(os.path.join(repo, "imgs"))
        return _timed([dvc, "checkout", "-q"], repo)

    rows["dvc checkout (folder removed)"] = _median(rounds, checkout)


def _dvc_repo(repo: str, imgs: str) -> None:
    os.makedirs(repo)
    subprocess.run(["cp", "-a", imgs, os.path.join(repo, "imgs")], check=True)
    for args in (["git", "init", "-q"], [_dvc_bin(), "init", "-q"]):
        subprocess.run(args, cwd=repo, check=True, capture_output=True)


def _dvc_bin() -> str:
    for d in (os.environ.get("DVC_BIN", ""), "/tmp/peer-dvc/bin"):
        path = os.path.join(d, "dvc")
        if d and os.access(path, os.X_OK):
            return path
    return ""


# Each gage row: (its floor rows, summed; its DVC row; the target as a
# multiple of the floor, or in seconds when the floor is None).
_BESIDE = {
    "gage first run": (("cp -a (floor)", "sha256sum (floor)"), "dvc add (first)", 1.5),
    "gage repeat run": (("cp -a (floor)",), "dvc checkout (folder removed)", 0.5),
    "gage run --needed": (None, "dvc status", 0.3),
    "gage repro --dry": (None, "dvc status", 0.3),
    "gage run, one file changed": (("cp -a (floor)",), "", None),
}


def _report(
    n: int, rounds: int, rows: dict[str, tuple[float, float]], dvc: bool
) -> None:
    """Every row, then each gage row beside its floor and DVC's row, with
    the ratios (wall and CPU) and the target."""
    print(f"{n} files of 4 KiB in 100 dirs; medians of {rounds}; load {_load()}")
    print(f"{'':32} {'wall s':>7} {'cpu s':>7}")
    for name, (wall, cpu) in rows.items():
        print(f"{name:32} {wall:7.2f} {cpu:7.2f}")
    print()
    head = f"{'gage':28} {'s':>6} {'floor s':>8} {'x floor':>8} {'cpu x':>6}"
    print(head + f" {'dvc s':>6} {'x dvc':>6}  target")
    for name, (floor, peer, target) in _BESIDE.items():
        wall, cpu = rows[name]
        line = f"{name[5:]:28} {wall:6.2f}"
        if floor:
            fwall = sum(rows[f][0] for f in floor)
            fcpu = sum(rows[f][1] for f in floor)
            line += f" {fwall:8.2f} {wall / fwall:8.2f} {cpu / fcpu:6.2f}"
        else:
            line += f" {'-':>8} {'-':>8} {'-':>6}"
        if dvc and peer:
            line += f" {rows[peer][0]:6.2f} {wall / rows[peer][0]:6.2f}"
        else:
            line += f" {'-':>6} {'-':>6}"
        if target is not None:
            val = wall / fwall if floor else wall
            unit = "x floor" if floor else "s"
            mark = "ok" if val <= target else "MISSED"
            line += f"  <= {target} {unit} {mark}"
        print(line)


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _make_project(project: str, n: int) -> None:
    per_dir = max(1, n // 100)
    for i in range(n):
        d = os.path.join(project, "data", "imgs", f"d{i // per_dir:03}")
        if i % per_dir == 0:
            os.makedirs(d)
        with open(os.path.join(d, f"f{i % per_dir:04}.bin"), "wb") as f:
            f.write(os.urandom(4096))
    with open(os.path.join(project, "gage.toml"), "w") as f:
        f.write(GAGE_TOML)
    with open(os.path.join(project, "train.py"), "w") as f:
        f.write("pass\n")
    # Data is older than the digest cache's racy window.
    old = time.time() - 3600
    for dirpath, _dirs, files in os.walk(os.path.join(project, "data")):
        for name in files:
            os.utime(os.path.join(dirpath, name), (old, old))


def _gage(project: str, home: str, *args: str) -> tuple[float, float]:
    env = {**os.environ, "GAGE_RUNS": home}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    other = os.environ.get("GAGE_BENCH_PYTHONPATH")
    if other:
        env["PYTHONPATH"] = other
        return _timed([sys.executable, "-m", "gage", *args], project, env)
    return _timed([GAGE, *args], project, env)


def _timed(
    args: list[str], cwd: str, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Wall and CPU (user + sys of the process and its children) seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {p.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _median(n: int, f) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    results = [f(i) for i in range(n)]
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
    )


def _objects(home: str) -> int:
    root = os.path.join(home, ".objects", "sha256")
    return sum(len(files) for _d, _s, files in os.walk(root))


if __name__ == "__main__":
    sys.exit(main())
