"""`gage comment`: add, list and delete comments on runs."""

from __future__ import annotations

import argparse

_HELP = """\
Comment on runs: -m TEXT adds a comment (your user name, the time and
TEXT) to each RUN (the latest run when none is named); --list prints
the comments, numbered; --delete N deletes comment N.

Comments show in 'gage show' and as the 'comments' column of 'gage
compare' and 'gage runs --cols'. They are notes, not inputs: adding one
never changes what 'gage check' verifies nor what 'gage run --needed'
compares. Several gage processes may comment on a run at once.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    from . import common

    p = sub.add_parser(
        name, help=help, description=_HELP, formatter_class=common.RawHelpFormatter
    )
    p.add_argument(
        "runs", nargs="*", metavar="RUN", help="runs to comment on (default: latest)"
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("-m", "--message", metavar="TEXT", help="add a comment")
    what.add_argument(
        "-l", "--list", action="store_true", help="list the comments, numbered"
    )
    what.add_argument(
        "-d", "--delete", type=int, metavar="N", help="delete comment N (see --list)"
    )
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_comment)


def _cmd_comment(args) -> int:
    from ..history import run_comments
    from . import common

    if args.message is None and not args.list and args.delete is None:
        raise common.usage("give -m TEXT to comment, --list or --delete N")
    selected = [common.select_run(args, spec) for spec in args.runs or [None]]
    for run in selected:
        if args.message is not None:
            run_comments.comment_run(run, args.message)
            print(f"Commented run {run.name}")
        elif args.list:
            _print_comments(run, run_comments.list_comments(run))
        else:
            gone = run_comments.delete_comment(run, args.delete)
            print(f"Deleted comment {args.delete} of run {run.name}: {_first(gone)}")
    return 0


def _print_comments(run, comments: list) -> None:
    if not comments:
        print(f"Run {run.name} has no comments")
        return
    print(f"Comments on run {run.name}:")
    print_comments(comments)


def print_comments(comments: list, indent: str = "  ") -> None:
    """Comments numbered from 1: author, local time, text (lines
    indented)."""
    from ..store import run_meta
    from . import common

    for i, c in enumerate(comments, 1):
        when = (
            common.local_time(run_meta.format_timestamp(c["time"]))
            if isinstance(c.get("time"), int)
            else "-"
        )
        print(f"{indent}[{i}] {c.get('author') or '?'}  {when}")
        for line in str(c["text"]).splitlines() or [""]:
            print(f"{indent}    {line}")


def _first(comment: dict) -> str:
    text = str(comment["text"]).splitlines()[0] if comment["text"] else ""
    return text if len(text) <= 60 else text[:57] + "..."
