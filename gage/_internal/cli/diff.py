"""`gage diff`: what differs between two runs, or why a run ran."""

from __future__ import annotations

import argparse
from typing import Any

from . import common

_HELP = """\
Show what differs from RUN1 to RUN2: the op, config, dependencies (the
upstream run each run-files dependency used, and each dependency file by
digest), source code, runtime and generated files (by digest, from the
manifests: changed, added, removed) and summaries; for runs that
recorded where they came from, the git state (commit, branch, dirty or
clean, the diff's digest), the Python and host, and the packages added,
removed and changed. --files adds a unified diff for each text file that
differs.

With one RUN (or none: the latest run), answers "why did this run?": it
is compared with the run it would have matched, i.e. the completed run
of the same op made before it whose inputs differ least, and says what
differs; then shows the diff from that run to RUN.

Exit status: 0 (whether or not the runs differ); 2 when a run is not
found.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:

    p = sub.add_parser(
        name,
        help=help,
        description=_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    p.add_argument("runs", nargs="*", metavar="RUN", help="one or two runs")
    p.add_argument(
        "--files",
        action="store_true",
        help="show a diff of each text file that differs",
    )
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    common.runs_dir_arg(p)
    p.set_defaults(func=_cmd_diff)


def _cmd_diff(args) -> int:
    from ..history import run_diff

    if len(args.runs) > 2:
        raise common.usage("diff takes two runs (or one: why it ran)")
    _gf, home = common.project(args, required=False)
    if len(args.runs) == 2:
        a, b = (common.select_run(args, spec) for spec in args.runs)
        return _print(args, run_diff.diff_runs(a, b))
    run = common.select_run(args, args.runs[0] if args.runs else None)
    why = run_diff.why_run(home, run)
    if why.match is None:
        if args.json:
            return _json({"run": _ident(run), "match": None, "why": []})
        op = _op(run)
        print(
            f"Run {run.name} ({op}): no completed run of {op} came before it, "
            "so there was nothing to match"
        )
        return 0
    diff = run_diff.diff_runs(why.match, run)
    if args.json:
        return _json(
            {"run": _ident(run), "match": _ident(why.match), "why": list(why.changes)}
            | {"diff": _diff_data(diff)}
        )
    if why.changes:
        print(
            f"Run {run.name} ran: its inputs differ from run {why.match.name}, "
            f"the closest completed run of {_op(run)} before it:"
        )
        for line in why.changes:
            print(f"  {line}")
    else:
        print(
            f"Run {run.name} has the same inputs as run {why.match.name} "
            f"(completed before it): 'gage run --needed' would not have run it"
        )
    print()
    return _print(args, diff)


def _op(run) -> str:
    from ..home import runs

    return runs.op_name(run) or "?"


def _ident(run) -> dict:
    return {"id": run.id, "name": run.name, "op": _op(run)}


def _print(args, diff) -> int:
    from ..history import run_diff
    from ..home import runs

    if args.json:
        return _json(_diff_data(diff))
    for side, run in (("a", diff.a), ("b", diff.b)):
        print(f"{side}: {run.name} ({run.id}) {_op(run)}, {runs.run_status(run)}")
    _section("Op", diff.op, _op_value)
    _section("Config", diff.config, _value)
    _section("Upstream runs", diff.upstream, _run_value)
    _section("Dependencies", diff.deps, _digest)
    for title, name in (
        ("Source code", "sources"),
        ("Runtime files", "runtime"),
        ("Generated files", "generated"),
    ):
        changes = getattr(diff, name)
        _section(title, changes, _digest)
        if args.files:
            for c in changes:
                text = run_diff.file_diff(diff.a, diff.b, c.key)
                if text is None:
                    print(f"    ({c.key}: not a text file, no diff)")
                else:
                    for line in text.splitlines():
                        print(f"    {line}".rstrip())
    _section("Summary", diff.summary, _value)
    # Where the runs came from: only what differs (most runs share it).
    for title, changes, fmt in (
        ("Git", diff.git, _git_value),
        ("Environment", diff.environment, _value),
        ("Packages", diff.packages, _package_value),
    ):
        if changes:
            _section(title, changes, fmt)
    return 0


def _section(title: str, changes, fmt) -> None:
    if not changes:
        print(f"{title}: same")
        return
    print(f"{title}:")
    for c in changes:
        print(f"  {c.key}: {fmt(c)}")


def _value(c) -> str:

    def v(x):
        return "(none)" if x is None else common.fmt_val(x)

    return f"{v(c.old)} -> {v(c.new)}"


def _op_value(c) -> str:
    if c.key == "definition" and c.old and c.new:
        return f"{c.old[:8]} -> {c.new[:8]}"
    return _value(c)


def _run_value(c) -> str:
    def v(x):
        return "(none)" if x is None else f"run {x['name']} ({x['id'][:8]})"

    return f"{v(c.old)} -> {v(c.new)}"


def _git_value(c) -> str:
    if c.key in ("commit", "diff"):

        def v(x):
            return "(none)" if x is None else str(x)[:8]

        return f"{v(c.old)} -> {v(c.new)}"
    if c.key == "dirty":

        def d(x):
            return "(not recorded)" if x is None else ("dirty" if x else "clean")

        return f"{d(c.old)} -> {d(c.new)}"
    return _value(c)


def _package_value(c) -> str:
    if c.kind == "added":
        return f"added ({c.new})"
    if c.kind == "removed":
        return f"removed ({c.old})"
    return f"{c.old} -> {c.new}"


def _digest(c) -> str:
    if c.kind == "added":
        return f"added ({c.new[:8]})"
    if c.kind == "removed":
        return f"removed ({c.old[:8]})"
    return f"changed ({c.old[:8]} -> {c.new[:8]})"


def _diff_data(diff) -> dict:
    import dataclasses

    data: dict[str, Any] = {"a": _ident(diff.a), "b": _ident(diff.b)}
    for field in dataclasses.fields(type(diff)):
        if field.name in ("a", "b"):
            continue
        data[field.name] = [
            {"key": c.key, "change": c.kind, "old": c.old, "new": c.new}
            for c in getattr(diff, field.name)
        ]
    return data


def _json(data) -> int:
    import json

    print(json.dumps(data, indent=2, sort_keys=True))
    return 0
