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

import json
import os
import stat
from typing import Any, Callable, TypeVar

from ..faults import fault_point
from ..store import pins, run_meta, run_records
from ..store.run_meta import META_SUFFIX, read_id, read_name, read_opref
from ..types import GageError, Run, RunSelectError
from ..util import file_util
from . import runs_index

__all__ = [
    "DEFAULT_RUNS_DIR",
    "clean_trash",
    "delete_run",
    "deleted_run",
    "filter_runs",
    "label_run",
    "list_runs",
    "load_run",
    "entry_record",
    "entry_status",
    "run_record",
    "run_exit",
    "runs_page",
    "RUN_STATUSES",
    "run_status",
    "runs_home",
    "select_run",
]

T = TypeVar("T")

DEFAULT_RUNS_DIR = os.path.join(".gage", "runs")

RUN_STATUSES = (
    "pending",
    "staged",
    "queued",
    "running",
    "completed",
    "error",
    "terminated",
    "pruned",
    "abandoned",
)


def list_runs(runs_home: str) -> list[Run]:
    """Runs in `runs_home`, oldest first (by their `initialized` time).

    Read through the runs index (`runs_index`), a cache of meta kept up
    to date on each use. A meta dir whose identity is not written yet (a
    run being made) is not listed.
    """
    return [e.run(runs_home) for e in reversed(runs_index.entries(runs_home))]


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
    except (OSError, ValueError):
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


# An id or name prefix as index ranges (substr keeps the answer exact).
_PREFIX = (
    "(id >= ? AND id < ? AND substr(id, 1, ?) = ?)"
    " OR (name >= ? AND name < ? AND substr(name, 1, ?) = ?)"
)


def _prefix_params(spec: str) -> tuple[Any, ...]:
    upper = spec + "\U0010ffff"
    return (spec, upper, len(spec), spec) * 2


def select_run(
    home: str, spec: str | None = None, status: str | None = None, what: str = "run"
) -> Run:
    """The one rule that turns a run spec into a run.

    In order: no spec, the latest run; a path to a run dir (a spec with a
    path separator, or an existing dir with a meta dir beside it); a
    number N (or `#N`), the run `gage runs` shows as #N (newest first);
    a run id or name; an op name (its newest run); a unique id or name
    prefix. A number beyond the runs listed is taken as an id prefix.
    With `status`, only runs with that status are candidates (`run-files`
    dependencies use completed runs). Raises RunSelectError naming the
    spec, the runs dir and what to do; `what` names the spec in messages
    ("run-select").
    """
    if spec is not None and (
        os.sep in spec or (os.path.isdir(spec) and os.path.isdir(spec + META_SUFFIX))
    ):
        return load_run(spec)
    index = 1 if spec is None else _index(spec)
    if index is not None:
        entries = runs_index.entries(home, limit=1, offset=index - 1)
        if entries:
            return _check_status(home, entries[0], index, spec, status)
    assert spec is not None or index is not None
    candidates, exact, by_op = _candidates(home, spec) if spec else ([], False, False)
    if not candidates:
        if index is not None:
            raise RunSelectError(_index_msg(home, index), spec=spec)
        assert spec is not None
        raise RunSelectError(_none_msg(home, spec, what), spec=spec)
    if not exact and not by_op and len({e.id for e in candidates}) > 1:
        names = ", ".join(f"{e.name} ({e.id[:8]})" for e in candidates[:5])
        more = ", ..." if len(candidates) > 5 else ""
        raise RunSelectError(
            f"{what} '{spec}' matches {len(candidates)} runs ({names}{more}): "
            "use a longer prefix",
            spec=spec,
        )
    if status is None:
        return candidates[0].run(home)
    for entry in candidates:
        fresh = runs_index.entry_fresh(home, entry)
        if fresh and entry_status(home, fresh) == status:
            return fresh.run(home)
    target = f"op '{spec}'" if by_op else f"run {candidates[0].id}"
    raise RunSelectError(
        f"no {status} run for {target} in {home} ({len(candidates)} found, "
        f"none {status})",
        spec=spec,
    )


def _index(spec: str) -> int | None:
    """The `#` number in a spec (`2`, `#2`), or None for other specs.

    A number with a leading zero is taken as an id prefix (ids are hex).
    """
    digits = spec[1:] if spec.startswith("#") else spec
    if digits.isdigit() and digits.isascii() and not digits.startswith("0"):
        return int(digits)
    return None


def _index_msg(home: str, index: int) -> str:
    total = runs_index.count(home)
    if not total:
        return f"no runs in {home}"
    return (
        f"no run #{index} in {home}: 'gage runs' numbers runs 1 to {total}, "
        "newest first"
    )


def _candidates(home: str, spec: str) -> tuple[list[runs_index.Entry], bool, bool]:
    """Runs `spec` may name, and whether they match it exactly (an id or
    name) or by op; else they match as id or name prefixes."""
    found = runs_index.find(home, spec)
    if found:
        return found, True, False
    found = runs_index.entries(home, "op = ?", (spec,))
    if found:
        return found, False, True
    found = runs_index.entries(home, _PREFIX, _prefix_params(spec))
    return found, False, False


def _check_status(
    home: str, entry: runs_index.Entry, index: int, spec: str | None, status: str | None
) -> Run:
    if status is not None:
        fresh = runs_index.entry_fresh(home, entry) or entry
        actual = entry_status(home, fresh)
        if actual != status:
            raise RunSelectError(
                f"run #{index} ({entry.name}) is {actual}, not {status}",
                spec=spec,
                run=entry.id,
            )
    return entry.run(home)


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
    """Runs of op `op` (name) and/or with status `status`, order kept."""
    result = []
    for run in runs:
        if op is not None and op_name(run) != op:
            continue
        if status is not None and run_status(run) != status:
            continue
        result.append(run)
    return result


def runs_page(
    home: str,
    op: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    batch: str | None = None,
    label: str | None = None,
    where: str | None = None,
) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """Run records newest first, each with its number in the listing of
    all runs (`#`, 1 = newest), filtered by op, status, batch (an id or
    its prefix), label (text it contains) and a `--where` expression, up
    to `limit`; and how many runs match in all. Read through the runs
    index: the first page of 100,000 runs costs what the first page of
    10 does. The filters are `runs_select.select_runs`'s."""
    from . import runs_select

    page, total = runs_select.select_runs(
        home, (), op, status, batch, label, where, limit
    )
    return [(n or 0, r) for n, r in page], total


def run_status(run: Run) -> str:
    """The run's status, derived from its meta (see RUN_STATUSES).

    A run is `running` while the pid in `proc/lock` is alive and has the
    start time recorded with it; started and not stopped without such a
    process, it is `abandoned`. A run not yet staged is `pending` while
    the stager in `proc/stager` is alive (or none is recorded, as when
    the library stages phase by phase), and `abandoned` once it is dead.
    A run given to Slurm (`slurm.json`) is `queued` while staged and its
    job is in Slurm's queue, and `running` while started and its job
    runs (its runner's pid is on another node).
    """
    # A meta file with garbage reads as not written (see runs_index).
    exit_code = signal = None
    started = _safe(run_meta.read_timestamp, run, "started")
    stopped = _safe(run_meta.read_timestamp, run, "stopped") if started else None
    if stopped is not None:
        exit_code = _safe(run_meta.read_exit_code, run)
        signal = _safe(run_records.read_proc_signal, run)
    staged = _safe(run_meta.read_timestamp, run, "staged") if started is None else None
    state = runs_index.meta_state(staged, started, stopped, exit_code, signal)
    if state == "terminated" and _safe(run_records.read_pruned, run) is not None:
        state = "pruned"
    return _live_status(run, state)


def run_exit(run: Run) -> tuple[int, str | None]:
    """The exit code gage gives for a run that has ended, and the line
    that says why when it is not 0: the command's own code (1-255), 128+N
    for a run ended by signal N (130 for Ctrl-C), 1 for any other failure
    or a run that never started."""
    status = run_status(run)
    code = run_meta.read_exit_code(run)
    if status == "completed":
        return 0, None
    if status == "staged":
        return 1, f"run {run.name} did not start (status staged)"
    signal_code = _signal_exit(run, code) if status == "terminated" else None
    if signal_code is not None:
        what = "interrupted" if signal_code == 130 else "terminated by a signal"
        return signal_code, f"run {run.name} {what} (status {status})"
    return (
        code if code is not None and 0 < code < 256 else 1,
        f"run {run.name} failed with exit code {code} (status {status})",
    )


def _signal_exit(run: Run, code: int | None) -> int | None:
    """128 + the number of the signal that ended a run, as shells do."""
    import signal

    name = run_records.read_proc_signal(run)
    if name is not None and name in signal.Signals.__members__:
        return 128 + signal.Signals[name].value
    if code is not None and code < 0:
        return 128 - code
    return None


def entry_status(home: str, entry: runs_index.Entry) -> str:
    """The status of a run as the index has it (see `run_status`)."""
    if entry.state not in ("started", "pending", "staged"):
        return entry.state
    return _live_status(entry.run(home), entry.state)


def _live_status(run: Run, state: str) -> str:
    """`started` is running or abandoned by its process; `pending` is
    abandoned when its stager died."""
    if state == "staged":
        return "queued" if _slurm_job_live(run) else state
    if state not in ("started", "pending"):
        return state
    from ..util import run_exec

    if state == "pending":
        stager = run_records.read_stager(run)
        if stager and not run_exec.pid_alive(stager.pid, stager.start_time):
            return "abandoned"
        return "pending"
    lock = run_records.read_proc_lock(run)
    if lock and run_exec.pid_alive(lock.pid, lock.start_time):
        return "running"
    return "running" if _slurm_job_live(run) else "abandoned"


def _slurm_job_live(run: Run) -> bool:
    """Whether the run's Slurm job (if any) has not ended: one squeue for
    all runs, only when a run has a job whose end is not recorded."""
    job = _safe(run_records.read_slurm, run)
    if not job or not job.get("job_id") or job.get("state"):
        return False
    from ..util import slurm_cmd

    live = slurm_cmd.live_jobs()
    return live is not None and str(job["job_id"]) in live


def label_run(run: Run, label: str | None) -> None:
    """Set (or with None, clear) a run's label; the runs index reads the
    run again (a finished run's entry is otherwise final)."""
    run_meta.write_label(run, label)
    runs_index.invalidate(run.runs_home, os.path.basename(run.run_dir))


# ---------------------------------------------------------------------------
# Run record


def run_record(run: Run, status: str | None = None) -> dict[str, Any]:
    """What is known about a run, as plain data (for `runs`, `show`, --json),
    read from its meta."""
    entry = runs_index.read_entry(run.run_dir)
    if entry is None:
        raise RunSelectError(
            f"{run.meta_dir} has no readable 'id' and 'name'", path=run.meta_dir
        )
    home = os.path.dirname(run.run_dir)
    return entry_record(home, entry, status or entry_status(home, entry))


def entry_record(home: str, entry: runs_index.Entry, status: str) -> dict[str, Any]:
    """A run record from an index entry (see `run_record`)."""

    started, stopped = entry.started, entry.stopped
    return {
        "id": entry.id,
        "name": entry.name,
        "op": entry.op,
        "op_ns": entry.op_ns,
        "status": status,
        "run_dir": os.path.join(home, entry.dir),
        "initialized": _iso(entry.initialized),
        "staged": _iso(entry.staged),
        "started": _iso(started),
        "stopped": _iso(stopped),
        "duration": (
            round((stopped - started) / 1_000_000, 3)
            if started is not None and stopped is not None
            else None
        ),
        "exit_code": entry.exit_code,
        "config": json.loads(entry.config),
        "summary": json.loads(entry.summary),
        "batch": entry.batch,
        "label": entry.label,
    }


def _safe(read: Callable[..., T], *args: Any) -> T | None:
    """`read(*args)`, or None when the meta file holds garbage."""
    try:
        return read(*args)
    except (OSError, ValueError):
        return None


def _iso(ts: int | None) -> str | None:
    return run_meta.format_timestamp(ts) if ts is not None else None


# ---------------------------------------------------------------------------
# Delete


def delete_run(run: Run) -> None:
    """Delete a run (see `deleted_run`, which says whether it did)."""
    deleted_run(run)


def deleted_run(run: Run) -> bool:
    """Delete a run: its run dir and its meta dir (read-only files included).

    No half-deleted run is ever listed. The meta dir goes first, in one
    atomic rename into the runs home's trash (`.trash`, never listed):
    from then on the run is not listed at all. Then the run dir follows
    it, and the trash entries are removed. A deleter killed on the way
    leaves only trash, which the next delete or new run removes
    (`clean_trash`). This is the one function that deletes runs. False
    when another process deleted the run first (nothing to count).
    """

    clean_trash(run.runs_home)
    trash = _trash_dir(run.runs_home)
    token = os.urandom(4).hex()
    meta_dest = os.path.join(trash, f"{run.id}.{token}{META_SUFFIX}")
    moved = _to_trash(run.meta_dir, meta_dest)
    fault_point("delete")
    _to_trash(run.run_dir, os.path.join(trash, f"{run.id}.{token}"))
    _remove_trash(trash)
    pins.unpin_run(run.runs_home, run.id)  # this process's, if it staged it
    return moved


def clean_trash(runs_home: str) -> None:
    """Finish deletions that a killed deleter left in the trash.

    A meta dir in the trash names a run being deleted: its run dir, if
    still in the runs home without a meta dir, is moved there too. Then
    every entry is removed. Safe to run while another process deletes.
    """
    trash = run_meta.trash_dir(runs_home)
    if os.path.islink(trash):
        _unlink(trash)  # never followed: what it leads to is not gage's
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
            dest = os.path.join(trash, f"{run_id}.{os.urandom(4).hex()}")
            _to_trash(run_dir, dest)
    _remove_trash(trash)


def _trash_dir(runs_home: str) -> str:
    """The trash, a dir in the runs home: a link or a file at its path
    (not gage's) is removed first, never followed."""
    trash = run_meta.trash_dir(runs_home)
    try:
        st = os.lstat(trash)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        _unlink(trash)
    try:
        os.mkdir(trash)
    except FileExistsError:
        pass
    return trash


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise GageError(
            f"cannot remove {path} (not a dir, in the place of gage's trash): "
            f"{e.strerror}: remove it",
            path=path,
        ) from None


def _to_trash(path: str, dest: str) -> bool:
    """Move `path` to `dest`; False when it was gone already."""
    try:
        try:
            os.rename(path, dest)
        except PermissionError:
            # Moving a dir to another parent needs write access to it (a
            # link is moved as it is: its target is never changed).
            if os.path.islink(path):
                raise
            os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IRWXU)
            os.rename(path, dest)
        return True
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(dest)):
            raise
        return False
    except OSError as e:
        raise GageError(f"cannot delete {path}: {e.strerror}", path=path) from None


def _remove_trash(trash: str) -> None:
    try:
        names = os.listdir(trash)
    except FileNotFoundError:
        return
    for name in names:
        file_util.remove_tree(os.path.join(trash, name))
