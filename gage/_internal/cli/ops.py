"""`gage ops`: the ops of gage.toml."""

from __future__ import annotations

import argparse

from . import common

_HELP = """\
List the ops of gage.toml, in file order: each op's description (its
`description` key), a mark for the default op (the one 'gage run' runs
when none is named), its config keys with their defaults (read from the
project's files) and its dependencies.
"""


def add_parser(sub: argparse._SubParsersAction, name: str, help: str) -> None:
    p = sub.add_parser(
        name,
        help=help,
        description=_HELP,
        formatter_class=common.RawHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print the ops as JSON")
    p.set_defaults(func=_cmd_ops)


def _cmd_ops(args) -> int:
    from ..project import gagefile, op_info
    from . import table as cli_table

    gf = gagefile.load_gagefile()
    ops = op_info.describe_ops(gf)
    if args.json:
        import json

        print(json.dumps([_data(op) for op in ops], indent=2, sort_keys=True))
        return 0
    for op in ops:
        if op.config_error:
            common.warn(f"op '{op.name}': cannot read config: {op.config_error}")
    rows = [
        (
            op.name + (" *" if op.default else ""),
            op.description or "-",
            " ".join(f"{k}={common.fmt_val(v)}" for k, v in op.config.items()) or "-",
            ", ".join(_dep(d) for d in op.depends) or "-",
        )
        for op in ops
    ]
    cli_table.print_table(("op", "description", "config", "depends"), rows)
    if any(op.default for op in ops):
        print("* default op")
    return 0


def _dep(dep: dict) -> str:

    files = dep.get("files")
    what = common.fmt_val(files) if files is not None else "*"
    if dep.get("type") == "run-files":
        return f"{dep.get('run-select')}:{what}"
    return what


def _data(op) -> dict:
    return {
        "name": op.name,
        "description": op.description,
        "default": op.default,
        "config": op.config,
        "config_error": op.config_error,
        "depends": op.depends,
        "after": op.after,
    }
