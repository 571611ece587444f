"""`gage archive` and `gage restore`: runs out of the listing and back."""

from __future__ import annotations

import argparse
import sys

from . import common

_ARCHIVE_HELP = """\
Move runs out of the runs listing into an archive: RUN... (as
elsewhere), or every run of --op OP, with --status S[,S], matching
--where EXPR. --name NAME names the archive (default: 'default').

An archive is a dir inside the runs home, <runs home>/.archive/NAME
(gage never writes outside its runs home): 'gage runs --archive NAME'
lists it, 'gage select --archive NAME' selects in it, and 'gage restore
--archive NAME' brings runs back. Runs move whole (a rename: nothing is
copied), so they come back exactly as they were: 'gage check' still
verifies them, and their hardlinks stay links.

A running run is never archived, nor one being staged, nor a run whose
files a staged or running run depends on (unless that run is archived
too). gage shows what it would move and asks first; -y does not ask.
Without a terminal to ask on, gage refuses unless -y is given.
--preview shows what would move and moves nothing.
"""

_RESTORE_HELP = """\
Move runs from archive NAME (--archive NAME) back into the runs home:
RUN... (selected among the archive's runs, as 'gage runs --archive
NAME' numbers them), or every run of the archive matching --op,
--status and --where (all of them when none is given). A run whose
dir name is taken in the runs home stays in the archive.

Like 'gage archive', gage shows what it would move and asks first (-y
does not ask, --preview moves nothing).
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    from . import common
    from . import compare as cli_compare

    restore = name == "restore"
    p = sub.add_parser(
        name,
        help=help,
        description=_RESTORE_HELP if restore else _ARCHIVE_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help=f"runs to {name}")
    cli_compare.add_filter_args(p)
    if restore:
        p.add_argument(
            "--archive",
            required=True,
            metavar="NAME",
            help="the archive to restore from",
        )
    else:
        p.add_argument("--name", metavar="NAME", help="the archive (default: default)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
    p.add_argument(
        "--preview", action="store_true", help="show what would move; move nothing"
    )
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_restore if restore else _cmd_archive)


def _cmd_archive(args) -> int:
    from ..history import run_delete, runs_archive
    from . import common
    from . import compare as cli_compare

    _gf, home = common.project(args, required=False)
    name = args.name or runs_archive.DEFAULT_ARCHIVE
    dest = runs_archive.archive_home(home, name, must_exist=False)
    selected = run_delete.select_runs(
        home,
        args.runs,
        args.op,
        cli_compare.statuses(args.status),
        args.where,
        "archive",
    )
    plan = runs_archive.plan_archive(home, selected)
    return _move(
        args,
        plan,
        home,
        "archive",
        f"to archive '{name}' ({dest})",
        lambda: runs_archive.archive_runs(home, plan, name),
    )


def _cmd_restore(args) -> int:
    from ..history import runs_archive
    from ..home import runs_select
    from ..types import Run
    from . import common
    from . import compare as cli_compare

    _gf, home = common.project(args, required=False)
    src = runs_archive.archive_home(home, args.archive)
    page, _total = runs_select.select_runs(
        src, args.runs, args.op, cli_compare.statuses(args.status), where=args.where
    )
    selected = [Run(r["id"], r["run_dir"], r["name"]) for _n, r in page]
    plan = runs_archive.plan_restore(home, src, selected)
    return _move(
        args,
        plan,
        src,
        "restore",
        f"from archive '{args.archive}' to {home}",
        lambda: runs_archive.restore_runs(home, plan, args.archive),
    )


def _move(args, plan, home: str, verb: str, where: str, move) -> int:
    from . import common

    selected = len(plan.delete) + len(plan.refused)
    if not selected:
        print(f"No matching runs to {verb} in {home}")
        return 0
    for r in plan.refused:
        print(f"gage: not {verb[:-1]}ing run {r.run.name}: {r.reason}", file=sys.stderr)
    code = 1 if plan.refused else 0
    if not plan.delete:
        return code
    n = len(plan.delete)
    runs_text = common.count(n, "run")
    doing = "Would " + verb if args.preview else verb[:-1].capitalize() + "ing"
    print(f"{doing} {runs_text} {where}:")
    _print_runs(plan.delete, home)
    if args.preview:
        print("Nothing moved (preview).")
        return code
    if not args.yes:
        if not sys.stdin.isatty():
            return common.error(
                f"not {verb[:-1]}ing {runs_text} without confirmation: "
                "use -y (no terminal to ask on)",
                2,
            )
        if not common.confirm(f"{verb.capitalize()} {runs_text}? (y/N) "):
            return common.error("cancelled: nothing moved", 1)
    moved = move()
    print(f"{verb.capitalize()}d {common.count(moved, 'run')}")
    return code if moved == n else 1


def _print_runs(items, home: str) -> None:
    """The runs that move, numbered as 'gage runs' lists `home`."""
    from ..home import runs

    numbers = {run.id: i for i, run in enumerate(reversed(runs.list_runs(home)), 1)}
    common.print_runs(items, numbers)
