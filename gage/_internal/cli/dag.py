"""`gage dag`: the op graph, with each op's latest run and staleness."""

from __future__ import annotations

import argparse

from . import common
from . import table as cli_table

_HELP = """\
Show the op graph of gage.toml: an op that has a run-files dependency on
another op comes after it. With OP, only OP and the ops upstream of it.

Each op shows its latest run (and that run's status) and whether it is
up to date, i.e. whether `gage repro` would leave it alone (see `gage
repro --help`). --no-status skips that (no file is read or hashed).

Text by default; --mermaid and --dot print the graph for documents.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:

    p = sub.add_parser(
        name,
        help=help,
        description=_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    p.add_argument("op", nargs="?", metavar="OP", help="only OP and its upstream ops")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--mermaid", action="store_true", help="a Mermaid flowchart")
    fmt.add_argument("--dot", action="store_true", help="a Graphviz dot digraph")
    p.add_argument(
        "--no-status",
        action="store_true",
        help="do not show latest runs and staleness",
    )
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_dag)


def _cmd_dag(args) -> int:
    from ..pipeline import repro
    from ..project import graph

    gf, home = common.project(args)
    ops = repro.select_ops(gf, [args.op] if args.op else [])
    wanted = set(ops)
    all_edges = graph.op_graph(gf.opdefs)
    edges = {op: [u for u in all_edges[op] if u in wanted] for op in ops}
    labels = {op: "" for op in ops}
    if not args.no_status:
        labels = _labels(gf, home, ops)
    if args.mermaid:
        _mermaid(edges, labels)
    elif args.dot:
        _dot(edges, labels)
    else:
        _text(edges, labels, not args.no_status)
    return 0


def _labels(gf, home: str, ops: list[str]) -> dict[str, str]:
    from ..home import runs
    from ..pipeline import repro

    latest_of = {runs.op_name(r): r for r in runs.list_runs(home)}  # oldest first
    labels = {}
    for step in repro.plan(gf, home, ops):
        latest = latest_of.get(step.op)
        run = f"{latest.name} ({runs.run_status(latest)})" if latest else "no runs"
        state = "up to date" if step.action == "up to date" else "stale"
        if (
            step.action == "up to date"
            and latest
            and step.run
            and step.run.id != latest.id
        ):
            state += f" (run {step.run.name})"
        labels[step.op] = f"{state}|{run}"
    return labels


def _text(edges: dict[str, list[str]], labels: dict[str, str], status: bool) -> None:
    header = ("op", "after") + (("status", "latest run") if status else ())
    rows: list[tuple[str, ...]] = []
    for op, ups in edges.items():
        row: tuple[str, ...] = (op, ", ".join(ups) or "-")
        if status:
            state, run = labels[op].split("|", 1)
            row += (state, run)
        rows.append(row)
    cli_table.print_table(header, rows)


def _mermaid(edges: dict[str, list[str]], labels: dict[str, str]) -> None:
    ids = {op: f"op{i}" for i, op in enumerate(edges)}
    print("flowchart TD")
    for op in edges:
        label = op + "".join(f"<br/>{part}" for part in labels[op].split("|") if part)
        print(f'  {ids[op]}["{_escape(label, "#quot;")}"]')
    for op, ups in edges.items():
        for up in ups:
            print(f"  {ids[up]} --> {ids[op]}")


def _dot(edges: dict[str, list[str]], labels: dict[str, str]) -> None:
    print("digraph gage {")
    for op in edges:
        label = "\\n".join([op] + [p for p in labels[op].split("|") if p])
        print(f'  "{_escape(op)}" [label="{_escape(label)}"];')
    for op, ups in edges.items():
        for up in ups:
            print(f'  "{_escape(up)}" -> "{_escape(op)}";')
    print("}")


def _escape(text: str, quote: str = '\\"') -> str:
    return text.replace('"', quote)
