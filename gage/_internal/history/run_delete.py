"""Delete runs the user selects, never what a live run needs.

`plan_delete` decides, for the runs a user selected, which can go and
which must stay, with the reason:

- a `running` run stays (stop it first), and so does a `pending` run
  whose stager is alive (it is being staged), a `staged` run the live
  process that staged it is about to start, and a run a staging reads
  (both pinned, `store.pins`);
- an upstream run whose files a `staged`, `running` or being-staged run
  depends on (a `run-files` dependency, by run id in its deps.json)
  stays, naming that run, unless `force`, or unless that run is
  deleted too.

`delete_runs` deletes the runs of a plan, one by one, through
`runs.delete_run` (the one deleter: crash-consistent, and safe for data
another run uses, as placed files are copies or links of their own).

`PURGE_STATUSES` are the statuses of leftovers that `gage runs purge`
deletes by default: runs whose staging or runner died, and failed runs.
Runs are selected by `runs_select.select_runs`, the one rule (where
`pending` also selects the runs whose staging died before they were
staged: what a failed staging leaves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from ..home import runs
from ..store import pins, run_meta, run_records
from ..types import GageError, Run
from ..util import run_exec

__all__ = [
    "PURGE_STATUSES",
    "Plan",
    "Refused",
    "being_staged",
    "delete_runs",
    "plan_delete",
    "select_runs",
]

PURGE_STATUSES = ("pending", "abandoned", "error")

_LIVE = ("staged", "queued", "running", "pending")


@dataclass(frozen=True)
class Refused:
    """A selected run that is not deleted, and why."""

    run: Run
    reason: str


@dataclass(frozen=True)
class Plan:
    """What deleting the selected runs does: `delete` (with each run's
    status) and `refused`; `used_by`: for a run to delete that finished
    runs (not deleted) used as an upstream run, those runs: deleting it
    leaves them naming a run that no longer exists."""

    delete: tuple[tuple[Run, str], ...]
    refused: tuple[Refused, ...]
    used_by: tuple[tuple[Run, tuple[Run, ...]], ...] = ()


def select_runs(
    home: str,
    specs: Sequence[str] = (),
    op: str | None = None,
    statuses: Sequence[str] | None = None,
    where: str | None = None,
    verb: str = "delete",
) -> list[Run]:
    """Runs for RUN specs, else all runs, newest first, filtered by op,
    statuses and `where` (`runs_select.select_runs`, the one rule). With
    neither specs nor a filter, raises GageError: deleting (`verb`)
    every run takes naming them."""
    from ..home import runs_select

    if not specs and op is None and statuses is None and where is None:
        raise GageError(
            f"name the runs to {verb}: RUN..., --op OP, --status S or "
            f"--where EXPR (see 'gage {'runs rm' if verb == 'delete' else verb} --help')"
        )
    page, _total = runs_select.select_runs(home, specs, op, statuses, where=where)
    return [Run(r["id"], r["run_dir"], r["name"]) for _n, r in page]


def plan_delete(
    home: str,
    selected: Sequence[Run],
    force: bool = False,
    force_hint: str = "--force deletes it anyway",
) -> Plan:
    """Which of `selected` can be deleted (or archived: the same rules),
    and why the others cannot; `force_hint` ends the reason a run that
    a live run depends on stays."""
    ids = {run.id for run in selected}
    status = {run.id: runs.run_status(run) for run in selected}
    needed_by = _needed_by(home, ids) if selected else {}
    held = pins.pinned(home) if selected else set()
    delete: list[tuple[Run, str]] = []
    refused: list[Refused] = []
    for run in selected:
        reason = _live_reason(run, status[run.id], held)
        if reason is None and not force and run.id in needed_by:
            other, other_status = needed_by[run.id]
            reason = (
                f"{other_status} run {other.name} ({runs.op_name(other) or '?'}) "
                f"depends on it ({force_hint})"
            )
        if reason is None:
            delete.append((run, status[run.id]))
        else:
            refused.append(Refused(run, reason))
    return Plan(tuple(delete), tuple(refused), _used_by(home, delete))


def _used_by(
    home: str, delete: list[tuple[Run, str]]
) -> tuple[tuple[Run, tuple[Run, ...]], ...]:
    """For each run to delete, the other runs that used it."""
    if not delete:
        return ()
    ids = {run.id for run, _s in delete}
    users: dict[str, list[Run]] = {}
    for _n, r in runs.runs_page(home, None, None, None)[0]:
        if r["id"] in ids:
            continue
        run = Run(r["id"], r["run_dir"], r["name"])
        for upstream in set(_upstream_ids(run)) & ids:
            users.setdefault(upstream, []).append(run)
    return tuple((run, tuple(users[run.id])) for run, _s in delete if run.id in users)


def _live_reason(run: Run, status: str, held: set[str]) -> str | None:
    if status == "running":
        return "it is running (stop it first)"
    if status == "queued":
        return "it is queued on Slurm (scancel its job first: gage show names it)"
    if status == "pending" and being_staged(run):
        return "it is being staged"
    if status == "staged" and pins.run_pinned(run.runs_home, run.id, held):
        return "the gage process that staged it is about to start it"
    if pins.run_pinned(run.runs_home, run.id, held, upstream=True):
        return "a run being staged reads it (wait for the staging)"
    return None


def being_staged(run: Run) -> bool:
    stager = run_records.read_stager(run)
    return bool(stager and run_exec.pid_alive(stager.pid, stager.start_time))


def _needed_by(home: str, deleting: set[str]) -> dict[str, tuple[Run, str]]:
    """Upstream run id -> a live run (not being deleted) that depends on
    it, with that run's status."""
    found: dict[str, tuple[Run, str]] = {}
    for status in _LIVE:
        for _n, r in runs.runs_page(home, None, status, None)[0]:
            run = Run(r["id"], r["run_dir"], r["name"])
            if run.id in deleting:
                continue
            if status == "pending" and not being_staged(run):
                continue
            for upstream in _upstream_ids(run):
                found.setdefault(upstream, (run, status))
    return found


def _upstream_ids(run: Run) -> Iterable[str]:
    for dep in run_meta.read_deps(run):
        source = dep.get("source") or {}
        if source.get("type") == "run" and source.get("id"):
            yield source["id"]


def delete_runs(plan: Plan, deleted: Callable[[Run], None] | None = None) -> int:
    """Delete the runs of `plan`; `deleted(run)` after each. A run that
    started since the plan was made is left alone. Returns how many were
    deleted."""
    n = 0
    for run, _status in plan.delete:
        held = pins.pinned(run.runs_home)
        if _live_reason(run, runs.run_status(run), held):
            continue  # started or being staged since the plan was made
        if not runs.deleted_run(run):
            continue  # another process deleted it first
        n += 1
        if deleted:
            deleted(run)
    return n
