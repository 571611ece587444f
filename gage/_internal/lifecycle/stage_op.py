"""The one way to stage an op: `gage run`, its batches and `gage repro`
all call it, so they agree on --needed, on upstream runs and on what a
staging that fails leaves behind.

    lookup(...)    before anything is staged: a completed run with the
                   inputs this run would have (--needed; repro), or None
    stage_op(...)  make, init and stage a run; an op whose staging hooks
                   make its inputs unpredictable is compared once staged

A staging that fails keeps its run: its meta (log/runner, the hooks'
output) says why, `gage show` shows it, and `gage runs purge` removes it.
The error is raised as it came, and the runner log records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..project import gagefile
from ..types import OpDef, Run
from ..util import gc_pause
from . import op_inputs

if TYPE_CHECKING:
    from . import dep_pins, run_deps

# Staging's modules (run_stage and what it imports: the file selection,
# objects, provenance, hooks, verification) are imported by `stage_op`
# and `check_op` only: `--needed` that finds a run never loads them.

__all__ = ["Lookup", "Staged", "absent_files", "check_op", "lookup", "stage_op"]


@dataclass(frozen=True)
class Lookup:
    """What --needed found before staging: `match`, a completed run with
    the same inputs; `predicted` is false for an op with staging hooks,
    whose inputs are known only once it is staged."""

    match: Run | None
    predicted: bool
    accept: Callable[[Run], bool] | None = None
    key: str | None = None  # the inputs key, when predicted


@dataclass(frozen=True)
class Staged:
    """`run` is the new staged run, or (`needed` false) the completed run
    with the same inputs that makes it unneeded (the staged one is gone)."""

    run: Run
    needed: bool = True


def lookup(
    gf: gagefile.Gagefile,
    home: str,
    opdef: OpDef,
    config: Mapping[str, Any],
    upstream: Mapping[str, Run] | None = None,
    accept: Callable[[Run], bool] | None = None,
    resolved: list[run_deps.ResolvedDep] | None = None,
) -> Lookup:
    """`accept`: what else a completed run must pass (`--strict-env`).
    `resolved`: the dependencies as `check_op` just resolved them (a
    folder of many files is not walked again)."""
    with gc_pause.paused():  # a folder of many files: see gc_pause
        inputs = op_inputs.op_inputs(
            home, gf.project_dir, opdef, dict(config), upstream, resolved
        )
    if inputs is None:
        return Lookup(None, predicted=False, accept=accept)
    match = op_inputs.find_run(home, inputs, accept=accept)
    return Lookup(match, predicted=True, accept=accept, key=inputs.key)


def check_op(
    gf: gagefile.Gagefile,
    home: str,
    opdef: OpDef,
    config: Mapping[str, Any],
    upstream: Mapping[str, Run] | None = None,
    stats: bool = False,
) -> list[run_deps.ResolvedDep]:
    """Raise, before anything is staged, what staging would refuse and
    can be known now: a dependency that cannot be resolved (no upstream
    run, upstream runs that disagree, a missing file) or that would
    replace a config file. `stage_op` calls it unless told it was
    (`checked`); callers that ask for a confirmation call it first.
    Returns the dependencies resolved (for `lookup`): a folder's files
    from its listing, no stat taken (staging takes its own), unless
    `stats` (for `lookup`: its walk's stats, none taken again)."""
    if not opdef.get_dependencies():
        return []
    from . import run_deps

    resolved = run_deps.preview_dependencies(
        home, gf.project_dir, opdef, upstream, stats=stats
    )
    if config:
        run_deps.check_config_files(resolved, gf.project_dir, opdef)
    return resolved


def absent_files(
    gf: gagefile.Gagefile,
    home: str,
    opdef: OpDef,
    upstream: Mapping[str, Run] | None = None,
    resolved: list[run_deps.ResolvedDep] | None = None,
) -> list[dep_pins.Absent]:
    """Pinned project files that are neither in the project nor in the
    object cache: what a remote must fetch before `opdef` can be staged
    (see dep_pins). `resolved`: as `check_op` returned them."""
    from . import dep_pins, run_deps

    if resolved is None:
        if not opdef.get_dependencies():
            return []
        resolved = run_deps.preview_dependencies(
            home, gf.project_dir, opdef, upstream, stats=False
        )
    return dep_pins.unfetched(home, [a for dep in resolved for a in dep.absent])


def stage_op(
    gf: gagefile.Gagefile,
    home: str,
    opdef: OpDef,
    config: Mapping[str, Any],
    found: Lookup | None = None,
    upstream: Mapping[str, Run] | None = None,
    batch: str | None = None,
    warn: Callable[[str], None] | None = None,
    progress: bool = False,
    checked: bool = False,
) -> Staged:
    """Stage a run of `opdef` with `config` (resolved) and exactly the
    `upstream` runs given. With `found` (a `lookup` whose match was
    None), an op that could not be predicted is compared once staged.
    `checked`: the caller has just called `check_op` with these args."""
    if found is not None and found.match is not None:
        return Staged(found.match, needed=False)
    from ..home import runs
    from ..store import run_meta
    from . import run_stage

    if not checked:
        check_op(gf, home, opdef, config, upstream)
    run = run_stage.make_run(home)
    cmd = gagefile.op_cmd(opdef)
    run_stage.init_run_meta(
        run, gagefile.op_ref(gf, opdef), opdef, cmd, dict(config), {}
    )
    if batch:
        run_meta.write_batch(run, batch)
    try:
        with gc_pause.paused():
            run_stage.stage_run(
                run, gf.project_dir, warn=warn, upstream=upstream, progress=progress
            )
    except Exception as e:
        run_meta.runner_log(run).error("staging failed: %s", e)
        raise
    if found is not None and not found.predicted:
        match = op_inputs.find_matching_run(run, runs.list_runs(home), found.accept)
        if match:
            runs.delete_run(run)
            return Staged(match, needed=False)
    return Staged(run)
