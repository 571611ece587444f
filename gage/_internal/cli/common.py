"""What the verbs of `gage` share: the runs home and run selection from
arguments, errors and warnings as gage prints them, value and time
formats, and the help formatter that reads the same on every Python."""

from __future__ import annotations

import argparse
import os
import sys

from ..util.fmt import fmt_val

# The same as runs.RUN_STATUSES (a test checks): kept here so building the
# parser for `--help` imports nothing of the library.
STATUSES = [
    "pending",
    "staged",
    "queued",
    "running",
    "completed",
    "error",
    "terminated",
    "pruned",
    "abandoned",
]


RUNS_PAGE_HELP = "20"

RUN_ARG_HELP = (
    "a run id or name, or a prefix of one; the # that 'gage runs' shows; "
    "an op name for its latest run; or a path to a run dir"
)


def error(msg: str, code: int) -> int:
    print(f"gage: {msg}", file=sys.stderr)
    return code


class Parser(argparse.ArgumentParser):
    """argparse with gage's errors: one line on stderr, `gage: ...`
    naming the command and where its help is, exit 2 (argparse prints
    its usage first). Sub-verbs' parsers are of this class too."""

    def error(self, message: str):
        cmd = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        print(
            f"gage: {cmd}{message} (see '{self.prog} --help')",
            file=sys.stderr,
        )
        sys.exit(2)


class HelpFormatter(argparse.HelpFormatter):
    """Help that reads the same on every Python version: an option with
    a short and a long name and a value shows the value once
    (`-b, --batch-file FILE`), as Python 3.13 writes it; 3.10-3.12 wrote
    `-b FILE, --batch-file FILE`."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        # The width argparse would take from shutil, without importing
        # it: every parser builds a formatter, `gage --help` included.
        width = _terminal_columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        default = self._get_default_metavar_for_optional(action)
        return (
            ", ".join(action.option_strings) + " " + self._format_args(action, default)
        )


def _terminal_columns() -> int:
    """`shutil.get_terminal_size().columns`: $COLUMNS, else stdout's
    terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class RawHelpFormatter(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """`HelpFormatter` that keeps a description's line breaks."""


def runs_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--runs-dir", metavar="DIR", help="runs dir (default: see 'gage run --help')"
    )


def project(args, required: bool = True):
    """(gagefile or None, runs home).

    When gage.toml is not required and the runs home is given
    (`--runs-dir`, `GAGE_RUNS`), gage.toml is not read.
    """
    from ..home import runs

    if args.runs_dir == "":
        raise usage("--runs-dir is empty: name a directory (e.g. --runs-dir runs)")
    gf = None
    if required or not (args.runs_dir or os.environ.get("GAGE_RUNS")):
        from ..project import gagefile

        if required:
            gf = gagefile.load_gagefile()
        else:
            path = gagefile.find_gagefile()
            gf = gagefile.read_gagefile(path) if path else None
    home = runs.runs_home(
        args.runs_dir,
        gf.runs_dir if gf else None,
        gf.project_dir if gf else None,
    )
    if os.path.exists(home) and not os.path.isdir(home):
        raise usage(f"runs dir {home} is not a directory: name a directory")
    return gf, home


def select_run(args, spec: str | None):
    from ..home import runs

    _gf, home = project(args, required=False)
    return runs.select_run(home, spec)


def print_dep(spec: dict, source: dict, paths: list[str], note: str = "") -> None:
    what = spec.get("run-select") or spec.get("files") or ""
    if source.get("type") == "run":
        where = f"run {source.get('name')} ({source.get('op')}, {source.get('id')})"
    else:
        where = f"project {source.get('dir')}"
    note = f" ({note})" if note else ""
    print(f"  {spec.get('type')} {fmt_val(what)} from {where}{note}")
    for path in paths:
        print(f"    {path}")


def local_time(iso: str | None) -> str:
    if not iso:
        return "-"
    import datetime

    dt = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
    dt = dt.replace(tzinfo=datetime.timezone.utc).astimezone()
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def warn(msg: str) -> None:
    from ..util import console

    console.warn_line(msg)


def install_notices() -> None:
    """Library notices (`util.console.notice`) as `gage:` lines on
    stderr."""
    from ..util import console

    console.gage_lines()


def usage(msg: str):
    from ..types import GageError

    return GageError(msg)


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def needed_filter(args, gf, home, opdef, cmd):
    """What else a completed run must match for `--needed`: with
    `--strict-env` (or the op's `strict-env`), the Python and packages
    the op's command has now (None: nothing else). Reads the provenance
    settings first, so a bad user config stops before anything is
    staged."""
    from ..lifecycle import provenance

    if getattr(args, "strict_env", False) and not args.needed:
        raise usage("--strict-env applies to --needed")
    provenance.op_settings(opdef)  # a bad user config: before staging
    if not args.needed:
        return None
    env = dict(os.environ, **cmd.env)
    return provenance.strict_filter(
        opdef, cmd.args, env, gf.project_dir, home, args.strict_env
    )


def confirm(prompt: str) -> bool:
    """Ask on the terminal; only `y` or `yes` goes on (the default is no)."""
    try:
        answer = input(prompt)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def print_runs(items, numbers: dict[str, int]) -> None:
    """(run, status) pairs as a table: the # 'gage runs' shows, name, op,
    status (what a verb will delete or move)."""
    from ..home import runs
    from . import table as cli_table

    rows = [
        (f"  {numbers.get(run.id, '')}", run.name, runs.op_name(run) or "?", status)
        for run, status in items
    ]
    cli_table.print_table(("  #", "name", "op", "status"), rows)
