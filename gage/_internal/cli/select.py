"""`gage select`: the ids (or dirs) of selected runs, for scripts."""

from __future__ import annotations

import argparse

_HELP = """\
Print the ids of runs, one a line, newest first (RUN... in the order
given): for scripts and shell pipelines, e.g.
  gage select --where 'loss < 0.2' | xargs -n1 gage show
RUN selects runs as elsewhere (a name, id or prefix, the # that 'gage
runs' shows, an op name for its latest run, a path to a run dir); no
RUN: every run, filtered by --op, --status and --where. --dir prints run
dirs, --json the run records. No matching run: exit 1.

--where EXPR keeps the runs where EXPR holds. Columns are named as in
'gage compare --cols': config and summary keys (a plain name is a config
key when a run has it, else a summary key; config.NAME, summary.NAME),
and id, name, op, status, started, time, label, comments.

  lr > 0.01 and loss < 0.2      = != < <= > >= (numbers, or text)
  label ~ best                  ~ contains, !~ does not
  op in (train, eval)           in (...), not in (...)
  not (status = error or lr = 0.1)
  label = 'two words'           quote text with blanks or ( ) , = < > ! ~

A run without a value for a column matches no comparison on it (not
even !=); 'not' matches it. A bad expression is an error naming the
column or token.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    from . import common
    from . import compare as cli_compare

    p = sub.add_parser(
        name, help=help, description=_HELP, formatter_class=common.RawHelpFormatter
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help="runs to select")
    cli_compare.add_filter_args(p)
    p.add_argument("--archive", metavar="NAME", help="select runs in archive NAME")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--dir", action="store_true", help="print run dirs")
    out.add_argument("--json", action="store_true", help="print run records as JSON")
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_select)


def _cmd_select(args) -> int:
    from ..home import runs_select
    from . import common
    from . import compare as cli_compare

    _gf, home = common.project(args, required=False)
    if args.archive is not None:
        from ..history import runs_archive

        home = runs_archive.archive_home(home, args.archive)
    page, _total = runs_select.select_runs(
        home, args.runs, args.op, cli_compare.statuses(args.status), where=args.where
    )
    if args.json:
        import json

        print(json.dumps([r for _n, r in page], indent=2, sort_keys=True))
        return 0
    if not page:
        return common.error(f"no matching runs in {home}", 1)
    for _n, r in page:
        print(r["run_dir"] if args.dir else r["id"])
    return 0
