"""`gage report`: an HTML page of runs (table, curves, config)."""

from __future__ import annotations

import argparse

_HELP = """\
Write one HTML file about a set of runs that opens in any browser with
no network (plotly.js is embedded): the runs table (status, config,
metrics; click a column to sort), a curve per scalar overlaying the
runs, parallel coordinates of the config keys that vary against a
metric, and each run's config changes against the first run.

RUN selects runs as for 'gage compare' (a name, id or prefix, the #
that 'gage runs' shows, an op name for its latest run); no RUN: every
run, or those of --op, --batch and --status. Runs are shown oldest
first.

-o names the file to write; without it, the report goes to
.reports/report.html in the runs dir (gage writes nowhere else unless
told), and the path is printed.

--metric names the metric the parallel coordinates color by (a summary
key or a scalar aggregate such as loss.min; default: the first scalar's
.min). --open opens the page in your browser.

Needs the report extra: pip install 'gage-runs[report]'.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    from . import common

    p = sub.add_parser(
        name, help=help, description=_HELP, formatter_class=common.RawHelpFormatter
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help="runs to report")
    p.add_argument("--op", metavar="OP", help="only runs of this op")
    p.add_argument(
        "-s", "--status", metavar="S[,S]", help="only runs with one of these statuses"
    )
    p.add_argument(
        "-b", "--batch", metavar="ID", help="only runs of this batch (an id prefix)"
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="file to write (default: .reports/report.html in the runs dir)",
    )
    p.add_argument("--metric", metavar="COL", help="the metric of the parallel plot")
    p.add_argument("--title", default="gage report", help="the page title")
    p.add_argument("--open", action="store_true", help="open it in a browser")
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    import os

    from ..history import run_report
    from . import common
    from .compare import select, statuses

    _gf, home = common.project(args, required=False)
    records, _numbers = select(home, args.runs, args.op, statuses(args.status))
    if args.batch is not None:
        records = [r for r in records if (r["batch"] or "").startswith(args.batch)]
    if not records:
        raise common.usage("no runs match: nothing to report (see gage runs)")
    if args.output is None:
        from ..store import run_records

        args.output = run_records.report_path(home)
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
    path = os.path.abspath(args.output)
    if os.path.isdir(path):
        raise common.usage(f"-o {args.output} is a directory: name a file")
    try:
        data = run_report.write_report(records[::-1], path, args.metric, args.title)
    except OSError as e:
        return common.error(
            f"cannot write {args.output}: {e.strerror or e}; name a file "
            "in a directory you can write",
            1,
        )
    charts = len(data["curves"]) + (1 if data["parcoords"] else 0)
    print(f"Wrote {args.output}: {len(records)} runs, {charts} charts")
    if args.open:
        import webbrowser

        if not webbrowser.open("file://" + path):
            common.warn(f"cannot open a browser here: open {path} yourself")
    return 0
