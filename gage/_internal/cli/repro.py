"""`gage repro`: bring ops and everything upstream up to date."""

from __future__ import annotations

import argparse
import sys

from . import common, run_args

_HELP = """\
Bring OP and every op upstream of it up to date, in dependency order
(no OP: every op in gage.toml).

An op is up to date when a completed run has the inputs a run of it
would have now: its op definition, config, source code and dependency
digests, and the exact upstream runs it would use. Other ops run. Once
an upstream op runs, the ops downstream of it use that run (recorded by
id in deps.json), never a "latest" run another process may change.

OP.NAME=VALUE sets a config value of one op (train.lr=0.1); with a
single OP, NAME=VALUE is for that op.

--dry prints the plan and, for each op that would run, why: what
differs from the closest completed run of that op.

Exit status: 0 when every op is up to date or ran; the first failed
run's exit code otherwise (1 for a run ended by a signal or an op that
could not be staged); 2 for a usage or gage.toml/config error; 130
when interrupted.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:

    p = sub.add_parser(
        name,
        help=help,
        description=_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    p.add_argument(
        "words", nargs="*", metavar="OP|OP.NAME=VALUE", help="ops and config values"
    )
    p.add_argument(
        "--dry", action="store_true", help="print the plan and why; run nothing"
    )
    p.add_argument(
        "--force", action="store_true", help="run every op, up to date or not"
    )
    p.add_argument(
        "--downstream",
        action="store_true",
        help="OP and every op downstream of it (instead of upstream)",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="after a failure, still run what does not depend on it",
    )
    p.add_argument(
        "--remote",
        metavar="NAME",
        help="pull a completed run with the same inputs from this remote "
        "instead of running the op (with --dry: say which), and fetch pinned "
        "dependency files missing from the project from it",
    )
    run_args.add_jobs_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="do not show run output")
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_repro)


def make_engine(args, gf):
    """The engine the command line, environment or gage.toml asks for,
    connected before anything is staged."""
    from ..engines.engine import get_engine
    from .slurm_args import engine_settings

    name, options = engine_settings(args, gf)
    return get_engine(name, args.jobs, **options)


def _cmd_repro(args) -> int:
    from ..pipeline import repro

    gf, home = common.project(args)
    targets, assigns = _split(args.words)
    ops = repro.select_ops(gf, targets, args.downstream)
    configs = _configs(gf, ops, assigns, targets)
    remote = None
    if args.remote:
        from ..remote import api

        remote = api.open_remote(args.remote, gf)
    if args.dry:
        return _dry(repro.plan(gf, home, ops, configs, args.force, remote), remote)
    fetch = _fetcher(gf, home, remote)
    engine = make_engine(args, gf)
    results: list[repro.Result] = []
    try:
        repro.repro(
            gf,
            home,
            ops,
            engine,
            args.jobs,
            results,
            configs,
            force=args.force,
            keep_going=args.keep_going,
            quiet=args.quiet,
            warn=common.warn,
            on_error=lambda msg: common.error(msg, 1),
            remote=remote,
            fetch=fetch,
        )
    except KeyboardInterrupt:
        engine.cancel()
        engine.close()
        _summary(results, ops)
        return common.error("interrupted: runs in flight were terminated", 130)
    engine.close()
    _summary(results, ops)
    failed = [r for r in results if r.status == "failed"]
    return failed[0].code if failed else 0


def _fetcher(gf, home: str, remote):
    """What fetches pinned files missing from the project: from the
    --remote given (open), else from "$remote"; None without either."""
    from ..remote.config import default_remote

    name = default_remote(gf)
    if remote is None and not name:
        return None

    def fetch(absent) -> None:
        from ..remote import api

        api.fetch_files(home, absent, remote or name, gf, say=print)

    return fetch


def _split(words: list[str]) -> tuple[list[str], list[str]]:
    targets = [w for w in words if "=" not in w]
    assigns = [w for w in words if "=" in w]
    return targets, assigns


def _configs(
    gf, ops: list[str], assigns: list[str], targets: list[str]
) -> dict[str, dict]:
    """Config per op from OP.NAME=VALUE words (NAME=VALUE is for the one
    OP named, when only one is)."""
    from ..lifecycle import op_inputs
    from ..types import GageError

    by_op: dict[str, list[str]] = {}
    for word in assigns:
        name = word.split("=", 1)[0]
        op, dot, key = name.partition(".")
        if dot and key and op in gf.opdefs:
            assign = word[len(op) + 1 :]
        elif len(targets) == 1:
            op, assign = targets[0], word
        else:
            raise GageError(
                f"'{word}': name the op the value is for, as OP.NAME=VALUE "
                f"(ops: {', '.join(gf.opdefs)})"
            )
        if op not in ops:
            raise GageError(
                f"'{word}': op '{op}' is not part of this repro (ops: {', '.join(ops)})"
            )
        by_op.setdefault(op, []).append(assign)
    return {
        op: op_inputs.op_config(gf.project_dir, gf.get_opdef(op), by_op.get(op, []))
        for op in ops
    }


def _dry(steps, remote=None) -> int:
    for step in steps:
        if step.action == "up to date":
            print(f"{step.op}: up to date (run {step.run.name})")
            continue
        if step.action == "pull":
            print(f"{step.op}: pull from {remote.spec.name} (run {step.pull})")
            continue
        if step.action == "later":
            print(
                f"{step.op}: pull from {remote.spec.name} or run "
                f"({step.reasons[0]}; decided then)"
            )
            continue
        closest = f" (compared with run {step.run.name})" if step.run else ""
        print(f"{step.op}: would run{closest}")
        for reason in step.reasons:
            print(f"  {reason}")
    print("Nothing run (--dry).")
    blocked = [s for s in steps if s.blocked]
    if blocked:
        from . import common

        return common.error(
            f"{blocked[0].op} cannot be staged: {blocked[0].blocked}", 2
        )
    return 0


def _summary(results, ops: list[str]) -> None:

    by_op = {r.op: r for r in results}
    rows = []
    for op in ops:
        r = by_op.get(op)
        if r is None:
            rows.append((op, "not started", "-", "-"))
            continue
        status = f"failed ({r.code})" if r.status == "failed" else r.status
        if r.detail and r.status in ("failed", "skipped"):
            status += f": {r.detail}"
        run = r.run.name if r.run else "-"
        secs = common.duration(r.seconds) if r.seconds is not None else "-"
        rows.append((op, status, run, secs))
    sys.stdout.flush()
    print()
    from . import table as cli_table

    cli_table.print_table(("op", "result", "run", "time"), rows)
