"""Bench: a dependency that is a folder of many small files (issue 29).

A project whose op depends on `data/imgs`: N files of 4 KiB in 100
subfolders (default 20,000: 80 MB). Whole processes side by side in one
run, medians, each with its CPU time (user + sys: on a shared machine
the wall time also counts waiting for a core). What creates N files
(the copying floors, gage's first runs) runs round by round, so each
sees the same load; then what places them.

- floors: `cp -a`, `cp -r` and `tar c | tar x` of the folder,
  `sha256sum` of its files, `cp -al` (hardlinks: what placing without
  reading costs)
- gage: first run (empty runs home), repeat run (nothing changed),
  `gage run --needed` and `gage repro --dry` (nothing changed), a run
  after one file changed
- DVC (when `dvc` is found in $DVC_BIN or /tmp/peer-dvc/bin): `dvc add`
  (first), `dvc status`, `dvc checkout` of the removed folder

The issue's targets, printed against `cp -a`: first <= 1.5 x (cp -a +
sha256sum); repeat <= 0.5 x cp -a; --needed and repro --dry < 0.3 s;
one changed file: one new object. The ratios against `cp -r` and `tar`
are printed beside them. `cp -a` was measured slower than both (4.6 s
of system time for 20,000 files against 0.6 s for `cp -r`), but that
is not `cp -a`'s doing: strace shows it makes the calls `cp -r` makes
(open, copy_file_range, close) plus, per file, two flistxattr, an
fgetxattr and an fsetxattr of `system.posix_acl_access` (the mode, set
as an ACL) and a utimensat, a few microseconds in all. Nearly all of
any copy's time on this machine is file creation (openat with
O_CREAT: 87 to 93% under strace -c), which varies twentyfold with what
else the machine does (20 us to 900 us a file, a minute apart, in any
dir); in one run of this bench `cp -a` took 12.2 s and `cp -r` 16.9 s.
Hence the rounds in turn, and the ratios against each floor.

Usage: .venv/bin/python bench/bench_dataset.py [FILES] [ROUNDS]
GAGE_BENCH_PYTHONPATH=DIR benches the gage package under DIR instead;
GAGE_BENCH_BEFORE=DIR adds it as `before` rows beside this tree's (in
the same rounds: before/after figures); GAGE_BENCH_NO_PEERS=1 leaves
DVC out; GAGE_BENCH_DVC_ROUNDS=N its rounds (slow at 100,000 files).
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
from typing import Callable

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
    subprocess.run(["cp", "-a", imgs, os.path.join(tmp, "linksrc")], check=True)
    trees = [("gage", os.environ.get("GAGE_BENCH_PYTHONPATH") or None)]
    if os.environ.get("GAGE_BENCH_BEFORE"):
        trees.append(("before", os.environ["GAGE_BENCH_BEFORE"]))
    # What creates N files (floors, first runs) runs round by round, so
    # each sees the machine as the others do; then what places them.
    made: dict[str, Callable[[int], tuple[float, float]]] = {
        name: _floor(tmp, imgs, args) for name, args in _FLOORS.items()
    }
    made["sha256sum (floor)"] = lambda i: _timed(["sh", "-c", _SHA_ALL], project)
    for name, path in trees:
        made[f"{name} first run"] = _first(tmp, project, name, path)
    rows = _interleaved(rounds, made)
    placed: dict[str, Callable[[int], tuple[float, float]]] = {}
    for name, path in trees:
        home = os.path.join(tmp, f"runs-{name}")
        _gage(project, home, path, "run", "train", "-y")
        placed.update(_placed_rows(project, home, name, path))
    rows.update(_interleaved(rounds, placed))
    rows["cp -al, hardlinks (floor)"] = _median(
        rounds, _floor(tmp, imgs, ["cp", "-al"])
    )
    for name, path in trees:
        home = os.path.join(tmp, f"runs-{name}")
        rows[f"{name} run, one file changed"] = _one_changed(project, home, path, name)
    dvc = "" if os.environ.get("GAGE_BENCH_NO_PEERS") else _dvc_bin()
    if dvc:
        peer_rounds = int(os.environ.get("GAGE_BENCH_DVC_ROUNDS") or rounds)
        dvc_rows(tmp, imgs, dvc, peer_rounds, rows)
    _report(n, rounds, rows, [name for name, _path in trees])
    return 0


_SHA_ALL = "find data/imgs -type f -print0 | xargs -0 sha256sum > /dev/null"

# Floors that copy the folder (the source dir is given after the args).
_FLOORS = {
    "cp -a (floor)": ["cp", "-a"],
    "cp -r (floor)": ["cp", "-r"],
    "tar | tar (floor)": [
        "sh",
        "-c",
        'mkdir "$2" && tar cf - -C "$1" . | tar xf - -C "$2"',
        "-",
    ],
}


def _floor(
    tmp: str, imgs: str, args: list[str]
) -> Callable[[int], tuple[float, float]]:
    def one(i: int) -> tuple[float, float]:
        # Hardlinks are made from a copy: a link changes the ctime of
        # the files it links, and gage's digest cache keys on it.
        src = os.path.join(tmp, "linksrc") if "-al" in args else imgs
        dest = os.path.join(tmp, f"floor{i}")
        t = _timed([*args, src, dest], tmp)
        shutil.rmtree(dest)
        return t

    return one


def _first(
    tmp: str, project: str, name: str, path: str | None
) -> Callable[[int], tuple[float, float]]:
    def one(i: int) -> tuple[float, float]:
        home = os.path.join(tmp, f"runs-first-{name}-{i}")
        t = _gage(project, home, path, "run", "train", "-y")
        shutil.rmtree(home)
        return t

    return one


def _placed_rows(
    project: str, home: str, name: str, path: str | None
) -> dict[str, Callable[[int], tuple[float, float]]]:
    def gage(*args: str) -> Callable[[int], tuple[float, float]]:
        return lambda i: _gage(project, home, path, *args)

    return {
        f"{name} repeat run": gage("run", "train", "-y"),
        f"{name} run --needed": gage("run", "train", "-y", "--needed"),
        f"{name} repro --dry": gage("repro", "--dry"),
    }


def _one_changed(
    project: str, home: str, path: str | None, name: str
) -> tuple[float, float]:
    before = _objects(home)
    changed = os.path.join(project, "data", "imgs", "d000", "f0000.bin")
    with open(changed, "wb") as f:
        f.write(os.urandom(4096))
    old = time.time() - 3600
    os.utime(changed, (old, old))
    t = _gage(project, home, path, "run", "train", "-y")
    added = _objects(home) - before
    print(f"{name}: one file changed: {added} new object(s) (target 1)")
    return t


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


# Each gage row: its target floor (rows summed), the target as a
# multiple of it (or in seconds, without a floor), the other floors
# beside it (see the module doc) and DVC's row.
_ROWS = {
    "first run": (
        ("cp -a", "sha256sum"),
        1.5,
        (("cp -r", "sha256sum"), ("tar | tar", "sha256sum")),
        "dvc add (first)",
    ),
    "repeat run": (
        ("cp -a",),
        0.5,
        (("cp -r",), ("tar | tar",), ("cp -al, hardlinks",)),
        "dvc checkout (folder removed)",
    ),
    "run --needed": ((), 0.3, (), "dvc status"),
    "repro --dry": ((), 0.3, (), "dvc status"),
    "run, one file changed": (("cp -a",), None, (("cp -r",),), ""),
}


def _report(
    n: int, rounds: int, rows: dict[str, tuple[float, float]], trees: list[str]
) -> None:
    """Every row, then each gage row beside its floors (wall and CPU
    ratios) and DVC's row, and whether the issue's target holds."""
    print(f"{n} files of 4 KiB in 100 dirs; medians of {rounds}; load {_load()}")
    print(f"{'':32} {'wall s':>7} {'cpu s':>7}")
    for name, (wall, cpu) in rows.items():
        print(f"{name:32} {wall:7.2f} {cpu:7.2f}")
    for tree in trees:
        print(f"\n{tree}: ratios wall (cpu)")
        for what, (floor, target, others, peer) in _ROWS.items():
            wall, cpu = rows[f"{tree} {what}"]
            line = f"  {what:22} {wall:6.2f} s"
            for f in (floor, *others) if floor else ():
                line += f"  {_ratio(rows, f, wall, cpu)}"
            if peer in rows:
                line += f"  x {peer.split(' (')[0]} {wall / rows[peer][0]:.2f}"
            if target is not None:
                val = wall / _sum(rows, floor)[0] if floor else wall
                unit = "x " + " + ".join(floor) if floor else "s"
                line += f"  [target <= {target} {unit}: "
                line += ("ok" if val <= target else "MISSED") + "]"
            print(line)


def _ratio(
    rows: dict[str, tuple[float, float]],
    floor: tuple[str, ...],
    wall: float,
    cpu: float,
) -> str:
    fwall, fcpu = _sum(rows, floor)
    return f"x {' + '.join(floor)} {wall / fwall:.2f} ({cpu / fcpu:.2f})"


def _sum(
    rows: dict[str, tuple[float, float]], floor: tuple[str, ...]
) -> tuple[float, float]:
    found = [rows[f"{f} (floor)"] for f in floor]
    return sum(w for w, _c in found), sum(c for _w, c in found)


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


def _gage(project: str, home: str, path: str | None, *args: str) -> tuple[float, float]:
    """A `gage` process; `path`: the tree whose gage package it runs."""
    env = {**os.environ, "GAGE_RUNS": home}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if path:
        env["PYTHONPATH"] = path
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


def _median(n: int, f: Callable[[int], tuple[float, float]]) -> tuple[float, float]:
    return _interleaved(n, {"": f})[""]


def _interleaved(
    n: int, fs: dict[str, Callable[[int], tuple[float, float]]]
) -> dict[str, tuple[float, float]]:
    """Each row's median (wall, cpu) of `n` rounds; a round runs every
    row once, in turn (rows see the same load)."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in fs}
    for i in range(n):
        for name, f in fs.items():
            results[name].append(f(i))
    return {
        name: (
            statistics.median(r[0] for r in rs),
            statistics.median(r[1] for r in rs),
        )
        for name, rs in results.items()
    }


def _objects(home: str) -> int:
    root = os.path.join(home, ".objects", "sha256")
    return sum(len(files) for _d, _s, files in os.walk(root))


if __name__ == "__main__":
    sys.exit(main())
