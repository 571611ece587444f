"""Find, select and compare runs in a runs home.

A run in a runs home is a `<id>` dir with a sibling `<id>.meta` dir. Runs
are found by listing the meta dirs, so a run dir without meta (being
made) is never seen. Runs are listed in the order they were made (their
`initialized` timestamp); `gage runs` numbers them newest first, and that
number (`#`) selects a run too.

Whether a run with the same inputs exists (`--needed`, `repro`) is
decided in `op_inputs`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from typing import Any

from . import run_exec, run_meta
from .run_meta import META_SUFFIX, read_id, read_name, read_opref
from .faults import fault_point
from .types import GageError, Run, RunSelectError

__all__ = [
    "DEFAULT_RUNS_DIR",
    "clean_trash",
    "delete_run",
    "filter_runs",
    "list_runs",
    "load_run",
    "run_record",
    "RUN_STATUSES",
    "run_status",
    "runs_home",
    "select_run",
]

DEFAULT_RUNS_DIR = os.path.join(".gage", "runs")

RUN_STATUSES = (
    "pending",
    "staged",
    "running",
    "completed",
    "error",
    "terminated",
    "abandoned",
)


def list_runs(runs_home: str) -> list[Run]:
    """Runs in `runs_home`, oldest first (by their `initialized` time).

    A meta dir whose identity is not written yet (a run being made) is
    not listed.
    """
    found = []
    try:
        names = os.listdir(runs_home)
    except (FileNotFoundError, NotADirectoryError):
        return []
    for name in names:
        if not name.endswith(META_SUFFIX):
            continue
        try:
            run = _load(os.path.join(runs_home, name[: -len(META_SUFFIX)]))
        except (OSError, ValueError):
            continue
        found.append((_created(run), run.id, run))
    found.sort(key=lambda t: t[:2])
    return [t[2] for t in found]


def _created(run: Run) -> int:
    """When a run was made: `initialized`, else its meta dir's mtime."""
    ts = run_meta.read_timestamp(run, "initialized")
    if ts is not None:
        return ts
    try:
        return os.stat(run.meta_dir).st_mtime_ns // 1000
    except OSError:
        return 0


def load_run(path: str) -> Run:
    """The run of a run dir (or of its `.meta` dir), wherever it is.

    Identity (id, name) comes from meta, the location from `path`, so a
    run dir that was moved together with its meta dir loads where it
    is. Raises RunSelectError naming the path when either dir or the identity
    is missing.
    """
    run_dir = os.path.abspath(path.rstrip(os.sep) or os.sep)
    if run_dir.endswith(META_SUFFIX):
        run_dir = run_dir[: -len(META_SUFFIX)]
    meta_dir = run_dir + META_SUFFIX
    if not os.path.isdir(run_dir):
        raise RunSelectError(f"Run dir does not exist: {run_dir}", path=run_dir)
    if not os.path.isdir(meta_dir):
        raise RunSelectError(
            f"Run meta dir does not exist: {meta_dir} "
            "(a run dir and its .meta dir must be moved together)",
            path=meta_dir,
        )
    try:
        return _load(run_dir)
    except (OSError, ValueError):
        raise RunSelectError(
            f"{run_dir} is not a run dir: {meta_dir} has no readable 'id' and "
            "'name' (move a run dir together with its .meta dir)",
            path=meta_dir,
        ) from None


def _load(run_dir: str) -> Run:
    meta_dir = run_dir + META_SUFFIX
    return Run(read_id(meta_dir), run_dir, read_name(meta_dir))


def runs_for_op(runs: list[Run], op: str) -> list[Run]:
    """Runs whose op name is `op`, order kept."""
    return [run for run in runs if op_name(run) == op]


def runs_for_prefix(runs: list[Run], prefix: str) -> list[Run]:
    """Runs whose id or name starts with `prefix`, order kept."""
    return [
        run for run in runs if run.id.startswith(prefix) or run.name.startswith(prefix)
    ]


def op_name(run: Run) -> str | None:
    """The op name of a run, or None when its opref is not written."""
    try:
        return read_opref(run).op_name
    except (FileNotFoundError, TypeError):
        return None


# ---------------------------------------------------------------------------
# Runs home


def runs_home(
    runs_dir: str | None = None,
    gagefile_runs_dir: str | None = None,
    project_dir: str | None = None,
) -> str:
    """The runs home: `runs_dir`, else `GAGE_RUNS`, else gage.toml's
    `$runs-dir`, else `.gage/runs` in the project (or cwd)."""
    path = (
        runs_dir
        or os.environ.get("GAGE_RUNS")
        or gagefile_runs_dir
        or os.path.join(project_dir or os.getcwd(), DEFAULT_RUNS_DIR)
    )
    return os.path.abspath(os.path.expanduser(path))


# ---------------------------------------------------------------------------
# List and select


def select_run(
    home: str, spec: str | None = None, status: str | None = None, what: str = "run"
) -> Run:
    """The one rule that turns a run spec into a run.

    In order: no spec, the latest run; a path to a run dir (a spec with a
    path separator, or an existing dir with a meta dir beside it); a
    number N (or `#N`), the run `gage runs` shows as #N (newest first);
    a run id or name; an op name (its newest run); a unique id or name
    prefix. With `status`, only runs with that status are candidates
    (`run-files` dependencies use completed runs). Raises RunSelectError
    naming the spec, the runs dir and what to do; `what` names the spec
    in messages ("run-select").
    """
    if spec is not None and (
        os.sep in spec or (os.path.isdir(spec) and os.path.isdir(spec + META_SUFFIX))
    ):
        return load_run(spec)
    runs = list(reversed(list_runs(home)))
    index = 1 if spec is None else _index(spec)
    if index is not None and (spec is None or 1 <= index <= len(runs)):
        return _select_index(home, runs, index, spec, status)
    assert spec is not None
    exact = [r for r in runs if spec in (r.id, r.name)]
    by_op = runs_for_op(runs, spec) if not exact else []
    candidates = exact or by_op or runs_for_prefix(runs, spec)
    if not candidates and index is not None:
        _select_index(home, runs, index, spec, status)  # raises: out of range
    if not candidates:
        raise RunSelectError(_none_msg(home, spec, what), spec=spec)
    if not exact and not by_op and len({r.id for r in candidates}) > 1:
        names = ", ".join(f"{r.name} ({r.id[:8]})" for r in candidates[:5])
        more = ", ..." if len(candidates) > 5 else ""
        raise RunSelectError(
            f"{what} '{spec}' matches {len(candidates)} runs ({names}{more}): "
            "use a longer prefix",
            spec=spec,
        )
    if status is None:
        return candidates[0]
    for run in candidates:
        if run_status(run) == status:
            return run
    target = f"op '{spec}'" if by_op else f"run {candidates[0].id}"
    raise RunSelectError(
        f"no {status} run for {target} in {home} ({len(candidates)} found, "
        f"none {status})",
        spec=spec,
    )


def _index(spec: str) -> int | None:
    """The `#` number in a spec (`2`, `#2`), or None for other specs.

    A number beyond the runs listed is taken as an id prefix (ids are
    hex), and so is one with a leading zero.
    """
    digits = spec[1:] if spec.startswith("#") else spec
    if digits.isdigit() and digits.isascii() and not digits.startswith("0"):
        return int(digits)
    return None


def _select_index(
    home: str, runs: list[Run], index: int, spec: str | None, status: str | None
) -> Run:
    if not runs:
        raise RunSelectError(f"no runs in {home}", spec=spec)
    if not 1 <= index <= len(runs):
        raise RunSelectError(
            f"no run #{index} in {home}: 'gage runs' numbers runs 1 to "
            f"{len(runs)}, newest first",
            spec=spec,
        )
    run = runs[index - 1]
    if status is not None and run_status(run) != status:
        raise RunSelectError(
            f"run #{index} ({run.name}) is {run_status(run)}, not {status}",
            spec=spec,
            run=run.id,
        )
    return run


def _none_msg(home: str, spec: str, what: str) -> str:
    if what == "run":
        return (
            f"no run matching '{spec}' in {home} (use a run id or name "
            "(or a prefix), an op name, or a path to a run dir)"
        )
    return f"no run matches {what} '{spec}' in {home}: run '{spec}' first"


def filter_runs(
    runs: list[Run], op: str | None = None, status: str | None = None
) -> list[Run]:
    """Runs of op `op` (name) and/or with status `status`."""
    result = []
    for run in runs:
        if op is not None and op_name(run) != op:
            continue
        if status is not None and run_status(run) != status:
            continue
        result.append(run)
    return result


def run_status(run: Run) -> str:
    """The run's status, derived from its meta (see RUN_STATUSES).

    A run is `running` while the pid in `proc/lock` is alive and has the
    start time recorded with it; started and not stopped without such a
    process, it is `abandoned`. A run not yet staged is `pending` while
    the stager in `proc/stager` is alive (or none is recorded, as when
    the library stages phase by phase), and `abandoned` once it is dead.
    """
    if run_meta.read_timestamp(run, "started") is None:
        if run_meta.read_timestamp(run, "staged") is not None:
            return "staged"
        stager = run_meta.read_stager(run)
        if stager and not run_exec.pid_alive(stager.pid, stager.start_time):
            return "abandoned"
        return "pending"
    if run_meta.read_timestamp(run, "stopped") is None:
        lock = run_meta.read_proc_lock(run)
        if lock and run_exec.pid_alive(lock.pid, lock.start_time):
            return "running"
        return "abandoned"
    exit_code = run_meta.read_exit_code(run)
    if run_meta.read_proc_signal(run) or (exit_code is not None and exit_code < 0):
        return "terminated"
    return "completed" if exit_code == 0 else "error"


# ---------------------------------------------------------------------------
# Run record


def run_record(run: Run, status: str | None = None) -> dict[str, Any]:
    """What is known about a run, as plain data (for `runs`, `show`, --json)."""
    op_ns: str | None
    op_name: str | None
    try:
        opref = run_meta.read_opref(run)
        op_ns, op_name = opref.op_ns, opref.op_name
    except FileNotFoundError:
        op_ns = op_name = None
    started = run_meta.read_timestamp(run, "started")
    stopped = run_meta.read_timestamp(run, "stopped")
    return {
        "id": run.id,
        "name": run.name,
        "op": op_name,
        "op_ns": op_ns,
        "status": status or run_status(run),
        "run_dir": run.run_dir,
        "initialized": _iso(run_meta.read_timestamp(run, "initialized")),
        "staged": _iso(run_meta.read_timestamp(run, "staged")),
        "started": _iso(started),
        "stopped": _iso(stopped),
        "duration": (
            round((stopped - started) / 1_000_000, 3)
            if started is not None and stopped is not None
            else None
        ),
        "exit_code": run_meta.read_exit_code(run),
        "config": run_meta.read_config(run),
        "summary": run_meta.read_summary(run),
        "batch": run_meta.read_batch(run),
    }


def _iso(ts: int | None) -> str | None:
    return run_meta.format_timestamp(ts) if ts is not None else None


# ---------------------------------------------------------------------------
# Delete


def delete_run(run: Run) -> None:
    """Delete a run: its run dir and its meta dir (read-only files included).

    No half-deleted run is ever listed. The meta dir goes first, in one
    atomic rename into the runs home's trash (`.trash`, never listed):
    from then on the run is not listed at all. Then the run dir follows
    it, and the trash entries are removed. A deleter killed on the way
    leaves only trash, which the next delete or new run removes
    (`clean_trash`). This is the one function that deletes runs.
    """
    trash = run_meta.trash_dir(run.runs_home)
    clean_trash(run.runs_home)
    token = secrets.token_hex(4)
    meta_dest = os.path.join(trash, f"{run.id}.{token}{META_SUFFIX}")
    _to_trash(run.meta_dir, meta_dest)
    fault_point("delete")
    _to_trash(run.run_dir, os.path.join(trash, f"{run.id}.{token}"))
    _remove_trash(trash)


def clean_trash(runs_home: str) -> None:
    """Finish deletions that a killed deleter left in the trash.

    A meta dir in the trash names a run being deleted: its run dir, if
    still in the runs home without a meta dir, is moved there too. Then
    every entry is removed. Safe to run while another process deletes.
    """
    trash = run_meta.trash_dir(runs_home)
    try:
        names = os.listdir(trash)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        if not name.endswith(META_SUFFIX):
            continue
        run_id = name.split(".", 1)[0]
        run_dir = os.path.join(runs_home, run_id)
        if run_id and not os.path.lexists(run_dir + META_SUFFIX):
            dest = os.path.join(trash, f"{run_id}.{secrets.token_hex(4)}")
            _to_trash(run_dir, dest)
    _remove_trash(trash)


def _to_trash(path: str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        try:
            os.rename(path, dest)
        except PermissionError:
            # Moving a dir to another parent needs write access to it.
            os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IRWXU)
            os.rename(path, dest)
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(dest)):
            raise
    except OSError as e:
        raise GageError(f"cannot delete {path}: {e.strerror}", path=path) from None


def _remove_trash(trash: str) -> None:
    try:
        names = os.listdir(trash)
    except FileNotFoundError:
        return
    for name in names:
        shutil.rmtree(os.path.join(trash, name), onerror=_force_remove)


def _force_remove(func, path, _exc) -> None:
    if not os.path.lexists(path):
        return  # removed by another process cleaning the trash
    parent = os.path.dirname(path)
    try:
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        if not os.path.islink(path) and os.path.isdir(path):
            os.chmod(path, os.stat(path).st_mode | stat.S_IRWXU)
    except OSError:
        pass
    try:
        func(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise GageError(f"cannot delete {path}: {e.strerror}", path=path) from None
