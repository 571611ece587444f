"""`gage runs rm`, `gage runs purge` and `gage runs label`: sub-verbs of
`gage runs` (which lists runs when given none)."""

from __future__ import annotations

import argparse
import sys

from . import common
from . import compare as cli_compare

_RM_HELP = """\
Delete runs: RUN... (as elsewhere: a name, id or prefix, the # that
'gage runs' shows), or every run of --op OP and/or with --status S[,S]
and/or matching --where EXPR.

gage first shows what it would delete and asks to confirm; -y does not
ask. Without a terminal to ask on, gage refuses unless -y is given.
--preview shows what would be deleted and deletes nothing.

A run that is running is never deleted, nor one being staged. A run
whose files a staged or running run depends on (a run-files dependency)
is not deleted, naming that run, unless --force. gage exits 1 when it
leaves a selected run.
"""

_PURGE_HELP = """\
Delete leftover runs: by default the runs whose staging or runner died
(pending, abandoned) and the runs that failed (error); --status S[,S]
names the statuses (`pending` includes runs whose staging failed,
which list as abandoned). Like 'gage runs rm', it shows what it would delete
and asks first (-y does not ask), and leaves alone what a staged or
running run needs.
"""

_LABEL_HELP = """\
Give a run a label: a line of text shown by 'gage runs' and 'gage show'
and matched by 'gage runs --label TEXT'. A new label replaces the old
one; --clear removes it. With --where EXPR, every run where EXPR holds
gets the label (RUN then may be left out: gage runs label --where EXPR
TEXT).
"""


def add_parsers(runs: argparse.ArgumentParser) -> None:
    """The sub-verbs of `gage runs`, and its --label filter."""

    _listing_args(runs)
    # The listing's usage, then the verbs' (argparse would show VERB as
    # if it were required).
    listing = runs.format_usage().split(":", 1)[1].strip()
    runs.usage = (
        f"{listing}\n       gage runs rm RUN... | purge | label RUN TEXT "
        "(gage runs VERB --help)"
    )
    sub = runs.add_subparsers(
        title="verbs (gage runs VERB --help)", metavar="VERB", dest="verb"
    )

    _add_rm(sub)
    _add_purge(sub)
    _add_label(sub)


def _add_rm(sub: argparse._SubParsersAction) -> None:
    rm = sub.add_parser(
        "rm",
        prog="gage runs rm",
        help="delete runs (asks first)",
        description=_RM_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    rm.add_argument("runs", nargs="*", metavar="RUN", help="runs to delete")
    rm.add_argument("-o", "--op", metavar="OP", help="every run of this op")
    rm.add_argument(
        "-s", "--status", metavar="S[,S]", help="every run with one of these statuses"
    )
    cli_compare.where_arg(rm)
    _delete_args(rm)
    common.runs_dir_arg(rm)
    rm.set_defaults(func=_cmd_rm)


def _add_purge(sub: argparse._SubParsersAction) -> None:
    purge = sub.add_parser(
        "purge",
        prog="gage runs purge",
        help="delete leftover runs (pending, abandoned, error)",
        description=_PURGE_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    purge.add_argument("-o", "--op", metavar="OP", help="only runs of this op")
    purge.add_argument(
        "-s",
        "--status",
        metavar="S[,S]",
        help="statuses to delete (default: pending,abandoned,error)",
    )
    cli_compare.where_arg(purge)
    _delete_args(purge)
    common.runs_dir_arg(purge)
    purge.set_defaults(func=_cmd_purge)


def _add_label(sub: argparse._SubParsersAction) -> None:
    label = sub.add_parser(
        "label",
        prog="gage runs label",
        help="set or clear a run's label",
        description=_LABEL_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    label.add_argument("run", nargs="?", metavar="RUN", help=common.RUN_ARG_HELP)
    label.add_argument("text", nargs="?", metavar="TEXT", help="the label")
    label.add_argument("--clear", action="store_true", help="remove the label")
    cli_compare.where_arg(label)
    _quiet_arg(label)
    common.runs_dir_arg(label)
    label.set_defaults(func=_cmd_label)


def _listing_args(runs: argparse.ArgumentParser) -> None:
    from . import compare as cli_compare

    cli_compare.where_arg(runs)
    runs.add_argument(
        "--archive",
        metavar="NAME",
        help="list the runs in archive NAME (see 'gage archive --help')",
    )
    runs.add_argument(
        "--label", metavar="TEXT", help="only runs whose label contains TEXT"
    )
    runs.add_argument(
        "--cols",
        action="append",
        metavar="COL[,COL]",
        help="more columns: config or summary keys (see 'gage compare --help')",
    )


def _quiet_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors"
    )


def _delete_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
    _quiet_arg(p)
    p.add_argument(
        "--preview",
        action="store_true",
        help="show what would be deleted; delete nothing",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="delete runs that staged or running runs depend on",
    )


# ---------------------------------------------------------------------------
# rm, purge


def _cmd_rm(args) -> int:
    from ..history import run_delete
    from . import compare as cli_compare

    _gf, home = common.project(args, required=False)
    statuses = cli_compare.statuses(args.status)
    selected = run_delete.select_runs(home, args.runs, args.op, statuses, args.where)
    return _delete(args, home, selected)


def _cmd_purge(args) -> int:
    from ..history import run_delete
    from . import compare as cli_compare

    _gf, home = common.project(args, required=False)
    statuses = cli_compare.statuses(args.status) or list(run_delete.PURGE_STATUSES)
    selected = run_delete.select_runs(home, (), args.op, statuses, args.where)
    return _delete(args, home, selected)


def _delete(args, home: str, selected) -> int:
    from ..history import run_delete
    from ..home import runs

    say = (lambda *a: None) if args.quiet else print
    if not selected:
        say(f"No matching runs to delete in {home}")
        return 0
    plan = run_delete.plan_delete(home, selected, force=args.force)
    for r in plan.refused:
        print(f"gage: not deleting run {r.run.name}: {r.reason}", file=sys.stderr)
    code = 1 if plan.refused else 0
    if not plan.delete:
        return code
    n = len(plan.delete)
    if not args.quiet:
        numbers = {r.id: i for i, r in enumerate(reversed(runs.list_runs(home)), 1)}
        verb = "Would delete" if args.preview else "Deleting"
        print(f"{verb} {common.count(n, 'run')}:")
        common.print_runs(plan.delete, numbers)
    for run, users in plan.used_by:
        names = ", ".join(f"{u.name} ({runs.op_name(u) or '?'})" for u in users[:5])
        more = f" and {len(users) - 5} more" if len(users) > 5 else ""
        common.warn(
            f"run {run.name} ({runs.op_name(run) or '?'}) was used by "
            f"{common.count(len(users), 'run')}: {names}{more}; they will name "
            "an upstream run that no longer exists"
        )
    if args.preview:
        say("Nothing deleted (preview).")
        return code
    if not args.yes:
        if not sys.stdin.isatty():
            return common.error(
                f"not deleting {common.count(n, 'run')} without confirmation: "
                "use -y (no terminal to ask on)",
                2,
            )
        if not common.confirm(f"Delete {common.count(n, 'run')}? (y/N) "):
            return common.error("cancelled: nothing deleted", 1)
    deleted = run_delete.delete_runs(plan)
    say(f"Deleted {common.count(deleted, 'run')}")
    return code if deleted == n else 1


# ---------------------------------------------------------------------------
# label


def _cmd_label(args) -> int:
    from ..home import runs

    if args.where and args.text is None and not args.clear:
        args.run, args.text = None, args.run  # gage runs label --where EXPR TEXT
    if args.run is None and not args.where:
        raise common.usage("name the RUN to label (or --where EXPR)")
    if args.clear and args.text is not None:
        raise common.usage("--clear takes no TEXT: give one or the other")
    if not args.clear and not (args.text or "").strip():
        raise common.usage("give the label TEXT, or --clear to remove the label")
    say = (lambda *a: None) if args.quiet else print
    for run in _label_runs(args):
        if args.clear:
            runs.label_run(run, None)
            say(f"Cleared the label of run {run.name}")
            continue
        text = " ".join(args.text.split())
        runs.label_run(run, text)
        say(f"Labeled run {run.name}: {text}")
    return 0


def _label_runs(args) -> list:
    from ..home import runs_select
    from ..types import Run
    from . import common

    if not args.where:
        return [common.select_run(args, args.run)]
    _gf, home = common.project(args, required=False)
    specs = [args.run] if args.run else []
    page, _total = runs_select.select_runs(home, specs, where=args.where)
    if not page:
        print(f"No matching runs to label in {home}")
    return [Run(r["id"], r["run_dir"], r["name"]) for _n, r in page]
