"""`gage compare`: runs side by side, config and summary columns."""

from __future__ import annotations

import argparse
from typing import Any

from . import common

_HELP = """\
Compare runs: one row per run (newest first), with columns for the run's
op and status, its config and its summary (the metrics it reported).

RUN selects runs as elsewhere (a name, id or prefix, the # that 'gage
runs' shows, an op name for its latest run); no RUN: every run (of
--op OP, with --status S).

--cols names the columns: config keys, summary keys and run attributes
(id, name, op, status, started, time, label), comma separated. A plain
name is a config key if a run has it, else a summary key;
`config.NAME` and `summary.NAME` name one explicitly.

--sort COL sorts by a column (ascending); -COL sorts descending. Runs
without a value come last, shown as '-'. --top N keeps the first N rows
(after sorting). --only-changed drops the columns whose value is the
same in every row.

--csv, --md and --json print the table for other tools (JSON: one object
per run with full column names, null for no value).
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:

    p = sub.add_parser(
        name,
        help=help,
        description=_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help="runs to compare")
    add_filter_args(p)
    add_col_args(p)
    p.add_argument(
        "--top", type=int, metavar="N", help="only the first N rows (after --sort)"
    )
    p.add_argument(
        "--only-changed",
        action="store_true",
        help="drop columns whose value is the same in every row",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--md", action="store_true", help="print a Markdown table")
    fmt.add_argument("--json", action="store_true", help="print JSON")
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_compare)


def add_filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--op", metavar="OP", help="only runs of this op")
    p.add_argument(
        "-s",
        "--status",
        metavar="S[,S]",
        help="only runs with one of these statuses",
    )
    p.add_argument("--batch", metavar="ID", help="only runs of this batch")


def add_col_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cols",
        action="append",
        metavar="COL[,COL]",
        help="columns: config or summary keys, or run attributes",
    )
    p.add_argument(
        "--sort",
        action="append",
        metavar="[-]COL",
        help="sort by a column; -COL: descending",
    )


def statuses(text: str | None) -> list[str] | None:
    """`--status pending,error` as a list, each checked."""
    if text is None:
        return None

    found = [s.strip() for s in text.split(",") if s.strip()]
    for s in found:
        if s not in common.STATUSES:
            raise common.usage(
                f"--status: no status '{s}' (use {', '.join(common.STATUSES)})"
            )
    return found


def _cmd_compare(args) -> int:
    from ..history import run_compare

    _gf, home = common.project(args, required=False)
    selected, numbers = select(
        home, args.runs, args.op, statuses(args.status), args.batch
    )
    table = run_compare.compare(
        selected, args.cols, args.sort, args.top, args.only_changed
    )
    if args.json:
        return _json(table)
    print_table(table, numbers, csv=args.csv, md=args.md, home=home)
    return 0


def select(
    home: str,
    specs: list[str],
    op: str | None,
    status: list[str] | None,
    batch: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Records of the runs for RUN specs (all runs when none), newest
    first, filtered by op, statuses and batch (an id prefix); and the # of each run, as 'gage
    runs' numbers them. Records come from the runs index."""
    from ..home import runs

    page, _total = runs.runs_page(home, None, None, None, batch)
    numbers = {r["id"]: n for n, r in page}
    records = [r for _n, r in page]
    if specs:
        by_id = {r["id"]: r for r in records}
        picked: dict[str, dict[str, Any]] = {}
        for spec in specs:
            run = runs.select_run(home, spec)
            picked.setdefault(run.id, by_id.get(run.id) or runs.run_record(run))
        records = list(picked.values())
    if op is not None:
        records = [r for r in records if r["op"] == op]
    if status is not None:
        records = [r for r in records if r["status"] in status]
    return records, numbers


def print_table(
    table, numbers: dict[str, int], csv: bool = False, md: bool = False, home=""
) -> None:
    from . import table as cli_table

    if not table.rows:
        print(f"No matching runs in {home}" if home else "No matching runs")
        return
    raw = csv
    header = ["#", "name"] + [
        label for col, label in zip(table.columns, table.labels()) if col.name != "name"
    ]
    keep = [i for i, col in enumerate(table.columns) if col.name != "name"]
    rows = [
        [str(numbers.get(r.run.id, "")), r.run.name]
        + [cell(table.columns[i].name, r.values[i], raw) for i in keep]
        for r in table.rows
    ]
    if csv:
        print(cli_table.csv_text(header, rows), end="")
    elif md:
        print(cli_table.md_text(header, rows), end="")
    else:
        cli_table.print_table(header, rows)


def cell(name: str, val: Any, raw: bool = False) -> str:
    """A value as a table shows it: '-' (CSV: empty) for no value; times
    local (CSV: as stored)."""

    if val is None:
        return "" if raw else "-"
    if not raw and name == "started":
        return common.local_time(val)
    if not raw and name == "time":
        return common.duration(val)
    return common.fmt_val(val)


def _json(table) -> int:
    import json

    out = []
    for r in table.rows:
        obj = {"id": r.run.id, "name": r.run.name}
        obj.update({c.name: v for c, v in zip(table.columns, r.values)})
        out.append(obj)
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


# ---------------------------------------------------------------------------
# Columns for gage runs


def runs_columns(
    records: list[dict], cols: list[str] | None
) -> tuple[list[str], list[list[str]]]:
    """Columns 'gage runs' adds: `label` when a run has one, and --cols."""
    head: list[str] = []
    cells: list[list[str]] = [[] for _ in records]
    if any(r["label"] for r in records):
        head.append("label")
        for row, r in zip(cells, records):
            row.append(r["label"] or "")
    if cols:
        from ..history import run_compare

        table = run_compare.compare(records, cols)
        head.extend(table.labels())
        for row, trow in zip(cells, table.rows):
            row.extend(cell(c.name, v) for c, v in zip(table.columns, trow.values))
    return head, cells
