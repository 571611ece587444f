"""`gage cat` and `gage open`: a run's files, printed or opened."""

from __future__ import annotations

import argparse

_CAT_HELP = """\
Print a file of a run: PATH in the run dir of RUN (the latest run when
RUN is omitted). --meta reads PATH in the run's meta dir instead, e.g.
output/40_run (the run's output), summary.json, log/files.

A path that leads out of the run (absolute, '..', a link to outside) is
refused; so is anything but a regular file.
"""

_OPEN_HELP = """\
Open a run dir (or PATH in it) with the system's program (xdg-open, or
open on macOS), or with --cmd CMD ('--cmd code', '--cmd "ls -l"'; the
path is given last). RUN: the latest run when omitted; to open a path
of the latest run, name it: 'gage open 1 PATH'. --meta opens the run's
meta dir (or PATH in it). gage waits for the program and exits with its
exit code.

A path that leads out of the run (absolute, '..', a link to outside) is
refused.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    from . import common

    if name == "open":
        p = sub.add_parser(
            name,
            help=help,
            description=_OPEN_HELP,
            formatter_class=common.RawHelpFormatter,
        )
        p.add_argument(
            "run",
            nargs="?",
            metavar="RUN",
            help=common.RUN_ARG_HELP + " (default: latest)",
        )
        p.add_argument(
            "path", nargs="?", metavar="PATH", help="a file or dir in the run"
        )
        p.add_argument(
            "--cmd", metavar="CMD", help="the program to open with (default: xdg-open)"
        )
        p.set_defaults(func=_cmd_open)
    else:
        p = sub.add_parser(
            name,
            help=help,
            description=_CAT_HELP,
            formatter_class=common.RawHelpFormatter,
        )
        p.add_argument(
            "run",
            nargs="?",
            metavar="RUN",
            help=common.RUN_ARG_HELP + " (default: latest)",
        )
        p.add_argument("path", metavar="PATH", help="a file in the run")
        p.set_defaults(func=_cmd_cat)
    p.add_argument("--meta", action="store_true", help="a path in the run's meta dir")
    common.runs_dir_arg(p)


def _cmd_cat(args) -> int:
    import sys

    from ..history import run_files
    from . import common

    run = common.select_run(args, args.run)
    with run_files.open_run_file(run, args.path, args.meta) as f:
        sys.stdout.flush()
        out = sys.stdout.buffer
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                break
            out.write(chunk)
        out.flush()
    return 0


def _cmd_open(args) -> int:
    import shlex

    from ..history import run_files
    from . import common

    cmd = None
    if args.cmd is not None:
        cmd = shlex.split(args.cmd)
        if not cmd:
            raise common.usage("--cmd is empty: name a program (e.g. --cmd code)")
    run = common.select_run(args, args.run)
    code = run_files.open_run(run, args.path, cmd, args.meta)
    if code != 0:
        return common.error(
            f"{(cmd or run_files.system_opener())[0]} exited with {code}", 1
        )
    return 0
