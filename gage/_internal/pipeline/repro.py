"""Bring ops up to date: `gage repro`, and what `gage dag` shows as stale.

An op is up to date when a completed run has the inputs a run of it
would have now (`op_inputs`): its op definition, config, source and
dependency digests, and the exact upstream runs it would use. Ops are
decided in dependency order (`graph.order`):

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
from ..lifecycle import dep_pins, op_inputs, run_stage, stage_op
from ..project import gagefile, graph
from ..types import DependencyError, GageError, Run

__all__ = ["Result", "Step", "plan", "repro", "select_ops"]


@dataclass(frozen=True)
class Step:
    """What `repro` would do for an op: `action` is `run` or `up to date`;
    with a remote also `pull` (`pull` names the run there, `name (id)`;
    `entry` is its entry) or `later` (an upstream op is pulled first and
    its run cannot be read before: decided then); `run` is
    the completed run that is up to date, else the closest completed run
    (or None); `reasons` say why it would run; `blocked` why it could not
    be staged (a dependency that cannot be resolved)."""

    op: str
    action: str
    run: Run | None = None
    reasons: list[str] = field(default_factory=list)
    blocked: str = ""
    pull: str = ""
    entry: dict[str, Any] | None = field(default=None, repr=False, compare=False)


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
    edges = graph.op_graph(gf.opdefs)
    names = targets or list(gf.opdefs)
    ops = graph.downstream(edges, names) if downstream else graph.upstream(edges, names)
    return graph.order(edges, ops)


# ---------------------------------------------------------------------------
# Plan


def plan(
    gf: gagefile.Gagefile,
    home: str,
    ops: list[str],
    configs: Mapping[str, dict[str, Any]] | None = None,
    force: bool = False,
    remote: Any = None,
) -> list[Step]:
    """What `repro` would do for `ops` (in dependency order), and why.
    With `remote` (an open remote), an op that is not up to date here
    and whose inputs key a completed run on the remote has is `pull`, as
    `repro` would pull it (`pull.matching_entry`). An op downstream of
    it is decided with that run as its upstream: its meta and file names
    are read from the remote (`pull.previews`, no file's bytes); `later`
    (with why) only when they cannot be."""
    if remote is None:
        return _plan(gf, home, ops, configs or {}, force, None)
    from ..remote.pull import previews

    with previews(home, remote) as preview:
        return _plan(gf, home, ops, configs or {}, force, (remote, preview, []))


def _plan(
    gf: gagefile.Gagefile,
    home: str,
    ops: list[str],
    configs: Mapping[str, dict[str, Any]],
    force: bool,
    remote: tuple[Any, Callable[[dict], Run], list] | None,
) -> list[Step]:
    edges = graph.op_graph(gf.opdefs)
    resolved: dict[str, Run] = {}
    stale: set[str] = set()
    later: dict[str, str] = {}  # op -> why it is decided only after a pull
    steps = []
    wanted = set(ops)
    for op in ops:
        ups = [u for u in edges[op] if u in wanted]
        if force:
            step = Step(op, "run", reasons=["--force"])
        elif any(u in stale for u in ups):
            names = ", ".join(u for u in ups if u in stale)
            step = Step(op, "run", reasons=[f"upstream {names} will run first"])
        elif any(u in later for u in ups):
            u = next(u for u in ups if u in later)
            step = Step(op, "later", reasons=[later[u]])
        else:
            step = _op_step(
                gf, home, op, _config(gf, op, configs), ups, resolved, remote
            )
        if step.action == "run":
            stale.add(op)
        elif step.action == "pull" and remote and step.entry:
            try:
                resolved[op] = remote[1](step.entry)
            except (GageError, OSError) as e:
                later[op] = (
                    f"upstream {op} is pulled first, and its run cannot be "
                    f"read before ({e})"
                )
        elif step.action == "later":
            later[op] = step.reasons[0]
        elif step.run is not None:
            resolved[op] = step.run
        steps.append(step)
    return steps


def _op_step(
    gf: gagefile.Gagefile,
    home: str,
    op: str,
    config: dict[str, Any],
    ups: list[str],
    resolved: Mapping[str, Run],
    remote: tuple[Any, Callable[[dict], Run], list] | None,
) -> Step:
    step = _decide(gf, home, op, config, _runs_of(ups, resolved))
    if step.action == "run" and remote is not None and not step.blocked:
        step = _remote_step(gf, home, op, config, ups, resolved, step, remote)
    return step


def _remote_step(
    gf: gagefile.Gagefile,
    home: str,
    op: str,
    config: dict[str, Any],
    ups: list[str],
    resolved: Mapping[str, Run],
    step: Step,
    remote: tuple[Any, Callable[[dict], Run], list],
) -> Step:
    """`pull` when the remote has a completed run with the inputs key
    `stage_op.lookup` gives (the remote's entries listed once per plan),
    else `step`."""
    from ..remote import layout
    from ..remote.pull import matching_entry

    b, _preview, entries = remote
    found = stage_op.lookup(gf, home, gf.get_opdef(op), config, _runs_of(ups, resolved))
    if not found.key:
        return step
    if not entries:  # listed once per plan
        entries.append(layout.list_entries(b))
    e = matching_entry(entries[0], found.key)
    if e is None:
        return step
    where = f"remote '{b.spec.name}'"
    why = f"run {e['name']} on {where} completed with the same inputs"
    return Step(op, "pull", step.run, [why], pull=f"{e['name']} ({e['id']})", entry=e)


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
        return Step(op, "run", reasons=[str(e)], blocked=str(e))
    if inputs is None:
        return Step(
            op, "run", reasons=["staging hooks: its inputs are known once staged"]
        )
    accept = _strict(gf, home, opdef)
    match = op_inputs.find_run(home, inputs, accept=accept)
    if match:
        return Step(op, "up to date", match)
    same = op_inputs.find_run(home, inputs) if accept else None
    if same:
        reason = "the Python or packages differ (strict-env)"
        return Step(op, "run", same, [reason])
    closest = op_inputs.closest_run(home, inputs)
    if closest is None:
        return Step(op, "run", reasons=[f"no completed run of {op}"])
    run, old = closest
    reasons = op_inputs.describe_changes(old, inputs) or ["inputs differ"]
    return Step(op, "run", run, reasons)


# ---------------------------------------------------------------------------
# Repro


Say = Callable[[str], object]


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
    on_error: Say | None = None,
    remote: Any = None,
    fetch: Callable[[list[Any]], object] | None = None,
) -> list[Result]:
    """Bring `ops` (in dependency order) up to date; append to `results`
    as each op is decided or ends (so a caller that is interrupted has
    what happened so far), and return it.

    Without `keep_going`, the first failure stops new runs from starting
    (runs in flight finish); with it, only ops downstream of a failure
    are skipped. `say` is told what happens; `on_error` gets the line of
    an op that could not be staged (its Result has it too). With `remote`
    (an open remote), a completed run there with the inputs an op would
    have is pulled instead of run (`pulled`). `fetch` gets the pinned
    project files an op needs that are neither in the project nor in the
    object cache (dep_pins.Absent), before the op is staged.
    """
    st = _Repro(
        gf,
        home,
        ops,
        engine,
        jobs,
        results,
        configs or {},
        force,
        keep_going,
        quiet,
        say,
        warn,
        on_error,
        remote,
        fetch,
        graph.op_graph(gf.opdefs),
        list(ops),
        set(ops),
    )
    while st.todo or st.flight:
        for op in list(st.todo):
            _next(st, op)
        if not st.flight:
            if st.todo and not st.stop:  # nothing can start: not in a DAG
                raise GageError(f"cannot order ops: {', '.join(st.todo)}")
            continue
        done, _ = concurrent.futures.wait(
            st.flight, return_when=concurrent.futures.FIRST_COMPLETED
        )
        for fut in done:
            _ended(st, fut)
    return results


@dataclass
class _Repro:
    """A repro's arguments and the state of its loop."""

    gf: gagefile.Gagefile
    home: str
    ops: list[str]
    engine: Engine
    jobs: int
    results: list[Result]
    configs: Mapping[str, dict[str, Any]]
    force: bool
    keep_going: bool
    quiet: bool
    say: Say
    warn: run_stage.Warn | None
    on_error: Say | None
    remote: Any
    fetch: Callable[[list[Any]], object] | None
    edges: dict[str, list[str]]
    todo: list[str]
    wanted: set[str]
    resolved: dict[str, Run] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)
    flight: dict[concurrent.futures.Future[int], tuple[str, Run, float]] = field(
        default_factory=dict
    )
    stop: bool = False


def _next(st: _Repro, op: str) -> None:
    """Skip `op`, leave it for later, or decide it: up to date, or a run
    staged and submitted."""
    ups = [u for u in st.edges[op] if u in st.wanted]
    if any(u in st.bad for u in ups):
        st.todo.remove(op)
        st.bad.add(op)
        failed = ", ".join(u for u in ups if u in st.bad)
        st.results.append(Result(op, "skipped", detail=f"upstream {failed} failed"))
        return
    if st.stop:
        st.todo.remove(op)
        st.results.append(Result(op, "skipped", detail="an earlier op failed"))
        return
    if not all(u in st.resolved for u in ups) or len(st.flight) >= st.jobs:
        return
    st.todo.remove(op)
    try:
        config = _config(st.gf, op, st.configs)
        upstream = _runs_of(ups, st.resolved)
        run = _start_op(st, op, config, upstream)
    except GageError as e:
        if st.on_error:
            st.on_error(f"{op}: {e}")
        _failed(st, Result(op, "failed", code=1, detail=str(e)))
        return
    if isinstance(run, Step):
        assert run.run
        st.resolved[op] = run.run
        if run.action == "pulled":
            st.say(
                f"{op} pulled from remote '{st.remote.spec.name}': run {run.run.name}"
            )
        else:
            st.say(f"{op} is up to date: run {run.run.name}")
        st.results.append(Result(op, run.action, run.run))
        return
    if st.quiet:  # else the run's own process says it starts
        st.say(f"Running {op} (run {run.name})")
    fut = st.engine.submit(run, quiet=st.quiet)
    st.flight[fut] = (op, run, time.monotonic())


def _ended(st: _Repro, fut: concurrent.futures.Future[int]) -> None:
    op, run, t0 = st.flight.pop(fut)
    code = fut.result()
    seconds = time.monotonic() - t0
    if code == 0:
        st.resolved[op] = run
        st.results.append(Result(op, "ran", run, seconds=seconds))
        return
    status = runs.run_status(run)
    _failed(st, Result(op, "failed", run, _exit(code), f"status {status}", seconds))


def _failed(st: _Repro, result: Result) -> None:
    st.bad.add(result.op)
    st.results.append(result)
    st.stop = st.stop or not st.keep_going


def _exit(code: int) -> int:
    return code if 0 < code < 256 else 1


def _start_op(
    st: _Repro, op: str, config: dict[str, Any], upstream: Mapping[str, Run]
) -> Run | Step:
    """The completed run that is up to date (as a Step; `pulled` when it
    came from the remote), else a new staged run of `op` that uses exactly
    the `upstream` runs."""
    gf, home, force, remote = st.gf, st.home, st.force, st.remote
    opdef = gf.get_opdef(op)
    accept = None if force else _strict(gf, home, opdef)
    found = (
        None
        if force
        else stage_op.lookup(gf, home, opdef, config, upstream, accept=accept)
    )
    if found and not found.match and found.key and remote is not None:
        from ..remote.pull import pull_matching

        match = pull_matching(home, remote, found.key)
        if match:
            return Step(op, "pulled", match)
    absent = stage_op.absent_files(gf, home, opdef, upstream)
    if absent and st.fetch is None:
        raise dep_pins.absent_error(absent[0])  # nothing staged
    if absent and st.fetch is not None:
        st.fetch(absent)
    staged = stage_op.stage_op(
        gf, home, opdef, config, found, upstream=upstream, warn=st.warn
    )
    if not staged.needed:
        return Step(op, "up to date", staged.run)
    return staged.run


def _strict(gf: gagefile.Gagefile, home: str, opdef: Any) -> Any:
    """The package test of an op with `strict-env = true`, else None."""
    import os

    from ..lifecycle import provenance

    cmd = gagefile.op_cmd(opdef)
    env = dict(os.environ, **cmd.env)
    return provenance.strict_filter(opdef, cmd.args, env, gf.project_dir, home)
