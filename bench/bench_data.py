"""Bench: big data at disk speed, whole `gage run train -y` processes.

A project of 100 source files and a 1 GiB `project-files` dependency.
Times, as whole processes, medians, in one run side by side:

- floors: `cp` of the data file, and one Python sha256 pass over it
- first run (empty runs home), default placement and `link = true`
- repeat run (the same runs home), both modes
- `gage run train -y --needed` when nothing changed
- a repeat run of a project with 5,000 source files and a `.venv`
- disk used by the runs home after a first run and 10 repeat runs

Targets (issue 10): first run <= 1.1 x (cp + sha256) + 0.25 s (default),
<= 1.1 x sha256 + 0.25 s (link); repeat and not-needed --needed under
0.3 s; 5,000 files repeat under 0.35 s; 10 repeat runs under 1.1 GiB
beyond the project. Peers on the same kind of project (from the issue):
DVC repro 3.2 s first / 1.2 s repeat; Guild 3.3 / 4.7.

Needs about 4 GiB free in the temp dir. Usage:
    .venv/bin/python bench/bench_data.py [SIZE_MIB] [ROUNDS]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from bench_staging import RULES, _gen_project  # noqa: E402

MIB = 1024 * 1024
GAGE = os.path.join(os.path.dirname(sys.executable), "gage")

GAGE_TOML = """
[train]
exec = "python train.py"
sourcecode = ["**/*.py"]
depends = { type = "project-files", files = "data/big.bin" }

[train-link]
exec = "python train.py"
sourcecode = ["**/*.py"]
depends = { type = "project-files", files = "data/big.bin", link = true }
"""

TRAIN_PY = "import os\nprint(os.path.getsize('data/big.bin'))\n"


def main() -> int:
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    tmp = tempfile.mkdtemp(prefix="gage-bench-data-")
    free = shutil.disk_usage(tmp).free
    if free < 4 * size_mib * MIB:
        print(f"need {4 * size_mib} MiB free in {tmp}, have {free // MIB}")
        return 1
    try:
        return _bench(tmp, size_mib, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bench(tmp: str, size_mib: int, rounds: int) -> int:
    project = os.path.join(tmp, "project")
    data = _make_project(project, size_mib)
    rows: list[tuple[str, float, str]] = []

    cp = _median(rounds, lambda i: _time_cp(data, os.path.join(tmp, f"cp{i}")))
    sha = _median(rounds, lambda i: _time_sha256(data))
    rows.append(("cp of the data file", cp, "floor"))
    rows.append(("one Python sha256 pass", sha, "floor"))

    def first(op: str) -> float:
        home = os.path.join(tmp, "runs-first")
        t = _gage_run(project, home, op)
        shutil.rmtree(home)
        return t

    first_copy = _median(rounds, lambda i: first("train"))
    first_link = _median(rounds, lambda i: first("train-link"))
    target_copy = 1.1 * (cp + sha) + 0.25
    target_link = 1.1 * sha + 0.25
    rows.append(("first run (default)", first_copy, f"<= {target_copy:.2f}"))
    rows.append(("first run (link = true)", first_link, f"<= {target_link:.2f}"))

    home = os.path.join(tmp, "runs")
    os.sync()
    _gage_run(project, home, "train")
    _gage_run(project, home, "train-link")
    repeat = [_gage_run(project, home, "train") for _ in range(10)]
    repeat_copy = statistics.median(repeat)
    repeat_link = _median(5, lambda i: _gage_run(project, home, "train-link"))
    needed = _median(5, lambda i: _gage_run(project, home, "train", "--needed"))
    rows.append(("repeat run (default)", repeat_copy, "< 0.30"))
    rows.append(("repeat run (link = true)", repeat_link, "< 0.30"))
    rows.append(("--needed, nothing changed", needed, "< 0.30"))

    # Disk: a runs home with a first run and 10 repeat runs (default).
    disk_home = os.path.join(tmp, "runs-disk")
    for _ in range(11):
        _gage_run(project, disk_home, "train")
    disk = _disk_used(disk_home)

    many = os.path.join(tmp, "many")
    _gen_project(many, venv=True)
    # The GiBs written above are flushed first: their writeback must not
    # slow the next case's file creation.
    os.sync()
    with open(os.path.join(many, "gage.toml"), "w") as f:
        # The default rules with max-matches raised (as bench_staging):
        # the 5,000 source files are selected and .venv is pruned.
        f.write(f'[train]\nexec = "python -c pass"\nsourcecode = {json.dumps(RULES)}\n')
    many_home = os.path.join(tmp, "runs-many")
    _gage_run(many, many_home, "train")
    many_repeat = _median(5, lambda i: _gage_run(many, many_home, "train"))
    rows.append(("5,000 files + .venv, repeat", many_repeat, "< 0.35"))

    print(f"project: 100 files + {size_mib} MiB dependency; medians of {rounds}+")
    print(f"{'':34} {'seconds':>8}  target")
    for name, secs, target in rows:
        print(f"{name:34} {secs:8.2f}  {target}")
    print(
        f"{'disk, first + 10 repeat runs':34} {disk / MIB:8.0f}  MiB "
        f"(target < {1.1 * size_mib:.0f} MiB beyond the project)"
    )
    print("peers (issue 10): DVC repro 3.2 first / 1.2 repeat; Guild 3.3 / 4.7")
    failed = [
        first_copy > target_copy,
        first_link > target_link,
        repeat_copy >= 0.3,
        repeat_link >= 0.3,
        needed >= 0.3,
        many_repeat >= 0.35,
        disk >= 1.1 * size_mib * MIB,
    ]
    if any(failed):
        print("some targets missed")
    return 0


def _make_project(project: str, size_mib: int) -> str:
    os.makedirs(os.path.join(project, "data"))
    for i in range(99):
        d = os.path.join(project, "src", f"pkg{i // 10}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"mod{i}.py"), "w") as f:
            f.write(f"VALUE = {i}\n")
    with open(os.path.join(project, "train.py"), "w") as f:
        f.write(TRAIN_PY)
    with open(os.path.join(project, "gage.toml"), "w") as f:
        f.write(GAGE_TOML)
    data = os.path.join(project, "data", "big.bin")
    block = os.urandom(MIB)
    with open(data, "wb") as f:
        for i in range(size_mib):
            f.write(block[i % 256 :] + block[: i % 256])
    # Data is older than the digest cache's racy window.
    old = time.time() - 3600
    os.utime(data, (old, old))
    return data


def _gage_run(project: str, home: str, op: str, *args: str) -> float:
    # The op's `python` is this venv's, as in the other benches (on a
    # machine where `python` is a pyenv shim, that adds ~60 ms per run
    # that is not gage's).
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "GAGE_RUNS": home, "PATH": path}
    t = time.perf_counter()
    p = subprocess.run(
        [GAGE, "run", op, "-y", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"gage run {op} failed: {p.stderr}")
    return elapsed


def _time_cp(src: str, dest: str) -> float:
    t = time.perf_counter()
    subprocess.run(["cp", src, dest], check=True, timeout=600)
    elapsed = time.perf_counter() - t
    os.unlink(dest)
    return elapsed


def _time_sha256(path: str) -> float:
    t = time.perf_counter()
    with open(path, "rb") as f:
        hashlib.file_digest(f, "sha256")
    return time.perf_counter() - t


def _median(n: int, f) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(f(i) for i in range(n))


def _disk_used(root: str) -> int:
    """Bytes of blocks under root, each inode once (hardlinks share)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                total += st.st_blocks * 512
    return total


if __name__ == "__main__":
    sys.exit(main())
