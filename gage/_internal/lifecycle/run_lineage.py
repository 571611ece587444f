"""One lineage per run: which upstream run each `run-files` dependency
uses when an op depends on the runs of several ops.

`evaluate` depends on a `train` run and a `prepare` run; the train run
itself used a prepare run. The prepare run evaluate uses must be that
one, or the model is scored on a test set it was not split against.
`choose` decides, for every op a `run-select` names:

1. `pinned`: the run the caller gives (`--upstream OP=RUN`, or the runs
   `gage repro` just made or found up to date);
2. `lineage`: the run that a chosen run of another selected op used
   (read from its deps.json), followed until nothing changes;
3. `latest`: the newest completed run of the op that agrees with what
   is chosen so far (ops whose runs use other selected ops first).

Two chosen runs that used different runs of one op cannot be made
consistent: `LineageError` names both. A `run-select` that names a run
(an id or name) rather than an op is left to `run_deps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..home import runs, runs_index
from ..store import run_meta
from ..types import DependencyError, OpDef, Run, RunSelectError

__all__ = ["Choice", "LineageError", "choose", "pin_runs", "selected_ops", "used_runs"]

# Completed runs of an op looked at for one that agrees with the lineage.
_SCAN = 500


class LineageError(DependencyError):
    """Runs of one op that cannot be made consistent."""


@dataclass(frozen=True)
class Choice:
    """The run chosen for an op and why: `pinned`, `lineage` (`via` names
    the run that used it) or `latest`."""

    run: Run
    why: str
    via: str = ""

    def describe(self) -> str:
        if self.why == "lineage":
            return f"followed lineage: used by {self.via}"
        if self.why == "latest" and self.via:
            return f"latest of this lineage: {self.via}"
        return self.why


def selected_ops(opdef: OpDef) -> list[str]:
    """The `run-select` values of the op's `run-files` dependencies, in
    order, once each."""
    return list(
        dict.fromkeys(
            str(spec.get("run-select"))
            for spec in opdef.get_dependencies()
            if spec.get("type") == "run-files" and spec.get("run-select")
        )
    )


def used_runs(run: Run) -> list[dict[str, Any]]:
    """The upstream runs `run` used, from its deps.json: dicts with `id`,
    `name` and `op` (nothing for an unreadable deps.json)."""
    try:
        deps = run_meta.read_deps(run)
    except (OSError, ValueError):
        return []
    return [
        d["source"]
        for d in deps
        if isinstance(d, dict)
        and isinstance(d.get("source"), dict)
        and d["source"].get("type") == "run"
    ]


def pin_runs(home: str, opdef: OpDef, pins: list[str]) -> dict[str, Run]:
    """`OP=RUN` words -> {op: run}. OP must be an op the dependencies of
    `opdef` select; RUN a completed run of it."""
    ops = selected_ops(opdef)
    result: dict[str, Run] = {}
    for word in pins:
        op, sep, spec = word.partition("=")
        if not sep or not op or not spec:
            raise DependencyError(
                f"--upstream '{word}' is not OP=RUN (e.g. --upstream prepare=1)"
            )
        if op not in ops:
            known = ", ".join(ops) or "none"
            raise DependencyError(
                f"--upstream {word}: op '{opdef.name}' has no run-files "
                f"dependency on '{op}' (it selects: {known})"
            )
        try:
            run = runs.select_run(home, spec, status="completed", what="--upstream")
        except RunSelectError as e:
            raise DependencyError(f"--upstream {word}: {e}") from None
        run_op = runs.op_name(run)
        if run_op != op:
            raise DependencyError(
                f"--upstream {word}: run {run.name} ({run.id[:8]}) is a run "
                f"of '{run_op}', not of '{op}'"
            )
        if op in result and result[op].id != run.id:
            raise LineageError(
                f"--upstream pins two runs of '{op}': {_name(result[op])} and "
                f"{_name(run)}: pin one"
            )
        result[op] = run
    return result


def choose(
    home: str, opdef: OpDef, pins: Mapping[str, Run] | None = None
) -> dict[str, Choice]:
    """{op: Choice} for each op the dependencies of `opdef` select by
    name (pins for other ops are ignored). Raises LineageError when runs
    disagree; an op without a completed run is left out (run_deps says
    so where it resolves the dependency)."""
    pins = pins or {}
    # A pinned op is one even with no run of it here yet (a run on a
    # remote that `repro --dry --remote` would pull).
    ops = [op for op in selected_ops(opdef) if op in pins or _is_op(home, op)]
    chosen = {op: Choice(run, "pinned") for op, run in pins.items()}
    _follow(home, chosen, ops)
    while True:
        rest = [op for op in ops if op not in chosen]
        if not rest:
            break
        op = _next_op(home, rest)
        run, newer = _latest_agreeing(home, op, chosen, ops)
        if run is None:
            ops.remove(op)  # no completed run: run_deps raises for it
            continue
        note = (
            f"newer {op} run {_name(newer)} used other upstream runs" if newer else ""
        )
        chosen[op] = Choice(run, "latest", note)
        _follow(home, chosen, ops)
    return {op: c for op, c in chosen.items() if op in ops}


def _is_op(home: str, select: str) -> bool:
    """A run-select names an op when runs of that op exist and it is not
    a run's own id or name."""
    if runs_index.find(home, select):
        return False
    return runs_index.count(home, "op = ?", (select,)) > 0


def _follow(home: str, chosen: dict[str, Choice], ops: list[str]) -> None:
    """Add the runs that chosen runs used, for selected ops, until
    nothing changes; refuse two different runs of one op."""
    todo = list(chosen)
    while todo:
        op = todo.pop(0)
        user = chosen[op].run
        for src in used_runs(user):
            up = src.get("op")
            if up not in ops or up == op:
                continue
            have = chosen.get(up)
            if have is not None:
                if have.run.id != src.get("id"):
                    raise LineageError(_disagree(op, user, up, src, have))
                continue
            run = _load(home, op, user, up, src)
            chosen[up] = Choice(run, "lineage", f"{op} run {_name(user)}")
            todo.append(up)


def _disagree(op: str, user: Run, up: str, src: dict[str, Any], have: Choice) -> str:
    used = f"{src.get('name') or '?'} ({str(src.get('id'))[:8]})"
    how = {
        "pinned": "is pinned",
        "latest": "is the latest",
        "lineage": f"was used by {have.via}",
    }[have.why]
    return (
        f"upstream runs disagree: {op} run {_name(user)} used {up} run "
        f"{used}, but {up} run {_name(have.run)} {how}: pin runs of one "
        f"lineage (--upstream {up}={str(src.get('id'))[:8]}, or another {op} run)"
    )


def _load(home: str, op: str, user: Run, up: str, src: dict[str, Any]) -> Run:
    import os

    run_dir = os.path.join(home, str(src.get("id")))
    try:
        return runs.load_run(run_dir)
    except RunSelectError:
        raise LineageError(
            f"{op} run {_name(user)} used {up} run {src.get('name') or '?'} "
            f"({str(src.get('id'))[:8]}), which no longer exists: pin "
            f"runs of one lineage with --upstream {op}=RUN (and {up}=RUN)"
        ) from None


def _next_op(home: str, rest: list[str]) -> str:
    """The op to take the latest run of: one whose runs use another op
    of `rest` (downstream first), else the first."""
    for op in rest:
        latest = _completed(home, op, 1)
        if latest and any(s.get("op") in rest for s in used_runs(latest[0])):
            return op
    return rest[0]


def _latest_agreeing(
    home: str, op: str, chosen: Mapping[str, Choice], ops: list[str]
) -> tuple[Run | None, Run | None]:
    """The newest completed run of `op` whose upstream runs of selected
    ops are the chosen ones, and the newest run when that is a newer
    one; the newest completed run when none agrees (then `_follow`
    names the disagreement); (None, None) when there is none."""
    found = _completed(home, op, _SCAN)
    for run in found:
        if all(
            s.get("op") not in chosen or chosen[s["op"]].run.id == s.get("id")
            for s in used_runs(run)
            if s.get("op") in ops
        ):
            return run, (found[0] if run is not found[0] else None)
    return (found[0], None) if found else (None, None)


def _completed(home: str, op: str, limit: int) -> list[Run]:
    result: list[Run] = []
    for entry in runs_index.entries(home, "op = ?", (op,)):
        if len(result) >= limit:
            break
        fresh = runs_index.entry_fresh(home, entry)
        if fresh and runs.entry_status(home, fresh) == "completed":
            result.append(fresh.run(home))
    return result


def _name(run: Run) -> str:
    return f"{run.name} ({run.id[:8]})"
