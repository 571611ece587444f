"""Push and pull through remotes: whole `gage` processes next to a floor
(`cp -a` to a directory, `rsync` over SSH) and DVC, in the same run.

Two runs: (a) one with a big dependency (256 MiB; GAGE_BENCH_BIG_MIB=1024
for 1 GiB), (b) one that makes 5,000 small files (GAGE_BENCH_SMALL).
Two remotes: a local directory, and SSH (a throwaway OpenSSH sshd on
127.0.0.1, as the tests start it). For each: `gage push` to an empty
remote, a second `gage push` (nothing to send: goal under 0.5 s), `gage
pull` into an empty runs home; the floor copies the run dir and meta dir
there and back; DVC (`dvc push`/`dvc pull` of the same files after `dvc
add`, untimed; found as $GAGE_BENCH_DVC or `dvc` on PATH, e.g. a venv
made with `pip install dvc dvc-ssh`; GAGE_BENCH_DVC=none: no DVC
column) does the same. Ratios are printed per row: of wall times, and
of CPU time (user + system of the processes this side starts: on a
busy machine, wall time is mostly waiting on others).

The machine may be busy: gage and the floor are timed GAGE_BENCH_REPEAT
times each (default 3, alternating, each in turn first: the first after
another's burst of file creation pays for its writeback; a fresh remote
and runs home each time) and the median is shown; DVC once. GAGE_BENCH_REMOTES (dir,ssh)
and GAGE_BENCH_OPS (big,small) choose rows. GAGE_BENCH_BASE=DIR adds a
row per row for the gage source tree in DIR (e.g. main, checked out
elsewhere), timed in the same run: before and after side by side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_ROOT, "tests"))

BIG_MIB = int(os.environ.get("GAGE_BENCH_BIG_MIB", "256"))
SMALL = int(os.environ.get("GAGE_BENCH_SMALL", "5000"))
REPEAT = int(os.environ.get("GAGE_BENCH_REPEAT", "3"))
REMOTES = os.environ.get("GAGE_BENCH_REMOTES", "dir,ssh").split(",")
OPS = os.environ.get("GAGE_BENCH_OPS", "big,small").split(",")
BASE = os.environ.get("GAGE_BENCH_BASE")

GAGE_TOML = """\
[big]
exec = "python -c 'open(\\"done.txt\\", \\"w\\").write(\\"ok\\")'"
depends = { type = "project-files", files = "big.bin" }

[small]
exec = "python small.py"
"""

SMALL_PY = f"""\
import os
os.makedirs("out", exist_ok=True)
for i in range({SMALL}):
    with open(f"out/f{{i:05d}}.txt", "w") as f:
        f.write(f"small file {{i}} " * 16 + "\\n")
"""


def main() -> None:
    work = tempfile.mkdtemp(prefix="gage-bench-remote-")
    sshd = None
    try:
        project = _project(work)
        home = os.path.join(work, "home-a")
        env = _env(home, os.path.join(work, "config.toml"))
        for op in ("big", "small"):
            _check([sys.executable, "-m", "gage", "run", op, "-y", "-q"], project, env)
        runs = {op: _run_dir(project, env, op) for op in ("big", "small") if op in OPS}
        remotes = {"dir": None} if "dir" in REMOTES else {}
        try:
            if "ssh" not in REMOTES:
                raise RuntimeError("not in GAGE_BENCH_REMOTES")
            from remote_servers import start_sshd

            os.makedirs(os.path.join(work, "sshd"))
            sshd = start_sshd(os.path.join(work, "sshd"))
            remotes["ssh"] = sshd[0]
        except Exception as e:  # noqa: BLE001 - a bench row is skipped
            print(f"(no SSH rows: {e})")
        dvc = _dvc()
        if not dvc:
            print("(no DVC column: set GAGE_BENCH_DVC or put dvc on PATH)")
        print(
            f"big: {BIG_MIB} MiB dependency; small: {SMALL} files; median of {REPEAT}"
        )
        header = (
            "row",
            "gage push",
            "push again",
            "gage pull",
            "floor push",
            "floor pull",
            "dvc push",
            "dvc pull",
            "push/floor",
            "pull/floor",
            "push/dvc",
            "pull/dvc",
            "cpu push/floor",
            "cpu pull/floor",
        )
        rows = []
        for kind, server in remotes.items():
            for op, run_dir in runs.items():
                rows.extend(_rows(work, project, env, kind, server, op, run_dir, dvc))
        _print(header, rows)
    finally:
        if sshd:
            from remote_servers import stop

            stop(sshd[1])
        subprocess.run(["chmod", "-R", "u+w", work], check=False)
        shutil.rmtree(work, ignore_errors=True)


def _project(work: str) -> str:
    project = os.path.join(work, "project")
    os.makedirs(project)
    with open(os.path.join(project, "gage.toml"), "w") as f:
        f.write(GAGE_TOML)
    with open(os.path.join(project, "small.py"), "w") as f:
        f.write(SMALL_PY)
    with open(os.path.join(project, "big.bin"), "wb") as f:
        chunk = os.urandom(1 << 20)
        for i in range(BIG_MIB):
            f.write(chunk[:-8] + i.to_bytes(8, "little"))
    # As a user's data: older than the digest cache's racy window, so a
    # run's files are known by their stat, not read again to verify.
    old = time.time() - 3600
    os.utime(os.path.join(project, "big.bin"), (old, old))
    return project


def _env(home: str, config: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAGE_")}
    # As a user runs gage: its modules' bytecode cached after the first run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(GAGE_RUNS=home, GAGE_CONFIG=config)
    return env


def _check(cmd: list[str], cwd: str, env: dict | None = None) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
    return p.stdout


def _timed(cmd: list[str], cwd: str, env: dict | None = None) -> float:
    """Wall time of `cmd`; its CPU time (user + system, of this side's
    processes) is added to CPU[cmd's first word]."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    _check(cmd, cwd, env)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    global LAST_CPU
    LAST_CPU = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall


LAST_CPU = 0.0


def _run_dir(project: str, env: dict, op: str) -> str:
    import json

    out = _check(
        [sys.executable, "-m", "gage", "runs", "--json", "-o", op], project, env
    )
    return json.loads(out)[0]["run_dir"]


def _rows(work, project, env, kind, server, op, run_dir, dvc) -> list[tuple]:
    """A row for gage (and one for BASE), with the floor and DVC."""
    variants = {"": {}}
    if BASE:
        variants[" (base)"] = {"PYTHONPATH": BASE}
    times: dict[str, list] = {v: [] for v in variants}
    floors = []
    slots = list(variants) + [None]  # None: the floor
    for i in range(REPEAT):
        # Each in turn goes first: what runs right after another's burst
        # of file creation pays for its journal commit and writeback.
        for v in slots[i % len(slots) :] + slots[: i % len(slots)]:
            if v is None:
                base = os.path.join(work, f"{kind}-{op}-{i}-floor")
                os.makedirs(base)
                floors.append(_floor(base, server, run_dir))
                continue
            base = os.path.join(work, f"{kind}-{op}-{i}{v.strip(' ()')}")
            times[v].append(
                _gage_times(base, project, dict(env, **variants[v]), server, run_dir)
            )
    fpush, fpull, fcpush, fcpull = (_median([f[k] for f in floors]) for k in range(4))
    dpush = dpull = None
    if dvc:
        base = os.path.join(work, f"{kind}-{op}-dvc")
        os.makedirs(base)
        dpush, dpull = _dvc_times(base, server, run_dir, dvc)
    rows = []
    for v in variants:
        push, again, pull, cpush, cpull = (
            _median([t[k] for t in times[v]]) for k in range(5)
        )
        rows.append(
            (
                f"{op} -> {kind}{v}",
                push,
                again,
                pull,
                fpush,
                fpull,
                dpush,
                dpull,
                _ratio(push, fpush),
                _ratio(pull, fpull),
                _ratio(push, dpush),
                _ratio(pull, dpull),
                _ratio(cpush, fcpush),
                _ratio(cpull, fcpull),
            )
        )
    return rows


def _median(vals: list[float]) -> float:
    vals = sorted(vals)
    return vals[len(vals) // 2]


def _gage_times(base, project, env, server, run_dir) -> tuple[float, ...]:
    os.makedirs(base)
    remote_path = os.path.join(base, "remote")
    url = server.url(remote_path) if server else remote_path
    config = os.path.join(base, "config.toml")
    with open(config, "w") as f:
        f.write(f'["$remotes".r]\nurl = "{url}"\n')
        if server:
            f.write(
                f'key-file = "{server.key}"\nknown-hosts = "{server.known_hosts}"\n'
            )
    run_id = os.path.basename(run_dir)
    gage = [sys.executable, "-m", "gage"]
    env_a = dict(env, GAGE_CONFIG=config)
    push = _timed(gage + ["push", run_id, "-r", "r", "-y"], project, env_a)
    cpu_push = LAST_CPU
    again = _timed(gage + ["push", run_id, "-r", "r", "-y"], project, env_a)
    env_b = dict(env_a, GAGE_RUNS=os.path.join(base, "home-b"))
    pull = _timed(gage + ["pull", run_id, "-r", "r", "-y"], project, env_b)
    return push, again, pull, cpu_push, LAST_CPU


def _floor(base: str, server, run_dir: str) -> tuple[float, ...]:
    dest = os.path.join(base, "floor-remote")
    back = os.path.join(base, "floor-back")
    os.makedirs(dest)
    os.makedirs(back)
    srcs = [run_dir, run_dir + ".meta"]
    if server is None:
        push = _timed(["cp", "-a", *srcs, dest], base)
        cpu_push = LAST_CPU
        pulled = [os.path.join(dest, os.path.basename(p)) for p in srcs]
        return push, _timed(["cp", "-a", *pulled, back], base), cpu_push, LAST_CPU
    ssh = (
        f"ssh -i {server.key} -p {server.port} -o UserKnownHostsFile={server.known_hosts}"
        " -o BatchMode=yes"
    )
    host = f"{server.user}@127.0.0.1"
    push = _timed(["rsync", "-a", "-e", ssh, *srcs, f"{host}:{dest}/"], base)
    cpu_push = LAST_CPU
    pulled = [f"{host}:{os.path.join(dest, os.path.basename(p))}" for p in srcs]
    pull = _timed(["rsync", "-a", "-e", ssh, *pulled, back + "/"], base)
    return push, pull, cpu_push, LAST_CPU


def _dvc() -> str | None:
    if os.environ.get("GAGE_BENCH_DVC") == "none":
        return None
    path = os.environ.get("GAGE_BENCH_DVC") or shutil.which("dvc")
    if path and not os.access(path, os.X_OK):
        path = None
    for venv in ("/tmp/gage-bench-dvc", "/tmp/peer-dvc"):
        if not path and os.path.exists(f"{venv}/bin/dvc"):
            path = f"{venv}/bin/dvc"
    return path


def _dvc_times(base: str, server, run_dir: str, dvc: str) -> tuple[float, float]:
    repo = os.path.join(base, "dvc-a")
    os.makedirs(repo)
    denv = {k: v for k, v in os.environ.items() if not k.startswith("GAGE_")}
    _check([dvc, "init", "--no-scm", "-q"], repo, denv)
    shutil.copytree(run_dir, os.path.join(repo, "data"), symlinks=True)
    subprocess.run(["chmod", "-R", "u+w", os.path.join(repo, "data")], check=True)
    _check([dvc, "add", "-q", "data"], repo, denv)
    remote = os.path.join(base, "dvc-remote")
    if server:
        url = server.url(remote)
        _check([dvc, "remote", "add", "-d", "r", url], repo, denv)
        _check([dvc, "remote", "modify", "r", "keyfile", server.key], repo, denv)
    else:
        _check([dvc, "remote", "add", "-d", "r", remote], repo, denv)
    os.sync()  # as before gage's cases: no writeback of `dvc add` pending
    push = _timed([dvc, "push", "-q"], repo, denv)
    repo_b = os.path.join(base, "dvc-b")
    os.makedirs(os.path.join(repo_b, ".dvc"))
    shutil.copy(os.path.join(repo, ".dvc", "config"), os.path.join(repo_b, ".dvc"))
    shutil.copy(os.path.join(repo, "data.dvc"), repo_b)
    os.sync()
    pull = _timed([dvc, "pull", "-q"], repo_b, denv)
    return push, pull


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def _print(header: tuple, rows: list[tuple]) -> None:
    cells = [header] + [
        tuple(
            f"{c:.2f}s" if isinstance(c, float) else ("-" if c is None else str(c))
            for c in r
        )
        for r in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


if __name__ == "__main__":
    main()
