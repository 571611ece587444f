"""Bring ops up to date: `gage repro`, and what `gage dag` shows as stale.

An op is up to date when a completed run has the inputs a run of it
would have now (`op_inputs`): its op definition, config, source and
dependency digests, and the exact upstream runs it would use. Ops are
decided in dependency order (`pipeline.order`):

- an op whose upstream op will run is stale: its new run will use the
  upstream's new run, which no completed run has used;
- otherwise its upstream runs are known (the completed runs that are
  up to date, or the runs just made), its inputs are computed with
  those exact runs, and `op_inputs.find_run` says whether a completed
  run has them.

`plan` decides without running anything (`--dry`, `gage dag`), and for
each op that would run says why: what differs from the closest
completed run of the op. `repro` runs: it stages each stale op once its
upstream runs are known, here, in dependency order, with those runs
passed explicitly (recorded by id in `deps.json`), and hands the staged
run to an engine; ops that do not depend on each other run at once, up
to the engine's jobs.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..engines.engine import Engine
from ..home import runs
from ..lifecycle import op_inputs, run_stage
from ..project import gagefile
from ..project import graph as pipeline
from ..types import DependencyError, GageError, Run

__all__ = ["Result", "Step", "plan", "repro", "select_ops"]


@dataclass(frozen=True)
class Step:
    """What `repro` would do for an op: `action` is `run` or `up to date`;
    `run` is the completed run that is up to date, else the closest
    completed run (or None); `reasons` say why it would run."""

    op: str
    action: str
    run: Run | None = None
    reasons: list[str] = field(default_factory=list)


@dataclass
class Result:
    """What `repro` did for an op: `status` is `up to date`, `ran`,
    `failed` or `skipped`; `code` the failed run's exit code (or 1)."""

    op: str
    status: str
    run: Run | None = None
    code: int = 0
    detail: str = ""
    seconds: float | None = None


def select_ops(
    gf: gagefile.Gagefile, targets: list[str], downstream: bool = False
) -> list[str]:
    """The ops `repro` considers, in dependency order: `targets` (default:
    every op) and everything upstream of them; with `downstream`, the
    targets and everything downstream of them instead."""
    for op in targets:
        gf.get_opdef(op)  # a clear error for an unknown op
    graph = pipeline.op_graph(gf.opdefs)
    names = targets or list(gf.opdefs)
    ops = (
        pipeline.downstream(graph, names)
        if downstream
        else pipeline.upstream(graph, names)
    )
    return pipeline.order(graph, ops)


# ---------------------------------------------------------------------------
# Plan


def plan(
    gf: gagefile.Gagefile,
    home: str,
    ops: list[str],
    configs: Mapping[str, dict[str, Any]] | None = None,
    force: bool = False,
) -> list[Step]:
    """What `repro` would do for `ops` (in dependency order), and why."""
    graph = pipeline.op_graph(gf.opdefs)
    configs = configs or {}
    resolved: dict[str, Run] = {}
    stale: set[str] = set()
    steps = []
    for op in ops:
        ups = [u for u in graph[op] if u in ops]
        if force:
            step = Step(op, "run", reasons=["--force"])
        elif any(u in stale for u in ups):
            names = ", ".join(u for u in ups if u in stale)
            step = Step(op, "run", reasons=[f"upstream {names} will run first"])
        else:
            config = _config(gf, op, configs)
            step = _decide(gf, home, op, config, _runs_of(ups, resolved))
        if step.action == "run":
            stale.add(op)
        elif step.run is not None:
            resolved[op] = step.run
        steps.append(step)
    return steps


def _config(
    gf: gagefile.Gagefile, op: str, configs: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """The op's config from `configs`, else its defaults."""
    if op in configs:
        return configs[op]
    return op_inputs.op_config(gf.project_dir, gf.get_opdef(op), [])


def _runs_of(ups: list[str], resolved: Mapping[str, Run]) -> dict[str, Run]:
    return {u: resolved[u] for u in ups if u in resolved}


def _decide(
    gf: gagefile.Gagefile,
    home: str,
    op: str,
    config: dict[str, Any],
    upstream: Mapping[str, Run],
) -> Step:
    opdef = gf.get_opdef(op)
    try:
        inputs = op_inputs.op_inputs(home, gf.project_dir, opdef, config, upstream)
    except DependencyError as e:
        return Step(op, "run", reasons=[str(e)])
    if inputs is None:
        return Step(
            op, "run", reasons=["staging hooks: its inputs are known once staged"]
        )
    match = op_inputs.find_run(home, inputs)
    if match:
        return Step(op, "up to date", match)
    closest = op_inputs.closest_run(home, inputs)
    if closest is None:
        return Step(op, "run", reasons=[f"no completed run of {op}"])
    run, old = closest
    reasons = op_inputs.describe_changes(old, inputs) or ["inputs differ"]
    return Step(op, "run", run, reasons)


# ---------------------------------------------------------------------------
# Repro


Say = Callable[[str], None]


def repro(
    gf: gagefile.Gagefile,
    home: str,
    ops: list[str],
    engine: Engine,
    jobs: int,
    results: list[Result],
    configs: Mapping[str, dict[str, Any]] | None = None,
    force: bool = False,
    keep_going: bool = False,
    quiet: bool = False,
    say: Say = print,
    warn: run_stage.Warn | None = None,
    remote: Any = None,
) -> list[Result]:
    """Bring `ops` (in dependency order) up to date; append to `results`
    as each op is decided or ends (so a caller that is interrupted has
    what happened so far), and return it.

    Without `keep_going`, the first failure stops new runs from starting
    (runs in flight finish); with it, only ops downstream of a failure
    are skipped. With `remote` (an open remote), a completed run there
    with the inputs an op would have is pulled instead of run (`pulled`).
    """
    graph = pipeline.op_graph(gf.opdefs)
    configs = configs or {}
    resolved: dict[str, Run] = {}
    bad: set[str] = set()
    todo = list(ops)
    flight: dict[concurrent.futures.Future[int], tuple[str, Run, float]] = {}
    stop = False
    while todo or flight:
        for op in list(todo):
            ups = [u for u in graph[op] if u in ops]
            if any(u in bad for u in ups):
                todo.remove(op)
                bad.add(op)
                failed = ", ".join(u for u in ups if u in bad)
                results.append(
                    Result(op, "skipped", detail=f"upstream {failed} failed")
                )
                continue
            if stop:
                todo.remove(op)
                results.append(Result(op, "skipped", detail="an earlier op failed"))
                continue
            if not all(u in resolved for u in ups) or len(flight) >= jobs:
                continue
            todo.remove(op)
            upstream = _runs_of(ups, resolved)
            try:
                config = _config(gf, op, configs)
                run = _start_op(gf, home, op, config, upstream, force, warn, remote)
            except GageError as e:
                say(f"gage: {op}: {e}")
                bad.add(op)
                results.append(Result(op, "failed", code=1, detail=str(e)))
                stop = stop or not keep_going
                continue
            if isinstance(run, Step):
                resolved[op] = run.run  # type: ignore[assignment]
                name = run.run.name  # type: ignore[union-attr]
                if run.action == "pulled":
                    say(f"{op} pulled from remote '{remote.spec.name}': run {name}")
                else:
                    say(f"{op} is up to date: run {name}")
                results.append(Result(op, run.action, run.run))
                continue
            if quiet:  # else the run's own process says it starts
                say(f"Running {op} (run {run.name})")
            flight[engine.submit(run, quiet=quiet)] = (op, run, time.monotonic())
        if not flight:
            if todo and not stop:  # nothing can start: cannot happen in a DAG
                raise GageError(f"cannot order ops: {', '.join(todo)}")
            continue
        done, _ = concurrent.futures.wait(
            flight, return_when=concurrent.futures.FIRST_COMPLETED
        )
        for fut in done:
            op, run, t0 = flight.pop(fut)
            code = fut.result()
            seconds = time.monotonic() - t0
            if code == 0:
                resolved[op] = run
                results.append(Result(op, "ran", run, seconds=seconds))
            else:
                bad.add(op)
                status = runs.run_status(run)
                results.append(
                    Result(op, "failed", run, _exit(code), f"status {status}", seconds)
                )
                stop = stop or not keep_going
    return results


def _exit(code: int) -> int:
    return code if 0 < code < 256 else 1


def _start_op(
    gf: gagefile.Gagefile,
    home: str,
    op: str,
    config: dict[str, Any],
    upstream: Mapping[str, Run],
    force: bool,
    warn: run_stage.Warn | None,
    remote: Any = None,
) -> Run | Step:
    """The completed run that is up to date (as a Step; `pulled` when it
    came from `remote`), else a new staged run of `op` that uses exactly
    the `upstream` runs."""
    opdef = gf.get_opdef(op)
    inputs = None
    if not force:
        inputs = op_inputs.op_inputs(home, gf.project_dir, opdef, config, upstream)
        match = op_inputs.find_run(home, inputs) if inputs else None
        if match:
            return Step(op, "up to date", match)
        if inputs and remote is not None:
            from ..remote.pull import pull_matching

            match = pull_matching(home, remote, inputs.key)
            if match:
                return Step(op, "pulled", match)
    run = run_stage.make_run(home)
    try:
        run_stage.init_run_meta(
            run, gagefile.op_ref(gf, opdef), opdef, gagefile.op_cmd(opdef), config, {}
        )
        run_stage.stage_run(run, gf.project_dir, warn=warn, upstream=upstream)
    except BaseException:
        runs.delete_run(run)
        raise
    if inputs is None and not force:
        match = op_inputs.find_matching_run(run, runs.list_runs(home))
        if match:
            runs.delete_run(run)
            return Step(op, "up to date", match)
    return run
