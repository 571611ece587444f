"""Helpers for topics (`topics/*.md`). Not used by the library.

Topics import everything here (`from gage._internal.test import *`).
Parse types (`{:date}`, `{:timestamp}`, `{:sha256}`, `{:path}`,
`{:run_id}`, `{:run_name}`) are registered with groktest through the
`parse_*` functions below.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

__all__ = [
    "cat",
    "start_dask_cluster",
    "start_slurm_cluster",
    "cat_json",
    "cat_log",
    "delete_temp_dir",
    "ls",
    "make_dir",
    "make_temp_dir",
    "parse_date",
    "parse_datetime",
    "parse_duration",
    "parse_path",
    "parse_run_id",
    "parse_run_name",
    "parse_sha256",
    "parse_timestamp",
    "path_join",
    "run",
    "sha256",
    "symlink",
    "touch",
    "write",
]

# Topics show permissions; make them the same on every machine.
os.umask(0o002)


def _parse_type(name: str, pattern: str):
    def decorator(f):
        f.type_name = name
        f.pattern = pattern
        f.regex_group_count = 0
        return f

    return decorator


@_parse_type("date", r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
def parse_date(s: str) -> str:
    return s


@_parse_type("timestamp", r"\d{16}")
def parse_timestamp(s: str) -> int:
    return int(s)


@_parse_type("sha256", r"[0-9a-f]{64}")
def parse_sha256(s: str) -> str:
    return s


@_parse_type("path", r"/[^\s]*")
def parse_path(s: str) -> str:
    return s


@_parse_type("run_id", r"[0-9a-f]{32}")
def parse_run_id(s: str) -> str:
    return s


@_parse_type("run_name", r"[a-z]{6}-[a-z]{6}")
def parse_run_name(s: str) -> str:
    return s


@_parse_type("datetime", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
def parse_datetime(s: str) -> str:
    """Local date and time as `gage runs` and `gage show` print it."""
    return s


@_parse_type("duration", r"\d+\.\d+s|\d+:\d\d(?::\d\d)?")
def parse_duration(s: str) -> str:
    """A run duration as `gage runs` prints it (`0.05s`, `1:02`)."""
    return s


def make_temp_dir(prefix: str = "gage-test-") -> str:
    return tempfile.mkdtemp(prefix=prefix)


def delete_temp_dir(path: str) -> None:
    """Delete a dir, read-only files included."""

    def onerror(func, p, exc):
        os.chmod(os.path.dirname(p), 0o755)
        if os.path.exists(p) and not os.path.islink(p):
            os.chmod(p, 0o755)
        func(p)

    shutil.rmtree(path, onerror=onerror)


def path_join(*parts: str) -> str:
    return os.path.join(*parts)


def make_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def touch(path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a"):
        pass
    os.utime(path)


def write(path: str, text: str | bytes, append: bool = False) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    mode = ("a" if append else "w") + ("b" if isinstance(text, bytes) else "")
    with open(path, mode) as f:
        f.write(text)


def symlink(target: str, link: str) -> None:
    os.symlink(target, link)


def cat(*parts: str) -> None:
    path = os.path.join(*parts)
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if not text:
        print("<empty>")
    else:
        print(text, end="" if text.endswith("\n") else "\n")


def cat_log(*parts: str) -> None:
    """Print a log without the leading timestamps."""
    path = os.path.join(*parts)
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line[:1].isdigit() and " " in line:
                line = line.split(" ", 1)[1]
            print(line, end="")


def cat_json(*parts: str) -> None:
    with open(os.path.join(*parts)) as f:
        print(json.dumps(json.load(f), indent=2, sort_keys=True))


def sha256(path: str) -> str:
    from .util.file_util import sha256_file

    return sha256_file(path)


def ls(
    path: str,
    permissions: bool = False,
    include_dirs: bool = False,
    ignore: list[str] | None = None,
) -> None:
    """Print sorted paths under `path`, relative to it."""
    paths = []
    for root, dirs, files in os.walk(path):
        rel_root = os.path.relpath(root, path)
        names = list(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]
        if include_dirs:
            names += [
                d + "/" for d in dirs if not os.path.islink(os.path.join(root, d))
            ]
        for name in names:
            rel = name if rel_root == "." else os.path.join(rel_root, name)
            if ignore and any(_match(rel, pat) for pat in ignore):
                continue
            paths.append(rel)
    if not paths:
        print("<empty>")
        return
    for rel in sorted(paths):
        if permissions:
            st = os.lstat(os.path.join(path, rel.rstrip("/")))
            print(stat.filemode(st.st_mode), rel)
        else:
            print(rel)


def _match(path: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatch(path, pattern)


def run(
    cmd: str,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    quiet: bool = False,
) -> int | None:
    """Run a shell command, print its output, then `<exit N>` if N != 0."""
    full_env = {**os.environ, **(env or {})}
    bin_dir = os.path.dirname(sys.executable)
    full_env["PATH"] = bin_dir + os.pathsep + full_env.get("PATH", "")
    p = subprocess.run(
        cmd,
        shell=True,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if not quiet:
        print(p.stdout, end="")
    if p.returncode != 0:
        print(f"<exit {p.returncode}>")
    return None


def start_dask_cluster(workers: int = 2):
    """A Dask scheduler and `workers` workers on 127.0.0.1 (processes,
    each with its own scratch dir), up and connected; `.scheduler_file`,
    `.close()`."""
    from distributed import Client

    from .engines import dask_local

    cluster = dask_local.start_cluster(workers)
    try:
        with Client(scheduler_file=cluster.scheduler_file, timeout=10) as client:
            client.wait_for_workers(workers, timeout=dask_local.START_TIMEOUT)
    except BaseException:
        cluster.close()
        raise
    return cluster


def start_slurm_cluster():
    """A single-node Slurm cluster for a topic (`test_slurm.start` in a
    temp dir): `.env` (SLURM_CONF) for gage, `.stop()`."""
    from . import test_slurm

    return test_slurm.start(make_temp_dir("gage-slurm-"))


def option_slurm(val) -> None:
    """`+slurm`: the example needs a Slurm cluster; skipped (with the
    reason on stderr) where none can run (test_slurm.unavailable)."""
    from . import test_slurm

    why = test_slurm.unavailable()
    if val and why:
        print(f"skipped a Slurm example: {why}", file=sys.stderr)
        raise Exception("skip")
