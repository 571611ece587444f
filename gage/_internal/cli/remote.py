"""`gage push`, `gage pull` and `gage runs --remote`: runs shared
through a remote (see gage/_internal/remote)."""

from __future__ import annotations

import argparse
import sys

from . import common

_PUSH_HELP = """\
Copy runs (run dir, meta dir) and the files they hold to a remote: the
runs named, else every run that has ended. A file is sent once, whatever
the number of runs that hold it; what the remote has is not sent again.
A run that does not verify (see 'gage check') is refused.
"""

_PULL_HELP = """\
Bring runs from a remote into the runs dir: the runs named (an id or
name, or a prefix of one), else all the remote has. Every file is
checked against its sha256 as it arrives, and a run whose files or
sealed meta do not verify is refused. A pulled run keeps its id, name
and upstream runs; 'gage show' says which remote it came from.
"""

_REMOTE_HELP = (
    'a remote: a name from gage.toml or the user config (default: "$remote"), '
    "or a directory or url"
)


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    pull = name == "pull"
    p = sub.add_parser(
        name,
        help=help,
        description=_PULL_HELP if pull else _PUSH_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    p.add_argument(
        "runs", nargs="*", metavar="RUN", help="runs to " + name + " (default: all)"
    )
    remote_arg(p)
    p.add_argument(
        "--dry-run", action="store_true", help="say what would move; move nothing"
    )
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    if not pull:
        p.add_argument(
            "--force",
            action="store_true",
            help="send the runs and all their files again, whatever the remote "
            "has (repairs a remote whose files were changed or removed)",
        )
    p.add_argument("--json", action="store_true", help="print what moved as JSON")
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_pull if pull else _cmd_push)


def remote_arg(p: argparse.ArgumentParser, help: str = _REMOTE_HELP) -> None:
    p.add_argument("-r", "--remote", metavar="NAME", help=help)


# ---------------------------------------------------------------------------
# push / pull


def _cmd_push(args) -> int:
    from ..home import runs
    from ..remote import api
    from ..remote.push import plan_push, push

    gf, home = _project(args)
    remote = api.open_remote(args.remote, gf)
    if args.runs:
        selected = [runs.select_run(home, spec) for spec in args.runs]
    else:
        selected = runs.list_runs(home)
    plan = plan_push(remote, selected, args.force)
    stop = _stop(args, plan, "push", "to")
    if stop is not None:
        return stop
    push(remote, plan, _progress(args, "Pushing"))
    return _done(args, plan, "Pushed", "to")


def _cmd_pull(args) -> int:
    from ..remote import api
    from ..remote.pull import plan_pull, pull, select_entries

    gf, home = _project(args)
    b = api.open_remote(args.remote, gf)
    plan = plan_pull(home, b, select_entries(b, args.runs))
    stop = _stop(args, plan, "pull", "from")
    if stop is not None:
        return stop
    pull(home, b, plan, _progress(args, "Pulling"))
    return _done(args, plan, "Pulled", "from")


def _project(args):
    """(gage.toml or None, runs home): gage.toml is read whenever there
    is one, for the remotes it names."""
    from ..project import gagefile

    gf, home = common.project(args, required=False)
    if gf is None:
        path = gagefile.find_gagefile()
        gf = gagefile.read_gagefile(path) if path else None
    return gf, home


def _stop(args, plan, verb: str, prep: str) -> int | None:
    """List what moves (unless --json); the exit code when gage stops
    here (a dry run, nothing to move, not confirmed), else None."""
    moving = plan.moving()
    if args.json and (args.dry_run or not moving):
        _print_json(plan)
        return 0
    if not args.json:
        _print_plan(plan, verb, prep)
    if args.dry_run or not moving:
        if args.dry_run and not args.json:
            print(f"Nothing {verb}ed (dry run).")
        return 0
    if args.yes or not sys.stdin.isatty():
        return None
    try:
        answer = input("Continue? (Y/n) ")
    except EOFError:
        answer = "n"
    if answer.strip().lower() in ("", "y", "yes"):
        return None
    return common.error(f"cancelled: nothing {verb}ed", 1)


def _print_plan(plan, verb: str, prep: str) -> None:
    from ..util.fmt import format_size
    from . import table as cli_table

    if not plan.items:
        print(f"No runs to {verb} {prep} remote '{plan.remote}' ({plan.url})")
        return
    print(f"Runs to {verb} {prep} remote '{plan.remote}' ({plan.url}):")
    rows = [(f"  {i.name}", i.id[:8], i.op, i.status, i.action) for i in plan.items]
    cli_table.print_table(("  name", "id", "op", "status", "action"), rows)
    n = len(plan.moving())
    if n:
        files = common.count(len(plan.objects), "file")
        print(f"{common.count(n, 'run')}, {files} ({format_size(plan.size)}) to {verb}")
    else:
        print(f"Nothing to {verb}: up to date")


def _progress(args, what: str):
    from ..util.console import terminal_progress

    return terminal_progress(what, quiet=args.json)


def _done(args, plan, verb: str, prep: str) -> int:
    from ..util.fmt import format_size

    if args.json:
        _print_json(plan)
        return 0
    runs = common.count(len(plan.moving()), "run")
    files = common.count(len(plan.objects), "file")
    print(
        f"{verb} {runs} ({files}, {format_size(plan.size)}) {prep} remote "
        f"'{plan.remote}'"
    )
    return 0


def _print_json(plan) -> None:
    import json

    print(json.dumps(plan.data(), indent=2, sort_keys=True))


# ---------------------------------------------------------------------------
# gage runs --remote


def cmd_remote_runs(args) -> int:
    """`gage runs --remote NAME`: what a remote holds, newest first, with
    the filters of `gage runs`; nothing is pulled."""
    from ..remote import api
    from . import table as cli_table

    gf, _home = _project(args)
    records = api.remote_runs(args.remote, gf)
    records = [r for r in reversed(records) if _matches(r, args)]
    if args.all or args.json and args.limit is None:
        page = records
    else:
        page = records[: args.limit or int(common.RUNS_PAGE_HELP)]
    if args.json:
        import json

        print(json.dumps(page, indent=2, sort_keys=True))
        return 0
    if not page:
        print(f"No {'matching ' if records else ''}runs on remote '{args.remote}'")
        return 0
    rows = [
        (
            str(n),
            r["name"],
            r["id"][:8],
            r.get("op") or "?",
            r["status"],
            common.local_time(r.get("started")),
            r.get("pushed_from") or "",
        )
        for n, r in enumerate(page, 1)
    ]
    header = ("#", "name", "id", "op", "status", "started", "pushed from")
    cli_table.print_table(header, rows, styles=("dim", None, "dim", None, "status"))
    if len(records) > len(page):
        more = len(records) - len(page)
        print(f"{more} more {'run' if more == 1 else 'runs'}: use --all or -n N")
    return 0


def _matches(r: dict, args) -> bool:
    return (
        (not args.op or r.get("op") == args.op)
        and (not args.status or r.get("status") == args.status)
        and (not args.batch or r.get("batch") == args.batch)
        and (not getattr(args, "label", None) or args.label in (r.get("label") or ""))
    )
