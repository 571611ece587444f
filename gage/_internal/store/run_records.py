"""A run's records beyond its lifecycle core: step scalars, comments,
where it came from (git state, environment) and where it ran (Dask
worker, Slurm job, the remote it was pulled from), a pruned trial, and
the process files (`proc/`) that tell a run's status.

With `run_meta` (the core: identity, op, config, logs, manifest, seal,
status files), the only module that knows meta file names; encodings
are `meta_format`'s.
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ..types import MetaError, Run
from .meta_format import (
    DirLock,
    ProcLock,
    append_points,
    append_text,
    json_lines_text,
    numbered_lines,
    parse_json_lines,
    pid_text,
    quote,
    read_file_bytes,
    read_json,
    read_pid_file,
    read_points,
    read_text,
    sample_points,
    unquote,
    write_bytes,
    write_json,
    write_text,
)
from .run_meta import proc_lock_path, run_meta_path

# The processes of a run: `proc/stager` (the process staging it),
# `proc/lock` (the runner), `proc/signal` (what ended it), `proc/reserve`
# (space kept so a run on a full disk can complete its record).


def write_stager(run: Run, pid: int, start_time: int | None) -> None:
    """Write `proc/stager` (`<pid> <start time or ->`): the process that
    stages the run. Removed when staging completes."""
    start = "-" if start_time is None else str(start_time)
    write_text(run_meta_path(run, "proc", "stager"), f"{pid} {start}\n")


def read_stager(run: Run) -> ProcLock | None:
    return read_pid_file(run_meta_path(run, "proc", "stager"))


def delete_stager(run: Run) -> None:
    try:
        os.unlink(run_meta_path(run, "proc", "stager"))
    except FileNotFoundError:
        pass


def write_proc_lock(run: Run, pid: int, start_time: int | None) -> None:
    """Write `proc/lock` as `<pid> <start time or ->`."""
    write_text(proc_lock_path(run), pid_text(pid, start_time))


def read_proc_lock(run: Run) -> ProcLock | None:
    return read_pid_file(proc_lock_path(run))


def delete_proc_lock(run: Run) -> None:
    try:
        os.unlink(proc_lock_path(run))
    except FileNotFoundError:
        pass


def reserve_path(run: Run) -> str:
    """`proc/reserve`: space held while a run runs, freed to complete
    its record when the run filled the disk."""
    return run_meta_path(run, "proc", "reserve")


def write_proc_signal(run: Run, name: str) -> None:
    """Record a signal (`SIGINT`, `SIGTERM`) the runner passed to the run."""
    write_text(run_meta_path(run, "proc", "signal"), name + "\n", readonly=True)


def read_proc_signal(run: Run) -> str | None:
    try:
        return read_text(run_meta_path(run, "proc", "signal")).strip() or None
    except FileNotFoundError:
        return None


# Scalars: `scalars/keys` (one key a line, in order of first sight; a key's
# number is its line number from 0), `scalars/points` (fixed records of
# key number, step and value, appended as the run goes: see
# `meta_format.POINT`) and `scalars/aggs.json` (per key: first, last,
# last_step, min, min_step, max, max_step, count; rewritten atomically,
# small, so listing and comparing runs never read the points).


def append_comment(run: Run, comment: dict[str, Any]) -> None:
    """Append a comment to `comments`: one JSON object a line (`author`,
    `time` in µs, `text`), never sealed. The line goes in one write on
    an O_APPEND descriptor while holding `comments_lock`, so two writers
    never mix their lines and a delete never loses one."""
    with comments_lock(run):
        append_text(run_meta_path(run, "comments"), json_lines_text([comment]))


def read_comments(run: Run) -> list[dict[str, Any]]:
    """The run's comments, oldest first; a line that is not a comment
    (a torn write) is skipped."""
    try:
        text = read_text(run_meta_path(run, "comments"))
    except FileNotFoundError:
        return []
    return [
        c
        for c in parse_json_lines(text)
        if isinstance(c, dict) and isinstance(c.get("text"), str)
    ]


def write_comments(run: Run, comments: list[dict[str, Any]]) -> None:
    """Replace the comments (atomically); call it holding
    `comments_lock`, between reading and writing them."""
    write_text(run_meta_path(run, "comments"), json_lines_text(comments))


def comments_lock(run: Run) -> DirLock:
    """An exclusive lock on the run's meta dir for changing its comments:
    held briefly, released when its process dies."""
    return DirLock(run.meta_dir, "changing its comments")


def write_pruned(run: Run, reason: str) -> None:
    """`pruned`: a search stopped the run (written before it signals
    the run, so a terminated run with it is `pruned`)."""
    write_text(run_meta_path(run, "pruned"), reason + "\n", readonly=True)


def read_pruned(run: Run) -> str | None:
    try:
        return read_text(run_meta_path(run, "pruned")).strip() or "pruned"
    except FileNotFoundError:
        return None


def report_path(runs_home: str) -> str:
    """Where `gage report` writes when not told where (never listed as
    a run)."""
    return os.path.join(runs_home, ".reports", "report.html")


def write_worker(run: Run, worker: dict[str, Any]) -> None:
    """`worker.json`: the engine and worker that ran a run elsewhere
    (`engine`, `host`, `worker` address, `scheduler` address)."""
    write_json(run_meta_path(run, "worker.json"), worker, readonly=True)


def read_worker(run: Run) -> dict[str, Any] | None:
    try:
        return read_json(run_meta_path(run, "worker.json"))
    except FileNotFoundError:
        return None


def write_slurm(run: Run, job: dict[str, Any]) -> None:
    """`slurm.json`: the Slurm job of a run (`job_id`, `cluster`, and
    once it ends `state`, `reason`, `exit_code`); rewritten, not final."""
    write_json(run_meta_path(run, "slurm.json"), job)


def read_slurm(run: Run) -> dict[str, Any] | None:
    try:
        data = read_json(run_meta_path(run, "slurm.json"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def slurm_output_path(run: Run) -> str:
    """`slurm.out`: what a run's Slurm job printed (gage's own lines and
    Slurm's, e.g. a time limit); the run's output is in output/40_run."""
    return run_meta_path(run, "slurm.out")


def write_git(run: Run, state: dict[str, Any], diff: bytes) -> None:
    """`git.json` (the project's git state when staged: `status`, and in
    a work tree `commit`, `branch`, `remote`, `path`, `dirty`, `diff`:
    sha256, size, bytes kept) and `git.diff` (the diff of tracked files
    from HEAD, its first bytes; only when not empty); read-only."""
    if diff:
        write_bytes(run_meta_path(run, "git.diff"), diff, readonly=True)
    write_json(run_meta_path(run, "git.json"), state, readonly=True)


def read_git(run: Run) -> dict[str, Any] | None:
    try:
        return read_json(run_meta_path(run, "git.json"))
    except FileNotFoundError:
        return None


def git_diff_path(run: Run) -> str:
    return run_meta_path(run, "git.diff")


def read_git_diff(run: Run) -> bytes | None:
    try:
        return read_file_bytes(git_diff_path(run))
    except FileNotFoundError:
        return None


def write_environment(run: Run, env: dict[str, Any]) -> None:
    """`environment.json`, written once when the run starts: `python`
    (version, executable, packages), `command`, `host` (OS, host, CPUs,
    memory), `gpus`, `env` (the values of the listed variables),
    `notes`; read-only."""
    write_json(run_meta_path(run, "environment.json"), env, readonly=True)


def read_environment(run: Run) -> dict[str, Any] | None:
    try:
        return read_json(run_meta_path(run, "environment.json"))
    except FileNotFoundError:
        return None


REMOTE_META = "remote.json"
"""Where a pulled run came from: written at pull, never pushed."""


def write_remote(run: Run, origin: dict[str, Any]) -> None:
    """`remote.json`: the remote a run was pulled from (`remote` name,
    `url`, `pulled` timestamp, `pushed_from` host, `pushed` timestamp)."""
    write_json(run_meta_path(run, REMOTE_META), origin, readonly=True)


def read_remote(run: Run) -> dict[str, Any] | None:
    try:
        return read_json(run_meta_path(run, REMOTE_META))
    except FileNotFoundError:
        return None


SCALARS_MAX_KEY = 200
"""Longest scalar key kept (characters)."""


def append_scalar_keys(run: Run, keys: Iterable[str]) -> None:
    text = "".join(quote(k) + "\n" for k in keys)
    if text:
        append_text(run_meta_path(run, "scalars", "keys"), text, "surrogateescape")


def read_scalar_keys(run: Run) -> list[str]:
    try:
        text = read_text(run_meta_path(run, "scalars", "keys"))
    except FileNotFoundError:
        return []
    return [unquote(line) for _n, line in numbered_lines(text)]


def append_scalar_points(run: Run, points: Iterable[tuple[int, int, float]]) -> None:
    append_points(run_meta_path(run, "scalars", "points"), points)


def read_scalar_points(
    run: Run, offset: int = 0, limit: int | None = None
) -> tuple[list[tuple[int, int, float]], int]:
    """Points from byte `offset` (at most `limit` of them) and the offset
    after the last whole record read; a record being appended is left
    for the next read."""
    return read_points(run_meta_path(run, "scalars", "points"), offset, limit)


def sample_scalar_points(run: Run, n: int) -> list[tuple[int, int, float]]:
    """About `n` points spread evenly over the points file (all of them
    when it holds no more), read by seeking: the cost does not grow with
    the file."""
    return sample_points(run_meta_path(run, "scalars", "points"), n)


def scalars_stat(run: Run) -> tuple[int, int] | None:
    """(size, mtime_ns) of `scalars/aggs.json`, None when absent: a
    watcher reads the aggregates again only when it changed."""
    try:
        st = os.stat(run_meta_path(run, "scalars", "aggs.json"))
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def write_scalar_aggs(run: Run, aggs: dict[str, dict[str, Any]]) -> None:
    write_json(run_meta_path(run, "scalars", "aggs.json"), aggs)


def read_scalar_aggs(run: Run) -> dict[str, dict[str, Any]]:
    path = run_meta_path(run, "scalars", "aggs.json")
    try:
        data = read_json(path)
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise MetaError(f"{path}: not an object", path=path)
    return data
