"""`gage cache`: the runs home's object cache (size, objects, prune)."""

from __future__ import annotations

import argparse

from . import common

_HELP = """\
Show the object cache of the runs home: where it is, how many objects
it holds and their size, and how many of them no run uses.

Dependency files are placed in runs from this cache (by reflink,
hardlink or copy). A run placed by hardlink shares the object's file;
one placed by reflink or copy has its own. The cache is never needed to
start or check a run: it only saves reading and copying a file again.

`gage cache prune` removes the objects no run uses (their link count is
1), so it never removes data a run has; --preview lists them instead.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:

    p = sub.add_parser(
        name,
        help=help,
        description=_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("prune",),
        metavar="prune",
        help="remove objects no run uses",
    )
    p.add_argument(
        "--preview",
        action="store_true",
        help="with prune: list what would be removed, remove nothing",
    )
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_cache)


def _cmd_cache(args: argparse.Namespace) -> int:
    from ..store import objects
    from ..util import fmt

    _gf, home = common.project(args, required=False)
    if args.action != "prune":
        if args.preview:
            msg = "--preview goes with prune: gage cache prune --preview"
            return common.error(msg, 2)
        info = objects.cache_info(home)
        print(f"Object cache: {info.path}")
        print(f"  {_objects(info.objects)}, {fmt.format_size(info.size)}")
        print(
            f"  {_objects(info.unused)} no run uses "
            f"({fmt.format_size(info.unused_size)}): gage cache prune removes them"
        )
        return 0
    removed = objects.prune(home, preview=args.preview)
    size = fmt.format_size(sum(n for _d, n in removed))
    if args.preview:
        for digest, n in removed:
            print(f"  {digest} {fmt.format_size(n)}")
        print(f"Would remove {_objects(len(removed))} ({size})")
    else:
        print(f"Removed {_objects(len(removed))} ({size})")
    return 0


def _objects(n: int) -> str:
    return f"{n} object{'' if n == 1 else 's'}"
